//! The Glue adapter against a real moto server (AWS_ENDPOINT_URL): registration, reuse,
//! refusal of incompatible versions, and reads by version id.

mod support;

use aws_credential_types::provider::ProvideCredentials;
use pipeline_adapters::glue::{assumed_role_credentials, glue_client, GlueSchemaRegistry};
use pipeline_contracts::contracts;
use pipeline_domain::ports::{PortError, SchemaSource, SchemaVersion};
use pipeline_domain::produce::{RegistryWriteError, SchemaRegistryWriter};
use pipeline_domain::schema::{Compatibility, CompatibilityError};

async fn registry(test: &str) -> Option<GlueSchemaRegistry> {
    support::endpoint("AWS_ENDPOINT_URL", test)?;
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    // moto allows only ten registries, so tests share the contract's and use fresh schema names.
    let registry = GlueSchemaRegistry::new(glue_client(&sdk, None).await, &contracts().schema_registry.name);
    registry.ensure_registry().await.expect("registry");
    Some(registry)
}

fn sensor_versions() -> (String, String) {
    let texts = contracts().schemas["SensorReading"].version_texts();
    (texts[0].to_string(), texts[1].to_string())
}

#[tokio::test]
async fn registers_v1_then_v2_refuses_an_incompatible_v3_and_reuses_identical_definitions() {
    let Some(registry) = registry("glue registers and refuses").await else {
        return;
    };
    let schema_name = support::unique("SensorReading");
    let (v1, v2) = sensor_versions();

    let first = registry
        .register_or_reuse(&schema_name, &v1, Compatibility::Backward)
        .await
        .unwrap();
    assert!(first.newly_registered);
    assert_eq!(first.version_number, Some(1));

    let second = registry
        .register_or_reuse(&schema_name, &v2, Compatibility::Backward)
        .await
        .unwrap();
    assert!(second.newly_registered);
    assert_eq!(second.version_number, Some(2));
    assert_ne!(first.version_id, second.version_id);

    // v3 makes humidity required: v3 readers cannot read v1/v2 data that lacks it.
    let v3 = v2.replace(
        r#""type": ["null", "double"], "default": null"#,
        r#""type": "double""#,
    );
    assert_ne!(v3, v2, "the test must really change the schema");
    let err = registry
        .register_or_reuse(&schema_name, &v3, Compatibility::Backward)
        .await
        .unwrap_err();
    match &err {
        RegistryWriteError::Incompatible {
            schema_name: named,
            source: CompatibilityError::Incompatible { mode, version, .. },
        } => {
            assert_eq!(named, &schema_name);
            assert_eq!((*mode, *version), ("BACKWARD", 2));
        }
        other => panic!("expected an incompatibility, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&schema_name) && message.contains("BACKWARD") && message.contains("humidity"),
        "{message}"
    );
    // Nothing was registered: v3 is unknown, and the next compatible version is number 3.
    assert_eq!(registry.find_version(&schema_name, &v3).await.unwrap(), None);

    // Identical definitions are reused, not registered again.
    let again = registry
        .register_or_reuse(&schema_name, &v1, Compatibility::Backward)
        .await
        .unwrap();
    assert!(!again.newly_registered);
    assert_eq!(again.version_id, first.version_id);
    let found = registry.find_version(&schema_name, &v2).await.unwrap().unwrap();
    assert_eq!(found.version_id, second.version_id);

    let v3_ok = v2.replace(
        r#"{ "name": "humidity""#,
        r#"{ "name": "battery", "type": ["null", "double"], "default": null },
    { "name": "humidity""#,
    );
    let third = registry
        .register_or_reuse(&schema_name, &v3_ok, Compatibility::Backward)
        .await
        .unwrap();
    assert_eq!(third.version_number, Some(3));
}

#[tokio::test]
async fn reads_definitions_by_version_id_and_reports_unknown_ids_as_not_found() {
    let Some(registry) = registry("glue reads by id").await else {
        return;
    };
    let schema_name = support::unique("SensorReading");
    let (v1, _) = sensor_versions();
    let registered = registry
        .register_or_reuse(&schema_name, &v1, Compatibility::Backward)
        .await
        .unwrap();

    // A fresh adapter (empty cache) reads the definition from the registry.
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let reader = GlueSchemaRegistry::new(glue_client(&sdk, None).await, registry.registry_name());
    // The answer carries the version's format and status as the registry reports them (from the
    // registry, then from the cache).
    for _ in 0..2 {
        assert_eq!(
            reader.schema_version(registered.version_id).await.unwrap(),
            SchemaVersion::available_avro(v1.clone())
        );
    }

    let unknown = uuid::Uuid::new_v4();
    match reader.schema_version(unknown).await {
        Err(PortError::NotFound { what, .. }) => assert!(what.contains(&unknown.to_string())),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn each_mode_is_enforced_by_the_adapter() {
    let Some(registry) = registry("glue modes").await else {
        return;
    };
    let (v1, v2) = sensor_versions();

    // DISABLED: the first version exists, no second one is accepted.
    let disabled = support::unique("Disabled");
    registry
        .register_or_reuse(&disabled, &v1, Compatibility::Disabled)
        .await
        .unwrap();
    let err = registry
        .register_or_reuse(&disabled, &v2, Compatibility::Disabled)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryWriteError::Incompatible {
                source: CompatibilityError::VersioningDisabled,
                ..
            }
        ),
        "{err}"
    );

    // FORWARD: dropping a required field breaks old readers; NONE lets it through.
    let dropped = v1
        .replace(
            r#"{ "name": "temperature", "type": "double", "doc": "Degrees Celsius" }"#,
            "",
        )
        .replace(r#"timestamp-millis" } },"#, r#"timestamp-millis" } }"#);
    assert!(apache_avro::Schema::parse_str(&dropped).is_ok(), "{dropped}");
    let forward = support::unique("Forward");
    registry
        .register_or_reuse(&forward, &v1, Compatibility::Forward)
        .await
        .unwrap();
    let err = registry
        .register_or_reuse(&forward, &dropped, Compatibility::Forward)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("FORWARD"), "{err}");
    let none = support::unique("None");
    registry
        .register_or_reuse(&none, &v1, Compatibility::None)
        .await
        .unwrap();
    let accepted = registry
        .register_or_reuse(&none, &dropped, Compatibility::None)
        .await
        .unwrap();
    assert_eq!(accepted.version_number, Some(2));

    // An existing schema keeps its own mode: the mode passed for new schemas is ignored.
    let err = registry
        .register_or_reuse(&forward, &dropped, Compatibility::None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("FORWARD"), "{err}");
}

#[tokio::test]
async fn reads_through_an_assumed_cross_account_role() {
    let Some(registry) = registry("glue through an assumed role").await else {
        return;
    };
    let schema_name = support::unique("SensorReading");
    let (v1, _) = sensor_versions();
    let registered = registry
        .register_or_reuse(&schema_name, &v1, Compatibility::Backward)
        .await
        .unwrap();
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let role_name = support::unique("registry-reader");
    let role = format!("arn:aws:iam::123456789012:role/{role_name}");
    let reader = GlueSchemaRegistry::new(glue_client(&sdk, Some(&role)).await, registry.registry_name());
    assert_eq!(
        reader
            .schema_version(registered.version_id)
            .await
            .unwrap()
            .definition,
        v1
    );
    // moto issues credentials for any role, so prove the credentials the reader is given come from
    // an AssumeRole of that role: STS names their caller as the assumed role.
    let credentials = assumed_role_credentials(&sdk, &role)
        .await
        .provide_credentials()
        .await
        .unwrap();
    let sts_config = aws_sdk_sts::config::Builder::from(&sdk)
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            credentials.session_token().map(str::to_string),
            None,
            "assumed-role-check",
        ))
        .build();
    let caller = aws_sdk_sts::Client::from_conf(sts_config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    let arn = caller.arn().unwrap_or_default();
    assert!(
        arn.contains(&format!(":assumed-role/{role_name}/")),
        "caller is {arn}, not the assumed {role}"
    );
}
