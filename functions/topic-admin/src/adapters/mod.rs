pub mod rskafka_admin;
