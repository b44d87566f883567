//! "Today" for the rules that depend on it (no retroactive withdrawal, request dates, handover
//! dates): the platform's clocks (system date, a fixed date for tests, a file the demo moves).

pub use rz_platform::clock::{Clock, FileClock, FixedClock, SystemClock};
