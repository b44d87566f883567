//! The chaos run (`rz-chaos`, `make chaos`): care flows and a handover while services,
//! nats-server and PostgreSQL are killed and restarted; then the invariants.
//!
//! - [`flows`]: the load through the public gRPC APIs, with client retries;
//! - [`receiver`]: a provider system on the assignment events, deduplicating by event id;
//! - [`webhooks`]: the same events as signed webhooks from the notification service;
//! - [`faults`]: SIGKILL and restart, each in turn, at random moments;
//! - [`checks`]: settling, then the invariants against the services' own data and the events.

pub mod checks;
pub mod faults;
pub mod flows;
pub mod receiver;
pub mod retry;
pub mod webhooks;
