//! The handover (overdracht): existing care imported from before the platform, the run that gives
//! every active assignment of a provider without a contract a replacement with a contracted
//! provider, and the progress against the deadline.
//!
//! The run handles each assignment in its own transaction and skips those already replaced, so a
//! run that stops halfway and a second run give the same result as one clean run. The old
//! assignment stays active until the new provider reports the start of care on day D; then it ends
//! on D - 1 (see [`Assigner::report_start`]): never a day without an active provider, never two.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rz_domain::{Bsn, ClientKey, Period};
use rz_platform::ApiError;
use rz_proto::assignment::v1 as pb;

use crate::assigner::{
    Assigner, Choice, ChoiceInput, ProductFields, fingerprint, key_conflict, stacking_text,
};
use crate::convert::assignment_pb;
use crate::domain::{Assignment, ChangeReason, Origin, Status};
use crate::error::{Error, Result};
use crate::fields::{self, Fields};
use crate::store::{self, Claim};
use crate::upstream::{ClientLookup, ContractCache};

/// The counts of one handover run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HandoverOutcome {
    pub examined: u32,
    pub newly_arranged: u32,
    pub already_arranged: u32,
    pub not_arranged: u32,
}

enum One {
    Arranged,
    Already,
    NotArranged(String),
}

impl Assigner {
    /// Existing care from before the platform. The provider must have been contracted on the
    /// assignment's start; otherwise it is stored like any assignment (and the provider told).
    pub async fn import_assignment(
        &self,
        r: pb::ImportAssignmentRequest,
    ) -> Result<pb::Assignment> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let m = f.check(fields::municipality("municipality", &r.municipality));
        let agb = f.check(fields::agb("agb_code", &r.agb_code));
        let bsn = if r.bsn.is_empty() {
            None
        } else {
            f.check(Bsn::parse(&r.bsn).map_err(|e| e.at("bsn")))
        };
        let given_key = if r.client_key.is_empty() {
            None
        } else {
            f.check(ClientKey::parse(&r.client_key))
        };
        if r.bsn.is_empty() && r.client_key.is_empty() {
            f.push("bsn", "give the BSN or the client key");
        }
        f.non_empty("subsegment_code", &r.subsegment_code);
        let period = f.check_all(fields::period(r.period.as_ref()));
        let ProductFields {
            sub,
            extent,
            product_code,
        } = self
            .product_fields(
                &mut f,
                m.as_deref(),
                &r.subsegment_code,
                r.size.as_ref(),
                r.budget_cents,
                &r.product_code,
            )
            .await?;
        let key = match (&bsn, &given_key) {
            (Some(b), Some(k)) => {
                let derived = ClientKey::derive(&self.secret, b);
                if &derived != k {
                    f.push("client_key", "does not belong to the given BSN");
                }
                Some(derived)
            }
            (Some(b), None) => Some(ClientKey::derive(&self.secret, b)),
            (None, k) => k.clone(),
        };
        f.finish()?;
        let (Some(m), Some(agb), Some(period), Some(sub), Some(extent), Some(key)) =
            (m, agb, period, sub, extent, key)
        else {
            return Err(Error::field("request", "incomplete"));
        };
        let key = key.to_string();
        let Some(contract) = self
            .upstream
            .check_contracted(&agb, &sub.code, &m, period.start())
            .await?
        else {
            return Err(Error::rule(
                "import.provider_contracted",
                "agb_code",
                format!(
                    "provider {agb} was not contracted for {} in {m} on {}",
                    sub.code,
                    period.start()
                ),
            ));
        };
        let client = match (self.upstream.client(&m, &key).await?, &bsn) {
            (ClientLookup::Found(c), _) => *c,
            (_, Some(b)) => pb::Client {
                bsn: b.as_str().to_owned(),
                ..Default::default()
            },
            (_, None) => self.client_block(&m, &key).await?,
        };
        let fp = fingerprint(&format!(
            "{:?}",
            pb::ImportAssignmentRequest {
                bsn: key.clone(),
                ..r.clone()
            }
        ));
        let idempotency_key = format!("import/{}", r.idempotency_key);
        let mut tx = self.pool.begin().await?;
        match store::claim_key(&mut tx, &idempotency_key, "import_assignment", &fp, "").await? {
            Claim::Replay(resource) => {
                let (rm, rn) = resource.split_once('/').unwrap_or_default();
                let n: u32 = rn.parse().unwrap_or(0);
                return store::load_assignment(&mut tx, rm, n, false)
                    .await?
                    .map(|a| assignment_pb(&a))
                    .ok_or_else(|| Error::not_found(format!("assignment {resource}")));
            }
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        if let Some(b) = &bsn {
            store::save_identity(&mut tx, &m, &key, b.as_str()).await?;
        }
        if let Some(other) = self
            .stacked(&mut tx, &m, &key, &sub.code, &period, None)
            .await?
        {
            return Err(Self::stacking_rule(&other));
        }
        let mut a = Assignment {
            municipality: m.clone(),
            number: 0,
            client_key: key,
            agb_code: agb.clone(),
            law: sub.law,
            segment_code: sub.segment_code.clone(),
            subsegment_code: sub.code.clone(),
            product_category: sub.product_categories.first().cloned().unwrap_or_default(),
            product_code: product_code.clone(),
            period,
            extent,
            status: if r.started {
                Status::Started
            } else {
                Status::Issued
            },
            assigned_on: period.start(),
            change_reason: String::new(),
            started_on: r.started.then_some(period.start()),
            stopped_on: None,
            end_reason: String::new(),
            withdrawn_on: None,
            valid_until: period.end(),
            choice_reason: format!(
                "imported existing care: provider {agb} was contracted for {} in {m} on {} (contract {contract})",
                sub.code,
                period.start()
            ),
            origin: Origin::Import,
            granted_product_id: None,
            granted_version: None,
            product_version: 0,
            preferred_agb: None,
            request_id: None,
            replaces_number: None,
            replaced_by_number: None,
        };
        self.insert_new(&mut tx, &mut a, &client).await?;
        sqlx::query("UPDATE idempotency_keys SET resource_id = $2 WHERE key = $1")
            .bind(&idempotency_key)
            .bind(format!("{m}/{}", a.number))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(assignment_pb(&a))
    }

    pub async fn run_handover_api(
        &self,
        r: pb::RunHandoverRequest,
    ) -> Result<pb::RunHandoverResponse> {
        let mut f = Fields::default();
        let as_of = f.check(fields::date("as_of", &r.as_of));
        let m = if r.municipality.is_empty() {
            None
        } else {
            f.check(fields::municipality("municipality", &r.municipality))
        };
        f.finish()?;
        let o = self
            .run_handover(as_of.unwrap_or_default(), m.as_deref(), None)
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
        municipality: Option<&str>,
        limit: Option<usize>,
    ) -> Result<HandoverOutcome> {
        let candidates = {
            let mut conn = self.pool.acquire().await?;
            store::handover_candidates(&mut conn, as_of, municipality).await?
        };
        let mut cache = ContractCache::default();
        let mut out = HandoverOutcome::default();
        for a in candidates.into_iter().take(limit.unwrap_or(usize::MAX)) {
            out.examined += 1;
            if cache
                .check(
                    &self.upstream,
                    &a.agb_code,
                    &a.subsegment_code,
                    &a.municipality,
                    as_of,
                )
                .await?
                .is_some()
            {
                continue;
            }
            if a.replaced_by_number.is_some() {
                out.already_arranged += 1;
                continue;
            }
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
        tracing::info!(%as_of, examined = out.examined, newly = out.newly_arranged, already = out.already_arranged, not_arranged = out.not_arranged, "handover run");
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
                    preferred: old.preferred_agb.as_deref().filter(|p| *p != old.agb_code),
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
