pub mod connection;
pub mod kafka_admin;
