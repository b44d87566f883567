//! "Today" for the rules that depend on it (deadlines, no retroactive changes, request and
//! handover dates). A service uses the system date (UTC); tests fix it ([`FixedClock`]) and the
//! demo, which plays half a year in minutes, moves it through a file ([`FileClock`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

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

/// The date written in a file (`YYYY-MM-DD`), read on every call, so another process can move
/// it (the demo's compressed half year). When the file is missing or holds no date, the system
/// date is used and a warning logged once.
#[derive(Debug)]
pub struct FileClock {
    path: PathBuf,
    warned: AtomicBool,
}

impl FileClock {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            warned: AtomicBool::new(false),
        }
    }
}

impl Clock for FileClock {
    fn today(&self) -> NaiveDate {
        let read = std::fs::read_to_string(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|e| e.to_string())
            });
        match read {
            Ok(d) => d,
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %self.path.display(), error = %e, "today_file holds no date; using the system date");
                }
                Utc::now().date_naive()
            }
        }
    }
}

/// The clock a service's configuration asks for: a file when `today_file` is set, else a fixed
/// date when `today` is set, else the system date.
pub fn from_config(today: Option<NaiveDate>, today_file: Option<&PathBuf>) -> Arc<dyn Clock> {
    match (today_file, today) {
        (Some(path), _) => Arc::new(FileClock::new(path.clone())),
        (None, Some(d)) => Arc::new(FixedClock::new(d)),
        (None, None) => Arc::new(SystemClock),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_file_clock_follows_its_file() {
        let path = std::env::temp_dir().join(format!("rz-clock-{}", std::process::id()));
        let clock = FileClock::new(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(clock.today(), Utc::now().date_naive());
        std::fs::write(&path, "2022-07-01\n").unwrap();
        assert_eq!(clock.today(), NaiveDate::from_ymd_opt(2022, 7, 1).unwrap());
        std::fs::write(&path, "2022-12-31").unwrap();
        assert_eq!(
            clock.today(),
            NaiveDate::from_ymd_opt(2022, 12, 31).unwrap()
        );
        std::fs::write(&path, "not a date").unwrap();
        assert_eq!(clock.today(), Utc::now().date_naive());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_configured_clock() {
        let d = NaiveDate::from_ymd_opt(2022, 6, 27).unwrap();
        assert_eq!(from_config(Some(d), None).today(), d);
        assert_eq!(from_config(None, None).today(), Utc::now().date_naive());
    }
}
