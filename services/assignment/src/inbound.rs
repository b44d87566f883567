//! A provider's message received as XML (305, 307, 315, 317): read by the hardened readers,
//! checked against the standard's technical rules, applied record by record through the gRPC
//! path's functions and answered with the return message (306, 308, 316, 318).
//!
//! Order of the checks (the first that fails answers the message):
//!
//! 1. Readable and valid (schema, S300/S329 by the readers): otherwise answered `0001` (or the
//!    reader's code) as a whole.
//! 2. The sender (Afzender) is the calling provider: otherwise PERMISSION_DENIED
//!    `upload.sender_is_caller`, no return message (it would go to another provider).
//! 3. The receiver (Ontvanger) is a municipality of the region: otherwise `S300` (TR378) whole.
//! 4. TR135: the Dagtekening is not after today (the service's clock): otherwise `8848` whole.
//! 5. TR056: the Identificatie was not used before by this sender for this message (e.g. JW305):
//!    otherwise `9056` whole, nothing applied (an identical message sent again included).
//! 6. Per record, the rules in [`crate::inbound`]'s record functions (TR019, TR069, TR074, TR326,
//!    TR347, TR351, TR374; see `docs/istandaarden-rules.md`), then the domain's own rules.
//!
//! A 315 for a product the provider has no contract for is accepted technically (`0200` in the
//! 316) and refused in content with a 319 (WJ759 `3`, geen contract), as the standard has content
//! refusals of requests go through the 319.
//!
//! When a dependency is unavailable the upload fails (UNAVAILABLE or INTERNAL) and the
//! identification is given back, so the provider can send the message again; records applied
//! before the failure stay applied, and are answered as received before (TR074) when sent again.

use rz_domain::{AgbCode, AssignmentNumber, Bsn, ClientKey, GemeenteCode, ReturnCode};
use rz_istandaarden as ist;
use rz_platform::ApiError;
use rz_proto::assignment::v1 as pb;
use rz_proto::types::v1 as types;
use uuid::Uuid;

use crate::assigner::Assigner;
use crate::domain::Assignment;
use crate::error::{Error, Result};
use crate::fields;
use crate::provider::Uncontracted;
use crate::store;

/// A broken technical rule of the standard, as a rule error whose id is the rule's (`TR019`).
fn broken(rule: ist::Rule, subject: &str, description: impl Into<String>) -> Error {
    Error::rule(rule.id(), subject, description)
}

/// The WJ001 return code for an error that refused a record.
///
/// | rule / outcome | code |
/// |---|---|
/// | a standard's rule (`TR019`, `TR069`, ... raised by this module) | the rule's code ([`ist::Rule`]) |
/// | assignment does not exist, belongs to another provider or another client (BSN), or the start/stop falls outside it (`start.*`, `stop.*`) | `9019` (TR019) |
/// | start or stop reported before (already exists) | `9074` (TR074) |
/// | stop without a reported start (`stop.care_started`) | `9069` (TR069) |
/// | `change.assignment_of_provider`, `change.assignment_active` | `9351` (TR351) |
/// | `request.one_open` | `9374` (TR374) |
/// | anything else (malformed values, catalogue) | `0001` technical rejection |
pub fn return_code(e: &Error, message: ist::MessageType) -> ReturnCode {
    let rule = match e {
        Error::Api(ApiError::NotFound(_)) => Some(ist::Rule::TR019),
        Error::Api(ApiError::AlreadyExists(_))
            if matches!(
                message,
                ist::MessageType::Start305 | ist::MessageType::Stop307
            ) =>
        {
            Some(ist::Rule::TR074)
        }
        Error::Api(ApiError::FailedPrecondition { rule, .. }) | Error::Denied { rule, .. } => {
            match rule.as_str() {
                r if r.starts_with("TR") => ist::Rule::ALL.into_iter().find(|x| x.id() == r),
                "stop.care_started" => Some(ist::Rule::TR069),
                "change.assignment_of_provider" | "change.assignment_active" => {
                    Some(ist::Rule::TR351)
                }
                "request.one_open" => Some(ist::Rule::TR374),
                r if r.starts_with("start.") || r.starts_with("stop.") || r == "xml.client" => {
                    Some(ist::Rule::TR019)
                }
                _ => None,
            }
        }
        _ => None,
    };
    rule.map_or(ReturnCode::TECHNICAL_REJECTION, ist::Rule::return_code)
}

fn rule_text(e: &Error) -> String {
    match e {
        Error::Api(ApiError::FailedPrecondition {
            rule, description, ..
        })
        | Error::Denied { rule, description } => format!("{rule}: {description}"),
        other => other.to_string(),
    }
}

/// Whether an error means the message could not be judged now (a dependency or the database),
/// rather than a record that breaks a rule.
fn is_transient(e: &Error) -> bool {
    matches!(
        e,
        Error::Unavailable(_)
            | Error::Upstream(_)
            | Error::Api(ApiError::Internal(_) | ApiError::Unavailable(_) | ApiError::Aborted(_))
    )
}

/// The receiving municipality and the client's BSN of a provider's message, when it can be read
/// (for the audit trail of an upload).
pub(crate) fn uploaded_client(xml: &[u8]) -> Option<(GemeenteCode, Bsn)> {
    let received = ist::read_limited(xml)
        .and_then(|b| ist::parse_provider_message(&b))
        .ok()?;
    let bsn = match &received {
        ist::ProviderMessage::Start(m) => m.client.bsn.clone(),
        ist::ProviderMessage::Stop(m) => m.client.bsn.clone(),
        ist::ProviderMessage::Request(m) => m.client.bsn.clone(),
        ist::ProviderMessage::Change(m) => m.bsn.clone(),
    };
    Some((received.header().receiver_municipality.clone(), bsn))
}

fn upload_error(path: &str, rule: &str, code: ReturnCode) -> pb::UploadError {
    pb::UploadError {
        path: path.to_owned(),
        rule: rule.to_owned(),
        return_code: code.code().to_owned(),
    }
}

/// The product category (and code, when both name one) and ToewijzingIngangsdatum of a start or
/// stop record must be the assignment's (TR019: the record cannot be linked to the assignment
/// otherwise).
fn same_product(
    a: &Assignment,
    product: Option<&ist::Product>,
    assignment_start: Option<chrono::NaiveDate>,
) -> Result<()> {
    if let Some(p) = product {
        if p.category.code() != a.product_category {
            return Err(broken(
                ist::Rule::TR019,
                "Product/Categorie",
                format!(
                    "product category {} is not that of assignment {}/{} ({})",
                    p.category.code(),
                    a.municipality,
                    a.number,
                    a.product_category
                ),
            ));
        }
        if let Some(code) = &p.code
            && !a.product_code.is_empty()
            && code.as_str() != a.product_code
        {
            return Err(broken(
                ist::Rule::TR019,
                "Product/Code",
                format!(
                    "product code {} is not that of assignment {}/{} ({})",
                    code.as_str(),
                    a.municipality,
                    a.number,
                    a.product_code
                ),
            ));
        }
    }
    if let Some(d) = assignment_start
        && d != a.period.start()
    {
        return Err(broken(
            ist::Rule::TR019,
            "ToewijzingIngangsdatum",
            format!(
                "ToewijzingIngangsdatum {d} is not the start of assignment {}/{} ({})",
                a.municipality,
                a.number,
                a.period.start()
            ),
        ));
    }
    Ok(())
}

/// TR074 / TR326 for a start (StatusAanlevering 1): a start with the same key (assignment and
/// Begindatum) was received before, or another start whose delivery was not stopped.
fn start_rules(a: &Assignment, start: chrono::NaiveDate) -> Result<()> {
    match (a.started_on, a.stopped_on) {
        (Some(s), _) if s == start => Err(broken(
            ist::Rule::TR074,
            "Begindatum",
            format!(
                "the start of care on {s} for assignment {}/{} was received before",
                a.municipality, a.number
            ),
        )),
        (Some(s), None) => Err(broken(
            ist::Rule::TR326,
            "Begindatum",
            format!(
                "the delivery that started on {s} on assignment {}/{} was not stopped",
                a.municipality, a.number
            ),
        )),
        _ => Ok(()),
    }
}

/// TR069 / TR074 for a stop (StatusAanlevering 1): a start with the same key (assignment and
/// Begindatum) must have been received, and no stop of it before.
fn stop_rules(a: &Assignment, start: chrono::NaiveDate) -> Result<()> {
    if a.started_on != Some(start) {
        return Err(broken(
            ist::Rule::TR069,
            "Begindatum",
            match a.started_on {
                Some(s) => format!(
                    "no start of care on {start} was received for assignment {}/{} (care started on {s})",
                    a.municipality, a.number
                ),
                None => format!(
                    "no start of care was received for assignment {}/{}",
                    a.municipality, a.number
                ),
            },
        ));
    }
    if let Some(end) = a.stopped_on {
        return Err(broken(
            ist::Rule::TR074,
            "StopProduct",
            format!(
                "the stop of the care that started on {start} on assignment {}/{} was received before (ended on {end})",
                a.municipality, a.number
            ),
        ));
    }
    Ok(())
}

impl Assigner {
    async fn return_header(&self, municipality: &GemeenteCode) -> Result<ist::ReturnHeader> {
        let mut conn = self.pool.acquire().await?;
        let n = store::next_message_number(&mut conn, municipality.as_str()).await?;
        Ok(ist::ReturnHeader {
            message_id: rz_domain::MessageId::parse(&n.to_string())?,
            message_date: self.today(),
        })
    }

    async fn render_whole(
        &self,
        h: &ist::ReceivedHeader,
        code: ReturnCode,
    ) -> Result<Option<String>> {
        let Some(kind) = h.message_type.return_type() else {
            return Ok(None);
        };
        let rh = self.return_header(&h.receiver_municipality).await?;
        Ok(ist::render_return(kind, &rh, h, ist::ReturnContent::Whole(&[code])).ok())
    }

    /// The message refused as a whole (`code` in the header of the return message).
    async fn refuse_whole(
        &self,
        h: &ist::ReceivedHeader,
        path: &str,
        rule: &str,
        code: ReturnCode,
    ) -> Result<pb::UploadResult> {
        tracing::info!(agb_code = %h.sender_agb, %rule, return_code = code.code(), "provider message rejected");
        Ok(pb::UploadResult {
            accepted: false,
            return_message_xml: self.render_whole(h, code).await?.unwrap_or_default(),
            errors: vec![upload_error(path, rule, code)],
            kind: h.message_type.name(h.law),
        })
    }

    /// A provider's message as XML: read, checked against the caller and the standard's rules,
    /// applied record by record through the gRPC path's functions, and answered with the return
    /// message (see the module documentation for the order of the checks).
    pub async fn upload_provider_message(
        &self,
        r: pb::UploadProviderMessageRequest,
    ) -> Result<pb::UploadResult> {
        let agb = fields::agb("agb_code", &r.agb_code)?;
        // A 323 (declaration) is judged by crate::declarations and answered with a 325.
        if matches!(
            ist::message_type_of(&r.xml),
            Some((_, ist::MessageType::Declaration323))
        ) {
            let bytes = match ist::read_limited(r.xml.as_slice()) {
                Ok(b) => b,
                Err(e) => {
                    return Ok(pb::UploadResult {
                        accepted: false,
                        errors: vec![upload_error(&e.path, &e.rule, e.return_code)],
                        ..Default::default()
                    });
                }
            };
            return self.upload_declaration(&agb, &bytes).await;
        }
        let received = match ist::read_limited(r.xml.as_slice())
            .and_then(|b| ist::parse_provider_message(&b))
        {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(agb_code = %agb, path = %e.path, rule = %e.rule, "provider message rejected");
                let mut out = pb::UploadResult {
                    accepted: false,
                    errors: vec![upload_error(&e.path, &e.rule, e.return_code)],
                    ..Default::default()
                };
                if let Some(h) = e.received.as_deref() {
                    if h.sender_agb != agb {
                        return Err(sender_is_not_caller(h, &agb));
                    }
                    out.kind = h.message_type.name(h.law);
                    out.return_message_xml = self
                        .render_whole(h, e.return_code)
                        .await?
                        .unwrap_or_default();
                }
                return Ok(out);
            }
        };
        let h = received.header().clone();
        // The sender must be the caller (otherwise PERMISSION_DENIED: no return message goes to a
        // provider about another's message); the receiver a municipality of the region.
        if h.sender_agb != agb {
            tracing::info!(agb_code = %agb, "provider message of another sender refused");
            return Err(sender_is_not_caller(&h, &agb));
        }
        if !self
            .upstream
            .catalogue()
            .await?
            .municipalities
            .contains(h.receiver_municipality.as_str())
        {
            let rule = format!(
                "{}: {} is not a municipality of the region",
                ist::Rule::TR378,
                h.receiver_municipality
            );
            let code = ist::Rule::TR378.return_code();
            return self
                .refuse_whole(&h, "/Bericht/Header/Ontvanger", &rule, code)
                .await;
        }
        if let Err(v) = ist::check_dagtekening(&h, self.today()) {
            let code = v.rule.return_code();
            return self.refuse_whole(&h, &v.path, &v.rule_text(), code).await;
        }
        let claimed = {
            let mut conn = self.pool.acquire().await?;
            crate::received::claim_identification(&mut conn, &h, self.today()).await?
        };
        if !claimed {
            let rule = format!(
                "{}: Identificatie {} was used before by {} for a {}; {}",
                ist::Rule::TR056,
                h.message_id,
                h.sender_agb,
                h.message_type.name(h.law),
                ist::Rule::TR056.text()
            );
            let code = ist::Rule::TR056.return_code();
            return self
                .refuse_whole(
                    &h,
                    "/Bericht/Header/BerichtIdentificatie/Identificatie",
                    &rule,
                    code,
                )
                .await;
        }
        match self.judge_records(&received, &agb).await {
            Ok(out) => Ok(out),
            Err(e) => {
                // Not judged: the identification is given back so the message can be sent again.
                if let Ok(mut conn) = self.pool.acquire().await
                    && let Err(x) = crate::received::release_identification(&mut conn, &h).await
                {
                    tracing::warn!(error = %x, "identification of an unprocessed message not released");
                }
                Err(e)
            }
        }
    }

    /// Applies every record of an accepted message and writes the return message.
    async fn judge_records(
        &self,
        received: &ist::ProviderMessage,
        agb: &AgbCode,
    ) -> Result<pb::UploadResult> {
        let h = received.header();
        let kind = h.message_type.name(h.law);
        let m = h.receiver_municipality.clone();
        let mut codes = ist::RecordCodes::new();
        let mut errors = Vec::new();
        let mut judge = |record: &str, res: Result<()>| -> Result<()> {
            match res {
                Ok(()) => Ok(()),
                Err(e) if is_transient(&e) => Err(e),
                Err(e) => {
                    let code = return_code(&e, h.message_type);
                    codes.set(record, vec![code]);
                    errors.push(upload_error(record, &rule_text(&e), code));
                    Ok(())
                }
            }
        };
        match received {
            ist::ProviderMessage::Start(msg) => {
                for p in &msg.products {
                    let res = self.apply_start(&m, agb, &msg.client.bsn, p).await;
                    judge(&p.record, res)?;
                }
            }
            ist::ProviderMessage::Stop(msg) => {
                for p in &msg.products {
                    let res = self.apply_stop(&m, agb, &msg.client.bsn, p).await;
                    judge(&p.record, res)?;
                }
            }
            ist::ProviderMessage::Request(msg) => {
                for p in &msg.products {
                    let res = self.apply_315(h, agb, &msg.client.bsn, p).await;
                    judge(&p.record, res)?;
                }
            }
            ist::ProviderMessage::Change(msg) => {
                let req = &msg.request;
                let reused = {
                    let mut conn = self.pool.acquire().await?;
                    crate::received::reference_used(&mut conn, agb, &req.provider_reference).await?
                };
                if reused {
                    judge(&req.record, Err(reference_reused(&req.provider_reference)))?;
                } else {
                    for p in &req.new {
                        judge(
                            &p.record,
                            Err(Error::rule(
                                "xml.new_product_unsupported",
                                "NieuwProduct",
                                "a new product in a change request is not supported; send a 315",
                            )),
                        )?;
                    }
                    for p in &req.to_change {
                        let res = self.apply_317(h, agb, &msg.bsn, req, p).await;
                        judge(&p.record, res)?;
                    }
                }
            }
        }
        let accepted = errors.is_empty();
        let return_type = h
            .message_type
            .return_type()
            .ok_or_else(|| Error::Upstream("no return message type".into()))?;
        let rh = self.return_header(&m).await?;
        let xml = ist::render_return(
            return_type,
            &rh,
            h,
            ist::ReturnContent::PerRecord {
                body: received.body(),
                codes: &codes,
            },
        )
        .map_err(|e| Error::Upstream(format!("return message: {e}")))?;
        tracing::info!(agb_code = %agb, municipality = %m, kind = %kind, message_id = %h.message_id, accepted, rejected_records = errors.len(), "provider message applied");
        Ok(pb::UploadResult {
            accepted,
            return_message_xml: xml,
            errors,
            kind,
        })
    }

    /// The assignment a record names, when it is this client's (the BSN's client key must be the
    /// assignment's) — ownership by the provider is checked by the domain functions.
    async fn linked(
        &self,
        m: &GemeenteCode,
        bsn: &Bsn,
        number: Option<AssignmentNumber>,
    ) -> Result<Assignment> {
        let n = number
            .ok_or_else(|| {
                Error::rule(
                    "xml.assignment_number",
                    "ToewijzingNummer",
                    "the record names no assignment number",
                )
            })?
            .value();
        let a = self.load(m, n).await?;
        if a.client_key != ClientKey::derive(&self.secret, bsn) {
            return Err(Error::rule(
                "xml.client",
                "Bsn",
                format!("assignment {m}/{n} is not an assignment of this client"),
            ));
        }
        Ok(a)
    }

    /// A StartProduct: TR019 (the assignment, its product and start); StatusAanlevering `1`:
    /// TR074/TR326 (no start received before), then the domain's rules of ReportStartOfCare;
    /// `2`/`3`: see [`crate::corrections`].
    async fn apply_start(
        &self,
        m: &GemeenteCode,
        agb: &AgbCode,
        bsn: &Bsn,
        p: &ist::StartedProduct,
    ) -> Result<()> {
        let a = self.linked(m, bsn, p.assignment_number).await?;
        if a.agb_code != *agb {
            return Err(broken(
                ist::Rule::TR019,
                "ToewijzingNummer",
                format!(
                    "assignment {m}/{} is not assigned to provider {agb}",
                    a.number
                ),
            ));
        }
        same_product(&a, p.product.as_ref(), p.assignment_start)?;
        if let Some(e) = crate::corrections::status_not_used(a.law, p.status) {
            return Err(e);
        }
        if p.status != ist::DeliveryStatus::First {
            return self
                .correct_start(m, agb, a.number, p.start, p.status)
                .await;
        }
        start_rules(&a, p.start)?;
        self.report_start(pb::ReportStartOfCareRequest {
            agb_code: agb.to_string(),
            municipality: m.to_string(),
            assignment_number: a.number,
            start_date: p.start.to_string(),
        })
        .await
        .map(|_| ())
    }

    /// A StopProduct: TR019 (the assignment, its product and start); StatusAanlevering `1`: TR069
    /// (a start with this Begindatum), TR074 (no stop received before), then the domain's rules
    /// of ReportStopOfCare; `2`/`3`: see [`crate::corrections`].
    async fn apply_stop(
        &self,
        m: &GemeenteCode,
        agb: &AgbCode,
        bsn: &Bsn,
        p: &ist::StoppedProduct,
    ) -> Result<()> {
        let a = self.linked(m, bsn, p.assignment_number).await?;
        if a.agb_code != *agb {
            return Err(broken(
                ist::Rule::TR019,
                "ToewijzingNummer",
                format!(
                    "assignment {m}/{} is not assigned to provider {agb}",
                    a.number
                ),
            ));
        }
        same_product(&a, p.product.as_ref(), p.assignment_start)?;
        if let Some(e) = crate::corrections::status_not_used(a.law, p.status) {
            return Err(e);
        }
        if p.status != ist::DeliveryStatus::First {
            return self.correct_stop(m, agb, a.number, p).await;
        }
        stop_rules(&a, p.start)?;
        self.report_stop(pb::ReportStopOfCareRequest {
            agb_code: agb.to_string(),
            municipality: m.to_string(),
            assignment_number: a.number,
            end_date: p.end.to_string(),
            end_reason: p.end_reason.code().to_owned(),
        })
        .await
        .map(|_| ())
    }

    /// A TeWijzigenProduct of a 317, stored like RequestChange.
    async fn apply_317(
        &self,
        h: &ist::ReceivedHeader,
        agb: &AgbCode,
        bsn: &Bsn,
        req: &ist::ChangeRequest,
        p: &ist::ProductChange,
    ) -> Result<()> {
        let m = &h.receiver_municipality;
        let n = self.linked(m, bsn, Some(p.assignment_number)).await?.number;
        let size = p.size.map(|s| pb::Size {
            volume: s.volume,
            unit: s.unit.code().to_owned(),
            frequency: s.frequency.code().to_owned(),
        });
        let created = self
            .request_change(pb::RequestChangeRequest {
                idempotency_key: format!("xml/{}/{}/{}", h.message_id, req.provider_reference, n),
                agb_code: agb.to_string(),
                municipality: m.to_string(),
                assignment_number: n,
                reason: req.reason.code().to_owned(),
                new_end: p.end.map(|d| d.to_string()).unwrap_or_default(),
                size,
                budget_cents: p.budget.map(|b| b.as_i64()).unwrap_or(0),
            })
            .await?;
        if let Ok(id) = Uuid::parse_str(&created.id) {
            let mut conn = self.pool.acquire().await?;
            store::save_request_reference(&mut conn, id, &req.provider_reference).await?;
        }
        Ok(())
    }

    /// An AangevraagdProduct of a 315, stored like RequestAssignment; TR347 (a reference not used
    /// before by this provider). Without a contract for the product the request is accepted and
    /// refused at once with a 319 (WJ759 `3`).
    async fn apply_315(
        &self,
        h: &ist::ReceivedHeader,
        agb: &AgbCode,
        bsn: &Bsn,
        p: &ist::RequestedProduct,
    ) -> Result<()> {
        let m = h.receiver_municipality.as_str();
        {
            let mut conn = self.pool.acquire().await?;
            if crate::received::reference_used(&mut conn, agb, &p.provider_reference).await? {
                return Err(reference_reused(&p.provider_reference));
            }
        }
        let catalogue = self.upstream.catalogue().await?;
        let category = p.product.as_ref().map(|x| x.category.code());
        // The subsegment: of the message's law, offering the product category; the first (by
        // code) the provider is contracted for on the start date.
        let mut candidates: Vec<_> = catalogue
            .subsegments
            .values()
            .filter(|s| s.law == h.law)
            .filter(|s| category.is_none_or(|c| s.product_categories.iter().any(|x| x == c)))
            .collect();
        candidates.sort_by(|a, b| a.code.cmp(&b.code));
        let mut chosen = None;
        for s in &candidates {
            if self
                .upstream
                .check_contracted(agb.as_str(), &s.code, m, p.start)
                .await?
                .is_some()
            {
                chosen = Some(s.code.clone());
                break;
            }
        }
        let Some(subsegment) = chosen.or_else(|| candidates.first().map(|s| s.code.clone())) else {
            return Err(Error::rule(
                "request.subsegment",
                "Product/Categorie",
                "no subsegment of the region's catalogue offers this product category",
            ));
        };
        self.request_assignment_as(
            pb::RequestAssignmentRequest {
                idempotency_key: format!("xml/{}/{}", h.message_id, p.provider_reference),
                agb_code: agb.to_string(),
                municipality: m.to_owned(),
                bsn: bsn.as_str().to_owned(),
                subsegment_code: subsegment,
                product_code: p
                    .product
                    .as_ref()
                    .and_then(|x| x.code.as_ref())
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_default(),
                period: Some(types::Period {
                    start: p.start.to_string(),
                    end: p.end.map(|d| d.to_string()).unwrap_or_default(),
                }),
                size: p.size.map(|s| pb::Size {
                    volume: s.volume,
                    unit: s.unit.code().to_owned(),
                    frequency: s.frequency.code().to_owned(),
                }),
                budget_cents: p.budget.map(|b| b.as_i64()).unwrap_or(0),
                referrer: Some(pb::Referrer {
                    r#type: p.referrer.kind.code().to_owned(),
                    name: p.referrer.name.clone().unwrap_or_default(),
                    agb_code: p
                        .referrer
                        .agb
                        .as_ref()
                        .map(|a| a.as_str().to_owned())
                        .unwrap_or_default(),
                }),
            },
            Uncontracted::RefuseWith319,
            Some(&p.provider_reference),
        )
        .await?;
        Ok(())
    }
}

fn sender_is_not_caller(h: &ist::ReceivedHeader, agb: &AgbCode) -> Error {
    Error::denied(
        "upload.sender_is_caller",
        format!(
            "the sender (Afzender) {} is not the calling provider {agb}",
            h.sender_agb
        ),
    )
}

fn reference_reused(reference: &str) -> Error {
    broken(
        ist::Rule::TR347,
        "ReferentieAanbieder",
        format!(
            "ReferentieAanbieder {reference:?} was used by this provider in an earlier request; {}",
            ist::Rule::TR347.text()
        ),
    )
}
