//! The contract register's rules over gRPC, against real PostgreSQL and NATS. Every refused command
//! gets a precise status and changes nothing.
//!
//! - `providers`: the catalogue, providers, consortia and subcontractors;
//! - `tenders`: selection, scoring, ranking and the award, one bid per party;
//! - `contracts`: contract terms, extensions, termination, overlap, budgets and tariffs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod contracts;
mod providers;
mod tenders;
