//! Existing care loaded before the measurements, as a region migrates at go-live: started
//! assignments through `ImportAssignments` (batches of [`BATCH`], a few in flight). Clients of
//! providers whose contracts ended on 2022-06-30 are the ones the handover moves; clients of
//! providers with a running contract only add volume (the national scale).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::{StreamExt, stream};
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use serde_json::json;
use tokio::sync::Mutex;

use crate::BenchError;
use rz_workload::catalogue::product;
use rz_workload::residents::bsn;

use crate::flow::{BENCH, Endpoints, Sub};
use crate::stats::rate;

/// Items per ImportAssignments call.
pub const BATCH: usize = 500;
/// Calls in flight.
const IN_FLIGHT: usize = 4;

/// Which existing care to load. Client numbers `first .. first + ended + ongoing` (BSNs from
/// [`bsn`]) must not overlap another preload of the same run.
pub struct PreloadSpec {
    pub first: u64,
    /// Clients of providers whose contracts ended on 2022-06-30 (to be handed over).
    pub ended: u64,
    /// Clients of providers whose contracts run on after 2022-07-01.
    pub ongoing: u64,
}

/// What a preload did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    pub imported: u64,
    pub replayed: u64,
    pub refused: u64,
    pub seconds: f64,
    /// The first client number after this preload's.
    pub next: u64,
}

impl Loaded {
    pub fn json(&self) -> serde_json::Value {
        let per_s = rate(
            self.imported + self.replayed,
            std::time::Duration::from_secs_f64(self.seconds),
        );
        json!({
            "imported": self.imported,
            "replayed": self.replayed,
            "refused": self.refused,
            "seconds": self.seconds,
            "imports_per_s": per_s,
            "how": format!("ImportAssignments, {BATCH} per call, {IN_FLIGHT} calls in flight"),
        })
    }
}

async fn contracts(
    e: &Endpoints,
    active_on: &str,
    keep: impl Fn(&reg::Contract) -> bool,
) -> Result<Vec<reg::Contract>, BenchError> {
    Ok(RegistrationServiceClient::new(e.registration.clone())
        .list_contracts(reg::ListContractsRequest {
            active_on: active_on.into(),
            ..Default::default()
        })
        .await
        .map_err(|s| BenchError::Failed(format!("ListContracts: {:?} {}", s.code(), s.message())))?
        .into_inner()
        .contracts
        .into_iter()
        .filter(|c| !c.municipalities.is_empty() && !c.subsegment_codes.is_empty() && keep(c))
        .collect())
}

/// The `pick`-th spread of `list` (contract, subsegment and municipality evenly) for client number
/// `client`; `None` when that contract's subsegment is not contracted in that municipality.
fn item(
    pick: u64,
    client: u64,
    list: &[reg::Contract],
    subs: &[Sub],
    start: &str,
) -> Option<asg::ImportAssignmentRequest> {
    let i = pick as usize;
    let c = list.get(i % list.len().max(1))?;
    let round = i / list.len().max(1);
    let code = c.subsegment_codes.get(round % c.subsegment_codes.len())?;
    let sub = subs.iter().find(|s| &s.code == code)?;
    let m = c.municipalities.get((round / 7) % c.municipalities.len())?;
    if !sub.municipalities.contains(m) {
        return None;
    }
    let start = match c.period.as_ref().map(|p| p.start.as_str()) {
        Some(s) if s > start => s.to_owned(),
        _ => start.to_owned(),
    };
    let p = product(sub, &start, "2023-12-31");
    let bsn = bsn(1_000_000 + client as u32);
    Some(BENCH.import(client, m, bsn, &c.agb_code, p))
}

/// Appends `count` items of `list` starting at spread `pick`, for clients `*next`, `*next + 1`,
/// ...; a spread that gives no item is skipped (a further one takes its place).
#[allow(clippy::too_many_arguments)]
fn take(
    items: &mut Vec<asg::ImportAssignmentRequest>,
    count: u64,
    list: &[reg::Contract],
    subs: &[Sub],
    start: &str,
    mut pick: u64,
    next: &mut u64,
    what: &str,
) -> Result<(), BenchError> {
    let want = items.len() as u64 + count;
    let mut misses = 0u64;
    while (items.len() as u64) < want {
        match item(pick, *next, list, subs, start) {
            Some(i) => {
                items.push(i);
                *next += 1;
            }
            None => misses += 1,
        }
        pick += 1;
        if misses > 10 * count + 1_000 {
            return Err(BenchError::Failed(format!(
                "{what} give no importable item"
            )));
        }
    }
    Ok(())
}

/// Loads the existing care of `spec`; `progress` names it in the log.
pub async fn bulk(
    e: &Endpoints,
    subs: &[Sub],
    spec: &PreloadSpec,
    progress: &str,
) -> Result<Loaded, BenchError> {
    let ended = contracts(e, "2022-06-30", |c| c.terminated_on == "2022-06-30").await?;
    let ongoing = if spec.ongoing > 0 {
        contracts(e, "2022-07-01", |c| c.terminated_on.is_empty()).await?
    } else {
        Vec::new()
    };
    if spec.ended > 0 && ended.is_empty() {
        return Err(BenchError::Failed(
            "no contract ended on 2022-06-30 (nothing to hand over)".into(),
        ));
    }
    if spec.ongoing > 0 && ongoing.is_empty() {
        return Err(BenchError::Failed(
            "no contract runs on after 2022-07-01".into(),
        ));
    }
    // Exactly ended + ongoing items, for consecutive client numbers from `spec.first`.
    let mut items: Vec<asg::ImportAssignmentRequest> =
        Vec::with_capacity((spec.ended + spec.ongoing) as usize);
    let mut n = spec.first;
    take(
        &mut items,
        spec.ended,
        &ended,
        subs,
        "2021-09-01",
        spec.first,
        &mut n,
        "ended contracts",
    )?;
    take(
        &mut items,
        spec.ongoing,
        &ongoing,
        subs,
        "2022-07-01",
        0,
        &mut n,
        "running contracts",
    )?;
    let total = items.len() as u64;
    let done = AtomicU64::new(0);
    let first_error = Mutex::new(None::<BenchError>);
    let out = Mutex::new(Loaded::default());
    let started = Instant::now();
    let batches: Vec<Vec<asg::ImportAssignmentRequest>> =
        items.chunks(BATCH).map(<[_]>::to_vec).collect();
    drop(items);
    stream::iter(batches)
        .for_each_concurrent(IN_FLIGHT, |batch| {
            let mut client = AssignmentServiceClient::new(e.assignment.clone())
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20);
            let (done, first_error, out) = (&done, &first_error, &out);
            async move {
                let len = batch.len() as u64;
                // A batch that fails as a whole (a dependency restarting) is sent again: the
                // idempotency keys make that safe.
                let mut tries = 0;
                let reply =
                    loop {
                        tries += 1;
                        match client
                            .import_assignments(asg::ImportAssignmentsRequest {
                                assignments: batch.clone(),
                            })
                            .await
                        {
                            Ok(r) => break Some(r.into_inner()),
                            Err(s) if tries < 3 && s.code() != tonic::Code::InvalidArgument => {
                                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            }
                            Err(s) => {
                                first_error.lock().await.get_or_insert(BenchError::Failed(
                                    format!("ImportAssignments: {:?} {}", s.code(), s.message()),
                                ));
                                break None;
                            }
                        }
                    };
                if let Some(r) = reply {
                    let mut o = out.lock().await;
                    o.imported += u64::from(r.imported);
                    o.replayed += u64::from(r.replayed);
                    o.refused += u64::from(r.refused);
                    if r.refused > 0
                        && o.refused == u64::from(r.refused)
                        && let Some(first) = r.outcomes.iter().find_map(|x| x.refused.as_ref())
                    {
                        eprintln!(
                            "bench: first refused import: {} {}",
                            first.code, first.message
                        );
                    }
                }
                let d = done.fetch_add(len, Ordering::Relaxed) + len;
                if d / 100_000 != (d - len) / 100_000 {
                    eprintln!(
                        "bench: {progress}: {d} of {total} imported ({:.0}/s)",
                        d as f64 / started.elapsed().as_secs_f64().max(0.001)
                    );
                }
            }
        })
        .await;
    if let Some(err) = first_error.into_inner() {
        return Err(err);
    }
    let mut loaded = out.into_inner();
    loaded.seconds = started.elapsed().as_secs_f64();
    loaded.next = n;
    Ok(loaded)
}
