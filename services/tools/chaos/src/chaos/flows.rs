//! The load: care flows through the public gRPC APIs (a resident registers in access, opens a
//! case, gets a decision granting one or two products, or a refusal), existing care of the
//! providers whose contracts ended on 2022-06-30, and the handover as of 2022-07-01. Every call
//! is retried on transient failures; commands with an idempotency key resend the same key, the
//! case steps without one (investigation, application, decision) check the case's status before
//! they are sent again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_workload::Dial;
use rz_workload::dial::{OPERATOR, municipality};
use rz_workload::{Driver, Sub, catalogue, flow, status_msg};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::retry::{RETRY_FOR, RetryStats, is_transient, retry, retry_for};

/// Where the services answer, and the PKI to call them with.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub registration: String,
    pub assignment: String,
    /// CBS code -> access instance.
    pub access: BTreeMap<String, String>,
    pub dial: Dial,
}

/// One care flow as the harness saw it end.
#[derive(Debug, Clone)]
pub struct FlowRecord {
    pub index: u32,
    pub municipality: String,
    pub case_id: String,
    /// Products granted (0 = refused).
    pub products: u32,
    /// The first product was extended right after the decision (a second version).
    pub amended: bool,
}

/// What the load did.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub flows_started: AtomicU64,
    pub granted: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    pub imported: AtomicU64,
    pub import_failed: AtomicU64,
    pub retries: RetryStats,
    pub records: Mutex<Vec<FlowRecord>>,
    pub failures: Mutex<Vec<String>>,
}

impl LoadStats {
    fn fail(&self, what: String) {
        if let Ok(mut f) = self.failures.lock()
            && f.len() < 50
        {
            f.push(what);
        }
    }
}

/// A command without an idempotency key, sent once: its reply, or the case that shows it applied.
enum Sent<T> {
    Replied(T),
    Applied(Box<acc::Case>),
}

/// The chaos run's requests (idempotency keys `chaos-<step>-<n>`).
const CHAOS: Driver = Driver::new("chaos");

/// The load generator.
pub struct Load {
    pub endpoints: Endpoints,
    pub municipalities: Vec<String>,
    pub subs: Vec<Sub>,
    pub stats: Arc<LoadStats>,
    registration: RegistrationServiceClient<Channel>,
    assignment: AssignmentServiceClient<Channel>,
    /// RunHandover may take long: its own channel with a long timeout.
    handover: AssignmentServiceClient<Channel>,
    access: BTreeMap<String, AccessServiceClient<Channel>>,
}

impl Load {
    /// Connects (lazily) and reads the catalogue (retrying while registration is down).
    pub async fn new(endpoints: Endpoints, stats: Arc<LoadStats>) -> Result<Self, String> {
        let t = Duration::from_secs(10);
        // The register's reads, imports and the handover: the operator; a municipality's care
        // flows: that municipality at its own access instance.
        let d = &endpoints.dial;
        let mut registration =
            RegistrationServiceClient::new(d.lazy(OPERATOR, &endpoints.registration, t)?);
        let assignment =
            AssignmentServiceClient::new(d.lazy(OPERATOR, &endpoints.assignment, t)?);
        let handover = AssignmentServiceClient::new(d.lazy(
            OPERATOR,
            &endpoints.assignment,
            Duration::from_secs(120),
        )?);
        let mut access = BTreeMap::new();
        for (m, url) in &endpoints.access {
            access.insert(
                m.clone(),
                AccessServiceClient::new(d.lazy(&municipality(m), url, t)?),
            );
        }
        let catalogue = retry(&stats.retries, || {
            let mut r = registration.clone();
            async move { r.get_catalogue(reg::GetCatalogueRequest {}).await }
        })
        .await
        .map_err(status_msg("GetCatalogue"))?
        .into_inner();
        let municipalities: Vec<String> = endpoints.access.keys().cloned().collect();
        let subs = catalogue::subsegments(&catalogue);
        if subs.is_empty() {
            return Err("the catalogue has no subsegments".into());
        }
        registration = registration.clone();
        Ok(Self {
            endpoints,
            municipalities,
            subs,
            stats,
            registration,
            assignment,
            handover,
            access,
        })
    }

    fn access(&self, m: &str) -> Result<AccessServiceClient<Channel>, String> {
        self.access
            .get(m)
            .cloned()
            .ok_or_else(|| format!("no access instance for {m}"))
    }

    /// Registers resident `n` in the municipality's access (idempotent by key).
    async fn resident(&self, m: &str, n: u32, minor: bool) -> Result<String, String> {
        let req = CHAOS.resident(n, m, minor);
        let b = req.bsn.clone();
        let ac = self.access(m)?;
        retry(&self.stats.retries, || {
            let mut ac = ac.clone();
            let req = req.clone();
            async move { ac.register_resident(req).await }
        })
        .await
        .map_err(status_msg("RegisterResident"))?;
        Ok(b)
    }

    /// One care flow, number `i`.
    pub async fn flow(&self, i: u32) -> Result<FlowRecord, String> {
        let m = self.municipalities[(i as usize) % self.municipalities.len()].clone();
        let eligible: Vec<&Sub> = self
            .subs
            .iter()
            .filter(|s| s.municipalities.contains(&m))
            .collect();
        let Some(sub) = eligible
            .get((i as usize / self.municipalities.len()) % eligible.len().max(1))
            .copied()
            .cloned()
        else {
            return Err(format!("no subsegment for {m}"));
        };
        // Every seventh decision grants a second product of the same law.
        let second = (i % 7 == 3)
            .then(|| {
                eligible
                    .iter()
                    .find(|s| s.law == sub.law && s.code != sub.code)
                    .map(|s| (*s).clone())
            })
            .flatten();
        let youth = sub.is_youth();
        let ac = self.access(&m)?;
        let b = self.resident(&m, 300_000 + i, youth).await?;
        let day = 1 + i % 28;
        let open = CHAOS.open_case(i, b, sub.law, format!("2022-07-{day:02}"));
        let case = retry(&self.stats.retries, || {
            let mut ac = ac.clone();
            let r = open.clone();
            async move { ac.open_case(r).await }
        })
        .await
        .map_err(status_msg("OpenCase"))?
        .into_inner();
        let case_id = case.id.clone();
        let mut decide_on = format!("2022-08-{day:02}");
        if !youth {
            let r = acc::CompleteInvestigationRequest {
                case_id: case_id.clone(),
                date: format!("2022-07-{:02}", day.min(27) + 1),
            };
            self.step(&ac, &case_id, &[acc::CaseStatus::Investigated], || {
                let mut ac = ac.clone();
                let r = r.clone();
                async move { ac.complete_investigation(r).await }
            })
            .await
            .map_err(|e| format!("CompleteInvestigation: {e}"))?;
            let r = acc::SubmitApplicationRequest {
                case_id: case_id.clone(),
                date: format!("2022-08-{day:02}"),
            };
            self.step(&ac, &case_id, &[acc::CaseStatus::Applied], || {
                let mut ac = ac.clone();
                let r = r.clone();
                async move { ac.submit_application(r).await }
            })
            .await
            .map_err(|e| format!("SubmitApplication: {e}"))?;
            decide_on = format!("2022-08-{:02}", (day + 7).min(31));
        }
        let refuse = i % 20 == 19;
        let mut grant = Vec::new();
        if !refuse {
            grant.push(catalogue::product(&sub, "2022-09-01", "2023-08-31"));
            if let Some(s2) = &second {
                grant.push(catalogue::product(s2, "2022-09-01", "2023-08-31"));
            }
        }
        let products = grant.len() as u32;
        let r = if refuse {
            flow::refusal(case_id.clone(), decide_on)
        } else {
            flow::decision(case_id.clone(), decide_on, grant)
        };
        let target = if refuse {
            acc::CaseStatus::Refused
        } else {
            acc::CaseStatus::Granted
        };
        let decided = self
            .step(&ac, &case_id, &[target], || {
                let mut ac = ac.clone();
                let r = r.clone();
                async move { ac.decide(r).await }
            })
            .await
            .map_err(|e| format!("Decide: {e}"))?;
        if decided.status() != target {
            return Err(format!(
                "Decide: case ended as {:?}, expected {target:?}",
                decided.status()
            ));
        }
        // Every fourth granted decision is extended at once: the amendment's event follows the
        // decision's closely, so assignment may see it before it has assigned the product.
        let mut amended = false;
        if !refuse
            && i % 4 == 1
            && let Some(first) = decided.products.first()
        {
            let r = acc::AmendProductRequest {
                product_id: first.id.clone(),
                amendment: acc::Amendment::Extend as i32,
                date: "2022-09-01".into(),
                new_end: "2023-12-31".into(),
                ..Default::default()
            };
            let product_id = first.id.clone();
            self.amend(&ac, &case_id, &product_id, || {
                let mut ac = ac.clone();
                let r = r.clone();
                async move { ac.amend_product(r).await }
            })
            .await
            .map_err(|e| format!("AmendProduct: {e}"))?;
            amended = true;
        }
        Ok(FlowRecord {
            index: i,
            municipality: m,
            case_id,
            products,
            amended,
        })
    }

    /// A case step without an idempotency key. After a transient failure the step may have been
    /// applied before the connection broke: the case's status says whether it was, so it is sent
    /// again only when it was not.
    async fn step<F, Fut>(
        &self,
        ac: &AccessServiceClient<Channel>,
        case_id: &str,
        done: &[acc::CaseStatus],
        call: F,
    ) -> Result<acc::Case, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<acc::Case>, Status>>,
    {
        let applied = |case: &acc::Case| done.contains(&case.status());
        Ok(match self.once(ac, case_id, applied, call).await? {
            Sent::Replied(case) => case,
            Sent::Applied(case) => *case,
        })
    }

    /// An amendment (no idempotency key): after a transient failure the product's version says
    /// whether it was applied before the connection broke.
    async fn amend<F, Fut>(
        &self,
        ac: &AccessServiceClient<Channel>,
        case_id: &str,
        product_id: &str,
        call: F,
    ) -> Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<acc::GrantedProduct>, Status>>,
    {
        let applied = |case: &acc::Case| {
            case.products
                .iter()
                .any(|p| p.id == product_id && p.version > 1)
        };
        self.once(ac, case_id, applied, call).await.map(|_| ())
    }

    /// Sends a command without an idempotency key until it is answered or, after a transient
    /// failure, the case shows it `applied` (a FAILED_PRECONDITION after a failure may mean that
    /// the first attempt went through).
    async fn once<T, F, Fut>(
        &self,
        ac: &AccessServiceClient<Channel>,
        case_id: &str,
        applied: impl Fn(&acc::Case) -> bool,
        mut call: F,
    ) -> Result<Sent<T>, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + RETRY_FOR;
        let mut failed_before = false;
        loop {
            match call().await {
                Ok(reply) => return Ok(Sent::Replied(reply.into_inner())),
                Err(s)
                    if (is_transient(s.code())
                        || (failed_before && s.code() == Code::FailedPrecondition))
                        && Instant::now() < deadline =>
                {
                    self.stats.retries.record(s.code());
                    failed_before = true;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let get = acc::GetCaseRequest {
                        case_id: case_id.to_owned(),
                    };
                    let case = retry(&self.stats.retries, || {
                        let mut ac = ac.clone();
                        let g = get.clone();
                        async move { ac.get_case(g).await }
                    })
                    .await
                    .map_err(status_msg("GetCase"))?
                    .into_inner();
                    if applied(&case) {
                        return Ok(Sent::Applied(Box::new(case)));
                    }
                }
                Err(s) => return Err(format!("{:?} {}", s.code(), s.message())),
            }
        }
    }

    /// Runs care flows with `concurrency` workers until `stop` is set, starting at most `rate`
    /// flows per second (0 = as fast as the workers go).
    pub async fn run_flows(self: Arc<Self>, concurrency: usize, rate: f64, stop: Arc<AtomicBool>) {
        let next = Arc::new(AtomicU32::new(0));
        let t0 = tokio::time::Instant::now();
        let mut workers = Vec::new();
        for _ in 0..concurrency.max(1) {
            let load = self.clone();
            let stop = stop.clone();
            let next = next.clone();
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if rate > 0.0 {
                        tokio::time::sleep_until(t0 + Duration::from_secs_f64(f64::from(i) / rate))
                            .await;
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    load.stats.flows_started.fetch_add(1, Ordering::Relaxed);
                    match load.flow(i).await {
                        Ok(rec) => {
                            if rec.products > 0 {
                                load.stats.granted.fetch_add(1, Ordering::Relaxed);
                            } else {
                                load.stats.refused.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Ok(mut r) = load.stats.records.lock() {
                                r.push(rec);
                            }
                        }
                        Err(e) => {
                            load.stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(flow = i, error = %e, "care flow failed");
                            load.stats.fail(format!("flow {i}: {e}"));
                        }
                    }
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
    }

    /// Existing care of every provider whose contracts ended on 2022-06-30: `per_provider` clients
    /// each, imported with their start of care (as the demo does).
    pub async fn import_existing_care(&self, per_provider: u32) -> Result<(), String> {
        let contracts = self.contracts("2022-06-30").await?;
        let mut jobs = Vec::new();
        let mut n = 0u32;
        for c in contracts.iter().filter(|c| c.terminated_on == "2022-06-30") {
            for k in 0..per_provider {
                n += 1;
                let ms: Vec<&String> = c
                    .municipalities
                    .iter()
                    .filter(|m| self.access.contains_key(*m))
                    .collect();
                if ms.is_empty() || c.subsegment_codes.is_empty() {
                    continue;
                }
                let m = ms[(n as usize) % ms.len()].clone();
                let sub = c.subsegment_codes[(k as usize) % c.subsegment_codes.len()].clone();
                jobs.push((n, m, sub, c.agb_code.clone()));
            }
        }
        stream::iter(jobs)
            .map(|(n, m, sub, agb)| async move {
                let r = self.import_one(n, &m, &sub, &agb).await;
                match r {
                    Ok(()) => {
                        self.stats.imported.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.stats.import_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(import = n, error = %e, "import failed");
                        self.stats.fail(format!("import {n}: {e}"));
                    }
                }
            })
            .buffer_unordered(4)
            .collect::<Vec<()>>()
            .await;
        Ok(())
    }

    async fn import_one(&self, n: u32, m: &str, sub: &str, agb: &str) -> Result<(), String> {
        let Some(sub) = self.subs.iter().find(|s| s.code == sub).cloned() else {
            return Err(format!("subsegment {sub} not in the catalogue"));
        };
        let b = self.resident(m, n, sub.is_youth()).await?;
        let p = catalogue::product(&sub, "2021-09-01", "2023-08-31");
        let req = CHAOS.import(n, m, b, agb, p);
        retry(&self.stats.retries, || {
            let mut a = self.assignment.clone();
            let r = req.clone();
            async move { a.import_assignment(r).await }
        })
        .await
        .map_err(status_msg("ImportAssignment"))?;
        Ok(())
    }

    /// (AGB, subsegment, municipality) of every contract that covers `date`.
    pub async fn contracted_on(
        &self,
        date: &str,
    ) -> Result<std::collections::HashSet<(String, String, String)>, String> {
        let contracts = self.contracts(date).await?;
        let mut out = std::collections::HashSet::new();
        for c in contracts {
            for sub in &c.subsegment_codes {
                for m in &c.municipalities {
                    out.insert((c.agb_code.clone(), sub.clone(), m.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Every contract that covers `date`.
    async fn contracts(&self, date: &str) -> Result<Vec<reg::Contract>, String> {
        let contracts = retry(&self.stats.retries, || {
            let mut r = self.registration.clone();
            let date = date.to_owned();
            async move {
                r.list_contracts(reg::ListContractsRequest {
                    active_on: date,
                    ..Default::default()
                })
                .await
            }
        })
        .await
        .map_err(status_msg("ListContracts"))?;
        Ok(contracts.into_inner().contracts)
    }

    /// One handover run as of 2022-07-01 over every municipality.
    pub async fn run_handover(&self) -> Result<asg::RunHandoverResponse, String> {
        retry_for(&self.stats.retries, Duration::from_secs(600), || {
            let mut a = self.handover.clone();
            async move {
                a.run_handover(asg::RunHandoverRequest {
                    as_of: "2022-07-01".into(),
                    municipality: String::new(),
                })
                .await
            }
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(status_msg("RunHandover"))
    }
}
