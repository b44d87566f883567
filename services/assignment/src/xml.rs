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
//! - [`Assigner::upload_provider_message`] (in [`crate::inbound`]): a 305, 307, 315 or 317
//!   (recognised by its namespace) read by the hardened readers, checked against the standard's
//!   rules, each record applied through the same functions as the gRPC calls (`report_start`,
//!   `report_stop`, `request_assignment`, `request_change`) and answered in the return message
//!   (306, 308, 316, 318) with `0200` or the return code of the rule that failed.
//!
//! Deadlines: uploaded messages create the same assignments and requests as the gRPC calls, so
//! `ListChainDeadlines` covers them (start of care 5 working days after the assignment start,
//! request answers within 5 working days). The return message is written synchronously in the
//! answer to the upload, so the standard's 3-working-day deadline for return messages is met by
//! construction and is not listed.

use chrono::{NaiveDate, NaiveTime};
use prost::Message as _;
use rz_domain::{
    AgbCode, AssignmentNumber, Bsn, Cents, ExecutionVariant, Frequency, Law, MessageId,
    ProductCode, RefusalReason, Unit,
};
use rz_istandaarden as ist;
use rz_proto::assignment::v1 as pb;
use uuid::Uuid;

use crate::assigner::Assigner;
use crate::convert::{law_from_pb, variant_from_pb};
use crate::error::Result;
use crate::fields::{self, Fields};
use crate::store;
use crate::upstream::ClientLookup;

/// The largest gRPC message the service decodes: the standard's limit on an XML message plus
/// room for the envelope (the readers check the XML's own size).
pub const MAX_GRPC_MESSAGE_BYTES: usize = ist::MAX_MESSAGE_BYTES + 64 * 1024;

pub(crate) use crate::inbound::uploaded_client;

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

impl Assigner {
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
        let rows =
            store::list_provider_messages(&mut conn, &self.keys, &agb, m.as_ref(), since).await?;
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
