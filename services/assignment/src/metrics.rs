//! The service's own Prometheus metrics (besides the platform's, see [`rz_platform::metrics`]):
//! the chain's deadlines and the handover's replacements per municipality, sampled from the
//! tables, and what handover runs did.
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `rz_deadlines_open` | `municipality`, `kind`: `start_of_care`, `request_answer` | chain deadlines not met yet (as `ListChainDeadlines` lists them), overdue included |
//! | `rz_deadlines_overdue` | `municipality`, `kind` | of those, the ones whose due date is before the service's today |
//! | `rz_handover_replacements` | `municipality`, `state`: `waiting_for_start`, `handed_over` | the handover's replacements (not withdrawn) whose care has not started yet / has started |
//! | `rz_handover_assignments_total` | `outcome`: `arranged`, `already_arranged`, `not_arranged` | assignments of a provider without a contract, by what a handover run did with them |
//! | `rz_handover_runs_total` | | handover runs completed |
//!
//! `start_of_care`: an issued assignment whose provider has not reported the start of care, due
//! 5 working days after its start; `request_answer`: a provider's open request, due 5 working
//! days after its receipt. The municipalities of `assignment.access_endpoints` are served at 0
//! from the start, any other with rows once it has them (and at 0 after its last one).
//! Access serves the statutory deadlines (`investigation`, `decision`) under the same names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rz_platform::metrics::{Counter, CounterVec, GaugeVec, Metrics};
use sqlx::PgPool;

use crate::assigner::Assigner;
use crate::handover::HandoverOutcome;
use crate::store;

/// The chain's deadline kinds, as labelled.
pub const KINDS: [&str; 2] = ["start_of_care", "request_answer"];

/// The states of a handover replacement, as labelled.
pub const REPLACEMENT_STATES: [&str; 2] = ["waiting_for_start", "handed_over"];

/// What handover runs did.
#[derive(Debug, Clone)]
pub struct HandoverMetrics {
    assignments: CounterVec,
    runs: Counter,
}

impl HandoverMetrics {
    /// Counts a completed run.
    pub fn run(&self, o: &HandoverOutcome) {
        self.runs.inc();
        self.assignments
            .inc_by(&["arranged"], u64::from(o.newly_arranged));
        self.assignments
            .inc_by(&["already_arranged"], u64::from(o.already_arranged));
        self.assignments
            .inc_by(&["not_arranged"], u64::from(o.not_arranged));
    }
}

/// The service's metrics, registered with the platform's.
#[derive(Debug, Clone)]
pub struct AssignmentMetrics {
    open: GaugeVec,
    overdue: GaugeVec,
    replacements: GaugeVec,
    pub handover: HandoverMetrics,
    /// Every municipality served so far (kept at 0 once its rows are gone).
    seen: Arc<Mutex<BTreeSet<String>>>,
    /// When the start-of-care deadlines may be read again (see [`AssignmentMetrics::sample`]).
    next_start_of_care: Arc<Mutex<Instant>>,
}

/// The start-of-care read takes at most this share of the time (1/50: 2 %).
const START_OF_CARE_DUTY: u32 = 50;

impl AssignmentMetrics {
    /// Registers the module's metrics with `metrics`; the `municipalities` (those of
    /// `assignment.access_endpoints`) are served at 0 at once.
    pub fn register<'a>(
        metrics: &Metrics,
        municipalities: impl IntoIterator<Item = &'a String>,
    ) -> Self {
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
        let replacements = metrics.gauges(
            "rz_handover_replacements",
            "The handover's replacement assignments by municipality: waiting_for_start (the new \
             provider has not reported the start of care) or handed_over",
            &["municipality", "state"],
        );
        let assignments = metrics.counters(
            "rz_handover_assignments",
            "Assignments of a provider without a contract, by what a handover run did with them: \
             arranged (a replacement now), already_arranged, not_arranged (no contracted provider, \
             stacking)",
            &["outcome"],
            &[&["arranged"], &["already_arranged"], &["not_arranged"]],
        );
        let runs = metrics.counter("rz_handover_runs", "Handover runs completed");
        let this = Self {
            open,
            overdue,
            replacements,
            handover: HandoverMetrics { assignments, runs },
            seen: Arc::new(Mutex::new(
                municipalities
                    .into_iter()
                    .map(|m| m.trim().to_owned())
                    .collect(),
            )),
            next_start_of_care: Arc::new(Mutex::new(Instant::now())),
        };
        this.publish(&Deadlines::new(), &KINDS, Some(&BTreeMap::new()));
        this
    }

    /// Samples the deadlines and the replacements with every round of the platform's sampler,
    /// as of the assigner's today.
    pub fn sample_from(&self, metrics: &Metrics, assigner: Assigner) {
        let this = self.clone();
        metrics.sample_with(move || {
            let (this, assigner) = (this.clone(), assigner.clone());
            async move { this.sample(assigner.pool(), assigner.today()).await }
        });
    }

    /// Reads the tables (up to three statements) as of `today`. A failed read keeps the previous
    /// values of what it would have set.
    ///
    /// The start-of-care deadlines are the issued assignments, a few percent of the active ones,
    /// and no index can single them out without costing every start of care its HOT update (see
    /// migration `hot_start`): the read goes over the assignments (0.3 s for 200,000 of them,
    /// 10,000 issued, on a busy 2-core machine; a few ms for a region's 20,000). It is repeated
    /// once 50 times its last duration has passed (at most every 5 minutes), so it takes at most
    /// 2 % of a connection's time; in between the gauges keep their values.
    pub async fn sample(&self, pool: &PgPool, today: NaiveDate) {
        let mut deadlines = Deadlines::new();
        let mut kinds = Vec::with_capacity(KINDS.len());
        let due = {
            let next = self
                .next_start_of_care
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            Instant::now() >= *next
        };
        if due {
            let started = Instant::now();
            let read = store::start_of_care_deadlines(pool, last_start_overdue_on(today)).await;
            let took = started.elapsed();
            *self
                .next_start_of_care
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Instant::now()
                + took
                    .saturating_mul(START_OF_CARE_DUTY)
                    .min(Duration::from_secs(300));
            match read {
                Ok(rows) => {
                    kinds.push("start_of_care");
                    for (m, open, overdue) in rows {
                        deadlines.insert((m, "start_of_care"), (open, overdue));
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot sample the start-of-care deadlines"),
            }
        }
        match store::request_answer_deadlines(pool, today).await {
            Ok(rows) => {
                kinds.push("request_answer");
                for (m, open, overdue) in rows {
                    deadlines.insert((m, "request_answer"), (open, overdue));
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot sample the request deadlines"),
        }
        let replacements = match store::handover_replacements(pool).await {
            Ok(rows) => Some(
                rows.into_iter()
                    .map(|(m, waiting, handed_over)| (m, (waiting, handed_over)))
                    .collect(),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "cannot sample the handover's replacements");
                None
            }
        };
        self.publish(&deadlines, &kinds, replacements.as_ref());
    }

    /// Sets, for every municipality seen so far and those read now, the deadlines of `kinds` and
    /// (when read) the replacements: the values read, 0 where there are no rows.
    fn publish(
        &self,
        deadlines: &Deadlines,
        kinds: &[&'static str],
        replacements: Option<&BTreeMap<String, (i64, i64)>>,
    ) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.extend(deadlines.keys().map(|(m, _)| m.clone()));
        if let Some(r) = replacements {
            seen.extend(r.keys().cloned());
        }
        for m in seen.iter() {
            for kind in kinds {
                let (open, overdue) = deadlines
                    .get(&(m.clone(), *kind))
                    .copied()
                    .unwrap_or_default();
                self.open.set(&[m, kind], open);
                self.overdue.set(&[m, kind], overdue);
            }
            if let Some(r) = replacements {
                let (waiting, handed_over) = r.get(m).copied().unwrap_or_default();
                self.replacements.set(&[m, REPLACEMENT_STATES[0]], waiting);
                self.replacements
                    .set(&[m, REPLACEMENT_STATES[1]], handed_over);
            }
        }
    }
}

/// (municipality, kind) -> (open, overdue).
type Deadlines = BTreeMap<(String, &'static str), (i64, i64)>;

/// The last start date whose start of care is overdue on `today`: the start-of-care deadline
/// ([`Assigner::chain_due`], 5 working days after the start) is monotone in the start, so an
/// issued assignment is overdue exactly when it started on or before this date.
pub fn last_start_overdue_on(today: NaiveDate) -> NaiveDate {
    let mut start = today;
    // 5 working days span at most a fortnight, holidays included.
    for _ in 0..60 {
        match start.pred_opt() {
            Some(s) => start = s,
            None => return NaiveDate::MIN,
        }
        if Assigner::chain_due(start) < today {
            return start;
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap_or(NaiveDate::MIN)
    }

    #[test]
    fn an_assignment_is_overdue_when_its_start_was_more_than_5_working_days_ago() {
        // Thursday 2022-09-15: a start on Thursday 2022-09-08 is due Thursday the 15th (not yet
        // overdue), one on Wednesday the 7th was due Wednesday the 14th.
        assert_eq!(last_start_overdue_on(d("2022-09-15")), d("2022-09-07"));
        // Around Christmas: due dates skip the 25th and 26th.
        for today in ["2022-12-20", "2022-12-28", "2023-01-02", "2022-05-01"] {
            let today = d(today);
            let last = last_start_overdue_on(today);
            assert!(Assigner::chain_due(last) < today);
            assert!(Assigner::chain_due(last.succ_opt().unwrap_or(last)) >= today);
        }
    }
}
