//! End-to-end tests: real components built from source by `runtime/build.rs`, run by
//! the real host and the real `wasp` binary. One binary, a module per topic.

mod apps;
mod cli;
mod common;
mod egress;
mod engine;
mod hostile;
mod languages;
mod observability;
mod page;
mod playbooks;
#[path = "../support/postgres.rs"]
mod postgres;
mod readme;
mod server;
mod stores;
mod tenants;
mod traces;
mod triggers;
mod vendors;
