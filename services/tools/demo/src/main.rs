//! `rz-demo --registration URL --assignment URL --reporting URL --access CODE=URL ... --pki DIR`
//!
//! Plays the region's second half of 2022 through the services' public gRPC APIs, as
//! municipalities, GPs and providers would (see [`season`]): the existing care of the providers
//! whose contracts ended on 30 June 2022 is loaded, residents of all eight municipalities report
//! needs and get decisions week by week in every segment and financing variant, GPs refer children
//! to youth providers, some decisions are refused or changed later, and the handover moves every
//! client of a provider without a new contract. Time is compressed: the demo moves the services'
//! clock (`--clock-file`, read by access and assignment) a week at a time. It ends with a readable
//! report from the reporting read model ([`report`]), CSV exports and the providers' messages as
//! iStandaarden XML.
//!
//! Every call is mutual TLS as the party that makes it in the region ([`parties`]): the operator,
//! a municipality (with a consulent's staff token at its access instance) or a provider.

mod lag;
mod parties;
mod report;
mod season;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use futures::{StreamExt, stream};
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_workload::{Driver, Sub, catalogue, status_msg};
use tonic::transport::Channel;

use parties::{AccessClient, OPERATOR, Providers, Staff};

type Result<T> = std::result::Result<T, String>;

struct Args {
    registration: String,
    assignment: String,
    reporting: String,
    notification: String,
    reports_dir: String,
    messages_dir: String,
    clock_file: String,
    access: BTreeMap<String, String>,
    pki: PathBuf,
    secret: String,
    clients_per_old_provider: u32,
    requests_per_week: u32,
    referrals_per_week: u32,
}

const USAGE: &str = "usage: RZ_CLIENT_KEY_SECRET=... rz-demo --registration URL --assignment URL --reporting URL --clock-file PATH --access CODE=URL... [--pki DIR] [--notification URL] [--reports-dir DIR] [--messages-dir DIR] [--requests-per-week N] [--referrals-per-week N] [--clients-per-old-provider N]";

fn parse_args() -> Result<Args> {
    let mut a = Args {
        registration: String::new(),
        assignment: String::new(),
        reporting: String::new(),
        notification: String::new(),
        reports_dir: "var/demo/reports".into(),
        messages_dir: "var/demo/messages".into(),
        clock_file: String::new(),
        access: BTreeMap::new(),
        pki: PathBuf::from("var/demo/pki"),
        secret: std::env::var("RZ_CLIENT_KEY_SECRET").unwrap_or_default(),
        clients_per_old_provider: 8,
        requests_per_week: 110,
        referrals_per_week: 12,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    let number = |k: &str, v: &str| -> Result<u32> {
        v.parse()
            .map_err(|_| format!("{k}: `{v}` is not a whole number"))
    };
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--registration" => a.registration = v.clone(),
            "--assignment" => a.assignment = v.clone(),
            "--reporting" => a.reporting = v.clone(),
            "--notification" => a.notification = v.clone(),
            "--reports-dir" => a.reports_dir = v.clone(),
            "--messages-dir" => a.messages_dir = v.clone(),
            "--clock-file" => a.clock_file = v.clone(),
            "--pki" => a.pki = v.into(),
            "--access" => {
                let (code, url) = v.split_once('=').ok_or("--access takes CODE=URL")?;
                a.access.insert(code.to_owned(), url.to_owned());
            }
            "--clients-per-old-provider" => a.clients_per_old_provider = number(k, v)?,
            "--requests-per-week" => a.requests_per_week = number(k, v)?,
            "--referrals-per-week" => a.referrals_per_week = number(k, v)?,
            _ => return Err(format!("unknown argument {k}\n{USAGE}")),
        }
    }
    if a.registration.is_empty()
        || a.assignment.is_empty()
        || a.reporting.is_empty()
        || a.clock_file.is_empty()
        || a.access.is_empty()
        || a.secret.is_empty()
    {
        return Err(USAGE.into());
    }
    Ok(a)
}

/// Makes a call again (up to five times) while the service answers ABORTED: a transaction lost a
/// conflict with a concurrent one and nothing was changed.
async fn again<T, F, Fut>(mut call: F) -> std::result::Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match call().await {
            Err(s) if s.code() == tonic::Code::Aborted && attempt < 5 => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            other => return other.map(tonic::Response::into_inner),
        }
    }
}

/// The demo's requests (idempotency keys `demo-<step>-<n>`).
pub const DEMO: Driver = Driver::new("demo");

/// The services' clients, each as the party that makes its calls ([`parties`]).
pub struct Clients {
    /// As the operator.
    pub registration: RegistrationServiceClient<Channel>,
    /// As the operator: imports, the handover, the region-wide deadlines and progress.
    pub assignment: AssignmentServiceClient<Channel>,
    /// Each municipality's access instance, as that municipality with a consulent's token.
    pub access: HashMap<String, AccessClient>,
    /// Assignment as each municipality (its answers to providers' requests).
    pub municipal_assignment: HashMap<String, AssignmentServiceClient<Channel>>,
    /// Assignment as each provider.
    pub providers: Providers,
    /// As the operator (deadline scans), when the demo runs notification.
    pub notification: Option<NotificationServiceClient<Channel>>,
    /// Each municipality's letters and staff alerts, when the demo runs notification.
    pub municipal_notification: HashMap<String, NotificationServiceClient<Channel>>,
}

impl Clients {
    /// Municipality `m`'s access instance, called by its consulent.
    pub fn access(&self, m: &str) -> Result<AccessClient> {
        self.access
            .get(m)
            .cloned()
            .ok_or_else(|| format!("no access instance for {m}"))
    }

    /// Assignment as municipality `m`.
    pub fn assignment_as(&self, m: &str) -> Result<AssignmentServiceClient<Channel>> {
        self.municipal_assignment
            .get(m)
            .cloned()
            .ok_or_else(|| format!("no assignment client for municipality {m}"))
    }
}

/// Registers resident `n` in municipality `m`'s access (idempotent); returns the BSN.
pub async fn register(ac: &mut AccessClient, n: u32, m: &str, minor: bool) -> Result<String> {
    let request = DEMO.resident(n, m, minor);
    let bsn = request.bsn.clone();
    ac.register_resident(request)
        .await
        .map_err(status_msg("RegisterResident"))?;
    Ok(bsn)
}

/// Registers resident `n` of municipality `m` (a child for youth care) and opens their case for
/// `sub`'s law on `date`.
pub async fn open(
    ac: &mut AccessClient,
    n: u32,
    m: &str,
    sub: &Sub,
    date: String,
) -> Result<acc::Case> {
    let bsn = register(ac, n, m, sub.is_youth()).await?;
    Ok(ac
        .open_case(DEMO.open_case(n, bsn, sub.law, date))
        .await
        .map_err(status_msg("OpenCase"))?
        .into_inner())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rz-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A channel to `url` as the operator.
async fn connect(args: &Args, url: &str) -> Result<Channel> {
    parties::connect(&args.pki, OPERATOR, url).await
}

async fn run() -> Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let mut clients = Clients {
        registration: RegistrationServiceClient::new(connect(&args, &args.registration).await?),
        assignment: AssignmentServiceClient::new(connect(&args, &args.assignment).await?),
        access: HashMap::new(),
        municipal_assignment: HashMap::new(),
        providers: Providers::new(&args.pki, &args.assignment),
        notification: None,
        municipal_notification: HashMap::new(),
    };
    for (m, u) in &args.access {
        let folder = parties::municipality(m);
        let channel = parties::connect(&args.pki, &folder, u).await?;
        clients.access.insert(
            m.clone(),
            AccessServiceClient::with_interceptor(channel, Staff::of(&args.pki, m)?),
        );
        let channel = parties::connect(&args.pki, &folder, &args.assignment).await?;
        clients
            .municipal_assignment
            .insert(m.clone(), AssignmentServiceClient::new(channel));
        if !args.notification.is_empty() {
            let channel = parties::connect(&args.pki, &folder, &args.notification).await?;
            clients
                .municipal_notification
                .insert(m.clone(), NotificationServiceClient::new(channel));
        }
    }
    if !args.notification.is_empty() {
        clients.notification = Some(NotificationServiceClient::new(
            connect(&args, &args.notification).await?,
        ));
    }
    println!(
        "Calling as the region's parties (mutual TLS, certificates in {}): the operator, each municipality (access with a consulent's staff token), each provider",
        args.pki.display()
    );
    let subs: Vec<Sub> = catalogue::fetch(&mut clients.registration)
        .await
        .map_err(status_msg("GetCatalogue"))?;

    // A second run on the same data only reports: the half year has been played.
    let played = format!("{}.played", args.clock_file);
    if std::path::Path::new(&played).exists() {
        println!(
            "\nThe half year was played before on this data ({played}); the report again (remove var/ and run `make down; make demo` for a fresh run)."
        );
    } else {
        let season = season::Season::new(
            &clients,
            &subs,
            &args.clock_file,
            args.requests_per_week,
            args.referrals_per_week,
        );
        season.set_clock(season::first_day())?;
        import_existing_care(&args, &clients, &subs).await?;
        println!(
            "\n2. The half year, week by week: residents apply and get decisions, GPs refer children, the handover moves clients"
        );
        let mut season = season;
        let tally = season.play().await?;
        season.set_clock(season::last_day())?;
        println!(
            "   total: {} requests, {} decisions ({} refused), {} changes to granted products, {} GP referrals ({} granted, {} refused), {} clients handed over, {} staff alerts raised ({} became overdue)",
            tally.requests,
            tally.decisions,
            tally.refused,
            tally.changes,
            tally.gp_requests,
            tally.gp_granted,
            tally.gp_refused,
            tally.handed_over,
            tally.alerts_opened,
            tally.alerts_overdue
        );
        if let Some(first) = tally.failures.first() {
            println!("   {} steps failed, e.g. {first}", tally.failures.len());
        }
        std::fs::write(&played, "played\n").map_err(|e| format!("{played}: {e}"))?;
    }
    report::wait_until_settled(&args, &clients).await?;
    report::print(&args, &clients).await?;
    report::letters_and_alerts(&clients).await?;
    export_messages(&args, &mut clients.registration, &clients.providers).await?;
    export_csv(&args).await?;
    println!(
        "\nThe scenario took {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// 1. Existing care of the providers whose contracts ended on 2022-06-30.
async fn import_existing_care(args: &Args, clients: &Clients, subs: &[Sub]) -> Result<()> {
    println!("\n1. Existing care of providers without a new contract (started before 1 July 2022)");
    let ended = clients
        .registration
        .clone()
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
            let mut acc_client = clients.access.get(&m).cloned();
            let mut asg_client = clients.assignment.clone();
            let sub = subs.iter().find(|s| s.code == sub).cloned();
            async move {
                let (Some(ac), Some(sub)) = (acc_client.as_mut(), sub) else {
                    return Err("no access or subsegment".to_string());
                };
                let b = register(ac, n, &m, sub.is_youth()).await?;
                let p = catalogue::product(&sub, "2021-09-01", "2023-08-31");
                asg_client
                    .import_assignment(DEMO.import(n, &m, b, &agb, p))
                    .await
                    .map_err(status_msg("ImportAssignment"))
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let failures: Vec<_> = imported.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "   {} clients of {} former contracts loaded ({} refused{})",
        imported.len() - failures.len(),
        ended.len(),
        failures.len(),
        failures
            .first()
            .map(|e| format!(", e.g. {e}"))
            .unwrap_or_default()
    );
    Ok(())
}

/// The reporting read model (built only from events) as CSV.
async fn export_csv(args: &Args) -> Result<()> {
    use rz_proto::reporting::v1 as rep;
    let mut r = report::reporting(args).await?;
    println!(
        "\n7. The reports as CSV (from the reporting read model) in {}",
        args.reports_dir
    );
    std::fs::create_dir_all(&args.reports_dir).map_err(|e| e.to_string())?;
    let reports = [
        rep::export_csv_request::Report::MonthlyFigures(rep::MonthlyFiguresRequest {
            from_month: "2022-07".into(),
            to_month: "2022-12".into(),
            ..Default::default()
        }),
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
        rep::export_csv_request::Report::Goals(rep::GoalsRequest {
            municipality: String::new(),
            from_month: "2022-07".into(),
            to_month: "2022-12".into(),
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
/// `<messages_dir>/<agb>/<municipality>-<message id>.xml` (message ids are unique per
/// municipality). Each provider fetches its own, with its own certificate.
async fn export_messages(
    args: &Args,
    registration: &mut RegistrationServiceClient<Channel>,
    as_provider: &Providers,
) -> Result<()> {
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
    let (mut written, mut with_messages) = (0usize, 0usize);
    let mut skipped: Vec<String> = Vec::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for p in &providers {
        let mut any = false;
        let mut a = as_provider
            .assignment(&p.agb_code)?
            .max_decoding_message_size(256 * 1024 * 1024);
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
            skipped.extend(r.skipped.iter().map(|s| s.reason.clone()));
            if r.messages.is_empty() {
                continue;
            }
            any = true;
            let pdir = dir.join(&p.agb_code);
            std::fs::create_dir_all(&pdir).map_err(|e| format!("{}: {e}", pdir.display()))?;
            for msg in &r.messages {
                let path = pdir.join(format!("{m}-{}.xml", msg.message_id));
                std::fs::write(&path, &msg.xml).map_err(|e| format!("{}: {e}", path.display()))?;
                *kinds.entry(msg.kind.clone()).or_default() += 1;
                written += 1;
            }
        }
        with_messages += usize::from(any);
    }
    let kinds = kinds
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "\n6. The providers' messages as iStandaarden XML: {written} messages ({kinds}) to {with_messages} providers in {}/<agb>/",
        args.messages_dir
    );
    if let Some(first) = skipped.first() {
        println!(
            "   {} messages could not be written as a valid message, e.g.: {first}",
            skipped.len()
        );
    }
    Ok(())
}
