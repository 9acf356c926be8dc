//! The edge every pipeline Lambda shares (consumer, producer, topic-admin, db-admin): tracing from
//! Lambda's advanced logging controls, the EMF metrics envelope, the configuration error, and the
//! CloudFormation custom resource request and runner. `main.rs` files only wire these.

pub mod config;
pub mod custom_resource;
pub mod emf;
pub mod logging;
pub mod raw_body;

/// The function's name, which Lambda sets in `AWS_LAMBDA_FUNCTION_NAME` ("Defined runtime
/// environment variables", <https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html>);
/// `local` names it where nothing does.
pub fn function_name(local: &str) -> std::sync::Arc<str> {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| local.to_owned())
        .into()
}
