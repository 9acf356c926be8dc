//! The borrowed fast path ([`ConsumerService::process_body`]) against the owned general path
//! (`serde_json` into [`KafkaEvent`], then [`ConsumerService::process_reporting`]): on every body
//! both accept or both refuse, and processing leaves the same summary, sinks and poison
//! ([`assert_paths_agree`], which the `fast_path` fuzz target runs on arbitrary bytes).

use super::*;
use crate::consume::batch::BodyFailure;
use crate::event::view::EventView;
use crate::event::{signed_header_values, RawHeader};
use crate::fuzzing::assert_paths_agree;

/// Headers the way the producer sets them, plus the odd shapes the ESM can deliver.
fn with_headers(mut record: KafkaRecord, variant: u64) -> KafkaRecord {
    let event_id = signed_header_values(format!("event-{}", record.offset).as_bytes());
    record.headers = match variant % 4 {
        0 => None,
        1 => Some(vec![RawHeader::from([("event-id".to_string(), event_id)])]),
        2 => Some(vec![
            RawHeader::from([("h".to_string(), vec![-128, -1, 0, 127])]),
            RawHeader::new(),
            RawHeader::from([("é".to_string(), signed_header_values("é".as_bytes()))]),
        ]),
        _ => Some(Vec::new()),
    };
    record
}

fn body_of(event: &KafkaEvent) -> Vec<u8> {
    serde_json::to_vec(event).unwrap()
}

#[test]
fn mixed_streams_of_every_topic_and_wire_form_agree() {
    for seed in 0..12 {
        let records: Vec<KafkaRecord> = stream(seed, 60)
            .into_iter()
            .enumerate()
            .map(|(i, r)| with_headers(r, seed + i as u64))
            .collect();
        let event = event_of(records);
        let body = body_of(&event);
        let view = EventView::parse(&body).unwrap();
        assert_eq!(view.to_owned_event(), event, "seed {seed}");
        assert_paths_agree(service, &body);
    }
}

#[test]
fn every_poison_kind_agrees_and_keeps_its_raw_record() {
    let records: Vec<KafkaRecord> = poison_cases()
        .into_iter()
        .enumerate()
        .map(|(i, (_, record, _, _))| with_headers(record, i as u64))
        .collect();
    let count = records.len();
    let body = body_of(&event_of(records));
    assert_paths_agree(service, &body);
    let fast = service();
    let summary = run(fast.process_body(&body)).unwrap();
    assert_eq!(summary.poison, count);
    let poison = fast.sinks().poison.snapshot();
    let with_headers = poison.iter().find(|p| p.offset == 3).unwrap();
    assert_eq!(
        with_headers.headers.as_deref().unwrap()[2]["é"],
        signed_header_values("é".as_bytes())
    );
}

#[test]
fn a_failing_sink_reports_the_same_unstored_records_and_the_record_count() {
    let event = event_of(stream(3, 40));
    let body = body_of(&event);
    let failing = || {
        let service = service();
        service.sinks().windows.faults.fail_always();
        service
    };
    assert_paths_agree(failing, &body);
    match run(failing().process_body(&body)) {
        Err(BodyFailure::Batch { records, failure }) => {
            assert_eq!(records, event.record_count());
            assert!(!failure.unstored.is_empty());
            assert!(failure.partial_response().is_some());
        }
        other => panic!("expected a batch failure, got {other:?}"),
    }
}

/// Bodies at the edges of the envelope's grammar: each must be accepted or refused by both.
const EDGE_BODIES: &[&str] = &[
    // Escapes in a topic, a partition key, a key and a value: owned copies, same content.
    r#"{"eventSource":"SelfManagedKafka","records":{"sensor-readings-0":[{"topic":"sensor\u002dreadings","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","key":"a2V5\/","value":"e30\u003d"}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"sensor\u002dreadings-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","value":"e30="}]}}"#,
    // A repeated partition key keeps its last value, in key order; the records of the value it
    // replaces are still checked (found by the fast_path fuzz target: a header holding a string).
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","headers":[{"h":"x"}]}],"t-0":[]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"b-0":[{"topic":"b","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","value":"e30="}],"a-0":[],"b-0":[{"topic":"b","partition":0,"offset":2,"timestamp":1,"timestampType":"CREATE_TIME","value":"e30="}]}}"#,
    // Repeated header names in one map, empty maps, the i16 bounds.
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"LOG_APPEND_TIME","value":null,"headers":[{"h":[1],"h":[2,3]},{},{"x":[-32768,32767],"y":[]}]}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","headers":[{"h":[32768]}]}]}}"#,
    // Whitespace around header values, and a name with escapes (its values cannot be found
    // again in the body by the name's position).
    "{\"eventSource\":\"aws:kafka\",\"records\":{\"t-0\":[{\"topic\":\"t\",\"partition\":0,\"offset\":1,\"timestamp\":1,\"timestampType\":\"CREATE_TIME\",\"headers\":[{\"h\" \t:\n [ 1 , -2\r] ,\"h\\u0065\":[3],\"\":[]}]}]}}",
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","headers":[{"h":[1.0]}]}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","headers":[{"h":null}]}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","headers":{"h":[1]}}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","headers":null}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","headers":[[]]}]}}"#,
    // Duplicate and unknown fields, missing and wrongly typed ones.
    r#"{"eventSource":"aws:kafka","eventSource":"aws:kafka","records":{}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","topic":"u","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME"}]}}"#,
    r#"{"eventSource":"aws:kafka","extra":{"deep":[1,2,{"x":null}]},"records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","unknown":"x"}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","offset":1,"timestamp":1,"timestampType":"CREATE_TIME"}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":2147483648,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME"}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","value":5}]}}"#,
    r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"OTHER"}]}}"#,
    r#"{"eventSource":"kafka","records":{}}"#,
    r#"{"eventSource":"aws:kafka","eventSourceArn":7,"records":{}}"#,
    r#"{"eventSource":"aws:kafka","records":[]}"#,
    r#"{"eventSource":"aws:kafka"}"#,
    // The sequence form serde accepts for a struct, and trailing characters.
    r#"["aws:kafka",null,null,{"t-0":[["t",0,1,1,"CREATE_TIME"]]}]"#,
    r#"["aws:kafka",null,null,{"t-0":[["t",0,1,1,"CREATE_TIME","a2V5","e30=",[{"h":[1]}],"extra"]]}]"#,
    r#"{"eventSource":"aws:kafka","records":{}} x"#,
    r#"{"eventSource":"aws:kafka","records":{}}  "#,
    "",
    "null",
    "{",
];

#[test]
fn edge_bodies_are_accepted_or_refused_by_both_paths_alike() {
    let mut accepted = 0;
    for body in EDGE_BODIES {
        assert_paths_agree(service, body.as_bytes());
        accepted += usize::from(EventView::parse(body.as_bytes()).is_ok());
    }
    // Both kinds occur, so the list tests something either way.
    assert!(
        accepted >= 6 && accepted < EDGE_BODIES.len(),
        "{accepted} accepted"
    );
}

#[test]
fn an_escaped_value_is_decoded_like_an_unescaped_one() {
    let body = EDGE_BODIES[0].as_bytes();
    let view = EventView::parse(body).unwrap();
    let record = view.records().next().unwrap();
    assert_eq!(record.topic(), "sensor-readings");
    assert_eq!(record.value(), Some("e30="));
    assert_eq!(record.key(), Some("a2V5/"));
    assert!(matches!(
        record.value.as_ref().unwrap().0,
        std::borrow::Cow::Owned(_)
    ));
    let plain = br#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","value":"e30="}]}}"#;
    let view = EventView::parse(plain).unwrap();
    let record = view.records().next().unwrap();
    assert!(matches!(
        record.value.as_ref().unwrap().0,
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn a_body_the_esm_could_not_send_fails_the_invocation() {
    for body in [&b"{"[..], b"[]", br#"{"eventSource":"aws:kafka"}"#] {
        assert!(matches!(
            run(service().process_body(body)),
            Err(BodyFailure::Malformed(_))
        ));
    }
}

/// Deterministic byte-level mutations of real bodies: every mutant is refused by both paths or
/// accepted by both with the same outcome.
#[test]
fn mutated_bodies_agree() {
    let mut records = stream(7, 12);
    records.extend(poison_cases().into_iter().take(4).map(|(_, r, _, _)| r));
    let records: Vec<KafkaRecord> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| with_headers(r, i as u64))
        .collect();
    let bodies = [
        body_of(&event_of(records)),
        SELF_MANAGED_EXAMPLE.as_bytes().to_vec(),
        MSK_EXAMPLE.as_bytes().to_vec(),
    ];
    const INSERTS: &[u8] = b"\\\"{}[],:0-9e.nu ";
    let mut rng = Rng::new(42);
    let mut accepted = 0;
    for body in &bodies {
        for _ in 0..150 {
            let mut mutant = body.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(mutant.len() as u64) as usize;
                match rng.below(3) {
                    0 => {
                        mutant.remove(at);
                    }
                    1 => mutant.insert(at, INSERTS[rng.below(INSERTS.len() as u64) as usize]),
                    _ => mutant[at] = INSERTS[rng.below(INSERTS.len() as u64) as usize],
                }
            }
            accepted += usize::from(EventView::parse(&mutant).is_ok());
            assert_paths_agree(service, &mutant);
        }
    }
    assert!(accepted > 0, "no mutant parsed: the mutations only test refusal");
}

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn header_values_left_in_the_body_come_back_exactly() {
    let body = EDGE_BODIES
        .iter()
        .find(|b| b.contains("u0065"))
        .unwrap()
        .as_bytes();
    let view = EventView::parse(body).unwrap();
    let headers = view.records().next().unwrap().raw_headers().unwrap();
    assert_eq!(
        headers,
        vec![RawHeader::from([
            ("h".to_string(), vec![1, -2]),
            ("he".to_string(), vec![3]),
            (String::new(), vec![]),
        ])]
    );
}

#[test]
fn header_values_are_refused_exactly_where_the_owned_parse_refuses_them() {
    let values = [
        "[]",
        "[ ]",
        "[0]",
        "[-0]",
        "[-32768,32767]",
        "[ 1 ,\t2\n]",
        "[01]",
        "[1,]",
        "[,1]",
        "[1e2]",
        "[1.0]",
        "[-32769]",
        "[32768]",
        "[100000]",
        "[\"1\"]",
        "[[1]]",
        "[1,\"]\"]",
        "[-]",
        "[--1]",
        "[1 2]",
        "{}",
        "null",
        "7",
        "[null]",
        "[true]",
        "[1]]",
        "[1",
    ];
    let mut accepted = 0;
    for values in values {
        let body = format!(
            r#"{{"eventSource":"aws:kafka","records":{{"t-0":[{{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","value":"e30=","headers":[{{"h":{values}}}]}}]}}}}"#
        );
        assert_paths_agree(service, body.as_bytes());
        accepted += usize::from(EventView::parse(body.as_bytes()).is_ok());
    }
    assert_eq!(accepted, 5);
}
