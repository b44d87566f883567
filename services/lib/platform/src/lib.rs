//! What every regiozorg service needs around its own logic: layered configuration, the database
//! pool and migrations, the gRPC server (health, trace context, graceful shutdown) and the mapping of
//! errors to precise gRPC status codes, and the one service runner ([`runner`]) every service's
//! `main` calls.

pub mod audit;
pub mod authz;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod idempotency;
pub mod identity;
pub mod input;
pub mod metrics;
pub mod runner;
pub mod sealing;
pub mod server;
pub mod tls;

pub use error::ApiError;
pub use runner::{Foundation, Service, ServiceConfig, StartError};
pub use rz_eventing::Shutdown;
