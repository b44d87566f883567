//! The providers' messages: start of care (305), stop of care (307), a request for an assignment
//! (315) and a request to change one (317). A provider names itself and may only touch its own
//! assignments.

use rz_domain::{Bsn, ClientKey, GemeenteCode, Referrer, RefusalReason, RequestReason};
use rz_proto::assignment::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use rz_platform::idempotency::fingerprint;

use crate::assigner::{Assigner, ProductFields, key_conflict};
use crate::convert::{assignment_pb, request_pb};
use crate::domain::{
    Assignment, Extent, ProviderRequest, ReferrerInfo, RequestKind, RequestStatus, SizeFields,
};
use crate::error::{Error, Result};
use crate::fields::{self, Fields};
use crate::store::{self, AssignmentFilter, Claim};

/// What a request for an assignment from a provider without a contract for the subsegment gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Uncontracted {
    /// Refused as a call: FAILED_PRECONDITION `request.provider_contracted` (gRPC).
    Refuse,
    /// Accepted and refused in content at once with a 319, WJ759 `3` (geen contract): a 315
    /// received as XML, as the standard has content refusals of requests go through the 319.
    RefuseWith319,
}

pub(crate) fn one_open_rule(open: &ProviderRequest) -> Error {
    let what = match open.kind {
        RequestKind::Assignment => format!(
            "request {} for this client and subsegment {} is still open (answer due {})",
            open.id, open.subsegment_code, open.answer_due
        ),
        RequestKind::Change => format!(
            "change request {} for assignment {} is still open (answer due {})",
            open.id,
            open.assignment_number.unwrap_or(0),
            open.answer_due
        ),
    };
    Error::rule("request.one_open", "request", what)
}

impl Assigner {
    pub(crate) async fn load(
        &self,
        municipality: &GemeenteCode,
        number: u32,
    ) -> Result<Assignment> {
        let mut conn = self.pool.acquire().await?;
        store::load_assignment(&mut conn, municipality, number, false)
            .await?
            .ok_or_else(|| not_found(municipality, number))
    }

    /// Claims a provider's idempotency key for `req` and stores it as an open request: `Some`
    /// answers a replay of the key with the request stored before; a key used for another request,
    /// or another open request like it (`still_open` says which), is refused.
    async fn insert_open_request(
        &self,
        tx: &mut PgConnection,
        req: &ProviderRequest,
        (idempotency_key, operation, fingerprint): (&str, &str, &str),
        still_open: &str,
    ) -> Result<Option<pb::ProviderRequest>> {
        let key = format!("{}/{idempotency_key}", req.agb_code);
        match store::claim_key(tx, &key, operation, fingerprint, &req.id.to_string()).await? {
            Claim::Replay(id) => return self.request_by_id(tx, &id).await.map(Some),
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        if let Some(open) = store::open_request_like(tx, req).await? {
            return Err(one_open_rule(&open));
        }
        if !store::insert_request(tx, req).await? {
            return Err(Error::rule("request.one_open", "request", still_open));
        }
        Ok(None)
    }

    /// Start of care (305). When this assignment replaces another (handover), the old one ends
    /// the day before.
    pub async fn report_start(&self, r: pb::ReportStartOfCareRequest) -> Result<pb::Assignment> {
        let mut f = Fields::default();
        let named =
            fields::provider_assignment(&mut f, &r.agb_code, &r.municipality, r.assignment_number);
        let date = f.check(fields::date("start_date", &r.start_date));
        f.finish()?;
        let (Some((agb, m, n)), Some(date)) = (named, date) else {
            return Err(fields::incomplete());
        };
        // Most starts replace nothing: one transaction, the rules checked under the row lock.
        let mut tx = self.pool.begin().await?;
        let mut a = lock_assignment(&mut tx, &m, n).await?;
        a.start_care(&agb, date)?;
        if a.replaces_number.is_none() {
            store::update_assignment(&mut tx, &a).await?;
            self.emit_lifecycle(&mut tx, &a, "started").await?;
            tx.commit().await?;
            tracing::info!(municipality = %m, number = n, agb_code = %agb, started_on = %date, "start of care");
            return Ok(assignment_pb(&a));
        }
        // A handover's replacement also ends the old assignment, whose message needs the client
        // block from access: asked without holding the row lock, then checked again.
        drop(tx);
        let current = self.load(&m, n).await?;
        current.clone().start_care(&agb, date)?;
        let old_client = match current.replaces_number {
            Some(_) => Some(self.client_block(&m, &current.client_key).await?),
            None => None,
        };
        let mut tx = self.pool.begin().await?;
        let mut a = lock_assignment(&mut tx, &m, n).await?;
        a.start_care(&agb, date)?;
        store::update_assignment(&mut tx, &a).await?;
        self.emit_lifecycle(&mut tx, &a, "started").await?;
        if let (Some(old_number), Some(client)) = (a.replaces_number, old_client)
            && let Some(mut old) = store::load_assignment(&mut tx, &m, old_number, true).await?
            && old.status.is_active()
        {
            old.end_for_switch(date);
            self.save_changed(&mut tx, &old, &client, "ended").await?;
        }
        tx.commit().await?;
        tracing::info!(municipality = %m, number = n, agb_code = %agb, started_on = %date, "start of care");
        Ok(assignment_pb(&a))
    }

    /// Stop of care (307).
    pub async fn report_stop(&self, r: pb::ReportStopOfCareRequest) -> Result<pb::Assignment> {
        let mut f = Fields::default();
        let named =
            fields::provider_assignment(&mut f, &r.agb_code, &r.municipality, r.assignment_number);
        let date = f.check(fields::date("end_date", &r.end_date));
        if r.end_reason.is_empty() {
            f.push(
                "end_reason",
                "must be a code from list JZ588 (Jeugdwet) or WMO588 (Wmo)",
            );
        }
        f.finish()?;
        let (Some((agb, m, n)), Some(date)) = (named, date) else {
            return Err(fields::incomplete());
        };
        let mut tx = self.pool.begin().await?;
        let mut a = lock_assignment(&mut tx, &m, n).await?;
        a.stop_care(&agb, date, &r.end_reason)?;
        store::update_assignment(&mut tx, &a).await?;
        self.emit_lifecycle(&mut tx, &a, "stopped").await?;
        tx.commit().await?;
        tracing::info!(municipality = %m, number = n, agb_code = %agb, stopped_on = %date, end_reason = %a.end_reason, "stop of care");
        Ok(assignment_pb(&a))
    }

    /// A request for an assignment (315), e.g. after a GP referral. The requesting provider must
    /// be contracted for the subsegment in the municipality on the period's start
    /// (FAILED_PRECONDITION `request.provider_contracted` otherwise).
    pub async fn request_assignment(
        &self,
        r: pb::RequestAssignmentRequest,
    ) -> Result<pb::ProviderRequest> {
        self.request_assignment_as(r, Uncontracted::Refuse, None)
            .await
    }

    /// As [`Assigner::request_assignment`], with the handling of a provider without a contract
    /// given, and the provider's ReferentieAanbieder (a 315 received as XML) stored with the
    /// request.
    pub(crate) async fn request_assignment_as(
        &self,
        r: pb::RequestAssignmentRequest,
        uncontracted: Uncontracted,
        reference: Option<&str>,
    ) -> Result<pb::ProviderRequest> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let agb = f.check(fields::agb("agb_code", &r.agb_code));
        let m = f.check(fields::municipality("municipality", &r.municipality));
        let bsn = f.check(Bsn::parse(&r.bsn).map_err(|e| e.at("bsn")));
        f.non_empty("subsegment_code", &r.subsegment_code);
        let period = f.check_all(fields::period(r.period.as_ref()));
        let referrer = match &r.referrer {
            None => {
                f.push(
                    "referrer.type",
                    "a referrer is required: a code from list COD327",
                );
                None
            }
            Some(x) => {
                let agb_code = if x.agb_code.is_empty() {
                    None
                } else {
                    f.check(fields::agb("referrer.agb_code", &x.agb_code))
                };
                f.check(Referrer::from_code(&x.r#type).map_err(|e| e.at("referrer.type")))
                    .map(|_| ReferrerInfo {
                        kind: x.r#type.clone(),
                        name: x.name.trim().to_owned(),
                        agb_code,
                    })
            }
        };
        let ProductFields {
            sub,
            extent,
            product_code,
        } = self.product_fields(&mut f, m.as_ref(), &r).await?;
        f.finish()?;
        let (Some(agb), Some(m), Some(bsn), Some(period), Some(sub)) = (agb, m, bsn, period, sub)
        else {
            return Err(fields::incomplete());
        };
        let contracted = self
            .upstream
            .check_contracted(agb.as_str(), &sub.code, m.as_str(), period.start())
            .await?
            .is_some();
        if !contracted && uncontracted == Uncontracted::Refuse {
            return Err(Error::rule(
                "request.provider_contracted",
                "agb_code",
                format!(
                    "provider {agb} is not contracted for {} in {m} on {}",
                    sub.code,
                    period.start()
                ),
            ));
        }
        let key = ClientKey::derive(&self.secret, &bsn);
        let today = self.today();
        let mut req = ProviderRequest {
            id: Uuid::now_v7(),
            kind: RequestKind::Assignment,
            municipality: m.clone(),
            agb_code: agb.clone(),
            client_key: key.clone(),
            subsegment_code: sub.code.clone(),
            assignment_number: None,
            product_code: product_code.clone(),
            period: Some(period),
            new_end: None,
            extent,
            request_reason: String::new(),
            referrer,
            status: RequestStatus::Open,
            received_on: today,
            answer_due: Self::chain_due(today),
            answered_on: None,
            refusal_reason: String::new(),
            resulting_assignment_number: None,
        };
        // The fingerprint never contains the BSN: it is replaced by the client key first.
        let fp = fingerprint(
            "request_assignment",
            &pb::RequestAssignmentRequest {
                bsn: key.to_string(),
                ..r.clone()
            },
        );
        let mut tx = self.pool.begin().await?;
        if let Some(replayed) = self
            .insert_open_request(
                &mut tx,
                &req,
                (&r.idempotency_key, "request_assignment", &fp),
                "another request for this client and subsegment is still open",
            )
            .await?
        {
            return Ok(replayed);
        }
        store::save_identity(&mut tx, &self.keys, &m, &key, &bsn).await?;
        if let Some(reference) = reference {
            store::save_request_reference(&mut tx, req.id, reference).await?;
        }
        if !contracted {
            // Accepted as a message, refused in content: the 319 with WJ759 `3` (geen contract).
            req.status = RequestStatus::Refused;
            req.answered_on = Some(today);
            req.refusal_reason = RefusalReason::NoContract.code().to_owned();
            store::update_request(&mut tx, &req).await?;
            self.emit_answer(&mut tx, &req).await?;
            tx.commit().await?;
            tracing::info!(request_id = %req.id, municipality = %m, agb_code = %agb, client_key = %key, subsegment = %req.subsegment_code, "assignment requested (315) without a contract: refused (319, WJ759 3)");
            return Ok(request_pb(&req));
        }
        tx.commit().await?;
        tracing::info!(request_id = %req.id, municipality = %m, agb_code = %agb, client_key = %key, subsegment = %req.subsegment_code, "assignment requested (315)");
        Ok(request_pb(&req))
    }

    async fn request_by_id(
        &self,
        conn: &mut sqlx::PgConnection,
        id: &str,
    ) -> Result<pb::ProviderRequest> {
        let id = Uuid::parse_str(id).map_err(|e| Error::Upstream(e.to_string()))?;
        store::load_request(conn, id, false)
            .await?
            .map(|r| request_pb(&r))
            .ok_or_else(|| Error::not_found(format!("request {id} does not exist")))
    }

    /// A request to change an assignment (317): a new end and/or a new size or budget.
    pub async fn request_change(&self, r: pb::RequestChangeRequest) -> Result<pb::ProviderRequest> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let named =
            fields::provider_assignment(&mut f, &r.agb_code, &r.municipality, r.assignment_number);
        f.check(RequestReason::from_code(&r.reason).map_err(|e| e.at("reason")));
        let new_end = f.check(fields::optional_date("new_end", &r.new_end));
        f.finish()?;
        let (Some((agb, m, n)), Some(new_end)) = (named, new_end) else {
            return Err(fields::incomplete());
        };
        let a = self.load(&m, n).await?;
        if a.agb_code != agb {
            return Err(Error::denied(
                "change.assignment_of_provider",
                format!("assignment {m}/{n} is not assigned to provider {agb}"),
            ));
        }
        if !a.status.is_active() {
            return Err(Error::rule(
                "change.assignment_active",
                "assignment_number",
                format!("assignment {m}/{n} is {}", a.status.code()),
            ));
        }
        let size = r.size.clone().unwrap_or_default();
        let extent = Extent::parse_change(
            a.extent.variant(),
            size.volume,
            &size.unit,
            &size.frequency,
            r.budget_cents,
            SizeFields::API,
        )?;
        if new_end.is_none() && extent.is_none() {
            return Err(Error::field(
                "new_end",
                "give a new end date, a new size or a new budget",
            ));
        }
        if let Some(end) = new_end
            && end < a.period.start()
        {
            return Err(Error::rule(
                "change.end_not_before_start",
                "new_end",
                format!(
                    "the new end {end} is before the assignment's start {}",
                    a.period.start()
                ),
            ));
        }
        let today = self.today();
        let req = ProviderRequest {
            id: Uuid::now_v7(),
            kind: RequestKind::Change,
            municipality: m.clone(),
            agb_code: agb.clone(),
            client_key: a.client_key.clone(),
            subsegment_code: a.subsegment_code.clone(),
            assignment_number: Some(n),
            product_code: a.product_code.clone(),
            period: None,
            new_end,
            extent,
            request_reason: r.reason.clone(),
            referrer: None,
            status: RequestStatus::Open,
            received_on: today,
            answer_due: Self::chain_due(today),
            answered_on: None,
            refusal_reason: String::new(),
            resulting_assignment_number: None,
        };
        let mut tx = self.pool.begin().await?;
        if let Some(replayed) = self
            .insert_open_request(
                &mut tx,
                &req,
                (
                    &r.idempotency_key,
                    "request_change",
                    &fingerprint("request_change", &r),
                ),
                "another change request for this assignment is still open",
            )
            .await?
        {
            return Ok(replayed);
        }
        tx.commit().await?;
        tracing::info!(request_id = %req.id, municipality = %m, number = n, agb_code = %agb, "change requested (317)");
        Ok(request_pb(&req))
    }

    pub async fn list_provider_assignments(
        &self,
        r: pb::ListProviderAssignmentsRequest,
    ) -> Result<pb::ListAssignmentsResponse> {
        let mut f = Fields::default();
        let agb = f.check(fields::agb("agb_code", &r.agb_code));
        let m = fields::optional_municipality(&mut f, "municipality", &r.municipality);
        f.finish()?;
        let mut conn = self.pool.acquire().await?;
        let rows = store::list_assignments(
            &mut conn,
            &AssignmentFilter {
                agb_code: agb,
                municipality: m,
                ..Default::default()
            },
        )
        .await?;
        Ok(pb::ListAssignmentsResponse {
            assignments: rows.iter().map(assignment_pb).collect(),
        })
    }
}

/// Loads assignment `number` of `municipality` and locks it for the rest of the transaction.
pub(crate) async fn lock_assignment(
    tx: &mut PgConnection,
    municipality: &GemeenteCode,
    number: u32,
) -> Result<Assignment> {
    store::load_assignment(tx, municipality, number, true)
        .await?
        .ok_or_else(|| not_found(municipality, number))
}

pub(crate) fn not_found(municipality: &GemeenteCode, number: u32) -> Error {
    Error::not_found(format!(
        "assignment {number} does not exist in municipality {municipality}"
    ))
}
