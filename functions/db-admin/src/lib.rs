//! `db-admin`: the CloudFormation custom resource (behind the CDK provider framework) that owns
//! the PostgreSQL schema, so the consumer can run as a role without DDL rights.
//!
//! - Create / Update: with the RDS master secret, apply the pending migrations and create or
//!   update the application login role (its password from its own secret) with exactly the
//!   grants the consumer's statements need (`pipeline_adapters::postgres_schema`). Idempotent:
//!   repeating it applies nothing and re-sets the same grants.
//! - Delete: changes nothing. The tables and their rows stay (the database itself is retained or
//!   deleted by its own removal policy), and so does the role, which a replacement resource
//!   re-provisions.
//!
//! `db-admin-local` does the same against the local PostgreSQL (scripts/local-stack.sh).

pub mod adapters;
pub mod event;
pub mod handler;
pub mod ports;
