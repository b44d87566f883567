//! After the run: waiting until everything settled, then the invariants, checked against the
//! services' own databases (read-only SQL: this is an operator's tool), the events the receiver
//! got, the reporting read model and the dead-letter stream.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use rz_eventing::Namespace;
use rz_eventing::dlq::DeadLetters;
use rz_proto::reporting::v1 as rep;
use rz_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use tonic::transport::Channel;

use super::flows::FlowRecord;
use super::receiver::ReceiverState;
use super::webhooks::{Receipts, WebhookState};

pub const ISSUED: &str = "nl.regiozorg.assignment.issued.v1";

/// One checked invariant.
#[derive(Debug, Clone)]
pub struct Invariant {
    pub name: &'static str,
    pub description: &'static str,
    /// How many things it looked at.
    pub checked: usize,
    /// Each violation with its evidence.
    pub violations: Vec<String>,
    /// Of the violations, how many are something lost (an acknowledged decision, an event).
    pub lost: usize,
}

impl Invariant {
    fn new(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            description,
            checked: 0,
            violations: Vec::new(),
            lost: 0,
        }
    }
}

/// The databases and endpoints the checks read.
#[derive(Debug, Clone)]
pub struct Sources {
    /// service name -> database URL (registration, access@<m>..., assignment, reporting, ...).
    pub databases: BTreeMap<String, String>,
    pub reporting: String,
    pub nats_url: String,
    pub namespace: String,
}

async fn pool(url: &str) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| format!("{url}: {e}"))
}

fn db_err(what: &str) -> impl Fn(sqlx::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// What settling waits for, as a snapshot (so "stable" = two equal snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    pub unpublished: i64,
    pub issued_events: usize,
    pub issued_not_received: usize,
    pub granted_products: i64,
    pub products_not_handled: i64,
    pub not_started: i64,
    pub provider_events: usize,
    pub webhooks_not_received: usize,
    pub amendments_not_applied: usize,
    pub reporting_caught_up: bool,
}

impl Progress {
    pub fn done(&self) -> bool {
        self.unpublished == 0
            && self.issued_not_received == 0
            && self.products_not_handled == 0
            && self.not_started == 0
            && self.webhooks_not_received == 0
            && self.amendments_not_applied == 0
            && self.reporting_caught_up
    }
}

pub struct Checker {
    sources: Sources,
    pools: BTreeMap<String, PgPool>,
    reporting: ReportingServiceClient<Channel>,
}

impl Checker {
    pub async fn new(sources: Sources) -> Result<Self, String> {
        let mut pools = BTreeMap::new();
        for (service, url) in &sources.databases {
            pools.insert(service.clone(), pool(url).await?);
        }
        let reporting = ReportingServiceClient::new(super::flows::channel(
            &sources.reporting,
            Duration::from_secs(30),
        )?);
        Ok(Self {
            sources,
            pools,
            reporting,
        })
    }

    fn db(&self, service: &str) -> Result<&PgPool, String> {
        self.pools
            .get(service)
            .ok_or_else(|| format!("no database for {service}"))
    }

    fn access_dbs(&self) -> impl Iterator<Item = (&String, &PgPool)> {
        self.pools.iter().filter(|(s, _)| s.starts_with("access@"))
    }

    /// Granted products of every access instance: (product id, municipality, version).
    async fn granted_products(&self) -> Result<Vec<(String, String, i32)>, String> {
        let mut out = Vec::new();
        for (service, db) in self.access_dbs() {
            let m = service.trim_start_matches("access@").to_owned();
            let rows = sqlx::query(
                "SELECT p.id::text, p.version FROM products p JOIN cases c ON c.id = p.case_id
                 WHERE c.status = 'granted'",
            )
            .fetch_all(db)
            .await
            .map_err(db_err("granted products"))?;
            for r in rows {
                out.push((r.get::<String, _>(0), m.clone(), r.get::<i32, _>(1)));
            }
        }
        Ok(out)
    }

    /// The ids of every issued event in assignment's outbox.
    async fn issued_events(&self) -> Result<Vec<(String, String)>, String> {
        let rows = sqlx::query("SELECT id::text, nats_subject FROM outbox WHERE event_type = $1")
            .bind(ISSUED)
            .fetch_all(self.db("assignment")?)
            .await
            .map_err(db_err("issued events"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Product id -> (active assignments, any assignment), and the products recorded unassigned.
    async fn assignment_of_products(
        &self,
    ) -> Result<(HashMap<String, (i64, i64)>, HashSet<String>), String> {
        let db = self.db("assignment")?;
        let rows = sqlx::query(
            "SELECT granted_product_id, count(*) FILTER (WHERE status IN ('issued', 'started')),
                    count(*)
             FROM assignments WHERE granted_product_id IS NOT NULL GROUP BY 1",
        )
        .fetch_all(db)
        .await
        .map_err(db_err("assignments per product"))?;
        let per = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let unassigned: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT granted_product_id FROM unassigned_products")
                .fetch_all(db)
                .await
                .map_err(db_err("unassigned products"))?;
        Ok((per, unassigned.into_iter().collect()))
    }

    /// Amended products (version > 1) of every access instance, and those whose active
    /// assignment does not show the amendment (version, end), as evidence lines.
    async fn amendments(&self) -> Result<(usize, Vec<String>), String> {
        let mut amended: HashMap<String, (String, i32, Option<String>)> = HashMap::new();
        for (service, db) in self.access_dbs() {
            let m = service.trim_start_matches("access@").to_owned();
            let rows = sqlx::query(
                "SELECT id::text, version, period_end::text FROM products WHERE version > 1",
            )
            .fetch_all(db)
            .await
            .map_err(db_err("amended products"))?;
            for r in rows {
                amended.insert(r.get(0), (m.clone(), r.get(1), r.get(2)));
            }
        }
        if amended.is_empty() {
            return Ok((0, Vec::new()));
        }
        let ids: Vec<String> = amended.keys().cloned().collect();
        let db = self.db("assignment")?;
        let rows = sqlx::query(
            "SELECT granted_product_id, number, product_version, end_date::text FROM assignments
             WHERE granted_product_id = ANY($1) AND status IN ('issued', 'started')",
        )
        .bind(&ids)
        .fetch_all(db)
        .await
        .map_err(db_err("amended assignments"))?;
        let unassigned: HashSet<String> = sqlx::query_scalar(
            "SELECT granted_product_id FROM unassigned_products WHERE granted_product_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(db)
        .await
        .map_err(db_err("unassigned amended"))?
        .into_iter()
        .collect();
        let mut seen = HashSet::new();
        let mut bad = Vec::new();
        for r in rows {
            let id: String = r.get(0);
            let Some((m, version, end)) = amended.get(&id) else {
                continue;
            };
            seen.insert(id.clone());
            let (number, pv, a_end): (i64, i32, Option<String>) = (r.get(1), r.get(2), r.get(3));
            if pv != *version || a_end != *end {
                bad.push(format!(
                    "product {id} in {m} is version {version} ending {}; its assignment {number} shows version {pv} ending {}",
                    end.as_deref().unwrap_or("-"),
                    a_end.as_deref().unwrap_or("-")
                ));
            }
        }
        for (id, (m, version, _)) in &amended {
            if !seen.contains(id) && !unassigned.contains(id) {
                bad.push(format!(
                    "product {id} in {m} (version {version}) has no active assignment"
                ));
            }
        }
        Ok((amended.len(), bad))
    }

    /// Every event addressed to one provider (`<ns>.assignment.<m>.<agb>.<event>`): (id, subject).
    async fn provider_events(&self) -> Result<Vec<(String, String)>, String> {
        let rows = sqlx::query(
            "SELECT id::text, nats_subject FROM outbox WHERE split_part(nats_subject, '.', 4) <> '_'",
        )
        .fetch_all(self.db("assignment")?)
        .await
        .map_err(db_err("provider events"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn progress(
        &mut self,
        receiver: &ReceiverState,
        webhooks: &WebhookState,
    ) -> Result<Progress, String> {
        let mut p = Progress::default();
        for (service, db) in &self.pools {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(db)
                    .await
                    .map_err(db_err(service))?;
            p.unpublished += n;
        }
        let issued = self.issued_events().await?;
        p.issued_events = issued.len();
        p.issued_not_received = issued
            .iter()
            .filter(|(id, _)| !receiver.applied.contains(id))
            .count();
        let products = self.granted_products().await?;
        let (per, unassigned) = self.assignment_of_products().await?;
        p.granted_products = products.len() as i64;
        p.products_not_handled = products
            .iter()
            .filter(|(id, _, _)| !per.contains_key(id) && !unassigned.contains(id))
            .count() as i64;
        p.amendments_not_applied = self.amendments().await?.1.len();
        let provider_events = self.provider_events().await?;
        p.provider_events = provider_events.len();
        p.webhooks_not_received = provider_events
            .iter()
            .filter(|(id, _)| !webhooks.received.contains(id))
            .count();
        p.not_started =
            sqlx::query_scalar("SELECT count(*) FROM assignments WHERE status = 'issued'")
                .fetch_one(self.db("assignment")?)
                .await
                .map_err(db_err("assignments not started"))?;
        p.reporting_caught_up = self
            .reporting
            .get_status(rep::GetStatusRequest {})
            .await
            .map(|r| r.into_inner().caught_up)
            .unwrap_or(false);
        Ok(p)
    }

    /// Polls [`Checker::progress`] until it is done and stable (two equal snapshots in a row), or
    /// `timeout`. Returns the last snapshot and whether it settled.
    pub async fn settle(
        &mut self,
        receiver: &std::sync::Mutex<ReceiverState>,
        webhooks: &Receipts,
        timeout: Duration,
    ) -> (Progress, bool) {
        let deadline = Instant::now() + timeout;
        let mut last: Option<Progress> = None;
        loop {
            let r = receiver.lock().map(|r| ReceiverState {
                applied: r.applied.clone(),
                ..ReceiverState::default()
            });
            let w = webhooks.snapshot();
            let now = match r {
                Ok(r) => self.progress(&r, &w).await.ok(),
                _ => None,
            };
            if let Some(now) = now {
                if now.done() && last.as_ref() == Some(&now) {
                    return (now, true);
                }
                if Instant::now() >= deadline {
                    return (now, false);
                }
                tracing::info!(?now, "settling");
                last = Some(now);
            } else if Instant::now() >= deadline {
                return (last.unwrap_or_default(), false);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Every invariant.
    pub async fn check(
        &mut self,
        flows: &[FlowRecord],
        receiver: &ReceiverState,
        webhooks: &WebhookState,
        handover_not_arranged: u32,
        contracted_after: &HashSet<(String, String, String)>,
    ) -> Result<Vec<Invariant>, String> {
        Ok(vec![
            self.acknowledged_decisions_kept(flows).await?,
            self.granted_products_assigned_once().await?,
            self.amendments_applied().await?,
            self.no_two_providers_on_a_day().await?,
            self.handover_leaves_nobody_without_provider(handover_not_arranged, contracted_after)
                .await?,
            self.outboxes_drained().await?,
            self.issued_events_received(receiver).await?,
            no_duplicated_effects(receiver),
            self.webhooks_delivered(webhooks).await?,
            self.reporting_equals_direct_counts().await?,
            self.nothing_dead_lettered().await?,
        ])
    }

    async fn acknowledged_decisions_kept(&self, flows: &[FlowRecord]) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "decisions_kept",
            "every decision access acknowledged is in its database with its products",
        );
        let mut by_m: BTreeMap<&str, Vec<&FlowRecord>> = BTreeMap::new();
        for f in flows {
            by_m.entry(f.municipality.as_str()).or_default().push(f);
        }
        for (m, fs) in by_m {
            let db = self.db(&format!("access@{m}"))?;
            let rows = sqlx::query(
                "SELECT c.id::text, c.status, count(p.id) FROM cases c
                 LEFT JOIN products p ON p.case_id = c.id GROUP BY c.id, c.status",
            )
            .fetch_all(db)
            .await
            .map_err(db_err("cases"))?;
            let cases: HashMap<String, (String, i64)> = rows
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect();
            for f in fs {
                inv.checked += 1;
                let want = if f.products > 0 { "granted" } else { "refused" };
                match cases.get(&f.case_id) {
                    Some((status, n)) if status == want && *n == i64::from(f.products) => {}
                    Some((status, n)) => inv.violations.push(format!(
                        "flow {} case {} in {m}: acknowledged as {want} with {} products, stored as {status} with {n}",
                        f.index, f.case_id, f.products
                    )),
                    None => {
                        inv.lost += 1;
                        inv.violations.push(format!(
                            "flow {} case {} in {m}: acknowledged, not in the database (lost)",
                            f.index, f.case_id
                        ));
                    }
                }
            }
        }
        Ok(inv)
    }

    async fn granted_products_assigned_once(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "granted_assigned_once",
            "every granted product has exactly one active assignment, or a recorded reason why not",
        );
        let products = self.granted_products().await?;
        let (per, unassigned) = self.assignment_of_products().await?;
        for (id, m, version) in products {
            inv.checked += 1;
            let (active, any) = per.get(&id).copied().unwrap_or((0, 0));
            let reason = unassigned.contains(&id);
            match (active, any, reason) {
                (1, _, false) => {}
                (0, 0, true) => {}
                (0, 0, false) => {
                    inv.lost += 1;
                    inv.violations.push(format!(
                        "product {id} (v{version}) in {m}: no assignment and no recorded reason (lost)"
                    ));
                }
                (a, n, r) => inv.violations.push(format!(
                    "product {id} (v{version}) in {m}: {a} active of {n} assignments, recorded as unassigned: {r}"
                )),
            }
        }
        Ok(inv)
    }

    async fn amendments_applied(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "amendments_applied",
            "every amended (extended) product's active assignment carries the new version and end",
        );
        let (checked, bad) = self.amendments().await?;
        inv.checked = checked;
        inv.violations = bad;
        Ok(inv)
    }

    async fn no_two_providers_on_a_day(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "one_provider_per_day",
            "no client has two assignments for the same subsegment valid on the same day",
        );
        let db = self.db("assignment")?;
        inv.checked = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM assignments WHERE status <> 'withdrawn'",
        )
        .fetch_one(db)
        .await
        .map_err(db_err("assignments"))? as usize;
        // Validity as the service itself judges it (store::overlapping): start_date up to
        // valid_until, for assignments that took effect.
        let rows = sqlx::query(
            "SELECT a.municipality, a.client_key, a.subsegment_code, a.number, a.agb_code,
                    a.start_date::text, COALESCE(a.valid_until::text, '-'), a.status,
                    b.number, b.agb_code, b.start_date::text, COALESCE(b.valid_until::text, '-'),
                    b.status, b.replaces_number = a.number, b.started_on IS NOT NULL
             FROM assignments a JOIN assignments b
               ON b.municipality = a.municipality AND b.client_key = a.client_key
              AND b.subsegment_code = a.subsegment_code AND b.number > a.number
             WHERE a.status <> 'withdrawn' AND b.status <> 'withdrawn'
               AND (a.valid_until IS NULL OR a.valid_until >= a.start_date)
               AND (b.valid_until IS NULL OR b.valid_until >= b.start_date)
               AND a.start_date <= COALESCE(b.valid_until, 'infinity'::date)
               AND b.start_date <= COALESCE(a.valid_until, 'infinity'::date)
             LIMIT 200",
        )
        .fetch_all(db)
        .await
        .map_err(db_err("overlapping assignments"))?;
        for r in rows {
            let replaces: Option<bool> = r.get(13);
            let started: bool = r.get(14);
            let note = if replaces == Some(true) && !started {
                " (a handover replacement whose start of care was never reported)"
            } else {
                ""
            };
            inv.violations.push(format!(
                "client {}… in {} for {}: assignment {} ({}, {}..{}, {}) and {} ({}, {}..{}, {}){note}",
                &r.get::<String, _>(1).chars().take(8).collect::<String>(),
                r.get::<String, _>(0),
                r.get::<String, _>(2),
                r.get::<i64, _>(3),
                r.get::<String, _>(4),
                r.get::<String, _>(5),
                r.get::<String, _>(6),
                r.get::<String, _>(7),
                r.get::<i64, _>(8),
                r.get::<String, _>(9),
                r.get::<String, _>(10),
                r.get::<String, _>(11),
                r.get::<String, _>(12),
            ));
        }
        Ok(inv)
    }

    async fn handover_leaves_nobody_without_provider(
        &self,
        not_arranged: u32,
        contracted_after: &HashSet<(String, String, String)>,
    ) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "handover_complete",
            "every imported client of a provider without a contract from 2022-07-01 has a new provider from the day after the old one ends",
        );
        let db = self.db("assignment")?;
        let rows = sqlx::query(
            "SELECT o.municipality, o.number, o.status, COALESCE(o.valid_until::text, '-'),
                    n.number, n.status, n.start_date::text, COALESCE(n.started_on::text, '-'),
                    (n.number IS NOT NULL AND n.started_on IS NOT NULL
                     AND o.valid_until IS NOT NULL AND o.valid_until + 1 = n.started_on
                     AND o.status = 'ended'),
                    o.agb_code, o.subsegment_code
             FROM assignments o
             LEFT JOIN assignments n ON n.municipality = o.municipality
                  AND n.number = o.replaced_by_number AND n.status <> 'withdrawn'
             WHERE o.origin = 'import'",
        )
        .fetch_all(db)
        .await
        .map_err(db_err("handover"))?;
        let mut unreplaced = Vec::new();
        for r in rows {
            inv.checked += 1;
            let ok: Option<bool> = r.get(8);
            if ok == Some(true) {
                continue;
            }
            let m: String = r.get(0);
            let number: i64 = r.get(1);
            let new: Option<i64> = r.get(4);
            let still_contracted = contracted_after.contains(&(r.get(9), r.get(10), m.clone()));
            if new.is_none() && still_contracted {
                continue; // the provider keeps the client: nothing to hand over
            }
            match new {
                None => unreplaced.push(format!(
                    "imported assignment {number} in {m} ({}, valid until {}) has no replacement",
                    r.get::<String, _>(2),
                    r.get::<String, _>(3)
                )),
                Some(n) => inv.violations.push(format!(
                    "imported assignment {number} in {m} ({}, valid until {}) replaced by {n} ({}, from {}, care started {}): not seamless",
                    r.get::<String, _>(2),
                    r.get::<String, _>(3),
                    r.get::<Option<String>, _>(5).unwrap_or_default(),
                    r.get::<Option<String>, _>(6).unwrap_or_default(),
                    r.get::<Option<String>, _>(7).unwrap_or_default(),
                )),
            }
        }
        // Those the last handover run reported as without a contracted provider are explained.
        if unreplaced.len() > not_arranged as usize {
            inv.violations.extend(unreplaced.into_iter().map(|u| {
                format!("{u} (the last RunHandover reported only {not_arranged} without a contracted provider)")
            }));
        }
        Ok(inv)
    }

    async fn outboxes_drained(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "outboxes_drained",
            "every event written to a service's outbox was published",
        );
        for (service, db) in &self.pools {
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(db)
                .await
                .map_err(db_err(service))?;
            let stuck: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(db)
                    .await
                    .map_err(db_err(service))?;
            inv.checked += total as usize;
            if stuck > 0 {
                inv.lost += stuck as usize;
                inv.violations.push(format!(
                    "{service}: {stuck} of {total} events never published"
                ));
            }
        }
        Ok(inv)
    }

    async fn issued_events_received(&self, receiver: &ReceiverState) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "issued_received",
            "every issued event reached the provider receiver at least once",
        );
        for (id, subject) in self.issued_events().await? {
            inv.checked += 1;
            if !receiver.applied.contains(&id) {
                inv.lost += 1;
                inv.violations.push(format!(
                    "event {id} on {subject} never reached the receiver"
                ));
            }
        }
        for (m, n, reason) in &receiver.start_refused {
            inv.violations.push(format!(
                "start of care of assignment {n} in {m} refused: {reason}"
            ));
        }
        Ok(inv)
    }

    async fn webhooks_delivered(&self, webhooks: &WebhookState) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "webhooks_delivered",
            "every event addressed to a provider reached its webhook, signed, at least once",
        );
        for (id, subject) in self.provider_events().await? {
            inv.checked += 1;
            if !webhooks.received.contains(&id) {
                inv.lost += 1;
                inv.violations.push(format!(
                    "event {id} on {subject} never reached the provider's webhook"
                ));
            }
        }
        for (agb, id) in &webhooks.bad_signatures {
            inv.violations.push(format!(
                "delivery of {id} to {agb} had a missing or wrong signature"
            ));
        }
        let failed = sqlx::query(
            "SELECT agb_code, event_id::text, attempts, COALESCE(last_error, '') FROM deliveries
             WHERE status = 'failed'",
        )
        .fetch_all(self.db("notification")?)
        .await
        .map_err(db_err("failed deliveries"))?;
        for r in failed {
            inv.violations.push(format!(
                "delivery of {} to {} failed for good after {} attempts: {}",
                r.get::<String, _>(1),
                r.get::<String, _>(0),
                r.get::<i32, _>(2),
                r.get::<String, _>(3)
            ));
        }
        Ok(inv)
    }

    async fn reporting_equals_direct_counts(&mut self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "reporting_matches",
            "reporting's monthly clients in care, new and ended equal direct counts over assignment's data",
        );
        let caught_up = self
            .reporting
            .get_status(rep::GetStatusRequest {})
            .await
            .map(|r| r.into_inner().caught_up)
            .map_err(|s| format!("GetStatus: {s}"))?;
        if !caught_up {
            inv.violations
                .push("reporting is not caught up with the streams".into());
        }
        let (from, to) = ("2021-09", "2023-09");
        let got = self
            .reporting
            .monthly_figures(rep::MonthlyFiguresRequest {
                from_month: from.into(),
                to_month: to.into(),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("MonthlyFigures: {s}"))?
            .into_inner();
        type Key = (String, String, String, String, String);
        let mut reported: BTreeMap<Key, (u32, u32, u32)> = BTreeMap::new();
        for r in got.rows {
            if r.clients_in_care + r.new_clients + r.ended_clients == 0 {
                continue;
            }
            reported.insert(
                (
                    r.municipality,
                    r.segment_code,
                    r.subsegment_code,
                    r.agb_code,
                    r.month,
                ),
                (r.clients_in_care, r.new_clients, r.ended_clients),
            );
        }
        let rows = sqlx::query(
            "SELECT municipality, segment_code, subsegment_code, agb_code, client_key,
                    started_on, COALESCE(stopped_on, end_date)
             FROM assignments WHERE started_on IS NOT NULL",
        )
        .fetch_all(self.db("assignment")?)
        .await
        .map_err(db_err("assignments"))?;
        let months = months(from, to);
        let mut sets: BTreeMap<Key, [BTreeSet<String>; 3]> = BTreeMap::new();
        for r in &rows {
            let started: NaiveDate = r.get(5);
            let end: Option<NaiveDate> = r.get(6);
            let client: String = r.get(4);
            let key =
                |month: &str| -> Key { (r.get(0), r.get(1), r.get(2), r.get(3), month.to_owned()) };
            for (m, first, last) in &months {
                if started <= *last && end.is_none_or(|e| e >= *first) {
                    sets.entry(key(m)).or_default()[0].insert(client.clone());
                }
                if *first <= started && started <= *last {
                    sets.entry(key(m)).or_default()[1].insert(client.clone());
                }
                if let Some(e) = end
                    && *first <= e
                    && e <= *last
                {
                    sets.entry(key(m)).or_default()[2].insert(client.clone());
                }
            }
        }
        let expected: BTreeMap<Key, (u32, u32, u32)> = sets
            .into_iter()
            .map(|(k, s)| (k, (s[0].len() as u32, s[1].len() as u32, s[2].len() as u32)))
            .collect();
        let keys: BTreeSet<&Key> = expected.keys().chain(reported.keys()).collect();
        inv.checked = keys.len();
        for k in keys {
            let e = expected.get(k).copied().unwrap_or_default();
            let g = reported.get(k).copied().unwrap_or_default();
            if e != g {
                inv.violations.push(format!(
                    "{} {} {} {} {}: reporting says in care/new/ended {}/{}/{}, direct count {}/{}/{}",
                    k.0, k.1, k.2, k.3, k.4, g.0, g.1, g.2, e.0, e.1, e.2
                ));
            }
        }
        Ok(inv)
    }

    async fn nothing_dead_lettered(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "no_dead_letters",
            "nothing sits unexplained in the dead-letter stream",
        );
        let ns = Namespace::new(&self.sources.namespace)?;
        let (client, js) = rz_eventing::connect(&self.sources.nats_url, "chaos-checks")
            .await
            .map_err(|e| e.to_string())?;
        let letters = DeadLetters::new(js, ns)
            .list()
            .await
            .map_err(|e| format!("dead letters: {e}"))?;
        inv.checked = letters.len();
        for l in letters {
            inv.violations.push(format!(
                "dead letter seq {} event {} ({}) of consumer {} after {} attempts: {}",
                l.sequence, l.event_id, l.event_type, l.consumer, l.attempts, l.reason
            ));
        }
        let _ = client.drain().await;
        Ok(inv)
    }
}

fn no_duplicated_effects(receiver: &ReceiverState) -> Invariant {
    let mut inv = Invariant::new(
        "no_duplicated_effects",
        "the receiver, deduplicating by event id, never applied one assignment twice",
    );
    inv.checked = receiver.applied.len();
    for (m, n, first, second) in &receiver.duplicated {
        inv.violations.push(format!(
            "assignment {n} in {m} arrived as event {first} and again as a different event {second}"
        ));
    }
    inv
}

/// (YYYY-MM, first day, last day) from `from` to `to` inclusive.
fn months(from: &str, to: &str) -> Vec<(String, NaiveDate, NaiveDate)> {
    let parse = |s: &str| NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok();
    let (Some(mut first), Some(end)) = (parse(from), parse(to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while first <= end {
        let next = if first.month() == 12 {
            NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
        };
        let Some(next) = next else { break };
        let Some(last) = next.pred_opt() else { break };
        out.push((
            format!("{:04}-{:02}", first.year(), first.month()),
            first,
            last,
        ));
        first = next;
    }
    out
}

/// Read-only check that a database answers (used before the checks start).
pub async fn ping(url: &str) -> bool {
    match sqlx::PgConnection::connect(url).await {
        Ok(c) => {
            let _ = c.close().await;
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn months_cover_the_range() {
        let m = super::months("2022-11", "2023-02");
        let names: Vec<&str> = m.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["2022-11", "2022-12", "2023-01", "2023-02"]);
        assert_eq!(m[2].2.to_string(), "2023-01-31");
    }
}
