//! The gRPC edge: subscriptions, failed deliveries and replay.

use chrono::Utc;
use rz_domain::{AgbCode, FieldError, GemeenteCode};
use rz_platform::ApiError;
use rz_platform::idempotency::{Claim, claim_key};
use rz_proto::notification::v1 as pb;
use rz_proto::notification::v1::notification_service_server::NotificationService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use std::sync::Arc;

use rz_proto::events::assignment::{CHANGED, ISSUED, REQUEST_ANSWERED};

use crate::egress::Guard;
use crate::owner;
use crate::region::Region;
use crate::scan::Scanner;
use crate::secrets::Keyring;
use crate::store::{self, AlertRow, DeliveryRow, SubscriptionRow};
use crate::webhook;

pub struct NotificationApi {
    pool: PgPool,
    require_https: bool,
    /// Where a webhook URL may point (the SSRF guard).
    guard: Guard,
    /// Seals the subscriptions' secrets; opens the letters' texts.
    keys: Arc<Keyring>,
    /// What a subscription's municipality and segment filters may name.
    region: Arc<Region>,
    scanner: Scanner,
    /// The NEN 7513 trail: listing letters reads residents' letters.
    audit: rz_platform::audit::Audit,
}

/// How webhook URLs are checked and secrets kept.
pub struct WebhookPolicy {
    pub require_https: bool,
    pub guard: Guard,
    pub keys: Arc<Keyring>,
}

impl NotificationApi {
    pub fn new(
        pool: PgPool,
        webhooks: WebhookPolicy,
        region: Arc<Region>,
        scanner: Scanner,
    ) -> Self {
        Self {
            audit: rz_platform::audit::Audit::new(pool.clone(), "notification"),
            pool,
            require_https: webhooks.require_https,
            guard: webhooks.guard,
            keys: webhooks.keys,
            region,
            scanner,
        }
    }

    /// The service's audit trail (served by [`rz_platform::audit::AuditApi`]).
    pub fn audit(&self) -> &rz_platform::audit::Audit {
        &self.audit
    }
}

fn alert_state_pb(state: &str) -> pb::AlertState {
    match state {
        "upcoming" => pb::AlertState::Upcoming,
        "overdue" => pb::AlertState::Overdue,
        "resolved" => pb::AlertState::Resolved,
        _ => pb::AlertState::Unspecified,
    }
}

fn alert_pb(a: AlertRow) -> pb::StaffAlert {
    let ts = |t: Option<chrono::DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    pb::StaffAlert {
        id: a.id.to_string(),
        key: a.key,
        municipality: a.municipality,
        kind: a.kind,
        state: alert_state_pb(&a.state) as i32,
        due: a.due.to_string(),
        client_key: a.client_key.unwrap_or_default(),
        case_id: a.case_id.map(|c| c.to_string()).unwrap_or_default(),
        agb_code: a.agb_code.unwrap_or_default(),
        assignment_number: a
            .assignment_number
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        request_id: a.request_id.unwrap_or_default(),
        opened_at: a.opened_at.to_rfc3339(),
        overdue_at: ts(a.overdue_at),
        resolved_at: ts(a.resolved_at),
        last_scanned_on: a.last_scanned_on.to_string(),
    }
}

fn agb(value: &str, field: &str) -> Result<AgbCode, ApiError> {
    Ok(AgbCode::parse(value).map_err(|e| e.at(field))?)
}

/// A list's page size: 100 when not given, at most 1,000.
fn page_limit(limit: u32) -> i64 {
    match limit {
        0 => 100,
        n => i64::from(n.min(1000)),
    }
}

/// The years a scan date may lie in; outside, a scan would compute deadlines and letters for
/// dates no care runs on.
pub const SCAN_YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

/// A scan's `as_of`: `YYYY-MM-DD` in [`SCAN_YEARS`].
fn scan_date(value: &str) -> Result<chrono::NaiveDate, FieldError> {
    use chrono::Datelike;
    let d = rz_domain::parse_date("as_of", value)?;
    if !SCAN_YEARS.contains(&d.year()) {
        return Err(FieldError::new(
            "as_of",
            format!(
                "must lie in the years {} to {}",
                SCAN_YEARS.start(),
                SCAN_YEARS.end()
            ),
        ));
    }
    Ok(d)
}

fn uuid(value: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value).map_err(|_| ApiError::field(field, "must be a UUID"))
}

fn url(value: &str, require_https: bool) -> Result<String, FieldError> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| FieldError::new("url", "must be an absolute http(s) URL"))?;
    let scheme_ok = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => !require_https,
        _ => false,
    };
    if !scheme_ok || uri.host().is_none() {
        return Err(FieldError::new(
            "url",
            if require_https {
                "must be an absolute https:// URL: deliveries carry the BSN (rule webhook_url.https)"
            } else {
                "must be an absolute http:// or https:// URL"
            },
        ));
    }
    if value.len() > 2048 {
        return Err(FieldError::new("url", "must be at most 2048 characters"));
    }
    Ok(value.to_owned())
}

/// The event types a webhook receives (those addressed to one provider): a filter names them by
/// their CloudEvents type or their short name.
const WEBHOOK_EVENTS: [rz_proto::events::EventType; 3] = [ISSUED, CHANGED, REQUEST_ANSWERED];

fn webhook_event(t: &str) -> bool {
    WEBHOOK_EVENTS.iter().any(|e| e.ce_type == t || e.name == t)
}

fn validate_create(
    r: &pb::CreateSubscriptionRequest,
    require_https: bool,
    region: &Region,
) -> Result<SubscriptionRow, ApiError> {
    let mut errors = Vec::new();
    if r.idempotency_key.is_empty() || r.idempotency_key.len() > 128 {
        errors.push(FieldError::new(
            "idempotency_key",
            "must be 1 to 128 characters",
        ));
    }
    let agb_code = AgbCode::parse(&r.agb_code)
        .map_err(|e| errors.push(e.at("agb_code")))
        .ok();
    let url = url(&r.url, require_https)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    for (i, t) in r.event_types.iter().enumerate() {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            errors.push(FieldError::new(
                format!("event_types[{i}]"),
                "must be an event type such as nl.regiozorg.assignment.issued.v1 or issued",
            ));
        } else if !webhook_event(t) {
            let known: Vec<String> = WEBHOOK_EVENTS
                .iter()
                .map(|e| format!("{} ({})", e.ce_type, e.name))
                .collect();
            errors.push(FieldError::new(
                format!("event_types[{i}]"),
                format!(
                    "is no event a webhook receives; one of {}",
                    known.join(", ")
                ),
            ));
        }
    }
    let mut municipalities = Vec::new();
    for (i, m) in r.municipalities.iter().enumerate() {
        match GemeenteCode::parse(m) {
            Ok(g) if region.has_municipality(g.as_str()) => municipalities.push(g),
            Ok(g) => errors.push(FieldError::new(
                format!("municipalities[{i}]"),
                format!("{g} is no municipality of the region {}", region.name),
            )),
            Err(e) => errors.push(e.at(format!("municipalities[{i}]"))),
        }
    }
    for (i, s) in r.segments.iter().enumerate() {
        if s.is_empty() || s.len() > 64 {
            errors.push(FieldError::new(
                format!("segments[{i}]"),
                "must be a segment or subsegment code",
            ));
        } else if !region.has_segment(s) {
            errors.push(FieldError::new(
                format!("segments[{i}]"),
                format!(
                    "is no segment or subsegment code of the region {}'s catalogue",
                    region.name
                ),
            ));
        }
    }
    let (Some(agb_code), true) = (agb_code, errors.is_empty()) else {
        return Err(ApiError::InvalidArgument(errors));
    };
    Ok(SubscriptionRow {
        id: Uuid::now_v7(),
        agb_code,
        url,
        event_types: r.event_types.clone(),
        municipalities,
        segments: r.segments.clone(),
        created_at: Utc::now(),
    })
}

/// The SSRF guard on a URL that passed [`url`]: every address its host resolves to is checked.
async fn reachable(guard: &Guard, value: &str) -> Result<(), FieldError> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| FieldError::new("url", "must be an absolute http(s) URL"))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .ok_or_else(|| FieldError::new("url", "must name a host"))?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    guard
        .resolve(host, port)
        .await
        .map(|_| ())
        .map_err(|e| FieldError::new("url", e.to_string()))
}

fn subscription_pb(s: SubscriptionRow, secret: Option<String>) -> pb::Subscription {
    pb::Subscription {
        id: s.id.to_string(),
        agb_code: s.agb_code.to_string(),
        municipalities: s.municipality_codes(),
        url: s.url,
        event_types: s.event_types,
        segments: s.segments,
        secret: secret.unwrap_or_default(),
        created_at: s.created_at.to_rfc3339(),
    }
}

fn delivery_pb(d: DeliveryRow) -> pb::Delivery {
    let status = match d.status.as_str() {
        "pending" => pb::DeliveryStatus::Pending,
        "delivered" => pb::DeliveryStatus::Delivered,
        "failed" => pb::DeliveryStatus::Failed,
        _ => pb::DeliveryStatus::Unspecified,
    };
    let ts = |t: Option<chrono::DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    pb::Delivery {
        id: d.id.to_string(),
        subscription_id: d.subscription_id.to_string(),
        agb_code: d.agb_code,
        url: d.url,
        event_id: d.event_id.to_string(),
        event_type: d.event_type,
        event_subject: d.event_subject,
        status: status as i32,
        attempts: u32::try_from(d.attempts).unwrap_or(0),
        last_error: d.last_error.unwrap_or_default(),
        created_at: d.created_at.to_rfc3339(),
        next_attempt_at: if d.status == "pending" {
            d.next_attempt_at.to_rfc3339()
        } else {
            String::new()
        },
        delivered_at: ts(d.delivered_at),
        failed_at: ts(d.failed_at),
    }
}

impl NotificationApi {
    /// A fresh secret, and it sealed for subscription `id`.
    fn new_secret(&self, id: Uuid) -> Result<(String, crate::secrets::Sealed), ApiError> {
        let random = self.keys.random_bytes(32).map_err(ApiError::internal)?;
        let secret = webhook::new_secret(&random);
        let sealed = self
            .keys
            .seal(id.as_bytes(), secret.as_bytes())
            .map_err(ApiError::internal)?;
        Ok((secret, sealed))
    }

    async fn create(&self, r: pb::CreateSubscriptionRequest) -> Result<pb::Subscription, ApiError> {
        let new = validate_create(&r, self.require_https, &self.region)?;
        reachable(&self.guard, &new.url)
            .await
            .map_err(|e| ApiError::InvalidArgument(vec![e]))?;
        let (secret, sealed) = self.new_secret(new.id)?;
        let fingerprint = rz_platform::idempotency::fingerprint("create_subscription", &r);
        let mut tx = self.pool.begin().await?;
        // Keys are scoped to the provider, so providers cannot see each other's subscriptions.
        let key = format!("{}/{}", new.agb_code, r.idempotency_key);
        match claim_key(
            &mut tx,
            &key,
            "create_subscription",
            &fingerprint,
            &new.id.to_string(),
        )
        .await?
        {
            Claim::New => {
                store::insert_subscription(&mut tx, &new, &sealed).await?;
                tx.commit().await?;
                tracing::info!(subscription = %new.id, agb = %new.agb_code, url = %new.url, key_id = %sealed.key_id, "subscription created");
                Ok(subscription_pb(new, Some(secret)))
            }
            Claim::Replay(id) => {
                let id = uuid(&id, "idempotency_key")?;
                let existing = store::subscription(&mut tx, id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("subscription {id} was deleted")))?;
                // Shown once: a client that lost the first answer rotates the secret.
                Ok(subscription_pb(existing, None))
            }
            Claim::Conflict => Err(ApiError::AlreadyExists(format!(
                "idempotency key {} was used for another request",
                r.idempotency_key
            ))),
        }
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        Ok(Response::new(self.create(request.into_inner()).await?))
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        let agb = agb(&request.get_ref().agb_code, "agb_code")?;
        let mut conn = self.pool.acquire().await.map_err(ApiError::from)?;
        let rows = store::subscriptions_of(&mut conn, &agb)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListSubscriptionsResponse {
            subscriptions: rows.into_iter().map(|s| subscription_pb(s, None)).collect(),
        }))
    }

    async fn rotate_subscription_secret(
        &self,
        request: Request<pb::RotateSubscriptionSecretRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let r = request.into_inner();
        let agb = agb(&r.agb_code, "agb_code")?;
        let id = uuid(&r.subscription_id, "subscription_id")?;
        let (secret, sealed) = self.new_secret(id)?;
        if !store::set_secret(&self.pool, &agb, id, &sealed)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::NotFound(format!("subscription {id} of {agb}")).into());
        }
        let mut conn = self.pool.acquire().await.map_err(ApiError::from)?;
        let row = store::subscription(&mut conn, id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("subscription {id} of {agb}")))?;
        tracing::info!(subscription = %id, %agb, key_id = %sealed.key_id, "subscription secret rotated");
        Ok(Response::new(subscription_pb(row, Some(secret))))
    }

    async fn delete_subscription(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        let r = request.into_inner();
        let agb = agb(&r.agb_code, "agb_code")?;
        let id = uuid(&r.subscription_id, "subscription_id")?;
        if !store::delete_subscription(&self.pool, &agb, id)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::NotFound(format!("subscription {id} of {agb}")).into());
        }
        tracing::info!(subscription = %id, %agb, "subscription deleted");
        Ok(Response::new(pb::DeleteSubscriptionResponse {}))
    }

    async fn list_failed_deliveries(
        &self,
        request: Request<pb::ListFailedDeliveriesRequest>,
    ) -> Result<Response<pb::ListFailedDeliveriesResponse>, Status> {
        let r = request.into_inner();
        let agb = if r.agb_code.is_empty() {
            None
        } else {
            Some(agb(&r.agb_code, "agb_code")?)
        };
        let limit = page_limit(r.limit);
        let rows = store::failed_deliveries(&self.pool, agb.as_ref().map(AgbCode::as_str), limit)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListFailedDeliveriesResponse {
            deliveries: rows.into_iter().map(delivery_pb).collect(),
        }))
    }

    async fn replay_delivery(
        &self,
        request: Request<pb::ReplayDeliveryRequest>,
    ) -> Result<Response<pb::Delivery>, Status> {
        let caller = owner::caller(&request)?;
        let id = uuid(&request.get_ref().delivery_id, "delivery_id")?;
        // Checked before anything changes; a delivery's provider never changes.
        let current = store::delivery(&self.pool, id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("delivery {id}")))?;
        owner::may_replay(&caller, &id, &current.agb_code)?;
        let (replayed, row) = store::replay(&self.pool, id)
            .await
            .map_err(ApiError::from)?;
        let row = row.ok_or_else(|| ApiError::NotFound(format!("delivery {id}")))?;
        if !replayed {
            return Err(ApiError::rule(
                "notification.replay_only_failed",
                format!("delivery {id}"),
                format!(
                    "only a failed delivery can be replayed; this one is {}",
                    row.status
                ),
            )
            .into());
        }
        tracing::info!(delivery = %id, "delivery replayed");
        Ok(Response::new(delivery_pb(row)))
    }

    async fn list_letters(
        &self,
        request: Request<pb::ListLettersRequest>,
    ) -> Result<Response<pb::ListLettersResponse>, Status> {
        let who = rz_platform::audit::AuditContext::from_request(&request)?;
        let r = request.into_inner();
        let municipality = GemeenteCode::parse(&r.municipality)
            .map_err(|e| ApiError::from(e.at("municipality")))?;
        let client_key = (!r.client_key.is_empty()).then_some(r.client_key.as_str());
        let limit = page_limit(r.limit);
        let rows = store::letters(&self.pool, &self.keys, &municipality, client_key, limit)
            .await
            .map_err(ApiError::from)?;
        let out = pb::ListLettersResponse {
            letters: rows
                .into_iter()
                .map(|l| pb::Letter {
                    id: l.id.to_string(),
                    municipality: l.municipality,
                    client_key: l.client_key,
                    kind: l.kind,
                    assignment_number: l
                        .assignment_number
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                    event_id: l.event_id.map(|e| e.to_string()).unwrap_or_default(),
                    text: l.text,
                    created_at: l.created_at.to_rfc3339(),
                    case_id: l.case_id.map(|c| c.to_string()).unwrap_or_default(),
                    product_id: l.product_id.map(|p| p.to_string()).unwrap_or_default(),
                    ends_on: l.ends_on.map(|d| d.to_string()).unwrap_or_default(),
                    status: l.status,
                    attempts: u32::try_from(l.attempts).unwrap_or(0),
                    channel: l.channel.unwrap_or_default(),
                    sent_at: l.sent_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    failed_at: l.failed_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    last_error: l.last_error.unwrap_or_default(),
                })
                .collect(),
        };
        // One entry per letter handed out, for its client.
        let entries: Vec<rz_platform::audit::AuditEntry> = out
            .letters
            .iter()
            .map(|l| {
                rz_platform::audit::AuditEntry::new(
                    l.client_key.clone(),
                    l.municipality.clone(),
                    "read_letter",
                )
            })
            .collect();
        self.audit.record_or_unavailable(&who, &entries).await?;
        Ok(Response::new(out))
    }

    async fn list_staff_alerts(
        &self,
        request: Request<pb::ListStaffAlertsRequest>,
    ) -> Result<Response<pb::ListStaffAlertsResponse>, Status> {
        let r = request.into_inner();
        let mut errors = Vec::new();
        let municipality = GemeenteCode::parse(&r.municipality)
            .map_err(|e| errors.push(e.at("municipality")))
            .ok();
        let mut states = Vec::new();
        for (i, s) in r.states.iter().enumerate() {
            match pb::AlertState::try_from(*s) {
                Ok(pb::AlertState::Upcoming) => states.push("upcoming"),
                Ok(pb::AlertState::Overdue) => states.push("overdue"),
                Ok(pb::AlertState::Resolved) => states.push("resolved"),
                _ => errors.push(FieldError::new(
                    format!("states[{i}]"),
                    "must be ALERT_STATE_UPCOMING, ALERT_STATE_OVERDUE or ALERT_STATE_RESOLVED",
                )),
            }
        }
        let (Some(municipality), true) = (municipality, errors.is_empty()) else {
            return Err(ApiError::InvalidArgument(errors).into());
        };
        let limit = page_limit(r.limit);
        let rows = store::staff_alerts(&self.pool, &municipality, &states, limit)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListStaffAlertsResponse {
            alerts: rows.into_iter().map(alert_pb).collect(),
        }))
    }

    async fn scan_deadlines(
        &self,
        request: Request<pb::ScanDeadlinesRequest>,
    ) -> Result<Response<pb::ScanDeadlinesResponse>, Status> {
        let as_of = scan_date(request.get_ref().as_of.trim()).map_err(ApiError::from)?;
        let report = self.scanner.scan(as_of).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ScanDeadlinesResponse {
            letters_written: report.letters_written,
            alerts_opened: report.alerts.opened,
            alerts_overdue: report.alerts.overdue,
            alerts_resolved: report.alerts.resolved,
            errors: report.errors,
        }))
    }
}
