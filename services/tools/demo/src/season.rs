//! The half year from 1 July 2022, week by week in compressed time.
//!
//! Each week the demo moves the services' clock (a file that access and assignment read, see
//! `rz_platform::clock::FileClock`) to the week's last day and then, as the region's people would:
//! - residents of the eight municipalities report a need (Wmo melding) or apply (Jeugdwet);
//! - access staff finish investigations and decide, mostly within the statutory terms, a few
//!   late; a few requests are refused; some granted products are changed, extended or ended later;
//! - GPs refer children to a youth provider, which asks the municipality for an assignment (315);
//!   the municipality answers within a few working days (319 when refused);
//! - in the first eight weeks the handover moves the clients of the providers without a new
//!   contract, one municipality a week.
//!
//! Every step goes through the services' public gRPC APIs; assignment picks providers and the
//! provider simulator starts care, as in production. Steps are scheduled on dates and run in date
//! order; a step whose date falls after 31 December stays undone (cases still open at year end).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chrono::{Days, NaiveDate};
use futures::{StreamExt, stream};
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as asg;
use rz_proto::notification::v1 as ntf;
use rz_proto::registration::v1 as reg;
use rz_proto::types::v1 as types;

use rz_workload::residents::{GP, MUNICIPALITIES};
use rz_workload::{catalogue, flow};

use crate::{Clients, DEMO, Result, Sub, again, status_msg};

/// The first day of the half year, and its last.
pub fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 7, 1).unwrap_or_default()
}
pub fn last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 12, 31).unwrap_or_default()
}

fn plus(d: NaiveDate, days: u64) -> NaiveDate {
    d.checked_add_days(Days::new(days)).unwrap_or(d)
}

/// A deterministic pseudo-random number in `0..m` for resident `n` (splitmix64).
pub fn roll(n: u32, salt: u32, m: u32) -> u32 {
    let mut z = (u64::from(n) << 16 ^ u64::from(salt)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % u64::from(m.max(1))) as u32
}

/// Days until resident `n`'s next step: one in twenty late (`late` weeks), the others after
/// `from` to `from + weeks - 1` weeks; plus 0 to `days - 1` days. Draws with salts `salt`,
/// `salt + 1` and `salt + 2`.
fn after(n: u32, salt: u32, late: u64, from: u64, weeks: u32, days: u32) -> u64 {
    let w = if roll(n, salt, 100) < 5 {
        late
    } else {
        from + u64::from(roll(n, salt + 1, weeks))
    };
    7 * w + u64::from(roll(n, salt + 2, days))
}

/// What a week's steps did, counted.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub requests: u32,
    pub investigations: u32,
    pub decisions: u32,
    pub refused: u32,
    pub changes: u32,
    pub gp_requests: u32,
    pub gp_granted: u32,
    pub gp_refused: u32,
    pub handed_over: u32,
    pub alerts_opened: u32,
    pub alerts_overdue: u32,
    pub failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.investigations += o.investigations;
        self.decisions += o.decisions;
        self.refused += o.refused;
        self.changes += o.changes;
        self.gp_requests += o.gp_requests;
        self.gp_granted += o.gp_granted;
        self.gp_refused += o.gp_refused;
        self.handed_over += o.handed_over;
        self.alerts_opened += o.alerts_opened;
        self.alerts_overdue += o.alerts_overdue;
        self.failures.extend(o.failures.iter().cloned());
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// A new resident reports a need / applies.
    Open { n: u32, m: String, sub: usize },
    /// Wmo: the investigation is done and the application submitted the same day.
    Investigated {
        n: u32,
        m: String,
        sub: usize,
        case_id: String,
    },
    Decide {
        n: u32,
        m: String,
        sub: usize,
        case_id: String,
    },
    Amend {
        n: u32,
        m: String,
        sub: usize,
        product_id: String,
        end: NaiveDate,
    },
    /// A provider asks for an assignment after a GP referral.
    Referral { k: u32, m: String, sub: usize },
    /// The municipality answers a provider's request.
    Answer {
        k: u32,
        m: String,
        request_id: String,
    },
}

struct Done {
    tally: Tally,
    next: Vec<(NaiveDate, Step)>,
}

impl Done {
    fn one(f: impl FnOnce(&mut Tally)) -> Self {
        let mut tally = Tally::default();
        f(&mut tally);
        Self {
            tally,
            next: Vec::new(),
        }
    }
    fn then(mut self, d: NaiveDate, s: Step) -> Self {
        self.next.push((d, s));
        self
    }
}

pub struct Season<'a> {
    pub clients: &'a Clients,
    pub subs: &'a [Sub],
    pub clock_file: &'a str,
    pub requests_per_week: u32,
    pub referrals_per_week: u32,
    /// Contracted youth providers per (subsegment, municipality), for the GP referrals.
    contracted: HashMap<(String, String), Vec<String>>,
    /// The event consumers a week waits for.
    lag: Option<crate::lag::Lag>,
}

const PARALLEL: usize = 16;

impl<'a> Season<'a> {
    pub fn new(
        clients: &'a Clients,
        subs: &'a [Sub],
        clock_file: &'a str,
        requests_per_week: u32,
        referrals_per_week: u32,
    ) -> Self {
        Self {
            clients,
            subs,
            clock_file,
            requests_per_week,
            referrals_per_week,
            contracted: HashMap::new(),
            lag: None,
        }
    }

    pub fn set_clock(&self, d: NaiveDate) -> Result<()> {
        std::fs::write(self.clock_file, format!("{d}\n"))
            .map_err(|e| format!("{}: {e}", self.clock_file))
    }

    /// The subsegments a resident of `m` can get (joint contracts; not dyslexia or household help,
    /// which run outside them).
    fn eligible(&self, m: &str) -> Vec<usize> {
        (0..self.subs.len())
            .filter(|&i| self.subs[i].municipalities.iter().any(|x| x == m))
            .collect()
    }

    /// Plays the half year; prints a line per week.
    pub async fn play(&mut self) -> Result<Tally> {
        let mut queue: BTreeMap<NaiveDate, Vec<Step>> = BTreeMap::new();
        let referral_subs: Vec<usize> = (0..self.subs.len())
            .filter(|&i| self.subs[i].segment == "IAJ")
            .collect();
        // Who is contracted for the referral subsegments (contracts run from 1 July 2022).
        for &i in &referral_subs {
            for (m, _, _) in MUNICIPALITIES {
                let code = self.subs[i].code.clone();
                let list = self
                    .clients
                    .registration
                    .clone()
                    .list_contracted_providers(reg::ListContractedProvidersRequest {
                        subsegment_code: code.clone(),
                        municipality: m.to_owned(),
                        date: plus(first_day(), 14).to_string(),
                    })
                    .await
                    .map_err(status_msg("ListContractedProviders"))?
                    .into_inner()
                    .providers
                    .into_iter()
                    .filter_map(|p| p.provider.map(|p| p.agb_code))
                    .collect();
                self.contracted.insert((code, m.to_owned()), list);
            }
        }
        self.lag = match crate::lag::Lag::connect().await {
            Ok(l) => Some(l),
            Err(e) => {
                println!("   (not waiting for the event consumers between weeks: {e})");
                None
            }
        };
        let mut total = Tally::default();
        let mut resident = 100_000u32;
        let mut referral = 0u32;
        println!(
            "   {:<10} {:>8} {:>9} {:>7} {:>7} {:>7} {:>9} {:>9} {:>7} {:>8} {:>8}  time",
            "week of",
            "requests",
            "decisions",
            "refused",
            "changes",
            "GP refs",
            "GP answer",
            "handover",
            "alerts",
            "overdue",
            "failures",
        );
        let mut week = 0u64;
        loop {
            let start = plus(first_day(), 7 * week);
            if start > last_day() {
                break;
            }
            let end = plus(start, 6).min(last_day());
            let timer = Instant::now();
            self.set_clock(end)?;
            // This week's new requests and referrals, spread over its days.
            for i in 0..self.requests_per_week {
                let m = MUNICIPALITIES[(i % 8) as usize].0.to_owned();
                let eligible = self.eligible(&m);
                if eligible.is_empty() {
                    continue;
                }
                let sub = eligible[roll(resident, 1, eligible.len() as u32) as usize];
                let day = plus(start, u64::from(roll(resident, 2, 5)));
                queue.entry(day.min(end)).or_default().push(Step::Open {
                    n: resident,
                    m,
                    sub,
                });
                resident += 1;
            }
            if !referral_subs.is_empty() {
                for i in 0..self.referrals_per_week {
                    let m = MUNICIPALITIES[((i + week as u32) % 8) as usize]
                        .0
                        .to_owned();
                    let sub = referral_subs[roll(referral, 3, referral_subs.len() as u32) as usize];
                    let day = plus(start, u64::from(roll(referral, 4, 5)));
                    queue.entry(day.min(end)).or_default().push(Step::Referral {
                        k: referral,
                        m,
                        sub,
                    });
                    referral += 1;
                }
            }
            let mut tally = Tally::default();
            // The handover, one municipality a week in the first eight weeks.
            if let Some((m, _, _)) = MUNICIPALITIES.get(week as usize) {
                let out = again(|| {
                    let mut c = self.clients.assignment.clone();
                    let r = asg::RunHandoverRequest {
                        as_of: first_day().to_string(),
                        municipality: (*m).to_owned(),
                    };
                    async move { c.run_handover(r).await }
                })
                .await
                .map_err(status_msg("RunHandover"))?;
                tally.handed_over += out.newly_arranged;
            }
            // Every step due this week, in date order; a step may schedule another this week.
            while let Some((&day, _)) = queue.first_key_value() {
                if day > end {
                    break;
                }
                let steps = queue.remove(&day).unwrap_or_default();
                let results = stream::iter(steps)
                    .map(|s| self.run(day, end, s))
                    .buffer_unordered(PARALLEL)
                    .collect::<Vec<_>>()
                    .await;
                for r in results {
                    match r {
                        Ok(done) => {
                            tally.add(&done.tally);
                            for (d, s) in done.next {
                                queue.entry(d.max(day)).or_default().push(s);
                            }
                        }
                        Err(e) => tally.failures.push(e),
                    }
                }
            }
            // The week is over once assignment has assigned its decisions and the providers'
            // systems have answered (a minute at most).
            if let Some(lag) = &self.lag {
                lag.wait(std::time::Duration::from_secs(60)).await?;
            }
            // Staff alerts for deadlines about to pass or passed, as of the week's last day.
            if let Some(mut n) = self.clients.notification.clone() {
                let scan = n
                    .scan_deadlines(ntf::ScanDeadlinesRequest {
                        as_of: end.to_string(),
                    })
                    .await
                    .map_err(status_msg("ScanDeadlines"))?
                    .into_inner();
                tally.alerts_opened += scan.alerts_opened;
                tally.alerts_overdue += scan.alerts_overdue;
                tally.failures.extend(scan.errors);
            }
            println!(
                "   {:<10} {:>8} {:>9} {:>7} {:>7} {:>7} {:>9} {:>9} {:>7} {:>8} {:>8}  {:.1} s",
                start.to_string(),
                tally.requests,
                tally.decisions,
                tally.refused,
                tally.changes,
                tally.gp_requests,
                tally.gp_granted + tally.gp_refused,
                tally.handed_over,
                tally.alerts_opened,
                tally.alerts_overdue,
                tally.failures.len(),
                timer.elapsed().as_secs_f64()
            );
            total.add(&tally);
            week += 1;
        }
        let open = queue.values().map(Vec::len).sum::<usize>();
        println!("   {open} steps fall after 31 December (cases still open at year end)");
        Ok(total)
    }

    async fn run(&self, day: NaiveDate, today: NaiveDate, step: Step) -> Result<Done> {
        match step {
            Step::Open { n, m, sub } => self.open(day, n, m, sub).await,
            Step::Investigated { n, m, sub, case_id } => {
                self.investigated(day, n, m, sub, case_id).await
            }
            Step::Decide { n, m, sub, case_id } => self.decide(day, n, m, sub, case_id).await,
            Step::Amend {
                n,
                m,
                sub,
                product_id,
                end,
            } => self.amend(day, n, m, sub, product_id, end).await,
            Step::Referral { k, m, sub } => self.referral(day, today, k, m, sub).await,
            Step::Answer { k, m, request_id } => self.answer(day, k, m, request_id).await,
        }
    }

    /// Municipality `m`'s access instance, as its consulent.
    fn access(&self, m: &str) -> Result<crate::parties::AccessClient> {
        self.clients.access(m)
    }

    async fn open(&self, day: NaiveDate, n: u32, m: String, sub: usize) -> Result<Done> {
        let s = &self.subs[sub];
        let mut ac = self.access(&m)?;
        let case = crate::open(&mut ac, n, &m, s, day.to_string()).await?;
        let done = Done::one(|t| t.requests += 1);
        let case_id = case.id;
        if s.is_youth() {
            // Jeugdwet: decided within 8 weeks, mostly after 3 to 7; one in twenty late.
            let on = plus(day, after(n, 5, 9, 3, 5, 5));
            Ok(done.then(on, Step::Decide { n, m, sub, case_id }))
        } else {
            // Wmo: the investigation within 6 weeks, mostly after 2 to 5; one in twenty late.
            let on = plus(day, after(n, 8, 7, 2, 4, 4));
            Ok(done.then(on, Step::Investigated { n, m, sub, case_id }))
        }
    }

    async fn investigated(
        &self,
        day: NaiveDate,
        n: u32,
        m: String,
        sub: usize,
        case_id: String,
    ) -> Result<Done> {
        let mut ac = self.access(&m)?;
        ac.complete_investigation(acc::CompleteInvestigationRequest {
            case_id: case_id.clone(),
            date: day.to_string(),
        })
        .await
        .map_err(status_msg("CompleteInvestigation"))?;
        ac.submit_application(acc::SubmitApplicationRequest {
            case_id: case_id.clone(),
            date: day.to_string(),
        })
        .await
        .map_err(status_msg("SubmitApplication"))?;
        // The decision within 2 weeks of the application, mostly after 3 to 10 days.
        let days = if roll(n, 11, 100) < 5 {
            17
        } else {
            3 + u64::from(roll(n, 12, 8))
        };
        Ok(Done::one(|t| t.investigations += 1)
            .then(plus(day, days), Step::Decide { n, m, sub, case_id }))
    }

    async fn decide(
        &self,
        day: NaiveDate,
        n: u32,
        m: String,
        sub: usize,
        case_id: String,
    ) -> Result<Done> {
        let s = &self.subs[sub];
        let mut ac = self.access(&m)?;
        if roll(n, 13, 100) < 4 {
            ac.decide(flow::refusal(case_id, day.to_string()))
                .await
                .map_err(status_msg("Decide"))?;
            return Ok(Done::one(|t| {
                t.decisions += 1;
                t.refused += 1;
            }));
        }
        let start = plus(day, 7);
        let end = plus(start, 364);
        let grant = catalogue::product(s, &start.to_string(), &end.to_string());
        let case = ac
            .decide(flow::decision(case_id, day.to_string(), vec![grant]))
            .await
            .map_err(status_msg("Decide"))?
            .into_inner();
        let done = Done::one(|t| t.decisions += 1);
        // One in twenty granted products is changed, extended or ended about nine weeks later.
        match case.products.first() {
            Some(p) if roll(n, 14, 100) < 5 => Ok(done.then(
                plus(day, 63),
                Step::Amend {
                    n,
                    m,
                    sub,
                    product_id: p.id.clone(),
                    end,
                },
            )),
            _ => Ok(done),
        }
    }

    async fn amend(
        &self,
        day: NaiveDate,
        n: u32,
        m: String,
        sub: usize,
        product_id: String,
        end: NaiveDate,
    ) -> Result<Done> {
        let s = &self.subs[sub];
        let mut r = acc::AmendProductRequest {
            product_id,
            date: day.to_string(),
            ..Default::default()
        };
        let pxq = s.financing == types::Financing::Pxq as i32;
        let output = s.financing == types::Financing::SeparateContract as i32;
        match roll(n, 15, 3) {
            0 if pxq => {
                r.amendment = acc::Amendment::Change as i32;
                r.volume = 5;
                r.unit = "04".into();
                r.frequency = "2".into();
            }
            0 if output => {
                r.amendment = acc::Amendment::Change as i32;
                r.budget_cents = 325_000;
            }
            1 => {
                // Care ends early: the goal is reached.
                r.amendment = acc::Amendment::End as i32;
                r.new_end = plus(day, 14).to_string();
            }
            _ => {
                r.amendment = acc::Amendment::Extend as i32;
                r.new_end = plus(end, 182).to_string();
            }
        }
        self.access(&m)?
            .amend_product(r)
            .await
            .map_err(status_msg("AmendProduct"))?;
        Ok(Done::one(|t| t.changes += 1))
    }

    /// `today` is the services' date: the day the request is received.
    async fn referral(
        &self,
        day: NaiveDate,
        today: NaiveDate,
        k: u32,
        m: String,
        sub: usize,
    ) -> Result<Done> {
        let s = &self.subs[sub];
        let start = plus(day, 14);
        let Some(providers) = self
            .contracted
            .get(&(s.code.clone(), m.clone()))
            .filter(|p| !p.is_empty())
        else {
            return Ok(Done::one(|_| {}));
        };
        let agb = providers[roll(k, 16, providers.len() as u32) as usize].clone();
        let n = 300_000 + k;
        let mut ac = self.access(&m)?;
        let bsn = crate::register(&mut ac, n, &m, true).await?;
        let product = catalogue::product(s, &start.to_string(), &plus(start, 181).to_string());
        // The provider asks, with its own certificate.
        let as_provider = self.clients.providers.assignment(&agb)?;
        let req = asg::RequestAssignmentRequest {
            idempotency_key: DEMO.key("referral", k),
            agb_code: agb,
            municipality: m.clone(),
            bsn,
            subsegment_code: s.code.clone(),
            size: flow::size(&product),
            product_code: product.product_code,
            period: product.period,
            budget_cents: product.budget_cents,
            referrer: Some(asg::Referrer {
                r#type: "02".into(),
                name: GP[(k % GP.len() as u32) as usize].into(),
                agb_code: format!("0100{:04}", 1000 + k % 40),
            }),
        };
        let request = again(|| {
            let mut c = as_provider.clone();
            let r = req.clone();
            async move { c.request_assignment(r).await }
        })
        .await
        .map_err(status_msg("RequestAssignment"))?;
        // The municipality answers within the 5 working days, mostly after 2 to 4 days.
        Ok(Done::one(|t| t.gp_requests += 1).then(
            plus(today, 2 + u64::from(roll(k, 17, 3))),
            Step::Answer {
                k,
                m,
                request_id: request.id,
            },
        ))
    }

    /// Municipality `m` answers, with its own certificate.
    async fn answer(&self, day: NaiveDate, k: u32, m: String, request_id: String) -> Result<Done> {
        let municipality = self.clients.assignment_as(&m)?;
        let grant = roll(k, 18, 100) >= 12;
        let answer = asg::AnswerRequestRequest {
            request_id,
            grant,
            // WJ759 7: zorginhoudelijke afkeur (the care asked for does not fit the need).
            refusal_reason: if grant { String::new() } else { "7".into() },
            date: day.to_string(),
        };
        again(|| {
            let mut c = municipality.clone();
            let r = answer.clone();
            async move { c.answer_request(r).await }
        })
        .await
        .map_err(status_msg("AnswerRequest"))?;
        Ok(Done::one(|t| {
            if grant {
                t.gp_granted += 1
            } else {
                t.gp_refused += 1
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{after, roll};

    #[test]
    fn step_dates_draw_as_they_always_did() {
        for n in 100_000..100_500 {
            let youth = if roll(n, 5, 100) < 5 {
                9
            } else {
                3 + u64::from(roll(n, 6, 5))
            };
            assert_eq!(
                after(n, 5, 9, 3, 5, 5),
                7 * youth + u64::from(roll(n, 7, 5))
            );
            let wmo = if roll(n, 8, 100) < 5 {
                7
            } else {
                2 + u64::from(roll(n, 9, 4))
            };
            assert_eq!(after(n, 8, 7, 2, 4, 4), 7 * wmo + u64::from(roll(n, 10, 4)));
        }
    }
}
