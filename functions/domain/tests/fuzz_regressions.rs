//! Replays, through the fuzz targets' own checks (`pipeline_domain::fuzzing`), every input a fuzz
//! run ever crashed on (`fuzz/regressions/<target>/`) and every seed the consumer fixtures give.
//! `scripts/fuzz.sh` runs the targets themselves; this keeps their findings fixed in `cargo test`.

use std::path::{Path, PathBuf};

use pipeline_domain::consume::{decode_record, TopicRoutes};
use pipeline_domain::event::KafkaEvent;
use pipeline_domain::fuzzing::{resolves, seeds_from_event, Target};
use pipeline_domain::wire::{classify, WireValue};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_committed_crash_input_passes_its_target() {
    let mut replayed = 0;
    for dir in files_in(&repo_root().join("fuzz/regressions")) {
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let target =
            Target::from_name(name).unwrap_or_else(|| panic!("fuzz/regressions/{name} is not a fuzz target"));
        for input in files_in(&dir) {
            let bytes = std::fs::read(&input).expect("regression input");
            target.check(&bytes);
            replayed += 1;
        }
    }
    assert!(replayed >= 3, "only {replayed} regression inputs found");
}

#[test]
fn a_record_whose_writer_schema_is_recursive_is_poison_not_a_crash() {
    // Found by the avro_payload target: a linked-list schema nests a datum as deep as the body is
    // long, and decoding it recursively overflowed the stack (SIGSEGV, the whole function).
    let input =
        std::fs::read(repo_root().join("fuzz/regressions/record/recursive-schema-stack-overflow")).unwrap();
    let value = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &input[1..]);
    let event: KafkaEvent = serde_json::from_value(serde_json::json!({
        "eventSource": "SelfManagedKafka",
        "records": {"explicit-events-0": [{"topic": "explicit-events", "partition": 0, "offset": 1,
            "timestamp": 1, "timestampType": "CREATE_TIME", "value": value}]}
    }))
    .unwrap();
    let record = event.records().next().unwrap();
    let Ok(WireValue::GlueAvro(frame)) = classify(&input[1..]) else {
        panic!("the regression input is a Glue frame")
    };
    let schema = apache_avro::Schema::parse_str(
        r#"{"type":"record","name":"Node","namespace":"fuzz","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}"#,
    )
    .unwrap();
    let schemas = [(
        frame.schema_version_id,
        pipeline_domain::consume::WriterSchema::Found(schema.into()),
    )]
    .into_iter()
    .collect();
    let routes = TopicRoutes::from_contract();
    let poison = decode_record(record, routes.payload_for("explicit-events"), &schemas).unwrap_err();
    assert_eq!(poison.reason.kind(), "bad_avro");
    assert!(
        poison.reason.to_string().contains("deeper than"),
        "{}",
        poison.reason
    );
    assert_eq!(poison.raw.value.as_deref(), Some(value.as_str()));
}

#[test]
fn every_fixture_seed_passes_every_target_and_its_schema_ids_resolve() {
    let mut seeds = 0;
    for dir in ["functions/consumer/events", "functions/domain/tests/fixtures"] {
        for file in files_in(&repo_root().join(dir)) {
            let text = std::fs::read(&file).unwrap();
            for (target, input) in seeds_from_event(&text) {
                target.check(&input);
                seeds += 1;
            }
            // The Avro fixtures must use ids the harness resolves (the poison ones are unknown on purpose).
            if !file.to_string_lossy().contains("-avro.") {
                continue;
            }
            let event: KafkaEvent = serde_json::from_slice(&text).unwrap();
            for record in event.records() {
                if let Ok(bytes) = record.value_bytes() {
                    if let Ok(WireValue::GlueAvro(frame)) = classify(&bytes) {
                        assert!(
                            resolves(frame.schema_version_id),
                            "{}: schema id {} is unknown to the fuzz harness (fixture ids changed?)",
                            file.display(),
                            frame.schema_version_id
                        );
                    }
                }
            }
        }
    }
    assert!(seeds > 100, "only {seeds} seeds");
}
