//! The [`Assigner`]: what every path that creates or changes an assignment shares — choosing the
//! provider, the no-stacking rule, numbering, and the events written to the outbox in the same
//! transaction (the standard's message to the provider with the client block, and the
//! pseudonymous lifecycle event).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use rz_domain::{AgbCode, ClientKey, GemeenteCode, Period, WorkingDays};
use rz_eventing::{Namespace, NewEvent, outbox};
use rz_platform::sealing::Keyring;
use rz_proto::assignment::v1 as pb;
use sqlx::{PgConnection, PgPool};

use crate::clock::Clock;
use crate::convert::{assignment_pb, request_pb};
use crate::domain::choice::{Candidate, lowest_caseload};
use crate::domain::{Assignment, ProviderRequest};
use crate::domain::{Extent, SizeFields};
use crate::error::{Error, Result};
use crate::fields::{self, Fields};
use crate::store;
use crate::upstream::{ClientLookup, ContractCache, SubsegmentInfo, Upstream};
use rz_proto::events::{EventType, assignment as events};

/// What [`Assigner::product_fields`] found; `None` where a field was malformed.
pub(crate) struct ProductFields {
    pub sub: Option<SubsegmentInfo>,
    pub extent: Option<Extent>,
    /// Empty when the assignment names no product.
    pub product_code: String,
}

/// A request that names a product: its subsegment code, size, budget and product code.
pub(crate) trait NamesProduct {
    fn product(&self) -> (&str, Option<&pb::Size>, i64, &str);
}

macro_rules! names_product {
    ($($request:ty),*) => {$(
        impl NamesProduct for $request {
            fn product(&self) -> (&str, Option<&pb::Size>, i64, &str) {
                (&self.subsegment_code, self.size.as_ref(), self.budget_cents, &self.product_code)
            }
        }
    )*};
}

names_product!(pb::RequestAssignmentRequest, pb::ImportAssignmentRequest);

pub const CONTEXT: &str = events::CONTEXT;

/// Working days a provider has to report the start of care, and the municipality to answer a request.
pub const CHAIN_DAYS: u32 = 5;

/// The service's logic, shared by the gRPC API, the event consumer and operator tools.
/// Cheap to clone.
#[derive(Clone)]
pub struct Assigner {
    pub(crate) pool: PgPool,
    pub(crate) ns: Namespace,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) secret: Arc<[u8]>,
    /// The keys that seal BSNs and the stored provider messages at rest.
    pub(crate) keys: Arc<Keyring>,
    /// What handover runs did (see [`crate::metrics`]); none in tests that build an assigner
    /// alone.
    pub(crate) handover_metrics: Option<crate::metrics::HandoverMetrics>,
}

/// Who gets the client, or why nobody does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Chosen { agb_code: AgbCode, reason: String },
    NoneContracted { reason: String },
}

/// What the provider choice is about.
#[derive(Debug, Clone, Copy)]
pub struct ChoiceInput<'a> {
    pub municipality: &'a GemeenteCode,
    pub subsegment: &'a str,
    pub date: NaiveDate,
    /// The resident's preferred provider, if any.
    pub preferred: Option<&'a str>,
}

pub fn key_conflict() -> Error {
    Error::already_exists("idempotency_key was used before for a different request")
}

impl Assigner {
    pub fn new(
        pool: PgPool,
        ns: Namespace,
        upstream: Arc<Upstream>,
        clock: Arc<dyn Clock>,
        secret: &[u8],
        keys: Arc<Keyring>,
    ) -> Self {
        Self {
            pool,
            ns,
            upstream,
            clock,
            secret: Arc::from(secret),
            keys,
            handover_metrics: None,
        }
    }

    /// Counts every handover run in `metrics`.
    pub fn with_handover_metrics(mut self, metrics: crate::metrics::HandoverMetrics) -> Self {
        self.handover_metrics = Some(metrics);
        self
    }

    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The date `CHAIN_DAYS` working days after `d`.
    pub fn chain_due(d: NaiveDate) -> NaiveDate {
        WorkingDays::add_working_days(d, CHAIN_DAYS)
    }

    async fn emit(
        &self,
        tx: &mut PgConnection,
        municipality: &GemeenteCode,
        agb: Option<&AgbCode>,
        event: EventType,
        aggregate: &str,
        payload: &impl prost::Message,
    ) -> Result<()> {
        let e = self.new_event(municipality, agb, event, aggregate, payload);
        outbox::enqueue(tx, &e).await?;
        Ok(())
    }

    /// The event `event` about `aggregate` of `municipality` (to provider `agb`, if given).
    fn new_event(
        &self,
        municipality: &GemeenteCode,
        agb: Option<&AgbCode>,
        event: EventType,
        aggregate: &str,
        payload: &impl prost::Message,
    ) -> NewEvent {
        NewEvent::new(
            self.ns.subject(
                CONTEXT,
                Some(municipality.as_str()),
                agb.map(AgbCode::as_str),
                event.name,
            ),
            event.ce_type,
            format!("regiozorg/assignment/{municipality}"),
            aggregate,
            payload,
        )
    }

    /// The events of a new assignment as [`Assigner::insert_new`] writes them, for a batch written
    /// at once: the `issued` message to the provider (its payload is also the message kept for the
    /// provider's XML download) and the lifecycle event.
    pub(crate) fn issued_events(&self, a: &Assignment, client: &pb::Client) -> [NewEvent; 2] {
        let aggregate = format!("{}/{}", a.municipality, a.number);
        let message = pb::AssignmentMessage {
            assignment: Some(assignment_pb(a)),
            client: Some(client.clone()),
        };
        let lifecycle = pb::AssignmentLifecycle {
            assignment: Some(assignment_pb(a)),
            change: "issued".to_owned(),
        };
        [
            self.new_event(
                &a.municipality,
                Some(&a.agb_code),
                events::ISSUED,
                &aggregate,
                &message,
            ),
            self.new_event(
                &a.municipality,
                None,
                events::LIFECYCLE,
                &aggregate,
                &lifecycle,
            ),
        ]
    }

    /// The standard's assignment message (`issued` or `changed`) to the provider, with the BSN.
    pub(crate) async fn emit_to_provider(
        &self,
        tx: &mut PgConnection,
        a: &Assignment,
        client: &pb::Client,
        event: EventType,
    ) -> Result<()> {
        let message = pb::AssignmentMessage {
            assignment: Some(assignment_pb(a)),
            client: Some(client.clone()),
        };
        // The same content as the standard's 301, kept for the provider's XML download.
        let aggregate = format!("{}/{}", a.municipality, a.number);
        let to = (&a.municipality, &a.agb_code);
        self.send_to_provider(tx, to, Some("assignment"), (event, &aggregate), &message)
            .await
    }

    /// A message to a provider (`to`: municipality and AGB code) as the event `event` of
    /// `aggregate`; kept with its payload for the provider's XML download as `kind` when given.
    async fn send_to_provider(
        &self,
        tx: &mut PgConnection,
        (municipality, agb): (&GemeenteCode, &AgbCode),
        kind: Option<&str>,
        (event, aggregate): (EventType, &str),
        message: &impl prost::Message,
    ) -> Result<()> {
        if let Some(kind) = kind {
            let payload = message.encode_to_vec();
            store::record_provider_message(
                tx,
                &self.keys,
                municipality,
                agb,
                kind,
                &payload,
                self.today(),
            )
            .await?;
        }
        self.emit(tx, municipality, Some(agb), event, aggregate, message)
            .await
    }

    /// The pseudonymous lifecycle event for reporting (client key only).
    pub(crate) async fn emit_lifecycle(
        &self,
        tx: &mut PgConnection,
        a: &Assignment,
        change: &str,
    ) -> Result<()> {
        let message = pb::AssignmentLifecycle {
            assignment: Some(assignment_pb(a)),
            change: change.to_owned(),
        };
        self.emit(
            tx,
            &a.municipality,
            None,
            events::LIFECYCLE,
            &format!("{}/{}", a.municipality, a.number),
            &message,
        )
        .await
    }

    /// The answer (319) to a provider's request.
    pub(crate) async fn emit_answer(
        &self,
        tx: &mut PgConnection,
        r: &ProviderRequest,
    ) -> Result<()> {
        let message = pb::RequestAnswered {
            request: Some(request_pb(r)),
        };
        // A refusal is the standard's 319; a grant is answered by the 301 of the assignment.
        let kind = (r.status == crate::domain::RequestStatus::Refused).then_some("answer");
        let event = (events::REQUEST_ANSWERED, r.id.to_string());
        let to = (&r.municipality, &r.agb_code);
        self.send_to_provider(tx, to, kind, (event.0, &event.1), &message)
            .await
    }

    /// A product as a request names it, checked against the region's catalogue: the subsegment and
    /// the municipality must be the region's, and the size, budget and product code must fit the
    /// subsegment's execution variant. Every malformed field is collected in `f`; when the catalogue
    /// cannot be fetched, the malformed fields are named first, else registration is unavailable.
    pub(crate) async fn product_fields(
        &self,
        f: &mut Fields,
        municipality: Option<&GemeenteCode>,
        request: &impl NamesProduct,
    ) -> Result<ProductFields> {
        let (subsegment_code, size, budget_cents, product_code) = request.product();
        let catalogue = match self.upstream.catalogue().await {
            Ok(c) => c,
            Err(e) => {
                std::mem::take(f).finish()?;
                return Err(e);
            }
        };
        let sub = catalogue.subsegment(subsegment_code).cloned();
        if sub.is_none() && !subsegment_code.is_empty() {
            f.push(
                "subsegment_code",
                "is not a subsegment of the region's catalogue",
            );
        }
        if let Some(m) = municipality
            && !catalogue.municipalities.contains(m.as_str())
        {
            f.push("municipality", "is not a municipality of the region");
        }
        let size = size.cloned().unwrap_or_default();
        let extent = sub.as_ref().and_then(|s| {
            f.check_all(Extent::parse(
                s.variant,
                size.volume,
                &size.unit,
                &size.frequency,
                budget_cents,
                SizeFields::API,
            ))
        });
        let product_code = fields::product_code(f, sub.as_ref(), product_code);
        Ok(ProductFields {
            sub,
            extent,
            product_code,
        })
    }

    /// The client block for a provider message: from the municipality's access instance; for a
    /// client access does not know, the BSN this service received directly (315, import).
    pub(crate) async fn client_block(
        &self,
        municipality: &GemeenteCode,
        client_key: &ClientKey,
    ) -> Result<pb::Client> {
        match self
            .upstream
            .client(municipality.as_str(), client_key.as_str())
            .await?
        {
            ClientLookup::Found(c) => Ok(*c),
            ClientLookup::Unknown | ClientLookup::NoAccess => {
                self.known_client(municipality, client_key).await
            }
        }
    }

    /// The client block of a client access does not know: the BSN this service received
    /// directly (315, import), or the rule `client.identity_known` when it has none.
    pub(crate) async fn known_client(
        &self,
        municipality: &GemeenteCode,
        client_key: &ClientKey,
    ) -> Result<pb::Client> {
        let mut conn = self.pool.acquire().await?;
        match store::identity(&mut conn, &self.keys, municipality, client_key).await? {
            Some(bsn) => Ok(pb::Client {
                bsn,
                gender: "0".to_owned(),
                ..Default::default()
            }),
            None => Err(Error::rule(
                "client.identity_known",
                "client_key",
                format!(
                    "neither access of municipality {municipality} nor this service knows the BSN of client {client_key}"
                ),
            )),
        }
    }

    /// Chooses the provider: the resident's preferred provider when contracted on the date;
    /// otherwise the contracted provider with the lowest caseload (its active assignments for the
    /// subsegment in the municipality that are still valid on the date) against its lumpsum budget
    /// share.
    /// The reason names the figures. Choices per subsegment and municipality are serialised, so
    /// concurrent decisions see each other's caseloads.
    pub(crate) async fn choose(
        &self,
        tx: &mut PgConnection,
        input: ChoiceInput<'_>,
        cache: &mut ContractCache,
    ) -> Result<Choice> {
        let ChoiceInput {
            municipality: m,
            subsegment: s,
            date: d,
            preferred,
        } = input;
        let prefix = match preferred.filter(|p| !p.is_empty()) {
            Some(p) => match cache.check(&self.upstream, p, s, m.as_str(), d).await? {
                Some(contract) => {
                    return Ok(Choice::Chosen {
                        agb_code: AgbCode::parse(p).map_err(|e| {
                            Error::Upstream(format!("contracted preferred provider: {e}"))
                        })?,
                        reason: format!(
                            "preferred provider {p} (the resident's choice) is contracted for {s} in {m} on {d} (contract {contract})"
                        ),
                    });
                }
                None => format!("preferred provider {p} is not contracted for {s} in {m} on {d}; "),
            },
            None => "no preferred provider; ".to_owned(),
        };
        let contracted = cache.list(&self.upstream, s, m.as_str(), d).await?;
        if contracted.is_empty() {
            return Ok(Choice::NoneContracted {
                reason: format!("{prefix}no provider is contracted for {s} in {m} on {d}"),
            });
        }
        store::lock(tx, &format!("choice|{m}|{s}")).await?;
        let loads: HashMap<String, i64> =
            store::caseloads(tx, m, s, d).await?.into_iter().collect();
        let candidates: Vec<Candidate> = contracted
            .into_iter()
            .map(|(agb, budget)| Candidate {
                caseload: loads
                    .get(agb.as_str())
                    .copied()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                agb_code: agb,
                budget_cents: budget,
            })
            .collect();
        Ok(match lowest_caseload(&candidates) {
            Some(chosen) => Choice::Chosen {
                reason: format!("{prefix}{}", chosen.describe()),
                agb_code: chosen.agb_code,
            },
            None => Choice::NoneContracted {
                reason: format!("{prefix}no provider is contracted for {s} in {m} on {d}"),
            },
        })
    }

    /// No stacking: the client's assignment for the same subsegment whose validity overlaps the
    /// period, if any (`except`: the assignment a handover replaces). Takes a lock on the client and
    /// subsegment for the rest of the transaction, so two concurrent grants cannot both pass.
    pub(crate) async fn stacked(
        &self,
        tx: &mut PgConnection,
        municipality: &GemeenteCode,
        client_key: &ClientKey,
        subsegment: &str,
        period: &Period,
        except: Option<u32>,
    ) -> Result<Option<Assignment>> {
        store::lock(
            tx,
            &format!("client|{municipality}|{client_key}|{subsegment}"),
        )
        .await?;
        Ok(store::overlapping(tx, municipality, client_key, subsegment, period, except).await?)
    }

    pub(crate) fn stacking_rule(other: &Assignment) -> Error {
        Error::rule(
            "assignment.no_stacking",
            "subsegment_code",
            stacking_text(other),
        )
    }

    /// Numbers and stores a new assignment and writes its `issued` message and lifecycle event.
    pub(crate) async fn insert_new(
        &self,
        tx: &mut PgConnection,
        a: &mut Assignment,
        client: &pb::Client,
    ) -> Result<()> {
        a.number = store::next_number(tx, a.municipality.as_str()).await?;
        store::insert_assignment(tx, a).await?;
        self.emit_to_provider(tx, a, client, events::ISSUED).await?;
        self.emit_lifecycle(tx, a, "issued").await?;
        tracing::info!(
            municipality = %a.municipality,
            number = a.number,
            agb_code = %a.agb_code,
            subsegment = %a.subsegment_code,
            client_key = %a.client_key,
            origin = a.origin.code(),
            "assignment issued"
        );
        Ok(())
    }

    /// Stores a changed assignment and writes `changed` to its provider and the lifecycle event.
    pub(crate) async fn save_changed(
        &self,
        tx: &mut PgConnection,
        a: &Assignment,
        client: &pb::Client,
        change: &str,
    ) -> Result<()> {
        store::update_assignment(tx, a).await?;
        self.emit_to_provider(tx, a, client, events::CHANGED)
            .await?;
        self.emit_lifecycle(tx, a, change).await?;
        tracing::info!(
            municipality = %a.municipality,
            number = a.number,
            agb_code = %a.agb_code,
            status = a.status.code(),
            change_reason = %a.change_reason,
            change,
            "assignment changed"
        );
        Ok(())
    }

    /// The granted products that could not be assigned, with the reason (`None`: every municipality).
    pub async fn list_unassigned(
        &self,
        municipality: Option<&str>,
    ) -> Result<Vec<store::Unassigned>> {
        let mut conn = self.pool.acquire().await?;
        Ok(store::list_unassigned(&mut conn, municipality).await?)
    }
}

pub(crate) fn stacking_text(other: &Assignment) -> String {
    format!(
        "the client already has assignment {} for {} with provider {} from {}{} (no stacking)",
        other.number,
        other.subsegment_code,
        other.agb_code,
        other.period.start(),
        other
            .valid_until
            .map(|d| format!(" until {d}"))
            .unwrap_or_default()
    )
}
