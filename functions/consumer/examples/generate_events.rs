//! Writes the `cargo lambda invoke` fixtures.
//!
//! ```text
//! cargo run -p consumer --example generate_events                       # the committed fixtures
//! cargo run -p consumer --example generate_events -- --registry --out .local/events
//! ```
//!
//! Without `--registry`, Avro fixtures are framed with placeholder schema version ids (the
//! committed files; `tests/fixtures.rs` fails if they drift from this generator). With
//! `--registry`, the ids come from the Glue registry the environment points at (the local stack:
//! source `.local/stack.env`): the contract schemas must be registered there (`local-stack.sh up`
//! does it), and the explicit-event schema is registered on the fly, as the producer would.

use std::path::PathBuf;

use consumer::testkit::{
    fixture_json, fixtures, FixtureSchemaIds, EXPLICIT_ORDER_SCHEMA, EXPLICIT_ORDER_SCHEMA_NAME,
};
use pipeline_adapters::glue::{glue_client, GlueSchemaRegistry};
use pipeline_contracts::{contracts, schema_text, Compatibility};
use pipeline_domain::produce::SchemaRegistryWriter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut out = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/events"));
    let mut from_registry = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--registry" => from_registry = true,
            "--out" => out = args.next().ok_or("--out needs a directory")?.into(),
            other => {
                return Err(format!("unknown argument {other:?} (expected --registry, --out DIR)").into())
            }
        }
    }
    let ids = if from_registry {
        registry_ids().await?
    } else {
        FixtureSchemaIds::placeholders()
    };
    std::fs::create_dir_all(&out)?;
    for fixture in fixtures(&ids) {
        let path = out.join(&fixture.file_name);
        std::fs::write(&path, fixture_json(&fixture))?;
        println!("{}", path.display());
    }
    Ok(())
}

async fn registry_ids() -> Result<FixtureSchemaIds, Box<dyn std::error::Error>> {
    let c = contracts();
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let name = std::env::var(&c.env_vars.registry_name).unwrap_or_else(|_| c.schema_registry.name.clone());
    let registry = GlueSchemaRegistry::new(glue_client(&sdk, None).await, &name);
    let find = |schema: &'static str, path: &'static str| {
        let registry = registry.clone();
        let name = name.clone();
        async move {
            let text = schema_text(path).ok_or("schema not embedded")?;
            registry
                .find_version(schema, text)
                .await?
                .map(|v| v.version_id)
                .ok_or_else(|| {
                    format!("{path} is not registered in {name}: run scripts/local-stack.sh up").into()
                })
                .map_err(|e: Box<dyn std::error::Error>| e)
        }
    };
    Ok(FixtureSchemaIds {
        sensor_v1: find("SensorReading", "schemas/sensor_reading.v1.avsc").await?,
        sensor_v2: find("SensorReading", "schemas/sensor_reading.v2.avsc").await?,
        store_v1: find("StoreEvent", "schemas/store_event.v1.avsc").await?,
        explicit_order: registry
            .register_or_reuse(
                EXPLICIT_ORDER_SCHEMA_NAME,
                EXPLICIT_ORDER_SCHEMA,
                Compatibility::Backward,
            )
            .await?
            .version_id,
    })
}
