//! The handover (overdracht): existing care imported from before the platform, the run that gives
//! every active assignment of a provider without a contract a replacement with a contracted
//! provider, and the progress against the deadline.
//!
//! The run handles each assignment in its own transaction and skips those already replaced, so a
//! run that stops halfway and a second run give the same result as one clean run. Replacements
//! run in a few lanes at the same time, one lane per subsegment and municipality. The old
//! assignment stays active until the new provider reports the start of care on day D; then it ends
//! on D - 1 (see [`Assigner::report_start`]): never a day without an active provider, never two.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rz_domain::{GemeenteCode, Period};
use rz_platform::ApiError;
use rz_proto::assignment::v1 as pb;

use crate::assigner::{Assigner, Choice, ChoiceInput, stacking_text};
use crate::domain::{Assignment, ChangeReason, Origin, Status};
use crate::error::{Error, Result};
use crate::fields::{self, Fields};
use crate::store;
use crate::upstream::ContractCache;

/// The counts of one handover run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HandoverOutcome {
    pub examined: u32,
    pub newly_arranged: u32,
    pub already_arranged: u32,
    pub not_arranged: u32,
}

/// Replacements made at the same time in a handover run (each holds a database connection while
/// its transaction runs; the pool has 16 by default, and decisions keep coming in meanwhile).
const HANDOVER_LANES: usize = 8;

/// Candidates read per statement in a handover run.
const CANDIDATE_PAGE: i64 = 5_000;

/// The lane of a subsegment in a municipality (choices for it are serialised anyway, see
/// [`Assigner::choose`]).
fn lane(municipality: &str, subsegment: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (municipality, subsegment).hash(&mut h);
    (h.finish() % HANDOVER_LANES as u64) as usize
}

enum One {
    Arranged,
    Already,
    NotArranged(String),
}

impl Assigner {
    pub async fn run_handover_api(
        &self,
        r: pb::RunHandoverRequest,
    ) -> Result<pb::RunHandoverResponse> {
        let mut f = Fields::default();
        let as_of = f.check(fields::date("as_of", &r.as_of));
        let m = fields::optional_municipality(&mut f, "municipality", &r.municipality);
        f.finish()?;
        let o = self
            .run_handover(as_of.unwrap_or_default(), m.as_ref(), None)
            .await?;
        Ok(pb::RunHandoverResponse {
            examined: o.examined,
            newly_arranged: o.newly_arranged,
            already_arranged: o.already_arranged,
            not_arranged: o.not_arranged,
        })
    }

    /// Hands over every active assignment (of `municipality`, or all) whose provider is not
    /// contracted for its subsegment and municipality on `as_of`: a new assignment with a
    /// contracted provider from `as_of` on, change reason 03 (contractwijziging). `limit` stops
    /// after that many examined assignments (an interrupted run, for tests and operators).
    pub async fn run_handover(
        &self,
        as_of: NaiveDate,
        municipality: Option<&GemeenteCode>,
        limit: Option<usize>,
    ) -> Result<HandoverOutcome> {
        // First the cheap part, in order and page by page (only the assignments that need a
        // replacement are kept): which assignments need one. The answers from registration are
        // cached, so this asks it once per provider, subsegment and municipality.
        let mut cache = ContractCache::default();
        let mut out = HandoverOutcome::default();
        let mut lanes: Vec<Vec<Assignment>> = vec![Vec::new(); HANDOVER_LANES];
        let mut left = limit.unwrap_or(usize::MAX);
        let mut after: Option<(String, i64)> = None;
        while left > 0 {
            let page = {
                let mut conn = self.pool.acquire().await?;
                let after = after.as_ref().map(|(m, n)| (m.as_str(), *n));
                store::handover_candidates(&mut conn, as_of, municipality, after, CANDIDATE_PAGE)
                    .await?
            };
            let Some(last) = page.last() else { break };
            after = Some((last.municipality.to_string(), i64::from(last.number)));
            let full = page.len() as i64 == CANDIDATE_PAGE;
            for a in page.into_iter().take(left) {
                left -= 1;
                self.sort_candidate(a, as_of, &mut cache, &mut out, &mut lanes)
                    .await?;
            }
            if !full {
                break;
            }
        }
        // Then the replacements, in lanes at the same time: each is a client-block fetch, a
        // transaction and its commit, mostly waiting.
        let results = futures::future::join_all(
            lanes
                .into_iter()
                .filter(|l| !l.is_empty())
                .map(|l| self.hand_over_lane(l, as_of, cache.clone())),
        )
        .await;
        for r in results {
            let o = r?;
            out.newly_arranged += o.newly_arranged;
            out.already_arranged += o.already_arranged;
            out.not_arranged += o.not_arranged;
        }
        tracing::info!(%as_of, examined = out.examined, newly = out.newly_arranged, already = out.already_arranged, not_arranged = out.not_arranged, "handover run");
        if let Some(m) = &self.handover_metrics {
            m.run(&out);
        }
        Ok(out)
    }

    /// Counts a candidate as examined and, if its provider is not contracted on `as_of` and it
    /// has no replacement yet, puts it in its lane.
    async fn sort_candidate(
        &self,
        a: Assignment,
        as_of: NaiveDate,
        cache: &mut ContractCache,
        out: &mut HandoverOutcome,
        lanes: &mut [Vec<Assignment>],
    ) -> Result<()> {
        out.examined += 1;
        if cache
            .check(
                &self.upstream,
                a.agb_code.as_str(),
                &a.subsegment_code,
                a.municipality.as_str(),
                as_of,
            )
            .await?
            .is_some()
        {
            return Ok(());
        }
        if a.replaced_by_number.is_some() {
            out.already_arranged += 1;
            return Ok(());
        }
        // The replacements for one subsegment in one municipality stay in one lane, in order:
        // each choice weighs the caseloads the ones before it left (so a run gives the same
        // result however it is split up), and a client's stacking check sees them.
        lanes[lane(a.municipality.as_str(), &a.subsegment_code)].push(a);
        Ok(())
    }

    /// Replaces the assignments of one lane one after the other.
    async fn hand_over_lane(
        &self,
        lane: Vec<Assignment>,
        as_of: NaiveDate,
        mut cache: ContractCache,
    ) -> Result<HandoverOutcome> {
        let mut out = HandoverOutcome::default();
        for a in lane {
            // Each assignment is its own transaction; one that loses a deadlock against the
            // decisions being assigned at the same time is simply run again.
            let mut attempt = 0;
            let result = loop {
                attempt += 1;
                match self.hand_over(&a, as_of, &mut cache).await {
                    Err(e) if e.is_conflict() && attempt < 5 => {
                        tracing::info!(municipality = %a.municipality, number = a.number, attempt, "handover conflict; again");
                        tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                    }
                    other => break other,
                }
            };
            match result {
                Ok(One::Arranged) => out.newly_arranged += 1,
                Ok(One::Already) => out.already_arranged += 1,
                Ok(One::NotArranged(reason)) => {
                    out.not_arranged += 1;
                    tracing::warn!(municipality = %a.municipality, number = a.number, %reason, "assignment not handed over");
                }
                Err(Error::Api(ApiError::FailedPrecondition { description, .. })) => {
                    out.not_arranged += 1;
                    tracing::warn!(municipality = %a.municipality, number = a.number, reason = %description, "assignment not handed over");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn hand_over(
        &self,
        old: &Assignment,
        as_of: NaiveDate,
        cache: &mut ContractCache,
    ) -> Result<One> {
        let client = self
            .client_block(&old.municipality, &old.client_key)
            .await?;
        let mut tx = self.pool.begin().await?;
        let Some(mut old) =
            store::load_assignment(&mut tx, &old.municipality, old.number, true).await?
        else {
            return Ok(One::Already);
        };
        if !old.status.is_active() || old.replaced_by_number.is_some() {
            return Ok(One::Already);
        }
        let (m, s) = (old.municipality.clone(), old.subsegment_code.clone());
        // Never retroactive: the new provider takes over from the handover date, or from today
        // when the handover runs later (the old assignment ends the day before).
        let start = as_of.max(old.period.start()).max(self.today());
        let Ok(period) = Period::new(start, old.period.end()) else {
            return Ok(One::NotArranged(format!("assignment ends before {start}")));
        };
        let choice = self
            .choose(
                &mut tx,
                ChoiceInput {
                    municipality: &m,
                    subsegment: &s,
                    date: start,
                    preferred: old
                        .preferred_agb
                        .as_deref()
                        .filter(|p| *p != old.agb_code.as_str()),
                },
                cache,
            )
            .await?;
        let (agb_code, reason) = match choice {
            Choice::Chosen { agb_code, reason } => (agb_code, reason),
            Choice::NoneContracted { reason } => return Ok(One::NotArranged(reason)),
        };
        if let Some(other) = self
            .stacked(&mut tx, &m, &old.client_key, &s, &period, Some(old.number))
            .await?
        {
            return Ok(One::NotArranged(stacking_text(&other)));
        }
        let mut new = Assignment {
            number: 0,
            agb_code,
            period,
            status: Status::Issued,
            assigned_on: self.today(),
            change_reason: ChangeReason::ContractChange.code(old.law).to_owned(),
            started_on: None,
            stopped_on: None,
            end_reason: String::new(),
            withdrawn_on: None,
            valid_until: period.end(),
            choice_reason: format!(
                "handover: provider {} is not contracted for {s} in {m} on {as_of}; {reason}",
                old.agb_code
            ),
            origin: Origin::Handover,
            replaces_number: Some(old.number),
            replaced_by_number: None,
            request_id: None,
            ..old.clone()
        };
        self.insert_new(&mut tx, &mut new, &client).await?;
        old.replaced_by_number = Some(new.number);
        store::update_assignment(&mut tx, &old).await?;
        self.emit_lifecycle(&mut tx, &old, "changed").await?;
        tx.commit().await?;
        Ok(One::Arranged)
    }

    /// Progress of the handover against `deadline`, per municipality and segment: replacements
    /// whose care started (handed over) or not yet (waiting), and assignments still valid today
    /// whose provider is not contracted on the deadline and that have no replacement (not arranged).
    pub async fn handover_progress(
        &self,
        r: pb::HandoverProgressRequest,
    ) -> Result<pb::HandoverProgressResponse> {
        let deadline = fields::date("deadline", &r.deadline)?;
        let (replaced, unreplaced) = {
            let mut conn = self.pool.acquire().await?;
            (
                store::replacements(&mut conn).await?,
                store::unreplaced_active(&mut conn, self.today()).await?,
            )
        };
        let mut rows: BTreeMap<(String, String), pb::HandoverProgressRow> = BTreeMap::new();
        fn row<'a>(
            rows: &'a mut BTreeMap<(String, String), pb::HandoverProgressRow>,
            m: &str,
            seg: &str,
        ) -> &'a mut pb::HandoverProgressRow {
            rows.entry((m.to_owned(), seg.to_owned()))
                .or_insert_with(|| pb::HandoverProgressRow {
                    municipality: m.to_owned(),
                    segment_code: seg.to_owned(),
                    ..Default::default()
                })
        }
        for (m, seg, status, started) in replaced {
            if status == Status::Withdrawn {
                continue;
            }
            if started {
                row(&mut rows, &m, &seg).handed_over += 1;
            } else {
                row(&mut rows, &m, &seg).waiting_for_start += 1;
            }
        }
        let mut cache = ContractCache::default();
        for (m, seg, sub, agb, count) in unreplaced {
            if cache
                .check(&self.upstream, &agb, &sub, &m, deadline)
                .await?
                .is_none()
            {
                row(&mut rows, &m, &seg).not_arranged += u32::try_from(count).unwrap_or(u32::MAX);
            }
        }
        Ok(pb::HandoverProgressResponse {
            deadline: deadline.to_string(),
            rows: rows.into_values().collect(),
        })
    }
}
