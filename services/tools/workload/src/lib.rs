//! The workload the demo (`rz-demo`), the benchmarks (`rz-bench`) and the chaos run (`rz-chaos`)
//! drive through the services' public APIs, written once:
//!
//! - [`catalogue`]: the region's catalogue as the subsegments a decision can grant ([`Sub`]), and
//!   the product a decision grants for one;
//! - [`residents`]: synthetic residents (BSN from [`rz_domain::Bsn::synthetic`], names, birth
//!   dates, addresses with the municipality's postal code), the same for the same number;
//! - [`flow`]: the care flow's requests with a tool's idempotency keys ([`Driver`]): register a
//!   resident, open a case, decide, import existing care, subscribe a webhook;
//! - [`dial`]: channels with mutual TLS as the right party (operator, municipality, provider);
//! - [`provider`]: a provider system on the assignment events (the consumer, the start of care);
//! - [`webhook`]: a provider's webhook receiver, which checks each POST's signature in constant
//!   time and records every CloudEvent id once.

pub mod catalogue;
pub mod dial;
pub mod flow;
pub mod provider;
pub mod residents;
pub mod webhook;

pub use catalogue::Sub;
pub use dial::Dial;
pub use flow::Driver;

/// Turns a gRPC status into `"<what>: <code> <message>"`, the tools' error text.
pub fn status_msg(what: &str) -> impl Fn(tonic::Status) -> String + '_ {
    move |s| format!("{what}: {:?} {}", s.code(), s.message())
}
