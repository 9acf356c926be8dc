//! What the handler needs: something that provisions the schema and role of one database. The
//! PostgreSQL adapter implements it; tests use a recording fake.

use std::future::Future;

use pipeline_adapters::postgres_schema::Provisioned;
use pipeline_domain::ports::PortError;

use crate::event::SchemaProperties;

pub trait SchemaProvisioner: Send + Sync {
    fn provision(
        &self,
        properties: &SchemaProperties,
    ) -> impl Future<Output = Result<Provisioned, PortError>> + Send;
}
