//! The standard's messages as XML (iJw / iWmo 3.2), through `rz-istandaarden`.
//!
//! - [`Assigner::fetch_provider_messages`]: every JW301/WMO301 (an assignment issued or changed)
//!   and JW319/WMO319 (a refused request) this service sent to a provider, rendered from the
//!   payload recorded with the event (table `provider_messages`). BerichtIdentificatie is a
//!   counter per municipality (`message_counters`), Afzender the municipality, Ontvanger the
//!   provider's AGB code. A message that cannot be written as a valid message is listed as
//!   skipped with the reason instead of being filled with invented data: the 301 schema requires
//!   Geboortedatum, Naam/Achternaam and Contactgegevens, which are unknown for a client known only
//!   by the BSN of a provider request (315) or an import.
//! - [`Assigner::upload_provider_message`]: a 305, 307, 315 or 317 (recognised by its namespace)
//!   read by the hardened readers; the sender (Afzender) must be the calling provider
//!   (PERMISSION_DENIED `upload.sender_is_caller` otherwise, without a return message); each record
//!   is applied through the same functions as the gRPC calls (`report_start`, `report_stop`,
//!   `request_assignment`, `request_change`) and answered in the return message (306, 308, 316,
//!   318) with `0200` or the return code of the rule that failed (see [`return_code`]).
//!
//! Deadlines: uploaded messages create the same assignments and requests as the gRPC calls, so
//! `ListChainDeadlines` covers them (start of care 5 working days after the assignment start,
//! request answers within 5 working days). The return message is written synchronously in the
//! answer to the upload, so the standard's 3-working-day deadline for return messages is met by
//! construction and is not listed.

use chrono::{NaiveDate, NaiveTime};
use prost::Message as _;
use rz_domain::{
    AgbCode, AssignmentNumber, Bsn, Cents, ClientKey, ExecutionVariant, Frequency, GemeenteCode,
    Law, MessageId, ProductCode, RefusalReason, ReturnCode, Unit,
};
use rz_istandaarden as ist;
use rz_platform::ApiError;
use rz_proto::assignment::v1 as pb;
use rz_proto::types::v1 as types;
use uuid::Uuid;

use crate::assigner::Assigner;
use crate::convert::{law_from_pb, variant_from_pb};
use crate::error::{Error, Result};
use crate::fields::{self, Fields};
use crate::store;
use crate::upstream::ClientLookup;

/// The largest gRPC message the service decodes: the standard's limit on an XML message plus
/// room for the envelope (the readers check the XML's own size).
pub const MAX_GRPC_MESSAGE_BYTES: usize = ist::MAX_MESSAGE_BYTES + 64 * 1024;

/// The WJ001 return code for a rule of this service that refused a record.
///
/// | rule / outcome | code |
/// |---|---|
/// | assignment does not exist, belongs to another provider or another client (BSN), or the start/stop falls outside it (`start.*`, `stop.within_assignment`, `stop.assignment_of_provider`) | `9019` the message cannot be linked to an assignment |
/// | start reported before (already exists) | `9074` a message with the same key was received before |
/// | stop without a reported start (`stop.care_started`) | `9069` no current start message with the same key |
/// | `change.assignment_of_provider`, `change.assignment_active` | `9351` TeWijzigenProduct is not related to a current assignment |
/// | `request.one_open` | `9374` a request is already pending |
/// | anything else (malformed values, contract, catalogue, unavailable service) | `0001` technical rejection |
pub fn return_code(e: &Error, message: ist::MessageType) -> ReturnCode {
    let code = match e {
        Error::Api(ApiError::NotFound(_)) => "9019",
        Error::Api(ApiError::AlreadyExists(_)) if message == ist::MessageType::Start305 => "9074",
        Error::Api(ApiError::FailedPrecondition { rule, .. }) | Error::Denied { rule, .. } => {
            match rule.as_str() {
                "stop.care_started" => "9069",
                "change.assignment_of_provider" | "change.assignment_active" => "9351",
                "request.one_open" => "9374",
                r if r.starts_with("start.") || r.starts_with("stop.") || r == "xml.client" => {
                    "9019"
                }
                _ => "0001",
            }
        }
        _ => "0001",
    };
    ReturnCode::from_code(code).unwrap_or(ReturnCode::TECHNICAL_REJECTION)
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

/// `12a`, `12-2`, `12 bis` -> (12, Some('a'), None), (12, None, Some("2")), ...
fn split_house_number(s: &str) -> Option<(u32, Option<char>, Option<String>)> {
    let s = s.trim();
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let number = digits.parse::<u32>().ok().filter(|n| *n <= 99_999)?;
    let rest = s[digits.len()..].trim_start_matches([' ', '-']);
    let mut chars = rest.chars();
    match (chars.next(), chars.as_str()) {
        (None, _) => Some((number, None, None)),
        (Some(c), "") if c.is_ascii_alphabetic() => Some((number, Some(c), None)),
        _ => {
            let addition: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
            (addition.chars().count() <= 4).then_some((number, None, Some(addition)))
        }
    }
}

fn client_for_301(c: &pb::Client) -> std::result::Result<ist::Client, String> {
    let bsn = Bsn::parse(&c.bsn).map_err(|e| e.to_string())?;
    let birth_date = NaiveDate::parse_from_str(&c.birth_date, "%Y-%m-%d")
        .map_err(|_| "the client's birth date is not known (Geboortedatum is required)")?;
    if c.family_name.trim().is_empty() {
        return Err("the client's family name is not known (Achternaam is required)".into());
    }
    let a = c
        .address
        .as_ref()
        .ok_or("the client's address is not known (Contactgegevens is required)")?;
    let (house_number, house_letter, house_number_addition) =
        split_house_number(&a.house_number)
            .ok_or_else(|| format!("house number `{}` cannot be written", a.house_number))?;
    Ok(ist::Client {
        bsn,
        birth_date,
        gender: ist::Gender::from_code(if c.gender.is_empty() { "0" } else { &c.gender })
            .map_err(|e| e.to_string())?,
        name: ist::Name {
            family_name: c.family_name.trim().to_owned(),
            prefix: None,
            given_names: Some(c.given_names.trim().to_owned()).filter(|g| !g.is_empty()),
            initials: None,
        },
        address: ist::Address {
            street: a.street.chars().take(24).collect(),
            house_number,
            house_letter,
            house_number_addition,
            postal_code: a.postal_code.replace(' ', "").to_uppercase(),
            city: a.city.clone(),
        },
    })
}

/// `stored` with its empty parts taken from `now`.
fn complete(stored: pb::Client, now: pb::Client) -> pb::Client {
    let pick = |a: String, b: String| if a.is_empty() { b } else { a };
    pb::Client {
        birth_date: pick(stored.birth_date, now.birth_date),
        family_name: pick(stored.family_name, now.family_name),
        given_names: pick(stored.given_names, now.given_names),
        // Without a stored address the stored gender is at best the placeholder `0`.
        gender: if stored.address.is_none() {
            pick(now.gender, stored.gender)
        } else {
            pick(stored.gender, now.gender)
        },
        address: stored.address.or(now.address),
        bsn: stored.bsn,
    }
}

fn date(field: &str, s: &str) -> std::result::Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{field}: `{s}` is no date"))
}

fn product_for_301(
    a: &pb::Assignment,
    law: Law,
    assigned_at: chrono::NaiveDateTime,
    reference: Option<String>,
) -> std::result::Result<ist::AssignedProduct, String> {
    let e = |x: rz_domain::FieldError| x.to_string();
    let variant = variant_from_pb(a.execution_variant).ok_or("unknown execution variant")?;
    let period = a.period.clone().unwrap_or_default();
    let start = date("period.start", &period.start)?;
    let end = if period.end.is_empty() {
        None
    } else {
        Some(date("period.end", &period.end)?)
    };
    let size = match &a.size {
        Some(s) if variant == ExecutionVariant::Inspanningsgericht => Some(ist::Size {
            volume: s.volume,
            unit: Unit::from_code(&s.unit).map_err(e)?,
            frequency: Frequency::from_code(&s.frequency).map_err(e)?,
        }),
        _ => None,
    };
    Ok(ist::AssignedProduct {
        number: AssignmentNumber::from_i64(i64::from(a.number)).map_err(e)?,
        variant,
        provider_reference: reference,
        category: ist::ProductCategory::parse(law, &a.product_category).map_err(e)?,
        product_code: if a.product_code.is_empty() {
            None
        } else {
            Some(ProductCode::parse(&a.product_code).map_err(e)?)
        },
        assigned_at,
        start,
        end,
        change_reason: if a.change_reason.is_empty() {
            None
        } else {
            Some(ist::ChangeReason::parse(law, &a.change_reason).map_err(e)?)
        },
        size,
        budget: if a.budget_cents > 0 {
            Some(Cents::new(a.budget_cents).map_err(e)?)
        } else {
            None
        },
    })
}

/// Which provider message a document is, from the first of the four readers that recognises its
/// root and namespace.
enum Received {
    Start(ist::Message305),
    Stop(ist::Message307),
    Request(ist::Message315),
    Change(ist::Message317),
}

impl Received {
    fn header(&self) -> &ist::ReceivedHeader {
        match self {
            Self::Start(m) => &m.header,
            Self::Stop(m) => &m.header,
            Self::Request(m) => &m.header,
            Self::Change(m) => &m.header,
        }
    }

    fn body(&self) -> &ist::ReceivedBody {
        match self {
            Self::Start(m) => &m.body,
            Self::Stop(m) => &m.body,
            Self::Request(m) => &m.body,
            Self::Change(m) => &m.body,
        }
    }
}

/// The client key of a stored message (empty when its payload cannot be read).
fn stored_client_key(row: &store::StoredMessage) -> String {
    match row.kind.as_str() {
        "assignment" => pb::AssignmentMessage::decode(row.payload.as_slice())
            .ok()
            .and_then(|m| m.assignment)
            .map(|a| a.client_key),
        "answer" => pb::RequestAnswered::decode(row.payload.as_slice())
            .ok()
            .and_then(|m| m.request)
            .map(|r| r.client_key),
        _ => None,
    }
    .unwrap_or_default()
}

/// The receiving municipality and the client's BSN of a provider's message, when it can be read
/// (for the audit trail of an upload).
pub(crate) fn uploaded_client(xml: &[u8]) -> Option<(GemeenteCode, Bsn)> {
    let received = ist::read_limited(xml).and_then(|b| read(&b)).ok()?;
    let bsn = match &received {
        Received::Start(m) => m.client.bsn.clone(),
        Received::Stop(m) => m.client.bsn.clone(),
        Received::Request(m) => m.client.bsn.clone(),
        Received::Change(m) => m.bsn.clone(),
    };
    Some((received.header().receiver_municipality.clone(), bsn))
}

fn read(xml: &[u8]) -> std::result::Result<Received, ist::ParseError> {
    let not_this = |e: &ist::ParseError| {
        matches!(
            e.kind,
            ist::ParseErrorKind::WrongNamespace | ist::ParseErrorKind::WrongRoot
        )
    };
    let e = match ist::parse_305(xml) {
        Ok(m) => return Ok(Received::Start(m)),
        Err(e) if not_this(&e) => e,
        Err(e) => return Err(e),
    };
    if e.kind == ist::ParseErrorKind::WrongRoot {
        return Err(e);
    }
    match ist::parse_307(xml) {
        Ok(m) => return Ok(Received::Stop(m)),
        Err(e) if not_this(&e) => {}
        Err(e) => return Err(e),
    }
    match ist::parse_315(xml) {
        Ok(m) => return Ok(Received::Request(m)),
        Err(e) if not_this(&e) => {}
        Err(e) => return Err(e),
    }
    match ist::parse_317(xml) {
        Ok(m) => Ok(Received::Change(m)),
        Err(e) if not_this(&e) => Err(e),
        Err(e) => Err(e),
    }
}

fn upload_error(path: &str, rule: &str, code: ReturnCode) -> pb::UploadError {
    pb::UploadError {
        path: path.to_owned(),
        rule: rule.to_owned(),
        return_code: code.code().to_owned(),
    }
}

impl Assigner {
    async fn return_header(&self, municipality: &GemeenteCode) -> Result<ist::ReturnHeader> {
        let mut conn = self.pool.acquire().await?;
        let n = store::next_message_number(&mut conn, municipality.as_str()).await?;
        Ok(ist::ReturnHeader {
            message_id: MessageId::parse(&n.to_string())?,
            message_date: self.today(),
        })
    }

    /// The messages to provider `agb_code` (of one municipality, or all when empty) as XML.
    pub async fn fetch_provider_messages(
        &self,
        r: pb::FetchProviderMessagesRequest,
    ) -> Result<pb::FetchProviderMessagesResponse> {
        Ok(self.fetch_provider_messages_with_clients(r).await?.0)
    }

    /// As [`Assigner::fetch_provider_messages`], with the (municipality, client key) of each
    /// message handed out, for the audit trail.
    pub async fn fetch_provider_messages_with_clients(
        &self,
        r: pb::FetchProviderMessagesRequest,
    ) -> Result<(pb::FetchProviderMessagesResponse, Vec<(String, String)>)> {
        let mut f = Fields::default();
        let agb = f.check(fields::agb("agb_code", &r.agb_code));
        let m = fields::optional_municipality(&mut f, "municipality", &r.municipality);
        let since = f.check(fields::optional_date("since", &r.since)).flatten();
        f.finish()?;
        let agb = agb.ok_or_else(fields::incomplete)?;
        let mut conn = self.pool.acquire().await?;
        let rows = store::list_provider_messages(&mut conn, &agb, m.as_ref(), since).await?;
        let mut out = pb::FetchProviderMessagesResponse::default();
        let mut clients = Vec::new();
        for row in rows {
            match self.render_stored(&mut conn, &agb, &row).await {
                Ok((kind, xml)) => {
                    clients.push((row.municipality.to_string(), stored_client_key(&row)));
                    out.messages.push(pb::XmlMessage {
                        message_id: row.message_id.clone(),
                        kind,
                        xml,
                        message_date: row.message_date.to_string(),
                    })
                }
                Err(reason) => {
                    tracing::warn!(municipality = %row.municipality, message_id = %row.message_id, %reason, "message not renderable as XML");
                    out.skipped.push(pb::SkippedMessage {
                        message_id: row.message_id.clone(),
                        reason,
                    });
                }
            }
        }
        Ok((out, clients))
    }

    async fn render_stored(
        &self,
        conn: &mut sqlx::PgConnection,
        agb: &AgbCode,
        row: &store::StoredMessage,
    ) -> std::result::Result<(String, String), String> {
        let e = |x: rz_domain::FieldError| x.to_string();
        let header = |law: Law| -> std::result::Result<ist::Header, String> {
            Ok(ist::Header {
                law,
                sender_municipality: row.municipality.clone(),
                receiver_agb: agb.clone(),
                message_id: MessageId::parse(&row.message_id).map_err(e)?,
                message_date: row.message_date,
            })
        };
        let prefix = |law: Law| match law {
            Law::Jeugdwet => "JW",
            Law::Wmo => "WMO",
        };
        match row.kind.as_str() {
            "assignment" => {
                let msg = pb::AssignmentMessage::decode(row.payload.as_slice())
                    .map_err(|x| format!("stored payload: {x}"))?;
                let a = msg.assignment.ok_or("stored payload without assignment")?;
                let law = law_from_pb(a.law).ok_or("unknown law")?;
                let stored = msg.client.unwrap_or_default();
                let client = match client_for_301(&stored) {
                    Ok(c) => c,
                    // Recorded before access supplied gender and address (or without them): the
                    // missing parts from the municipality's access now, when it knows the client.
                    Err(reason) => {
                        match self
                            .upstream
                            .client(row.municipality.as_str(), &a.client_key)
                            .await
                        {
                            Ok(ClientLookup::Found(now)) if now.bsn == stored.bsn => {
                                client_for_301(&complete(stored, *now))?
                            }
                            _ => return Err(reason),
                        }
                    }
                };
                let time = row
                    .created_at
                    .with_timezone(&chrono::Local)
                    .time()
                    .with_nanosecond_zero();
                let assigned_on = date("assigned_on", &a.assigned_on)?;
                let product = product_for_301(&a, law, assigned_on.and_time(time), None)?;
                let xml = ist::render_301(&header(law)?, &client, &[product])
                    .map_err(|x| x.to_string())?;
                Ok((format!("{}301", prefix(law)), xml))
            }
            "answer" => {
                let msg = pb::RequestAnswered::decode(row.payload.as_slice())
                    .map_err(|x| format!("stored payload: {x}"))?;
                let r = msg.request.ok_or("stored payload without request")?;
                let law = self
                    .upstream
                    .catalogue()
                    .await
                    .map_err(|x| x.to_string())?
                    .subsegment(&r.subsegment_code)
                    .map(|s| s.law)
                    .ok_or_else(|| {
                        format!("subsegment {} is not in the catalogue", r.subsegment_code)
                    })?;
                let id = Uuid::parse_str(&r.id).map_err(|x| x.to_string())?;
                let reference = store::request_reference(conn, id)
                    .await
                    .map_err(|x| x.to_string())?
                    .unwrap_or_else(|| r.id.clone());
                let answer = ist::Answer {
                    provider_reference: reference,
                    outcome: ist::RequestOutcome::Refused {
                        reason: RefusalReason::from_code(&r.refusal_reason).map_err(e)?,
                        responsible_municipality: None,
                    },
                };
                let xml = ist::render_319(&header(law)?, &answer).map_err(|x| x.to_string())?;
                Ok((format!("{}319", prefix(law)), xml))
            }
            other => Err(format!("unknown stored message kind {other}")),
        }
    }

    /// A provider's message as XML: read, checked against the caller, applied record by record
    /// through the gRPC path's functions, and answered with the return message.
    pub async fn upload_provider_message(
        &self,
        r: pb::UploadProviderMessageRequest,
    ) -> Result<pb::UploadResult> {
        let agb = fields::agb("agb_code", &r.agb_code)?;
        let received = match ist::read_limited(r.xml.as_slice()).and_then(|b| read(&b)) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(agb_code = %agb, path = %e.path, rule = %e.rule, "provider message rejected");
                let mut out = pb::UploadResult {
                    accepted: false,
                    errors: vec![upload_error(&e.path, &e.rule, e.return_code)],
                    ..Default::default()
                };
                if let Some(h) = e.received.as_deref() {
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
        let kind = h.message_type.name(h.law);
        // The sender must be the caller (otherwise PERMISSION_DENIED: no return message goes to a
        // provider about another's message); the receiver a municipality of the region.
        if h.sender_agb != agb {
            tracing::info!(agb_code = %agb, sender = %h.sender_agb, "provider message of another sender refused");
            return Err(Error::denied(
                "upload.sender_is_caller",
                format!(
                    "the sender (Afzender) {} is not the calling provider {agb}",
                    h.sender_agb
                ),
            ));
        }
        let whole = if !self
            .upstream
            .catalogue()
            .await?
            .municipalities
            .contains(h.receiver_municipality.as_str())
        {
            Some((
                "/Bericht/Header/Ontvanger",
                format!(
                    "{} is not a municipality of the region",
                    h.receiver_municipality
                ),
                ReturnCode::from_code("S300").unwrap_or(ReturnCode::TECHNICAL_REJECTION),
            ))
        } else {
            None
        };
        if let Some((path, rule, code)) = whole {
            tracing::info!(agb_code = %agb, %rule, "provider message rejected");
            return Ok(pb::UploadResult {
                accepted: false,
                return_message_xml: self.render_whole(&h, code).await?.unwrap_or_default(),
                errors: vec![upload_error(path, &rule, code)],
                kind,
            });
        }
        let m = h.receiver_municipality.clone();
        let mut codes = ist::RecordCodes::new();
        let mut errors = Vec::new();
        let mut fail = |record: &str, e: &Error| {
            let code = return_code(e, h.message_type);
            codes.set(record, vec![code]);
            errors.push(upload_error(record, &rule_text(e), code));
        };
        match &received {
            Received::Start(msg) => {
                for p in &msg.products {
                    let (number, status) = (p.assignment_number, p.status);
                    let n = self.first_record(&m, &msg.client.bsn, number, status);
                    let start = |n| pb::ReportStartOfCareRequest {
                        agb_code: agb.to_string(),
                        municipality: m.to_string(),
                        assignment_number: n,
                        start_date: p.start.to_string(),
                    };
                    if let Err(e) = async { self.report_start(start(n.await?)).await }.await {
                        fail(&p.record, &e);
                    }
                }
            }
            Received::Stop(msg) => {
                for p in &msg.products {
                    let (number, status) = (p.assignment_number, p.status);
                    let n = self.first_record(&m, &msg.client.bsn, number, status);
                    let stop = |n| pb::ReportStopOfCareRequest {
                        agb_code: agb.to_string(),
                        municipality: m.to_string(),
                        assignment_number: n,
                        end_date: p.end.to_string(),
                        end_reason: p.end_reason.code().to_owned(),
                    };
                    if let Err(e) = async { self.report_stop(stop(n.await?)).await }.await {
                        fail(&p.record, &e);
                    }
                }
            }
            Received::Request(msg) => {
                for p in &msg.products {
                    if let Err(e) = self.apply_315(&h, &agb, &msg.client.bsn, p).await {
                        fail(&p.record, &e);
                    }
                }
            }
            Received::Change(msg) => {
                let req = &msg.request;
                for p in &req.new {
                    fail(
                        &p.record,
                        &Error::rule(
                            "xml.new_product_unsupported",
                            "NieuwProduct",
                            "a new product in a change request is not supported; send a 315",
                        ),
                    );
                }
                for p in &req.to_change {
                    let res = match self.linked(&m, &msg.bsn, Some(p.assignment_number)).await {
                        Err(e) => Err(e),
                        Ok(n) => {
                            let size = p.size.map(|s| pb::Size {
                                volume: s.volume,
                                unit: s.unit.code().to_owned(),
                                frequency: s.frequency.code().to_owned(),
                            });
                            self.request_change(pb::RequestChangeRequest {
                                idempotency_key: format!(
                                    "xml/{}/{}/{}",
                                    h.message_id, req.provider_reference, n
                                ),
                                agb_code: agb.to_string(),
                                municipality: m.to_string(),
                                assignment_number: n,
                                reason: req.reason.code().to_owned(),
                                new_end: p.end.map(|d| d.to_string()).unwrap_or_default(),
                                size,
                                budget_cents: p.budget.map(|b| b.as_i64()).unwrap_or(0),
                            })
                            .await
                        }
                    };
                    match res {
                        Ok(created) => {
                            if let Ok(id) = Uuid::parse_str(&created.id) {
                                let mut conn = self.pool.acquire().await?;
                                store::save_request_reference(
                                    &mut conn,
                                    id,
                                    &req.provider_reference,
                                )
                                .await?;
                            }
                        }
                        Err(e) => fail(&p.record, &e),
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
            &h,
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

    /// The assignment a record names, when it is this client's (the BSN's client key must be the
    /// assignment's) — ownership by the provider is checked by the domain functions.
    async fn linked(
        &self,
        m: &GemeenteCode,
        bsn: &Bsn,
        number: Option<AssignmentNumber>,
    ) -> Result<u32> {
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
        Ok(n)
    }

    /// The assignment a first delivery (StatusAanlevering 1) of this client names; a change or
    /// deletion of an earlier record is refused.
    async fn first_record(
        &self,
        m: &GemeenteCode,
        bsn: &Bsn,
        number: Option<AssignmentNumber>,
        status: ist::DeliveryStatus,
    ) -> Result<u32> {
        let n = self.linked(m, bsn, number).await?;
        if status == ist::DeliveryStatus::First {
            Ok(n)
        } else {
            Err(unsupported_status(status))
        }
    }

    async fn apply_315(
        &self,
        h: &ist::ReceivedHeader,
        agb: &AgbCode,
        bsn: &Bsn,
        p: &ist::RequestedProduct,
    ) -> Result<()> {
        let m = h.receiver_municipality.as_str();
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
        let created = self
            .request_assignment(pb::RequestAssignmentRequest {
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
            })
            .await?;
        if let Ok(id) = Uuid::parse_str(&created.id) {
            let mut conn = self.pool.acquire().await?;
            store::save_request_reference(&mut conn, id, &p.provider_reference).await?;
        }
        Ok(())
    }
}

fn unsupported_status(s: ist::DeliveryStatus) -> Error {
    Error::rule(
        "xml.status_unsupported",
        "StatusAanlevering",
        format!(
            "StatusAanlevering {} (a change or deletion of an earlier record) is not supported; only 1 (eerste aanlevering)",
            s.code()
        ),
    )
}

trait NanosZero {
    fn with_nanosecond_zero(self) -> NaiveTime;
}

impl NanosZero for NaiveTime {
    fn with_nanosecond_zero(self) -> NaiveTime {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn house_numbers() {
        assert_eq!(split_house_number("12"), Some((12, None, None)));
        assert_eq!(split_house_number("12a"), Some((12, Some('a'), None)));
        assert_eq!(
            split_house_number("12-2"),
            Some((12, None, Some("2".into())))
        );
        assert_eq!(split_house_number("x"), None);
    }
}
