use std::sync::Arc;

use db_admin::adapters::PgProvisioner;
use db_admin::event::Request;
use db_admin::handler::handle;
use pipeline_adapters::secrets::JsonSecrets;
use pipeline_lambda_edge::custom_resource;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let provisioner = Arc::new(PgProvisioner::new(JsonSecrets::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
    )));
    custom_resource::run(|payload| {
        let provisioner = provisioner.clone();
        async move {
            let request = Request::from_value(payload)?;
            Ok::<_, lambda_runtime::Error>(handle(request, provisioner.as_ref()).await?)
        }
    })
    .await
}
