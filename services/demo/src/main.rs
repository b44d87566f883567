//! `regiozorg-demo --registration URL --assignment URL --access CODE=URL ...`
//!
//! Plays the region's care flow through the services' public gRPC APIs, as municipalities and
//! providers would: existing care of the providers whose contracts ended on 30 June 2022 is loaded,
//! residents of all eight municipalities apply and get decisions in every segment and financing
//! variant (the assignment service picks contracted providers; the provider simulator starts care),
//! and the handover moves every client of a provider without a new contract. It ends with a report.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use rz_domain::{Bsn, ClientKey};
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::types::v1 as types;
use tonic::transport::Channel;

type Result<T> = std::result::Result<T, String>;

struct Args {
    registration: String,
    assignment: String,
    reporting: String,
    reports_dir: String,
    messages_dir: String,
    access: BTreeMap<String, String>,
    secret: String,
    clients_per_old_provider: u32,
    new_requests: u32,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        registration: String::new(),
        assignment: String::new(),
        reporting: String::new(),
        reports_dir: "var/demo/reports".into(),
        messages_dir: "var/demo/messages".into(),
        access: BTreeMap::new(),
        secret: std::env::var("RZ_CLIENT_KEY_SECRET").unwrap_or_default(),
        clients_per_old_provider: 8,
        new_requests: 400,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--registration" => a.registration = v.clone(),
            "--assignment" => a.assignment = v.clone(),
            "--reporting" => a.reporting = v.clone(),
            "--reports-dir" => a.reports_dir = v.clone(),
            "--messages-dir" => a.messages_dir = v.clone(),
            "--access" => {
                let (code, url) = v.split_once('=').ok_or("--access takes CODE=URL")?;
                a.access.insert(code.to_owned(), url.to_owned());
            }
            "--clients-per-old-provider" => {
                a.clients_per_old_provider = v.parse().map_err(|_| "not a number")?
            }
            "--new-requests" => a.new_requests = v.parse().map_err(|_| "not a number")?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.registration.is_empty()
        || a.assignment.is_empty()
        || a.access.is_empty()
        || a.secret.is_empty()
    {
        return Err("usage: RZ_CLIENT_KEY_SECRET=... regiozorg-demo --registration URL --assignment URL --access CODE=URL... [--reporting URL] [--reports-dir DIR] [--messages-dir DIR]".into());
    }
    Ok(a)
}

/// A deterministic valid BSN for resident number `n`.
fn bsn(n: u32) -> String {
    const W: [u32; 8] = [9, 8, 7, 6, 5, 4, 3, 2];
    let mut head = 20_000_000 + n * 10;
    loop {
        let s = format!("{head:08}");
        let sum: u32 = s.bytes().zip(W).map(|(b, w)| u32::from(b - b'0') * w).sum();
        if sum % 11 < 10 {
            return format!("{s}{}", sum % 11);
        }
        head += 1;
    }
}

const GIVEN: [&str; 12] = [
    "Anna", "Daan", "Emma", "Sem", "Julia", "Lucas", "Tess", "Finn", "Sara", "Noah", "Lotte",
    "Bram",
];
const FAMILY: [&str; 12] = [
    "Jansen",
    "de Vries",
    "Bosman",
    "Wolters",
    "Te Lintelo",
    "Hendriks",
    "Roelofs",
    "Ten Have",
    "Meijer",
    "Klein Gunnewiek",
    "Ebbers",
    "Nijhof",
];
const POSTAL: [(&str, &str, &str); 8] = [
    ("0197", "7121", "Aalten"),
    ("1859", "7271", "Borculo"),
    ("1876", "7221", "Steenderen"),
    ("0222", "7001", "Doetinchem"),
    ("1955", "6941", "Didam"),
    ("1586", "7141", "Groenlo"),
    ("1509", "7081", "Gendringen"),
    ("0294", "7101", "Winterswijk"),
];

fn status_msg(what: &str) -> impl Fn(tonic::Status) -> String + '_ {
    move |s| format!("{what}: {:?} {}", s.code(), s.message())
}

/// Registers resident `n` in the municipality's access (idempotent).
async fn resident(
    access: &mut AccessServiceClient<Channel>,
    m: &str,
    n: u32,
    minor: bool,
) -> Result<String> {
    let b = bsn(n);
    let (_, pc, city) =
        POSTAL
            .iter()
            .find(|p| p.0 == m)
            .copied()
            .unwrap_or(("0222", "7001", "Doetinchem"));
    let birth = if minor {
        format!("{}-0{}-1{}", 2008 + n % 8, 1 + n % 9, n % 10)
    } else {
        format!("{}-0{}-2{}", 1950 + n % 50, 1 + n % 9, n % 8)
    };
    access
        .register_resident(acc::RegisterResidentRequest {
            idempotency_key: format!("demo-resident-{n}"),
            bsn: b.clone(),
            given_names: GIVEN[(n % 12) as usize].into(),
            family_name: FAMILY[(n / 12 % 12) as usize].into(),
            birth_date: birth,
            address: Some(acc::Address {
                street: "Dorpsstraat".into(),
                house_number: format!("{}", 1 + n % 120),
                postal_code: format!(
                    "{pc}{}{}",
                    (b'A' + (n % 26) as u8) as char,
                    (b'A' + (n / 26 % 26) as u8) as char
                ),
                city: city.into(),
                municipality: m.into(),
            }),
            legal_representative: minor.then(|| acc::LegalRepresentative {
                name: "Ouder".into(),
                relation: "ouder".into(),
            }),
            gender: ["0", "1", "2"][(n % 3) as usize].into(),
        })
        .await
        .map_err(status_msg("RegisterResident"))?;
    Ok(b)
}

#[derive(Clone)]
struct Sub {
    code: String,
    segment: String,
    law: i32,
    financing: i32,
    municipalities: Vec<String>,
    /// The region's product codes (PxQ and separately contracted subsegments name one).
    product_codes: Vec<String>,
}

fn product_for(sub: &Sub, start: &str, end: &str, preferred: &str) -> acc::ProductToGrant {
    let mut p = acc::ProductToGrant {
        subsegment_code: sub.code.clone(),
        result: "Zelfstandig wonen en meedoen in de buurt".into(),
        goal: acc::Goal::Participation as i32,
        period: Some(types::Period {
            start: start.into(),
            end: end.into(),
        }),
        preferred_provider_agb: preferred.into(),
        product_code: sub.product_codes.first().cloned().unwrap_or_default(),
        ..Default::default()
    };
    if sub.financing == types::Financing::Pxq as i32 {
        p.volume = 3;
        p.unit = "04".into();
        p.frequency = "2".into();
    } else if sub.financing == types::Financing::SeparateContract as i32 {
        p.budget_cents = 250_000;
    }
    p
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regiozorg-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let connect = |u: String| async move {
        Channel::from_shared(u.clone())
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("{u}: {e}"))
    };
    let mut registration =
        RegistrationServiceClient::new(connect(args.registration.clone()).await?);
    let assignment = AssignmentServiceClient::new(connect(args.assignment.clone()).await?);
    let mut access: HashMap<String, AccessServiceClient<Channel>> = HashMap::new();
    for (m, u) in &args.access {
        access.insert(
            m.clone(),
            AccessServiceClient::new(connect(u.clone()).await?),
        );
    }
    let catalogue = registration
        .get_catalogue(reg::GetCatalogueRequest {})
        .await
        .map_err(status_msg("GetCatalogue"))?
        .into_inner();
    let subs: Vec<Sub> = catalogue
        .lots
        .iter()
        .flat_map(|l| &l.segments)
        .flat_map(|s| {
            s.subsegments.iter().map(|ss| Sub {
                code: ss.code.clone(),
                segment: s.code.clone(),
                law: s.law,
                financing: ss.financing,
                municipalities: s.municipalities.clone(),
                product_codes: ss.product_codes.clone(),
            })
        })
        .filter(|s| s.segment != "DYS" && s.segment != "HBH")
        .collect();

    // 1. Existing care of the providers whose contracts ended on 2022-06-30.
    println!("\n1. Existing care of providers without a new contract (started before 1 July 2022)");
    let ended = registration
        .list_contracts(reg::ListContractsRequest {
            active_on: "2022-06-30".into(),
            ..Default::default()
        })
        .await
        .map_err(status_msg("ListContracts"))?
        .into_inner()
        .contracts
        .into_iter()
        .filter(|c| c.terminated_on == "2022-06-30")
        .collect::<Vec<_>>();
    let mut jobs = Vec::new();
    let mut n = 0u32;
    for c in &ended {
        for i in 0..args.clients_per_old_provider {
            n += 1;
            let m = c.municipalities[(n as usize) % c.municipalities.len()].clone();
            let sub = c.subsegment_codes[(i as usize) % c.subsegment_codes.len()].clone();
            jobs.push((n, m, sub, c.agb_code.clone()));
        }
    }
    let imported = stream::iter(jobs)
        .map(|(n, m, sub, agb)| {
            let mut acc_client = access.get(&m).cloned();
            let mut asg_client = assignment.clone();
            let sub = subs.iter().find(|s| s.code == sub).cloned();
            async move {
                let (Some(ac), Some(sub)) = (acc_client.as_mut(), sub) else {
                    return Err("no access or subsegment".to_string());
                };
                let minor = sub.law == types::Law::Jeugdwet as i32;
                let b = resident(ac, &m, n, minor).await?;
                let p = product_for(&sub, "2021-09-01", "2023-08-31", "");
                asg_client
                    .import_assignment(asg::ImportAssignmentRequest {
                        idempotency_key: format!("demo-import-{n}"),
                        municipality: m.clone(),
                        bsn: b,
                        client_key: String::new(),
                        agb_code: agb,
                        subsegment_code: sub.code.clone(),
                        product_code: p.product_code,
                        period: p.period,
                        size: (p.volume > 0).then_some(asg::Size {
                            volume: p.volume,
                            unit: p.unit,
                            frequency: p.frequency,
                        }),
                        budget_cents: p.budget_cents,
                        started: true,
                    })
                    .await
                    .map_err(status_msg("ImportAssignment"))
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let failures: Vec<_> = imported.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "   {} clients of {} former providers loaded ({} refused{})",
        imported.len() - failures.len(),
        ended.len(),
        failures.len(),
        failures
            .first()
            .map(|e| format!(", e.g. {e}"))
            .unwrap_or_default()
    );

    // 2. New residents apply; access decides; assignment picks providers; providers start care.
    println!(
        "\n2. {} residents apply for support and get a decision (all municipalities, segments and financing variants)",
        args.new_requests
    );
    let offset = 100_000;
    let decided = stream::iter(0..args.new_requests)
        .map(|i| {
            let m = POSTAL[(i % 8) as usize].0.to_owned();
            let eligible: Vec<&Sub> = subs
                .iter()
                .filter(|s| s.municipalities.contains(&m))
                .collect();
            let sub = eligible[(i as usize / 8) % eligible.len().max(1)].clone();
            let mut ac = access.get(&m).cloned();
            async move {
                let Some(ac) = ac.as_mut() else {
                    return Err(format!("no access for {m}"));
                };
                let youth = sub.law == types::Law::Jeugdwet as i32;
                let b = resident(ac, &m, offset + i, youth).await?;
                let day = 1 + i % 28;
                let case = ac
                    .open_case(acc::OpenCaseRequest {
                        idempotency_key: format!("demo-case-{i}"),
                        bsn: b,
                        law: sub.law,
                        date: format!("2022-07-{day:02}"),
                    })
                    .await
                    .map_err(status_msg("OpenCase"))?
                    .into_inner();
                if matches!(
                    case.status(),
                    acc::CaseStatus::Granted | acc::CaseStatus::Refused
                ) {
                    return Ok(());
                }
                let mut decide_on = format!("2022-08-{day:02}");
                if !youth {
                    ac.complete_investigation(acc::CompleteInvestigationRequest {
                        case_id: case.id.clone(),
                        date: format!("2022-07-{:02}", day.min(27) + 1),
                    })
                    .await
                    .map_err(status_msg("CompleteInvestigation"))?;
                    ac.submit_application(acc::SubmitApplicationRequest {
                        case_id: case.id.clone(),
                        date: format!("2022-08-{day:02}"),
                    })
                    .await
                    .map_err(status_msg("SubmitApplication"))?;
                    decide_on = format!("2022-08-{:02}", (day + 7).min(31));
                }
                if i % 25 == 24 {
                    ac.decide(acc::DecideRequest {
                        case_id: case.id,
                        date: decide_on,
                        grant: vec![],
                        refusal_reason: "Voorliggende voorziening volstaat".into(),
                    })
                    .await
                    .map_err(status_msg("Decide"))?;
                    return Ok(());
                }
                let product = product_for(&sub, "2022-09-01", "2023-08-31", "");
                ac.decide(acc::DecideRequest {
                    case_id: case.id,
                    date: decide_on,
                    grant: vec![product],
                    refusal_reason: String::new(),
                })
                .await
                .map_err(status_msg("Decide"))?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<Result<()>>>()
        .await;
    let failures: Vec<_> = decided.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "   {} decisions made ({} failed{})",
        decided.len() - failures.len(),
        failures.len(),
        failures
            .first()
            .map(|e| format!(", e.g. {e}"))
            .unwrap_or_default()
    );

    // 3. The handover.
    println!("\n3. The handover of every client of a provider without a new contract");
    let mut a = assignment.clone();
    let first = a
        .run_handover(asg::RunHandoverRequest {
            as_of: "2022-07-01".into(),
            municipality: String::new(),
        })
        .await
        .map_err(status_msg("RunHandover"))?
        .into_inner();
    println!(
        "   run 1: {} examined, {} newly arranged, {} already arranged, {} without a contracted provider",
        first.examined, first.newly_arranged, first.already_arranged, first.not_arranged
    );
    let second = a
        .run_handover(asg::RunHandoverRequest {
            as_of: "2022-07-01".into(),
            municipality: String::new(),
        })
        .await
        .map_err(status_msg("RunHandover"))?
        .into_inner();
    println!(
        "   run 2 (idempotent): {} newly arranged, {} already arranged",
        second.newly_arranged, second.already_arranged
    );

    // Give the provider systems a moment to report their starts of care.
    let mut progress = asg::HandoverProgressResponse::default();
    for _ in 0..60 {
        progress = a
            .handover_progress(asg::HandoverProgressRequest {
                deadline: "2023-01-01".into(),
            })
            .await
            .map_err(status_msg("HandoverProgress"))?
            .into_inner();
        if progress.rows.iter().all(|r| r.waiting_for_start == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "\n   Handover progress against the deadline {} (per municipality and segment)",
        progress.deadline
    );
    println!(
        "   {:<6} {:<6} {:>11} {:>17} {:>12}",
        "muni", "segm", "handed over", "waiting for start", "not arranged"
    );
    let mut totals = (0, 0, 0);
    for r in &progress.rows {
        println!(
            "   {:<6} {:<6} {:>11} {:>17} {:>12}",
            r.municipality, r.segment_code, r.handed_over, r.waiting_for_start, r.not_arranged
        );
        totals = (
            totals.0 + r.handed_over,
            totals.1 + r.waiting_for_start,
            totals.2 + r.not_arranged,
        );
    }
    println!(
        "   {:<13} {:>11} {:>17} {:>12}",
        "total", totals.0, totals.1, totals.2
    );

    // 4. Who got which provider, and the chain deadlines.
    println!("\n4. Assignments and chain deadlines");
    let deadlines = a
        .list_chain_deadlines(asg::ListChainDeadlinesRequest {
            municipality: String::new(),
            as_of: "2022-09-15".into(),
        })
        .await
        .map_err(status_msg("ListChainDeadlines"))?
        .into_inner()
        .deadlines;
    let late = deadlines.iter().filter(|d| d.late).count();
    println!(
        "   on 2022-09-15: {} chain deadlines open, {} of them late (start of care missing 5 working days after the assignment start, or an unanswered provider request)",
        deadlines.len(),
        late
    );
    let sample_key = ClientKey::derive(
        args.secret.as_bytes(),
        &Bsn::parse(&bsn(offset)).map_err(|e| e.to_string())?,
    );
    let sample = a
        .list_client_assignments(asg::ListClientAssignmentsRequest {
            municipality: POSTAL[0].0.into(),
            client_key: sample_key.to_string(),
        })
        .await
        .map_err(status_msg("ListClientAssignments"))?
        .into_inner()
        .assignments;
    if let Some(s) = sample.first() {
        println!(
            "   example: client {} in {}: assignment {} for {} to provider {} ({:?})\n            why this provider: {}",
            s.client_key,
            s.municipality,
            s.number,
            s.subsegment_code,
            s.agb_code,
            s.status(),
            s.choice_reason
        );
    }
    export_messages(&args, &mut registration, a.clone()).await?;
    if !args.reporting.is_empty() {
        report(&args).await?;
    }
    println!(
        "\nThe scenario took {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// 5. What the reporting read model (built only from events) says, exported as CSV.
async fn report(args: &Args) -> Result<()> {
    use rz_proto::reporting::v1 as rep;
    use rz_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
    let channel = Channel::from_shared(args.reporting.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut r = ReportingServiceClient::new(channel);
    for _ in 0..120 {
        if r.get_status(rep::GetStatusRequest {})
            .await
            .map_err(status_msg("GetStatus"))?
            .into_inner()
            .caught_up
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "\n5. Reports from the reporting read model (built from events only), as CSV in {}",
        args.reports_dir
    );
    std::fs::create_dir_all(&args.reports_dir).map_err(|e| e.to_string())?;
    let monthly = rep::MonthlyFiguresRequest {
        from_month: "2022-07".into(),
        to_month: "2022-12".into(),
        ..Default::default()
    };
    let reports = [
        rep::export_csv_request::Report::MonthlyFigures(monthly),
        rep::export_csv_request::Report::HandoverProgress(rep::HandoverProgressRequest {
            deadline: "2023-01-01".into(),
            as_of: "2022-12-31".into(),
        }),
        rep::export_csv_request::Report::BudgetUse(rep::BudgetUseRequest {
            year: 2022,
            municipality: String::new(),
        }),
        rep::export_csv_request::Report::ProvidersPerSegment(rep::ProvidersPerSegmentRequest {
            date: "2022-12-31".into(),
            ..Default::default()
        }),
    ];
    for report in reports {
        let out = r
            .export_csv(rep::ExportCsvRequest {
                report: Some(report),
            })
            .await
            .map_err(status_msg("ExportCsv"))?
            .into_inner();
        let path = format!("{}/{}", args.reports_dir, out.filename);
        std::fs::write(&path, &out.csv).map_err(|e| format!("{path}: {e}"))?;
        let lines = out.csv.iter().filter(|b| **b == b'\n').count();
        println!("   {path}: {} rows", lines.saturating_sub(1));
    }
    Ok(())
}

/// Every message the providers would receive (JW301/WMO301, JW319/WMO319) as XML, written to
/// `<messages_dir>/<agb>/<message id>.xml` (message ids are unique per municipality, so the
/// file name is prefixed with the municipality: `<municipality>-<id>.xml`).
async fn export_messages(
    args: &Args,
    registration: &mut RegistrationServiceClient<Channel>,
    a: AssignmentServiceClient<Channel>,
) -> Result<()> {
    let mut a = a.max_decoding_message_size(256 * 1024 * 1024);
    let providers = registration
        .list_providers(reg::ListProvidersRequest {})
        .await
        .map_err(status_msg("ListProviders"))?
        .into_inner()
        .providers;
    let dir = std::path::Path::new(&args.messages_dir);
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let (mut written, mut skipped, mut with_messages) = (0usize, 0usize, 0usize);
    for p in &providers {
        let mut any = false;
        for m in args.access.keys() {
            let r = a
                .fetch_provider_messages(asg::FetchProviderMessagesRequest {
                    agb_code: p.agb_code.clone(),
                    municipality: m.clone(),
                    since: String::new(),
                })
                .await
                .map_err(status_msg("FetchProviderMessages"))?
                .into_inner();
            skipped += r.skipped.len();
            if r.messages.is_empty() {
                continue;
            }
            any = true;
            let pdir = dir.join(&p.agb_code);
            std::fs::create_dir_all(&pdir).map_err(|e| format!("{}: {e}", pdir.display()))?;
            for msg in &r.messages {
                let path = pdir.join(format!("{m}-{}.xml", msg.message_id));
                std::fs::write(&path, &msg.xml).map_err(|e| format!("{}: {e}", path.display()))?;
                written += 1;
            }
        }
        with_messages += usize::from(any);
    }
    println!(
        "   {written} XML messages to {with_messages} providers written to {}/<agb>/ ({skipped} not writable as a valid message: client known only by BSN)",
        args.messages_dir
    );
    Ok(())
}
