//! The `cargo lambda invoke` fixtures in `events/`: they match their generator, parse as the
//! documented ESM event, and do what their names say when the consumer processes them.

use consumer::app;
use consumer::testkit::{fixture_json, fixtures, FixtureSchemaIds};
use pipeline_domain::consume::batch::{ConsumerService, Sinks};
use pipeline_domain::consume::fakes::*;
use pipeline_domain::event::{EventSource, KafkaEvent};
use pipeline_domain::ports::InMemorySchemaSource;

const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events");

#[test]
fn committed_fixtures_match_the_generator() {
    let generated = fixtures(&FixtureSchemaIds::placeholders());
    let mut on_disk: Vec<String> = std::fs::read_dir(EVENTS_DIR)
        .expect("events directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = generated.iter().map(|f| f.file_name.clone()).collect();
    expected.sort();
    assert_eq!(
        on_disk, expected,
        "run: cargo run -p consumer --example generate_events"
    );
    for fixture in &generated {
        let text = std::fs::read_to_string(format!("{EVENTS_DIR}/{}", fixture.file_name)).unwrap();
        assert_eq!(
            text,
            fixture_json(fixture),
            "{} is stale: cargo run -p consumer --example generate_events",
            fixture.file_name
        );
    }
}

#[tokio::test]
async fn each_fixture_does_what_its_name_says() {
    let ids = FixtureSchemaIds::placeholders();
    let registry = InMemorySchemaSource::default();
    for (id, text) in ids.definitions() {
        registry.insert(id, text);
    }
    let service = ConsumerService::new(
        registry,
        Sinks {
            windows: InMemoryWindowStore::default(),
            archive: InMemoryObjectStore::default(),
            table: InMemoryStoreEventTable::default(),
            explicit: InMemoryExplicitEventStore::default(),
            poison: InMemoryPoisonSink::default(),
        },
        contract_settings(),
    );
    for fixture in fixtures(&ids) {
        let text = std::fs::read_to_string(format!("{EVENTS_DIR}/{}", fixture.file_name)).unwrap();
        let event: KafkaEvent = serde_json::from_str(&text).unwrap();
        let expected_source = if fixture.file_name.contains(".msk.") {
            EventSource::Msk
        } else {
            EventSource::SelfManagedKafka
        };
        assert_eq!(event.event_source, expected_source, "{}", fixture.file_name);
        // The file as the invocation body, parsed by the consumer as the Lambda runs it.
        let response = app::handle(&service, text.as_bytes(), "fixtures").await.unwrap();
        assert_eq!(
            response.summary.poison, fixture.expected_poison,
            "{}: {:?}",
            fixture.file_name, response.summary.poison_by_reason
        );
        assert_eq!(response.summary.records, event.record_count());
        if fixture.file_name.starts_with("poison") {
            // Every documented way a record can be poison is represented.
            let reasons: Vec<&str> = response
                .summary
                .poison_by_reason
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                reasons,
                vec![
                    "bad_base64",
                    "bad_field",
                    "bad_json",
                    "empty_value",
                    "null_value",
                    "truncated_header",
                    "unknown_schema_version",
                    "unknown_topic",
                    "unknown_wire_format",
                    "unsupported_compression",
                ]
            );
        }
    }
    let sinks = service.sinks();
    assert!(!sinks.windows.snapshot().is_empty());
    assert_eq!(
        sinks.table.snapshot().len(),
        10,
        "4 JSON + 4 Avro store events + 2 in the seed S3 format"
    );
    assert_eq!(
        sinks.explicit.snapshot().len(),
        6,
        "3 JSON + 3 Avro explicit events"
    );
}
