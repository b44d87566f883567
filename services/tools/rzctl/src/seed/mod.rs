//! `rzctl seed`: a region's register (providers, the tender, contracts, budgets, tariffs) loaded
//! through registration's gRPC API, so that every rule of the server applies. The data is a file
//! ([`file`]); what it does not list is generated deterministically ([`plan`]).
//!
//! A load is re-runnable against the same register: create commands carry idempotency keys made
//! from the file's codes (a replay returns the stored result), and commands without a key are only
//! sent when the current state shows they have not been applied yet.

pub mod file;
mod load;
pub mod plan;

pub use file::Seed;
pub use load::load;
