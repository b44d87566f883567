//! The municipality's side: answering provider requests (319), withdrawing assignments, looking
//! assignments up, and the chain's deadlines.

use rz_domain::{ClientKey, GemeenteCode, Referrer, RefusalReason};
use rz_proto::assignment::v1 as pb;
use uuid::Uuid;

use crate::assigner::Assigner;
use crate::convert::{assignment_pb, request_pb};
use crate::domain::{Assignment, ChangeReason, Extent, Origin, RequestKind, RequestStatus, Status};
use crate::error::{Error, Result};
use crate::fields::{self, Fields};
use crate::provider::lock_assignment;
use crate::store::{self, AssignmentFilter};

impl Assigner {
    /// The answer (319) to a provider request. Granting a 315 creates the assignment for the
    /// requesting provider; granting a 317 changes the assignment. A request is answered once,
    /// by municipality `by`, and only when it is for `by` (PERMISSION_DENIED
    /// `answer.request_of_municipality` otherwise, before anything changes).
    pub async fn answer_request(
        &self,
        r: pb::AnswerRequestRequest,
        by: &GemeenteCode,
    ) -> Result<pb::ProviderRequest> {
        let mut f = Fields::default();
        let id = f.check(
            Uuid::parse_str(&r.request_id)
                .map_err(|_| rz_domain::FieldError::new("request_id", "must be a UUID")),
        );
        let date = f.check(fields::optional_date("date", &r.date));
        let refusal = if r.grant {
            if !r.refusal_reason.is_empty() {
                f.push(
                    "refusal_reason",
                    "must be empty when the request is granted",
                );
            }
            None
        } else {
            f.check(RefusalReason::from_code(&r.refusal_reason).map_err(|e| e.at("refusal_reason")))
        };
        f.finish()?;
        let id = id.unwrap_or_default();
        let date = date.flatten().unwrap_or_else(|| self.today());
        let current = {
            let mut conn = self.pool.acquire().await?;
            store::load_request(&mut conn, id, false)
                .await?
                .ok_or_else(|| Error::not_found(format!("request {id} does not exist")))?
        };
        crate::owner::request_of_municipality(by, &current.municipality, &id)?;
        current.ensure_open()?;
        if date < current.received_on {
            return Err(Error::rule(
                "answer.not_before_request",
                "date",
                format!(
                    "the answer date {date} is before the request was received on {}",
                    current.received_on
                ),
            ));
        }
        let m = current.municipality.clone();

        // What granting needs from other services, before the transaction.
        let mut grant_315 = None;
        let mut client = None;
        if r.grant {
            if current.kind == RequestKind::Assignment {
                let period = current
                    .period
                    .ok_or_else(|| Error::Upstream(format!("request {id} has no period")))?;
                let catalogue = self.upstream.catalogue().await?;
                let sub = catalogue
                    .subsegment(&current.subsegment_code)
                    .cloned()
                    .ok_or_else(|| {
                        Error::Upstream(format!(
                            "subsegment {} is no longer in the catalogue",
                            current.subsegment_code
                        ))
                    })?;
                let Some(contract) = self
                    .upstream
                    .check_contracted(
                        current.agb_code.as_str(),
                        &sub.code,
                        m.as_str(),
                        period.start(),
                    )
                    .await?
                else {
                    return Err(Error::rule(
                        "request.provider_contracted",
                        "request_id",
                        format!(
                            "provider {} is not contracted for {} in {m} on {}; refuse the request (reason 3, geen contract)",
                            current.agb_code,
                            sub.code,
                            period.start()
                        ),
                    ));
                };
                grant_315 = Some((period, sub, contract));
            }
            client = Some(self.client_block(&m, &current.client_key).await?);
        }

        let mut tx = self.pool.begin().await?;
        let mut req = store::load_request(&mut tx, id, true)
            .await?
            .ok_or_else(|| Error::not_found(format!("request {id} does not exist")))?;
        req.ensure_open()?;
        req.answered_on = Some(date);
        match (refusal, grant_315, client) {
            (Some(reason), _, _) => {
                req.status = RequestStatus::Refused;
                req.refusal_reason = reason.code().to_owned();
            }
            (None, Some((period, sub, contract)), Some(client)) => {
                if let Some(other) = self
                    .stacked(&mut tx, &m, &req.client_key, &sub.code, &period, None)
                    .await?
                {
                    return Err(Self::stacking_rule(&other));
                }
                let referrer = req
                    .referrer
                    .as_ref()
                    .and_then(|x| Referrer::from_code(&x.kind).ok())
                    .map(|x| x.description().to_lowercase())
                    .unwrap_or_else(|| "an unknown referrer".into());
                let mut a = Assignment {
                    municipality: m.clone(),
                    number: 0,
                    client_key: req.client_key.clone(),
                    agb_code: req.agb_code.clone(),
                    law: sub.law,
                    segment_code: sub.segment_code.clone(),
                    subsegment_code: sub.code.clone(),
                    product_category: sub.product_categories.first().cloned().unwrap_or_default(),
                    product_code: req.product_code.clone(),
                    period,
                    extent: req.extent.unwrap_or(Extent::Task),
                    status: Status::Issued,
                    assigned_on: date,
                    change_reason: String::new(),
                    started_on: None,
                    stopped_on: None,
                    end_reason: String::new(),
                    withdrawn_on: None,
                    valid_until: period.end(),
                    choice_reason: format!(
                        "requested by provider {} (verzoek om toewijzing) after a referral by {referrer}; contracted for {} in {m} on {} (contract {contract})",
                        req.agb_code,
                        sub.code,
                        period.start()
                    ),
                    origin: Origin::Request,
                    granted_product_id: None,
                    granted_version: None,
                    product_version: 0,
                    preferred_agb: None,
                    request_id: Some(req.id),
                    replaces_number: None,
                    replaced_by_number: None,
                };
                self.insert_new(&mut tx, &mut a, &client).await?;
                req.status = RequestStatus::Granted;
                req.resulting_assignment_number = Some(a.number);
            }
            (None, None, Some(client)) => {
                let n = req.assignment_number.unwrap_or(0);
                let mut a = lock_assignment(&mut tx, &m, n).await?;
                if !a.status.is_active() {
                    return Err(Error::rule(
                        "change.assignment_active",
                        "request_id",
                        format!(
                            "assignment {m}/{n} is {} by now; refuse the request",
                            a.status.code()
                        ),
                    ));
                }
                a.change(
                    req.new_end.map(Some),
                    req.extent,
                    ChangeReason::InitiatedByProvider,
                );
                self.save_changed(&mut tx, &a, &client, "changed").await?;
                req.status = RequestStatus::Granted;
                req.resulting_assignment_number = Some(a.number);
            }
            (None, _, None) => {
                return Err(Error::Upstream("no client block for the grant".into()));
            }
        }
        store::update_request(&mut tx, &req).await?;
        self.emit_answer(&mut tx, &req).await?;
        tx.commit().await?;
        tracing::info!(request_id = %req.id, municipality = %m, agb_code = %req.agb_code, status = req.status.code(), "request answered (319)");
        Ok(request_pb(&req))
    }

    /// Withdraws an assignment from a date on; never with retroactive effect.
    pub async fn withdraw(&self, r: pb::WithdrawAssignmentRequest) -> Result<pb::Assignment> {
        let mut f = Fields::default();
        let named = fields::assignment_id(&mut f, &r.municipality, r.assignment_number);
        let date = f.check(fields::date("date", &r.date));
        f.non_empty("reason", &r.reason);
        f.finish()?;
        let (Some((m, n)), Some(date)) = (named, date) else {
            return Err(fields::incomplete());
        };
        let today = self.today();
        let current = self.load(&m, n).await?;
        current.clone().withdraw(date, today, &r.reason)?;
        let client = self.client_block(&m, &current.client_key).await?;
        let mut tx = self.pool.begin().await?;
        let mut a = lock_assignment(&mut tx, &m, n).await?;
        a.withdraw(date, today, &r.reason)?;
        self.save_changed(&mut tx, &a, &client, "withdrawn").await?;
        // A withdrawn replacement frees its handover: the old assignment can be handed over again.
        if let Some(old_number) = a.replaces_number
            && let Some(mut old) = store::load_assignment(&mut tx, &m, old_number, true).await?
            && old.replaced_by_number == Some(a.number)
        {
            old.replaced_by_number = None;
            store::update_assignment(&mut tx, &old).await?;
            self.emit_lifecycle(&mut tx, &old, "changed").await?;
        }
        tx.commit().await?;
        Ok(assignment_pb(&a))
    }

    pub async fn get_assignment(&self, r: pb::GetAssignmentRequest) -> Result<pb::Assignment> {
        let mut f = Fields::default();
        let named = fields::assignment_id(&mut f, &r.municipality, r.assignment_number);
        f.finish()?;
        let (m, n) = named.ok_or_else(fields::incomplete)?;
        Ok(assignment_pb(&self.load(&m, n).await?))
    }

    pub async fn list_client_assignments(
        &self,
        r: pb::ListClientAssignmentsRequest,
    ) -> Result<pb::ListAssignmentsResponse> {
        let mut f = Fields::default();
        let m = f.check(fields::municipality("municipality", &r.municipality));
        let key = f.check(ClientKey::parse(&r.client_key));
        f.finish()?;
        let mut conn = self.pool.acquire().await?;
        let rows = store::list_assignments(
            &mut conn,
            &AssignmentFilter {
                municipality: m,
                client_key: key,
                ..Default::default()
            },
        )
        .await?;
        Ok(pb::ListAssignmentsResponse {
            assignments: rows.iter().map(assignment_pb).collect(),
        })
    }

    /// The chain's deadlines on `as_of`: start of care for issued assignments (5 working days
    /// after their start) and answers to open requests (5 working days after receipt).
    pub async fn chain_deadlines(
        &self,
        r: pb::ListChainDeadlinesRequest,
    ) -> Result<pb::ListChainDeadlinesResponse> {
        let mut f = Fields::default();
        let as_of = f.check(fields::date("as_of", &r.as_of));
        let m = fields::optional_municipality(&mut f, "municipality", &r.municipality);
        f.finish()?;
        let as_of = as_of.unwrap_or_default();
        let mut conn = self.pool.acquire().await?;
        let issued = store::list_assignments(
            &mut conn,
            &AssignmentFilter {
                municipality: m.clone(),
                status: Some(Status::Issued),
                ..Default::default()
            },
        )
        .await?;
        let open = store::open_requests(&mut conn, m.as_ref()).await?;
        let mut deadlines: Vec<pb::ChainDeadline> = issued
            .iter()
            .map(|a| {
                let due = Self::chain_due(a.period.start());
                pb::ChainDeadline {
                    kind: "start_of_care".into(),
                    municipality: a.municipality.to_string(),
                    agb_code: a.agb_code.to_string(),
                    assignment_number: a.number,
                    request_id: String::new(),
                    due: due.to_string(),
                    late: due < as_of,
                }
            })
            .chain(open.iter().map(|q| pb::ChainDeadline {
                kind: "request_answer".into(),
                municipality: q.municipality.to_string(),
                agb_code: q.agb_code.to_string(),
                assignment_number: q.assignment_number.unwrap_or(0),
                request_id: q.id.to_string(),
                due: q.answer_due.to_string(),
                late: q.answer_due < as_of,
            }))
            .collect();
        deadlines.sort_by(|a, b| {
            (
                &a.due,
                &a.kind,
                &a.municipality,
                a.assignment_number,
                &a.request_id,
            )
                .cmp(&(
                    &b.due,
                    &b.kind,
                    &b.municipality,
                    b.assignment_number,
                    &b.request_id,
                ))
        });
        Ok(pb::ListChainDeadlinesResponse { deadlines })
    }
}
