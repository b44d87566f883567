//! The deadline scans, for one date (`as_of`): run by `ScanDeadlines` (the demo plays simulated
//! dates) and by a background loop with today's date every `notification.scan_interval_secs`
//! (today: the system date, or `notification.today` / `notification.today_file`).
//!
//! - Indications about to end: each municipality's access `ListExpiringIndications` (8 weeks
//!   ahead); one `indication_ending` letter per granted product and end date, never twice (a
//!   unique index; an extended product gets a new letter for its new end date).
//! - Staff alerts: access `ListDeadlines` (investigation 6 weeks, decision 2 or 8 weeks) per
//!   municipality and assignment `ListChainDeadlines` (answer to a provider request, start of
//!   care). A deadline due within `alert_within_days` is `upcoming`, past its due date `overdue`;
//!   an open alert its source no longer lists is `resolved`. See [`store::apply_alert_scan`].
//!
//! A source that cannot be reached is skipped (its alerts and letters stay as they were) and
//! named in the result's `errors`; the next scan tries again. Scans are idempotent and safe with
//! replicas scanning at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use rz_platform::Shutdown;
use rz_platform::clock::Clock;
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as asg;
use sqlx::PgPool;
use uuid::Uuid;

use crate::letters::{self, Recipient};
use crate::region::Region;
use crate::secrets::Keyring;
use crate::store::{self, AlertCounts, NewLetter, SeenDeadline};
use crate::upstream::{ClientLookup, Upstream};

pub const KIND_ENDING: &str = "indication_ending";
pub const SOURCE_ACCESS: &str = "access";
pub const SOURCE_ASSIGNMENT: &str = "assignment";

/// What one scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub letters_written: u32,
    pub alerts: AlertCounts,
    /// Sources that could not be scanned, and products whose letter could not be written.
    pub errors: Vec<String>,
}

impl ScanReport {
    fn add(&mut self, c: AlertCounts) {
        self.alerts.opened += c.opened;
        self.alerts.overdue += c.overdue;
        self.alerts.resolved += c.resolved;
    }
}

#[derive(Clone)]
pub struct Scanner {
    pool: PgPool,
    upstream: Arc<Upstream>,
    region: Arc<Region>,
    /// Seals the letters' texts.
    keys: Arc<Keyring>,
    within_days: u32,
}

fn plus_days(d: NaiveDate, days: u32) -> NaiveDate {
    d.checked_add_days(chrono::Days::new(u64::from(days)))
        .unwrap_or(NaiveDate::MAX)
}

fn date(field: &str, s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{field} `{s}` is not a date"))
}

/// An access deadline as an alert: `access/<municipality>/<case id>/<step>`.
pub fn access_alert(
    municipality: &str,
    d: &acc::Deadline,
    as_of: NaiveDate,
) -> Result<SeenDeadline, String> {
    let due = date("due", &d.due)?;
    let case_id = Uuid::parse_str(&d.case_id)
        .map_err(|_| format!("case id `{}` is not a UUID", d.case_id))?;
    Ok(SeenDeadline {
        key: format!("access/{municipality}/{case_id}/{}", d.step),
        municipality: municipality.to_owned(),
        kind: d.step.clone(),
        due,
        overdue: due < as_of,
        client_key: Some(d.client_key.clone()),
        case_id: Some(case_id),
        agb_code: None,
        assignment_number: None,
        request_id: None,
    })
}

/// A chain deadline as an alert: `assignment/<municipality>/start_of_care/<number>` or
/// `assignment/<municipality>/request_answer/<request id>`.
pub fn chain_alert(d: &asg::ChainDeadline, as_of: NaiveDate) -> Result<SeenDeadline, String> {
    let due = date("due", &d.due)?;
    let subject = if d.kind == "request_answer" {
        d.request_id.clone()
    } else {
        d.assignment_number.to_string()
    };
    Ok(SeenDeadline {
        key: format!("assignment/{}/{}/{subject}", d.municipality, d.kind),
        municipality: d.municipality.clone(),
        kind: d.kind.clone(),
        due,
        overdue: due < as_of,
        client_key: None,
        case_id: None,
        agb_code: Some(d.agb_code.clone()).filter(|s| !s.is_empty()),
        assignment_number: Some(i64::from(d.assignment_number)).filter(|n| *n != 0),
        request_id: Some(d.request_id.clone()).filter(|s| !s.is_empty()),
    })
}

/// The alerts of one source's list (only those due by `window_end`, when given); `None` when an
/// entry does not read (each named in `errors` after `who`): a list not read whole resolves nothing.
fn read_list<T>(
    list: &[T],
    window_end: Option<NaiveDate>,
    who: &str,
    errors: &mut Vec<String>,
    read: impl Fn(&T) -> Result<SeenDeadline, String>,
) -> Option<Vec<SeenDeadline>> {
    let mut seen = Vec::with_capacity(list.len());
    let mut broken = false;
    for d in list {
        match read(d) {
            Ok(s) if window_end.is_none_or(|end| s.due <= end) => seen.push(s),
            Ok(_) => {}
            Err(e) => {
                errors.push(format!("{who}: {e}"));
                broken = true;
            }
        }
    }
    (!broken).then_some(seen)
}

impl Scanner {
    /// Applies a source's alerts read whole for its scope (source, municipality or every one).
    async fn apply_list(
        &self,
        (source, municipality): (&str, Option<&str>),
        (as_of, window_end): (NaiveDate, NaiveDate),
        seen: Option<Vec<SeenDeadline>>,
        report: &mut ScanReport,
    ) -> Result<(), sqlx::Error> {
        if let Some(seen) = seen {
            let c =
                store::apply_alert_scan(&self.pool, source, municipality, as_of, window_end, &seen)
                    .await?;
            report.add(c);
        }
        Ok(())
    }

    pub fn new(
        pool: PgPool,
        upstream: Arc<Upstream>,
        region: Arc<Region>,
        keys: Arc<Keyring>,
        within_days: u32,
    ) -> Self {
        Self {
            pool,
            upstream,
            region,
            keys,
            within_days,
        }
    }

    /// Runs every scan for `as_of`.
    pub async fn scan(&self, as_of: NaiveDate) -> Result<ScanReport, sqlx::Error> {
        let mut report = ScanReport::default();
        let window_end = plus_days(as_of, self.within_days);
        for m in self.upstream.municipalities() {
            self.expiring(&m, as_of, &mut report).await?;
            match self.upstream.deadlines(&m, as_of, self.within_days).await {
                Ok(list) => {
                    let who = format!("access {m}");
                    let seen = read_list(&list, None, &who, &mut report.errors, |d| {
                        access_alert(&m, d, as_of)
                    });
                    let scope = (SOURCE_ACCESS, Some(m.as_str()));
                    self.apply_list(scope, (as_of, window_end), seen, &mut report)
                        .await?;
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        if self.upstream.has_assignment() {
            match self.upstream.chain_deadlines(as_of).await {
                Ok(list) => {
                    let seen = read_list(
                        &list,
                        Some(window_end),
                        "assignment",
                        &mut report.errors,
                        |d| chain_alert(d, as_of),
                    );
                    let scope = (SOURCE_ASSIGNMENT, None);
                    self.apply_list(scope, (as_of, window_end), seen, &mut report)
                        .await?;
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        tracing::info!(
            %as_of,
            letters = report.letters_written,
            opened = report.alerts.opened,
            overdue = report.alerts.overdue,
            resolved = report.alerts.resolved,
            errors = report.errors.len(),
            "deadline scan done"
        );
        Ok(report)
    }

    /// One letter per expiring product and end date of municipality `m`.
    async fn expiring(
        &self,
        m: &str,
        as_of: NaiveDate,
        report: &mut ScanReport,
    ) -> Result<(), sqlx::Error> {
        let products = match self.upstream.expiring(m, as_of).await {
            Ok(p) => p,
            Err(e) => {
                report.errors.push(e.to_string());
                return Ok(());
            }
        };
        for p in products {
            let ends_on = p.period.as_ref().map(|x| x.end.as_str()).unwrap_or("");
            let (Ok(ends_on), Ok(product_id)) =
                (date("period.end", ends_on), Uuid::parse_str(&p.id))
            else {
                report.errors.push(format!(
                    "access {m}: product `{}` without a valid id or end",
                    p.id
                ));
                continue;
            };
            let mut conn = self.pool.acquire().await?;
            // Ask access for the resident only when the letter is still to be written.
            if store::ending_letter_exists(&mut conn, product_id, ends_on).await? {
                continue;
            }
            let client = match self.upstream.client(m, &p.client_key).await {
                Ok(ClientLookup::Found(c)) => c,
                Ok(ClientLookup::Unknown) => {
                    report.errors.push(format!(
                        "access {m}: client key {} of product {product_id} is unknown",
                        p.client_key
                    ));
                    continue;
                }
                Err(e) => {
                    report.errors.push(e.to_string());
                    // The instance is down: the rest of its products wait for the next scan.
                    return Ok(());
                }
            };
            let youth = p.law == rz_proto::types::v1::Law::Jeugdwet as i32;
            let recipient = Recipient::from_access(&client, youth, as_of);
            let gemeente = self.region.municipality_name(m);
            let text = letters::indication_ending(&p, &recipient, &gemeente, ends_on, as_of);
            let written = store::insert_letter(
                &mut conn,
                &self.keys,
                &NewLetter {
                    event_id: None,
                    kind: KIND_ENDING,
                    municipality: m,
                    client_key: &p.client_key,
                    assignment_number: None,
                    case_id: Uuid::parse_str(&p.case_id).ok(),
                    product_id: Some(product_id),
                    ends_on: Some(ends_on),
                    text: &text,
                },
            )
            .await?;
            if written {
                report.letters_written += 1;
                tracing::info!(%product_id, municipality = m, %ends_on, "indication ending letter written");
            }
        }
        Ok(())
    }

    /// Scans with the clock's date (the system date, or `notification.today` / `today_file`)
    /// every `interval` until `shutdown`; the first scan runs one interval after start.
    pub async fn run(self, interval: Duration, clock: Arc<dyn Clock>, shutdown: Shutdown) {
        if interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.scan(clock.today()).await {
                tracing::warn!(error = %e, "deadline scan failed; next interval tries again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_keys_and_states() {
        let as_of = NaiveDate::from_ymd_opt(2022, 8, 1).unwrap();
        let a = access_alert(
            "0222",
            &acc::Deadline {
                case_id: "0190b2a4-0000-7000-8000-000000000001".into(),
                client_key: "k".into(),
                step: "decision".into(),
                due: "2022-07-31".into(),
                ..Default::default()
            },
            as_of,
        )
        .unwrap();
        assert_eq!(
            a.key,
            "access/0222/0190b2a4-0000-7000-8000-000000000001/decision"
        );
        assert!(a.overdue);
        let c = chain_alert(
            &asg::ChainDeadline {
                kind: "request_answer".into(),
                municipality: "0222".into(),
                agb_code: "12345678".into(),
                request_id: "r1".into(),
                due: "2022-08-01".into(),
                ..Default::default()
            },
            as_of,
        )
        .unwrap();
        assert_eq!(c.key, "assignment/0222/request_answer/r1");
        assert!(!c.overdue, "due today is not overdue yet");
        assert_eq!(c.assignment_number, None);
        assert!(chain_alert(&asg::ChainDeadline::default(), as_of).is_err());
    }
}
