//! Letters when a decision is made: the durable consumer `notification-decisions` reads access'
//! events (`<ns>.access.*._.>`): `decision_granted` gives a letter with the granted products,
//! `case_changed` with status refused one with the reason; both tell the right to object.
//!
//! Access' events carry only the pseudonymous client key, so the resident's name, address and
//! birth date come from the municipality's access instance (`GetClientForAssignment`). That
//! instance unreachable is transient: the consumer retries the event with backoff. A client key
//! access does not know, or a municipality without a configured access endpoint, is permanent: the
//! event is dead-lettered with the reason and no letter is written (an operator can replay it).

use chrono::NaiveDate;
use rz_eventing::{ConsumerSpec, Event, HandleError, Handler, Namespace};
use rz_proto::access::v1 as acc;
use sqlx::PgConnection;
use std::sync::Arc;

use crate::letters::{self, Recipient};
use crate::region::Region;
use crate::secrets::Keyring;
use crate::store::{self, NewLetter};
use crate::upstream::{ClientLookup, Upstream, UpstreamError};

pub const CONSUMER: &str = "notification-decisions";
pub const ACCESS: &str = rz_proto::events::access::CONTEXT;
pub const DECISION_GRANTED: &str = rz_proto::events::access::DECISION_GRANTED.ce_type;
pub const CASE_CHANGED: &str = rz_proto::events::access::CASE_CHANGED.ce_type;
pub const KIND_GRANTED: &str = "decision_granted";
pub const KIND_REFUSED: &str = "decision_refused";

/// Every municipality's access events; only decisions lead to a letter.
pub fn consumer_spec(ns: &Namespace) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(
        CONSUMER,
        ns.stream_name(ACCESS),
        format!("{}.{ACCESS}.*._.>", ns.as_str()),
    );
    // Access down for a few minutes must not dead-letter decisions:
    // 0.5 + 1 + 2 + ... s, capped at a minute, about 3 minutes in all.
    spec.max_attempts = 10;
    spec
}

/// Writes the decision letters, their texts sealed under the keyring's current key.
pub struct DecisionLetters {
    upstream: Arc<Upstream>,
    region: Arc<Region>,
    keys: Arc<Keyring>,
}

impl DecisionLetters {
    pub fn new(upstream: Arc<Upstream>, region: Arc<Region>, keys: Arc<Keyring>) -> Self {
        Self {
            upstream,
            region,
            keys,
        }
    }
}

/// The municipality of an access event: the payload's, else the subject's third token
/// (`<ns>.access.<municipality>._.<event>`).
fn municipality_of(payload: &str, nats_subject: &str) -> Option<String> {
    if !payload.is_empty() {
        return Some(payload.to_owned());
    }
    nats_subject.split('.').nth(2).map(str::to_owned)
}

fn upstream_error(e: UpstreamError) -> HandleError {
    match e {
        UpstreamError::Unavailable(..) => HandleError::Transient(e.to_string()),
        _ => HandleError::Permanent(e.to_string()),
    }
}

impl Handler for DecisionLetters {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        let (case, municipality, kind) = match event.event_type.as_str() {
            DECISION_GRANTED => {
                let e: acc::DecisionGranted = event.decode()?;
                (e.case, e.municipality, KIND_GRANTED)
            }
            CASE_CHANGED => {
                let e: acc::CaseChanged = event.decode()?;
                let refused = e
                    .case
                    .as_ref()
                    .is_some_and(|c| c.status == acc::CaseStatus::Refused as i32);
                if !refused {
                    return Ok(());
                }
                (e.case, e.municipality, KIND_REFUSED)
            }
            _ => return Ok(()),
        };
        let case =
            case.ok_or_else(|| HandleError::Permanent("decision event without its case".into()))?;
        let municipality =
            municipality_of(&municipality, &event.nats_subject).ok_or_else(|| {
                HandleError::Permanent("decision event without a municipality".into())
            })?;
        let case_id = uuid::Uuid::parse_str(&case.id)
            .map_err(|_| HandleError::Permanent(format!("case id `{}` is not a UUID", case.id)))?;
        if store::decision_letter_exists(tx, case_id, kind).await? {
            return Ok(());
        }
        let client = match self
            .upstream
            .client(&municipality, &case.client_key)
            .await
            .map_err(upstream_error)?
        {
            ClientLookup::Found(c) => c,
            ClientLookup::Unknown => {
                return Err(HandleError::Permanent(format!(
                    "client key {} of case {} is unknown to access {municipality}: no {kind} letter written",
                    case.client_key, case.id
                )));
            }
        };
        // The letter is dated on the decision date (the demo plays simulated dates); the day of
        // the event when the case carries none.
        let date = NaiveDate::parse_from_str(&case.decided_on, "%Y-%m-%d")
            .unwrap_or_else(|_| event.time.date_naive());
        let youth = case.law == rz_proto::types::v1::Law::Jeugdwet as i32;
        let recipient = Recipient::from_access(&client, youth, date);
        let gemeente = self.region.municipality_name(&municipality);
        let text = if kind == KIND_GRANTED {
            letters::decision_granted(&case, &recipient, &gemeente, date)
        } else {
            letters::decision_refused(&case, &recipient, &gemeente, date)
        };
        let written = store::insert_letter(
            tx,
            &self.keys,
            &NewLetter {
                event_id: Some(event.id),
                kind,
                municipality: &municipality,
                client_key: &case.client_key,
                assignment_number: None,
                case_id: Some(case_id),
                product_id: None,
                ends_on: None,
                text: &text,
            },
        )
        .await?;
        if written {
            tracing::info!(case_id = %case_id, %municipality, kind, "decision letter written");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn municipality_from_payload_or_subject() {
        assert_eq!(
            municipality_of("", "rz.access.0222._.decision_granted").as_deref(),
            Some("0222")
        );
        assert_eq!(
            municipality_of("1859", "rz.access.0222._.decision_granted").as_deref(),
            Some("1859")
        );
    }
}
