//! The service's own Prometheus metrics (besides the platform's, see [`rz_platform::metrics`]):
//! the statutory deadlines of the municipality this instance serves, sampled from its cases.
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `rz_deadlines_open` | `municipality` (this instance's), `kind`: `investigation`, `decision` | cases waiting for the step that is due (as `ListDeadlines` lists them), overdue included |
//! | `rz_deadlines_overdue` | `municipality`, `kind` | of those, the ones whose due date is before the service's today |
//!
//! `investigation`: a reported case (melding) to be investigated within 6 weeks; `decision`: an
//! application to be decided within 2 (Wmo) or 8 (Jeugdwet) weeks. Both kinds are served from the
//! start, 0 included. Assignment serves the chain's deadlines under the same names.

use std::sync::Arc;

use chrono::NaiveDate;
use rz_domain::GemeenteCode;
use rz_platform::clock::Clock;
use rz_platform::metrics::{GaugeVec, Metrics};
use sqlx::PgPool;

/// The statutory deadline kinds, as labelled (the steps of `Case::deadline`).
pub const KINDS: [&str; 2] = ["investigation", "decision"];

/// The statutory deadlines of one municipality.
#[derive(Debug, Clone)]
pub struct DeadlineMetrics {
    open: GaugeVec,
    overdue: GaugeVec,
    municipality: GemeenteCode,
}

impl DeadlineMetrics {
    /// Registers the two gauges with `metrics`, both kinds at 0.
    pub fn register(metrics: &Metrics, municipality: GemeenteCode) -> Self {
        let open = metrics.gauges(
            "rz_deadlines_open",
            "Deadlines not met yet, overdue included, by municipality and kind",
            &["municipality", "kind"],
        );
        let overdue = metrics.gauges(
            "rz_deadlines_overdue",
            "Deadlines not met whose due date has passed, by municipality and kind",
            &["municipality", "kind"],
        );
        let this = Self {
            open,
            overdue,
            municipality,
        };
        for kind in KINDS {
            this.set(kind, 0, 0);
        }
        this
    }

    fn set(&self, kind: &str, open: i64, overdue: i64) {
        let m = self.municipality.as_str();
        self.open.set(&[m, kind], open);
        self.overdue.set(&[m, kind], overdue);
    }

    /// Samples the deadlines with every round of the platform's sampler, as of `clock`'s today.
    pub fn sample_from(&self, metrics: &Metrics, pool: PgPool, clock: Arc<dyn Clock>) {
        let this = self.clone();
        metrics.sample_with(move || {
            let (this, pool, today) = (this.clone(), pool.clone(), clock.today());
            async move { this.sample(&pool, today).await }
        });
    }

    /// Reads the cases once: one statement, an index-only scan of each status' partial index
    /// (`cases_investigation_due`, `cases_decision_due`; 1.3 ms for 4,500 open cases among
    /// 100,000). A failed read keeps the previous values.
    pub async fn sample(&self, pool: &PgPool, today: NaiveDate) {
        let read: Result<(i64, i64, i64, i64), sqlx::Error> = sqlx::query_as(
            "SELECT i.open, i.late, d.open, d.late
             FROM (SELECT count(investigation_due) AS open,
                          count(*) FILTER (WHERE investigation_due < $1) AS late
                   FROM cases WHERE status = 'reported') i,
                  (SELECT count(decision_due) AS open,
                          count(*) FILTER (WHERE decision_due < $1) AS late
                   FROM cases WHERE status = 'applied') d",
        )
        .bind(today)
        .fetch_one(pool)
        .await;
        match read {
            Ok((investigation, investigation_late, decision, decision_late)) => {
                self.set("investigation", investigation, investigation_late);
                self.set("decision", decision, decision_late);
            }
            Err(e) => tracing::debug!(error = %e, "cannot sample the statutory deadlines"),
        }
    }
}
