//! What every regiozorg service needs around its own logic: layered configuration, the database
//! pool and migrations, the gRPC server (health, trace context, graceful shutdown) and the mapping of
//! errors to precise gRPC status codes.

pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod idempotency;
pub mod server;
pub mod shutdown;

pub use error::ApiError;
pub use shutdown::Shutdown;
