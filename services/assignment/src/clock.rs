//! "Today" for the rules that depend on it (no retroactive withdrawal, request dates, handover
//! dates). The service uses the system date; tests and demos inject a fixed, movable date.

use std::sync::RwLock;

use chrono::{NaiveDate, Utc};

pub trait Clock: Send + Sync + 'static {
    fn today(&self) -> NaiveDate;
}

/// The system date in UTC.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn today(&self) -> NaiveDate {
        Utc::now().date_naive()
    }
}

/// A date that stays put until [`FixedClock::set`] moves it.
#[derive(Debug)]
pub struct FixedClock(RwLock<NaiveDate>);

impl FixedClock {
    pub fn new(today: NaiveDate) -> Self {
        Self(RwLock::new(today))
    }

    pub fn set(&self, today: NaiveDate) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = today;
    }
}

impl Clock for FixedClock {
    fn today(&self) -> NaiveDate {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}
