//! The gRPC API: turns requests into domain values, runs each command in one transaction together
//! with its outbox event, and maps errors to precise status codes.
//!
//! Nothing here logs a BSN or a name: logs and traces carry case ids, product ids and client keys.

use std::sync::Arc;

use chrono::{Days, NaiveDate};
use rz_domain::{Bsn, ClientKey, FieldError, GemeenteCode, Law};
use rz_eventing::{Namespace, NewEvent, outbox};
use rz_platform::ApiError;
use rz_platform::audit::{Audit, AuditContext, AuditEntry};
use rz_platform::clock::Clock;
use rz_platform::idempotency::fingerprint;
use rz_platform::sealing::Keyring;
use rz_proto::access::v1 as pb;
use rz_proto::access::v1::access_service_server::AccessService;
use rz_proto::events::{EventType, access as events};
use rz_proto::types::v1 as types;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::case::{Case, CaseStatus, Deadline};
use crate::domain::catalogue::{Catalogue, law_from_pb};
use crate::domain::product::{
    self, AmendmentInput, AmendmentKind, Goal, GrantedProduct, ProductInput, RawSize, Size,
};
use crate::domain::resident::{AddressInput, Resident, ResidentInput};
use crate::domain::{AccessError, Fields};
use crate::store::{self, Claim};

type ApiResult<T> = Result<T, ApiError>;

pub const CONTEXT: &str = events::CONTEXT;
/// Granted products ending within this many days of `as_of` are up for reassessment.
pub const EXPIRING_WITHIN_DAYS: u64 = 8 * 7;
/// Client keys one `GetClientsForAssignment` call may ask for.
pub const MAX_CLIENTS_PER_CALL: usize = 500;

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Invalid(v) => ApiError::InvalidArgument(v),
            AccessError::Rule {
                rule,
                subject,
                description,
            } => ApiError::rule(rule, subject, description),
            AccessError::PermissionDenied { rule, description } => {
                ApiError::PermissionDenied(format!("{rule}: {description}"))
            }
            AccessError::NotFound(w) => ApiError::NotFound(w),
            AccessError::AlreadyExists(w) => ApiError::AlreadyExists(w),
        }
    }
}

pub struct AccessApi {
    pool: PgPool,
    catalogue: Arc<Catalogue>,
    ns: Namespace,
    municipality: GemeenteCode,
    secret: Arc<[u8]>,
    /// The keys that seal residents' personal data at rest.
    keys: Arc<Keyring>,
    source: String,
    clock: Arc<dyn Clock>,
    /// The NEN 7513 trail of every read or change of a resident's data.
    audit: Audit,
}

fn uuid(field: &str, v: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(v).map_err(|_| FieldError::new(field, "must be a UUID"))
}

fn plus_days(d: NaiveDate, days: u64) -> NaiveDate {
    d.checked_add_days(Days::new(days))
        .unwrap_or(NaiveDate::MAX)
}

fn key_conflict() -> ApiError {
    ApiError::AlreadyExists("idempotency_key was used before for a different request".into())
}

fn law_pb(l: Law) -> i32 {
    let law = match l {
        Law::Jeugdwet => types::Law::Jeugdwet,
        Law::Wmo => types::Law::Wmo,
    };
    law as i32
}

fn parse_law(v: i32) -> Result<Law, FieldError> {
    types::Law::try_from(v)
        .ok()
        .and_then(law_from_pb)
        .ok_or_else(|| FieldError::new("law", "must be LAW_JEUGDWET or LAW_WMO"))
}

fn goal_from_pb(v: i32) -> Option<Goal> {
    match pb::Goal::try_from(v).ok()? {
        pb::Goal::Unspecified => None,
        pb::Goal::TimelyLastingResult => Some(Goal::TimelyLastingResult),
        pb::Goal::MeaningfulLife => Some(Goal::MeaningfulLife),
        pb::Goal::Participation => Some(Goal::Participation),
        pb::Goal::FlexibleAmbulant => Some(Goal::FlexibleAmbulant),
        pb::Goal::ResidentSatisfaction => Some(Goal::ResidentSatisfaction),
        pb::Goal::ChainSatisfaction => Some(Goal::ChainSatisfaction),
    }
}

fn goal_pb(g: Goal) -> i32 {
    let goal = match g {
        Goal::TimelyLastingResult => pb::Goal::TimelyLastingResult,
        Goal::MeaningfulLife => pb::Goal::MeaningfulLife,
        Goal::Participation => pb::Goal::Participation,
        Goal::FlexibleAmbulant => pb::Goal::FlexibleAmbulant,
        Goal::ResidentSatisfaction => pb::Goal::ResidentSatisfaction,
        Goal::ChainSatisfaction => pb::Goal::ChainSatisfaction,
    };
    goal as i32
}

fn date_text(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

pub fn resident_pb(r: &Resident) -> pb::Resident {
    pb::Resident {
        client_key: r.client_key.to_string(),
        bsn: r.bsn.to_string(),
        given_names: r.given_names.clone(),
        family_name: r.family_name.clone(),
        birth_date: r.birth_date.to_string(),
        address: Some(pb::Address {
            street: r.address.street.clone(),
            house_number: r.address.house_number.clone(),
            postal_code: r.address.postal_code.as_str().to_owned(),
            city: r.address.city.clone(),
            municipality: r.address.municipality.to_string(),
        }),
        gender: r.gender.to_string(),
        legal_representative: r
            .legal_representative
            .as_ref()
            .map(|l| pb::LegalRepresentative {
                name: l.name.clone(),
                relation: l.relation.clone(),
            }),
        municipality: r.municipality.to_string(),
    }
}

pub fn product_pb(p: &GrantedProduct, today: NaiveDate) -> pb::GrantedProduct {
    let (volume, unit, frequency) = match p.size {
        Size::Effort {
            volume,
            unit,
            frequency,
        } => (volume, unit.code().to_owned(), frequency.code().to_owned()),
        _ => (0, String::new(), String::new()),
    };
    pb::GrantedProduct {
        id: p.id.to_string(),
        case_id: p.case_id.to_string(),
        client_key: p.client_key.to_string(),
        law: law_pb(p.law),
        segment_code: p.segment_code.clone(),
        subsegment_code: p.subsegment_code.clone(),
        product_category: p.product_category.clone(),
        product_code: p
            .product_code
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        result: p.result.clone(),
        goal: goal_pb(p.goal),
        period: Some(types::Period {
            start: p.period.start().to_string(),
            end: date_text(p.period.end()),
        }),
        execution_variant: match p.variant {
            rz_domain::ExecutionVariant::Taakgericht => types::ExecutionVariant::Taakgericht,
            rz_domain::ExecutionVariant::Outputgericht => types::ExecutionVariant::Outputgericht,
            rz_domain::ExecutionVariant::Inspanningsgericht => {
                types::ExecutionVariant::Inspanningsgericht
            }
        } as i32,
        budget_cents: p.size.budget_cents(),
        volume,
        unit,
        frequency,
        preferred_provider_agb: p
            .preferred_provider
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        status: p.status(today).code().to_owned(),
        version: p.version,
    }
}

pub fn case_pb(c: &Case, today: NaiveDate) -> pb::Case {
    pb::Case {
        id: c.id.to_string(),
        client_key: c.client_key.to_string(),
        law: law_pb(c.law),
        status: match c.status {
            CaseStatus::Reported => pb::CaseStatus::Reported,
            CaseStatus::Investigated => pb::CaseStatus::Investigated,
            CaseStatus::Applied => pb::CaseStatus::Applied,
            CaseStatus::Granted => pb::CaseStatus::Granted,
            CaseStatus::Refused => pb::CaseStatus::Refused,
        } as i32,
        reported_on: date_text(c.reported_on),
        investigation_due: date_text(c.investigation_due),
        investigated_on: date_text(c.investigated_on),
        applied_on: date_text(c.applied_on),
        decision_due: date_text(c.decision_due),
        decided_on: date_text(c.decided_on),
        refusal_reason: c.refusal_reason.clone().unwrap_or_default(),
        products: c.products.iter().map(|p| product_pb(p, today)).collect(),
    }
}

fn deadline_pb(d: Deadline) -> pb::Deadline {
    pb::Deadline {
        case_id: d.case_id.to_string(),
        client_key: d.client_key.to_string(),
        law: law_pb(d.law),
        step: d.step.to_owned(),
        due: d.due.to_string(),
        late: d.late,
        days_left: i32::try_from(d.days_left).unwrap_or(if d.days_left < 0 {
            i32::MIN
        } else {
            i32::MAX
        }),
    }
}

fn resident_input(r: &pb::RegisterResidentRequest) -> ResidentInput {
    ResidentInput {
        bsn: r.bsn.clone(),
        given_names: r.given_names.clone(),
        family_name: r.family_name.clone(),
        birth_date: r.birth_date.clone(),
        gender: r.gender.clone(),
        address: r.address.as_ref().map(|a| AddressInput {
            street: a.street.clone(),
            house_number: a.house_number.clone(),
            postal_code: a.postal_code.clone(),
            city: a.city.clone(),
            municipality: a.municipality.clone(),
        }),
        legal_representative: r
            .legal_representative
            .as_ref()
            .map(|l| (l.name.clone(), l.relation.clone())),
    }
}

impl AccessApi {
    pub fn new(
        pool: PgPool,
        catalogue: Arc<Catalogue>,
        ns: Namespace,
        municipality: GemeenteCode,
        secret: Arc<[u8]>,
        keys: Arc<Keyring>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            clock,
            audit: Audit::new(pool.clone(), "access"),
            pool,
            catalogue,
            ns,
            source: format!("regiozorg/access/{municipality}"),
            municipality,
            secret,
            keys,
        }
    }

    async fn emit(
        &self,
        tx: &mut PgConnection,
        event: EventType,
        aggregate: &str,
        payload: &impl prost::Message,
    ) -> ApiResult<()> {
        let e = NewEvent::new(
            self.ns
                .subject(CONTEXT, Some(self.municipality.as_str()), None, event.name),
            event.ce_type,
            self.source.clone(),
            aggregate,
            payload,
        );
        outbox::enqueue(tx, &e).await?;
        Ok(())
    }

    async fn emit_case_changed(&self, tx: &mut PgConnection, c: &pb::Case) -> ApiResult<()> {
        let event = pb::CaseChanged {
            case: Some(c.clone()),
            municipality: self.municipality.to_string(),
        };
        self.emit(tx, events::CASE_CHANGED, &c.id, &event).await
    }

    async fn case(&self, conn: &mut PgConnection, id: Uuid, for_update: bool) -> ApiResult<Case> {
        store::load_case(conn, id, for_update)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("case {id} does not exist")))
    }

    async fn register_resident(&self, r: pb::RegisterResidentRequest) -> ApiResult<pb::Resident> {
        let no_key = r.idempotency_key.trim().is_empty();
        let key_error = || FieldError::new("idempotency_key", "must not be empty");
        let resident = match Resident::register(
            &resident_input(&r),
            &self.municipality,
            &self.secret,
            self.clock.today(),
        ) {
            Err(AccessError::Invalid(mut v)) if no_key => {
                v.insert(0, key_error());
                return Err(ApiError::InvalidArgument(v));
            }
            _ if no_key => return Err(key_error().into()),
            other => other?,
        };
        let key = resident.client_key.clone();
        let mut tx = self.pool.begin().await?;
        match store::claim_key(
            &mut tx,
            &r.idempotency_key,
            "register_resident",
            &fingerprint("register_resident", &r),
            key.as_str(),
        )
        .await?
        {
            Claim::Replay(_) => {
                let stored = store::resident_by_key(&mut tx, &self.keys, &key, &self.municipality)
                    .await?
                    .ok_or_else(|| ApiError::internal("replayed resident is missing"))?;
                return Ok(resident_pb(&stored));
            }
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        if !store::insert_resident(&mut tx, &self.keys, &resident).await? {
            return Err(ApiError::AlreadyExists(format!(
                "a resident with this BSN is registered already (client key {key})"
            )));
        }
        tx.commit().await?;
        tracing::info!(client_key = %key, "resident registered");
        Ok(resident_pb(&resident))
    }

    async fn get_resident(&self, r: pb::GetResidentRequest) -> ApiResult<pb::Resident> {
        let mut conn = self.pool.acquire().await?;
        let found = match (r.bsn.as_str(), r.client_key.as_str()) {
            (bsn, "") if !bsn.is_empty() => {
                let bsn = Bsn::parse(bsn).map_err(|e| e.at("bsn"))?;
                let key = ClientKey::derive(&self.secret, &bsn);
                store::resident_by_key(&mut conn, &self.keys, &key, &self.municipality).await?
            }
            ("", key) if !key.is_empty() => {
                let key = ClientKey::parse(key)?;
                store::resident_by_key(&mut conn, &self.keys, &key, &self.municipality).await?
            }
            _ => {
                return Err(ApiError::field(
                    "bsn",
                    "give exactly one of bsn and client_key",
                ));
            }
        };
        found
            .map(|r| resident_pb(&r))
            .ok_or_else(|| ApiError::NotFound("no such resident is registered here".into()))
    }

    async fn open_case(&self, r: pb::OpenCaseRequest) -> ApiResult<pb::Case> {
        let mut f = Fields::default();
        f.required("idempotency_key", &r.idempotency_key);
        let bsn = f.check(Bsn::parse(&r.bsn).map_err(|e| e.at("bsn")));
        let law = f.check(parse_law(r.law));
        let date = f.check(crate::domain::date("date", &r.date));
        f.finish()?;
        let (Some(bsn), Some(law), Some(date)) = (bsn, law, date) else {
            return Err(ApiError::internal("checked fields are missing"));
        };
        let id = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        match store::claim_key(
            &mut tx,
            &r.idempotency_key,
            "open_case",
            &fingerprint("open_case", &r),
            &id.to_string(),
        )
        .await?
        {
            Claim::Replay(id) => {
                let id = uuid("case_id", &id)?;
                return Ok(case_pb(
                    &self.case(&mut tx, id, false).await?,
                    self.clock.today(),
                ));
            }
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        let key = ClientKey::derive(&self.secret, &bsn);
        let resident = store::resident_by_key(&mut tx, &self.keys, &key, &self.municipality)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no resident with this BSN is registered in municipality {}; register the resident first",
                    self.municipality
                ))
            })?;
        let case = Case::open(id, resident.client_key, law, date);
        store::insert_case(&mut tx, &case).await?;
        let c = case_pb(&case, self.clock.today());
        self.emit_case_changed(&mut tx, &c).await?;
        tx.commit().await?;
        tracing::info!(case_id = %id, client_key = %case.client_key, law = law.code(), "case opened");
        Ok(c)
    }

    /// Loads a case for update, applies `step`, stores it with its `case_changed` event.
    async fn case_step(
        &self,
        case_id: &str,
        date: &str,
        step: impl FnOnce(&mut Case, NaiveDate) -> Result<(), AccessError>,
    ) -> ApiResult<pb::Case> {
        let mut f = Fields::default();
        let id = f.check(uuid("case_id", case_id));
        let date = f.check(crate::domain::date("date", date));
        f.finish()?;
        let (Some(id), Some(date)) = (id, date) else {
            return Err(ApiError::internal("checked fields are missing"));
        };
        let mut tx = self.pool.begin().await?;
        let mut case = self.case(&mut tx, id, true).await?;
        step(&mut case, date)?;
        store::update_case(&mut tx, &case).await?;
        let c = case_pb(&case, self.clock.today());
        self.emit_case_changed(&mut tx, &c).await?;
        tx.commit().await?;
        tracing::info!(case_id = %id, client_key = %case.client_key, status = case.status.code(), "case step");
        Ok(c)
    }

    async fn decide(&self, r: pb::DecideRequest) -> ApiResult<pb::Case> {
        let mut f = Fields::default();
        let id = f.check(uuid("case_id", &r.case_id));
        let date = f.check(crate::domain::date("date", &r.date));
        let refusing = !r.refusal_reason.trim().is_empty();
        match (r.grant.is_empty(), refusing) {
            (true, false) => f.push(
                "grant",
                "grant at least one product, or refuse with a refusal_reason",
            ),
            (false, true) => f.push(
                "refusal_reason",
                "must be empty when products are granted: a decision grants or refuses",
            ),
            _ => {}
        }
        let mut plans = Vec::with_capacity(r.grant.len());
        for (i, g) in r.grant.iter().enumerate() {
            let input = ProductInput {
                subsegment_code: &g.subsegment_code,
                product_code: &g.product_code,
                result: &g.result,
                goal: goal_from_pb(g.goal),
                period_start: g.period.as_ref().map(|p| p.start.as_str()).unwrap_or(""),
                period_end: g.period.as_ref().map(|p| p.end.as_str()).unwrap_or(""),
                has_period: g.period.is_some(),
                size: RawSize {
                    budget_cents: g.budget_cents,
                    volume: g.volume,
                    unit: &g.unit,
                    frequency: &g.frequency,
                },
                preferred_provider_agb: &g.preferred_provider_agb,
            };
            if let Some(p) = product::plan(i, &input, &self.catalogue, &mut f) {
                plans.push(p);
            }
        }
        f.finish()?;
        let (Some(id), Some(date)) = (id, date) else {
            return Err(ApiError::internal("checked fields are missing"));
        };
        let today = self.clock.today();
        let mut tx = self.pool.begin().await?;
        let mut case = self.case(&mut tx, id, true).await?;
        let c = if refusing {
            case.refuse(date, today, &r.refusal_reason)?;
            store::update_case(&mut tx, &case).await?;
            let c = case_pb(&case, self.clock.today());
            self.emit_case_changed(&mut tx, &c).await?;
            c
        } else {
            let client_key = case.client_key.clone();
            case.grant(date, today, plans, &self.municipality, Uuid::now_v7)?;
            // No stacking: the resident's earlier grants of the same product (the case row lock
            // serialises decisions on one case; the resident's other cases are checked here).
            for (i, p) in case.products.iter().enumerate() {
                if let Some(other) = store::stacked_product(
                    &mut tx,
                    &client_key,
                    p.law,
                    &p.subsegment_code,
                    p.product_code.as_ref(),
                    p.period,
                )
                .await?
                {
                    return Err(ApiError::rule(
                        "decide.no_stacking",
                        format!("grant[{i}]"),
                        format!(
                            "the resident was granted the same product (product {other}) for an overlapping period; amend that product instead"
                        ),
                    ));
                }
            }
            store::update_case(&mut tx, &case).await?;
            for (i, p) in case.products.iter().enumerate() {
                store::insert_product(&mut tx, p, i).await?;
            }
            let c = case_pb(&case, self.clock.today());
            let event = pb::DecisionGranted {
                case: Some(c.clone()),
                municipality: self.municipality.to_string(),
            };
            self.emit(&mut tx, events::DECISION_GRANTED, &c.id, &event)
                .await?;
            c
        };
        tx.commit().await?;
        tracing::info!(case_id = %id, client_key = %case.client_key, status = case.status.code(), products = case.products.len(), "case decided");
        Ok(c)
    }

    async fn amend_product(&self, r: pb::AmendProductRequest) -> ApiResult<pb::GrantedProduct> {
        let mut f = Fields::default();
        let id = f.check(uuid("product_id", &r.product_id));
        let kind = match pb::Amendment::try_from(r.amendment) {
            Ok(pb::Amendment::Change) => Some(AmendmentKind::Change),
            Ok(pb::Amendment::Extend) => Some(AmendmentKind::Extend),
            Ok(pb::Amendment::End) => Some(AmendmentKind::End),
            _ => {
                f.push(
                    "amendment",
                    "must be AMENDMENT_CHANGE, AMENDMENT_EXTEND or AMENDMENT_END",
                );
                None
            }
        };
        let date = f.check(crate::domain::date("date", &r.date));
        let new_end = if r.new_end.is_empty() {
            Some(None)
        } else {
            f.check(crate::domain::date("new_end", &r.new_end))
                .map(Some)
        };
        f.finish()?;
        let (Some(id), Some(kind), Some(date), Some(new_end)) = (id, kind, date, new_end) else {
            return Err(ApiError::internal("checked fields are missing"));
        };
        let input = AmendmentInput {
            kind,
            date,
            new_end,
            size: RawSize {
                budget_cents: r.budget_cents,
                volume: r.volume,
                unit: &r.unit,
                frequency: &r.frequency,
            },
        };
        let mut tx = self.pool.begin().await?;
        let mut p = store::load_product(&mut tx, id, true)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("product {id} does not exist")))?;
        p.amend(&input, self.clock.today())?;
        store::save_amendment(&mut tx, &p, kind, date).await?;
        let out = product_pb(&p, self.clock.today());
        let event = pb::ProductAmended {
            product: Some(out.clone()),
            amendment: r.amendment,
            municipality: self.municipality.to_string(),
        };
        self.emit(&mut tx, events::PRODUCT_AMENDED, &out.id, &event)
            .await?;
        tx.commit().await?;
        tracing::info!(product_id = %id, client_key = %p.client_key, amendment = kind.code(), version = p.version, "product amended");
        Ok(out)
    }

    async fn list_deadlines(
        &self,
        r: pb::ListDeadlinesRequest,
    ) -> ApiResult<pb::ListDeadlinesResponse> {
        let as_of = crate::domain::date("as_of", &r.as_of)?;
        let until = plus_days(as_of, u64::from(r.within_days));
        let mut conn = self.pool.acquire().await?;
        let cases = store::cases_due(&mut conn, until).await?;
        Ok(pb::ListDeadlinesResponse {
            deadlines: cases
                .iter()
                .filter_map(|c| c.deadline(as_of))
                .map(deadline_pb)
                .collect(),
        })
    }

    async fn list_expiring(
        &self,
        r: pb::ListExpiringIndicationsRequest,
    ) -> ApiResult<pb::ListExpiringIndicationsResponse> {
        let as_of = crate::domain::date("as_of", &r.as_of)?;
        let until = plus_days(as_of, EXPIRING_WITHIN_DAYS);
        let mut conn = self.pool.acquire().await?;
        let products = store::products_ending(&mut conn, as_of, until).await?;
        let today = self.clock.today();
        Ok(pb::ListExpiringIndicationsResponse {
            products: products.iter().map(|p| product_pb(p, today)).collect(),
        })
    }

    async fn client_for_assignment(
        &self,
        r: pb::GetClientForAssignmentRequest,
    ) -> ApiResult<pb::AssignmentClient> {
        let key = ClientKey::parse(&r.client_key)?;
        let mut conn = self.pool.acquire().await?;
        let resident = store::resident_by_key(&mut conn, &self.keys, &key, &self.municipality)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "client key {key} belongs to no resident of municipality {}",
                    self.municipality
                ))
            })?;
        tracing::info!(client_key = %key, "client block handed out for an assignment");
        Ok(self.assignment_client(resident))
    }

    async fn clients_for_assignment(
        &self,
        r: pb::GetClientsForAssignmentRequest,
    ) -> ApiResult<pb::GetClientsForAssignmentResponse> {
        let mut f = Fields::default();
        if r.client_keys.len() > MAX_CLIENTS_PER_CALL {
            f.push(
                "client_keys",
                format!("at most {MAX_CLIENTS_PER_CALL} keys per call"),
            );
        }
        let keys: Vec<ClientKey> = r
            .client_keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                ClientKey::parse(k)
                    .map_err(|e| f.push(format!("client_keys[{i}]"), e.rule))
                    .ok()
            })
            .collect();
        f.finish()?;
        let mut conn = self.pool.acquire().await?;
        let residents =
            store::residents_by_keys(&mut conn, &self.keys, &keys, &self.municipality).await?;
        tracing::info!(
            asked = keys.len(),
            found = residents.len(),
            "client blocks handed out for assignments"
        );
        Ok(pb::GetClientsForAssignmentResponse {
            clients: residents
                .into_iter()
                .map(|r| self.assignment_client(r))
                .collect(),
        })
    }

    /// The client block of the standard's assignment message for a resident.
    fn assignment_client(&self, resident: Resident) -> pb::AssignmentClient {
        pb::AssignmentClient {
            client_key: resident.client_key.to_string(),
            bsn: resident.bsn.to_string(),
            birth_date: resident.birth_date.to_string(),
            family_name: resident.family_name,
            given_names: resident.given_names,
            municipality: self.municipality.to_string(),
            gender: resident.gender.to_string(),
            address: Some(pb::Address {
                street: resident.address.street,
                house_number: resident.address.house_number,
                postal_code: resident.address.postal_code.as_str().to_owned(),
                city: resident.address.city,
                municipality: resident.address.municipality.to_string(),
            }),
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn reply<T>(r: ApiResult<T>) -> Reply<T> {
    r.map(Response::new).map_err(Status::from)
}

impl AccessApi {
    /// The service's audit trail (served by [`rz_platform::audit::AuditApi`]).
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The reply once its trail is written: one `action` entry per client key of the result; a
    /// failed write fails the call (UNAVAILABLE).
    async fn audited<T>(
        &self,
        who: &AuditContext,
        action: &'static str,
        r: ApiResult<T>,
        keys: impl Fn(&T) -> Vec<String>,
    ) -> Reply<T> {
        let value = r.map_err(Status::from)?;
        let municipality = self.municipality.to_string();
        let entries: Vec<AuditEntry> = keys(&value)
            .into_iter()
            .map(|k| AuditEntry::new(k, municipality.clone(), action))
            .collect();
        self.audit.record_or_unavailable(who, &entries).await?;
        Ok(Response::new(value))
    }
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn register_resident(
        &self,
        r: Request<pb::RegisterResidentRequest>,
    ) -> Reply<pb::Resident> {
        let who = AuditContext::from_request(&r)?;
        let out = self.register_resident(r.into_inner()).await;
        self.audited(&who, "register_resident", out, |x| {
            vec![x.client_key.clone()]
        })
        .await
    }
    async fn get_resident(&self, r: Request<pb::GetResidentRequest>) -> Reply<pb::Resident> {
        let who = AuditContext::from_request(&r)?;
        let out = self.get_resident(r.into_inner()).await;
        self.audited(&who, "read_resident", out, |x| vec![x.client_key.clone()])
            .await
    }
    async fn open_case(&self, r: Request<pb::OpenCaseRequest>) -> Reply<pb::Case> {
        let who = AuditContext::from_request(&r)?;
        let out = self.open_case(r.into_inner()).await;
        self.audited(&who, "open_case", out, |x| vec![x.client_key.clone()])
            .await
    }
    async fn complete_investigation(
        &self,
        r: Request<pb::CompleteInvestigationRequest>,
    ) -> Reply<pb::Case> {
        let r = r.into_inner();
        reply(
            self.case_step(&r.case_id, &r.date, |c, d| c.complete_investigation(d))
                .await,
        )
    }
    async fn submit_application(
        &self,
        r: Request<pb::SubmitApplicationRequest>,
    ) -> Reply<pb::Case> {
        let r = r.into_inner();
        reply(
            self.case_step(&r.case_id, &r.date, |c, d| c.submit_application(d))
                .await,
        )
    }
    async fn decide(&self, r: Request<pb::DecideRequest>) -> Reply<pb::Case> {
        let who = AuditContext::from_request(&r)?;
        let out = self.decide(r.into_inner()).await;
        self.audited(&who, "decide", out, |x| vec![x.client_key.clone()])
            .await
    }
    async fn get_case(&self, r: Request<pb::GetCaseRequest>) -> Reply<pb::Case> {
        reply(
            async {
                let id = uuid("case_id", &r.into_inner().case_id)?;
                let mut conn = self.pool.acquire().await?;
                Ok(case_pb(
                    &self.case(&mut conn, id, false).await?,
                    self.clock.today(),
                ))
            }
            .await,
        )
    }
    async fn amend_product(
        &self,
        r: Request<pb::AmendProductRequest>,
    ) -> Reply<pb::GrantedProduct> {
        let who = AuditContext::from_request(&r)?;
        let out = self.amend_product(r.into_inner()).await;
        self.audited(&who, "amend_product", out, |x| vec![x.client_key.clone()])
            .await
    }
    async fn list_deadlines(
        &self,
        r: Request<pb::ListDeadlinesRequest>,
    ) -> Reply<pb::ListDeadlinesResponse> {
        reply(self.list_deadlines(r.into_inner()).await)
    }
    async fn list_expiring_indications(
        &self,
        r: Request<pb::ListExpiringIndicationsRequest>,
    ) -> Reply<pb::ListExpiringIndicationsResponse> {
        reply(self.list_expiring(r.into_inner()).await)
    }
    async fn get_client_for_assignment(
        &self,
        r: Request<pb::GetClientForAssignmentRequest>,
    ) -> Reply<pb::AssignmentClient> {
        let who = AuditContext::from_request(&r)?;
        let out = self.client_for_assignment(r.into_inner()).await;
        self.audited(&who, "read_client_block", out, |x| {
            vec![x.client_key.clone()]
        })
        .await
    }
    async fn get_clients_for_assignment(
        &self,
        r: Request<pb::GetClientsForAssignmentRequest>,
    ) -> Reply<pb::GetClientsForAssignmentResponse> {
        let who = AuditContext::from_request(&r)?;
        let out = self.clients_for_assignment(r.into_inner()).await;
        self.audited(&who, "read_client_block", out, |x| {
            x.clients.iter().map(|c| c.client_key.clone()).collect()
        })
        .await
    }
}
