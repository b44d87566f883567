//! Runs the regiozorg services as separate processes against a local stack: [`cluster`] starts,
//! kills and restarts them (the chaos run and the benchmarks build on it); [`chaos`] is the
//! fault-injection run behind `make chaos`.

pub mod chaos;
pub mod cluster;

pub use cluster::{Cluster, ClusterSpec, HarnessError, peak_rss_mb};
