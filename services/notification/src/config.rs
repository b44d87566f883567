//! The service's configuration: `[server]`, `[database]`, `[nats]`, `[telemetry]`, `[webhooks]`
//! (delivery concurrency, timeouts and the retry schedule) and `[notification]` (where each
//! municipality's access instance and the assignment service answer, and the deadline scan).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;

use serde::Deserialize;

rz_platform::service_config! {
    /// The service's configuration (see [`rz_platform::service_config`]).
    pub struct Config {
        pub webhooks: WebhookConfig,
        pub notification: NotificationConfig,
    }
}

/// `[notification]`: the services asked for letters and alerts, and the deadline scan.
///
/// Environment: `RZ__NOTIFICATION__ACCESS_ENDPOINTS__0222=http://...` (one per CBS code, as for
/// assignment), `RZ__NOTIFICATION__ASSIGNMENT_ENDPOINT`, `RZ__NOTIFICATION__SCAN_INTERVAL_SECS`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NotificationConfig {
    /// CBS municipality code -> gRPC URL of that municipality's access instance: the resident's
    /// name and address for decision and reminder letters, and the statutory deadlines.
    pub access_endpoints: HashMap<String, String>,
    /// gRPC URL of the assignment service (the chain deadlines). Empty: chain deadlines are not
    /// scanned.
    pub assignment_endpoint: String,
    /// Seconds a call to access or assignment may take.
    pub upstream_timeout_secs: u64,
    /// Seconds between the background deadline scans with today's date; 0 disables them (the
    /// `ScanDeadlines` RPC still works).
    pub scan_interval_secs: u64,
    /// A deadline due within this many days of the scan date gets an `upcoming` alert.
    pub alert_within_days: u32,
    /// Fixes the background scans' date ("today"); the system date (UTC) when unset.
    pub today: Option<NaiveDate>,
    /// A file holding the date (`YYYY-MM-DD`), read at every background scan; wins over `today`.
    /// The demo moves it to play half a year in minutes. Never set in production.
    pub today_file: Option<PathBuf>,
    /// `[notification.letters]`: how residents' letters are sent.
    pub letters: LettersConfig,
    /// The region file (as registration's `region_file`) whose municipality names the letters
    /// carry; the built-in Achterhoek when unset.
    pub region_file: Option<PathBuf>,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        Self {
            access_endpoints: HashMap::new(),
            assignment_endpoint: String::new(),
            upstream_timeout_secs: 10,
            scan_interval_secs: 15 * 60,
            alert_within_days: 7,
            today: None,
            today_file: None,
            letters: LettersConfig::default(),
            region_file: None,
        }
    }
}

/// How residents' letters leave the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LetterChannelKind {
    /// Letters are stored and listed only (no dispatcher runs; they stay `pending`).
    #[default]
    None,
    /// Each letter as a UTF-8 text file `<municipality>/<letter id>.txt` in `spool_dir`, which a
    /// print house collects.
    Post,
    /// Each letter as an e-mail to its municipality's mailroom through a local SMTP relay
    /// (the channel in `smtp.rs`).
    Smtp,
}

/// `[notification.letters]`: the channel residents' letters are sent through and the dispatcher's
/// retry schedule.
///
/// A failed attempt `n` (1-based) is retried after `initial_backoff_ms * 2^(n-1)`, capped at
/// `max_backoff_ms`; after `max_attempts` attempts (or at once for a permanent error) the letter
/// is `failed` with the reason. Defaults: 1 s doubling, capped at 30 min, 20 attempts (the last
/// one about 4.6 hours after the first).
///
/// Environment: `RZ__NOTIFICATION__LETTERS__CHANNEL=post`,
/// `RZ__NOTIFICATION__LETTERS__SPOOL_DIR=/var/spool/regiozorg/letters`,
/// `RZ__NOTIFICATION__LETTERS__MAX_ATTEMPTS`, ...
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LettersConfig {
    /// `none` (default: stored only, as before), `post` or `smtp`.
    pub channel: LetterChannelKind,
    /// Where the `post` channel writes letters; required for it.
    pub spool_dir: Option<PathBuf>,
    /// Attempts before a letter is `failed`; at least 1.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Letters sent at once, per replica.
    pub max_in_flight: usize,
    /// How long one send may take.
    pub send_timeout_ms: u64,
    /// How long a claimed letter is held before another replica may take it over (a replica that
    /// died mid-send). Longer than `send_timeout_ms`.
    pub lease_ms: u64,
    /// How often an idle dispatcher looks for due letters.
    pub poll_interval_ms: u64,
    /// `[notification.letters.smtp]`: the relay and the mailroom addresses (channel `smtp`).
    pub smtp: SmtpConfig,
}

impl Default for LettersConfig {
    fn default() -> Self {
        Self {
            channel: LetterChannelKind::None,
            spool_dir: None,
            max_attempts: 20,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 30 * 60 * 1_000,
            max_in_flight: 16,
            send_timeout_ms: 30_000,
            lease_ms: 120_000,
            poll_interval_ms: 1_000,
            smtp: SmtpConfig::default(),
        }
    }
}

/// `initial_ms` doubled for every failed attempt after the first, capped at `max_ms`.
fn backoff(initial_ms: u64, max_ms: u64, attempts: u32) -> Duration {
    let factor = 2u64.saturating_pow(attempts.saturating_sub(1).min(62));
    Duration::from_millis(initial_ms.saturating_mul(factor).min(max_ms))
}

impl LettersConfig {
    /// The delay after the `attempts`-th failed attempt.
    pub fn backoff(&self, attempts: u32) -> Duration {
        backoff(self.initial_backoff_ms, self.max_backoff_ms, attempts)
    }

    /// The rules between the keys; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("notification.letters.max_attempts must be at least 1".into());
        }
        if self.lease_ms <= self.send_timeout_ms {
            return Err(
                "notification.letters.lease_ms must be longer than notification.letters.send_timeout_ms"
                    .into(),
            );
        }
        if self.channel == LetterChannelKind::Post && self.spool_dir.is_none() {
            return Err(
                "notification.letters.spool_dir is required when notification.letters.channel = \"post\""
                    .into(),
            );
        }
        if self.channel == LetterChannelKind::Smtp {
            self.smtp.validate()?;
        }
        Ok(())
    }
}

/// `[notification.letters.smtp]`. Defined here, beside the other settings, and used by the `smtp`
/// channel: the configuration imports no other module of the service (no cycle through the
/// dispatcher).
///
/// Environment: `RZ__NOTIFICATION__LETTERS__SMTP__RELAY=127.0.0.1:25`,
/// `RZ__NOTIFICATION__LETTERS__SMTP__FROM=brieven@...`,
/// `RZ__NOTIFICATION__LETTERS__SMTP__MAILROOM__0222=postkamer@...` (one per CBS code).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    /// `host:port` of the local relay.
    pub relay: String,
    /// The name given in EHLO.
    pub helo: String,
    /// The envelope and header sender.
    pub from: String,
    /// CBS code -> the municipality's mailroom address, which receives its letters.
    pub mailroom: HashMap<String, String>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            relay: "127.0.0.1:25".into(),
            helo: "notification.regiozorg".into(),
            from: String::new(),
            mailroom: HashMap::new(),
        }
    }
}

impl SmtpConfig {
    /// The rules between the keys; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.relay.is_empty() {
            return Err("notification.letters.smtp.relay is required for the smtp channel".into());
        }
        if self.helo.is_empty() || !self.helo.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("notification.letters.smtp.helo must be a host name".into());
        }
        check_address("notification.letters.smtp.from", &self.from)?;
        if self.mailroom.is_empty() {
            return Err(
                "notification.letters.smtp.mailroom must name at least one municipality's address"
                    .into(),
            );
        }
        for (cbs, address) in &self.mailroom {
            check_address(
                &format!("notification.letters.smtp.mailroom.{cbs}"),
                address,
            )?;
        }
        Ok(())
    }
}

/// A mailbox `local@domain` with nothing that could break the SMTP conversation.
fn check_address(key: &str, address: &str) -> Result<(), String> {
    let ok = address.len() <= 254
        && address
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
        && address
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key} must be an e-mail address (local@domain, ASCII, no spaces or angle brackets)"
        ))
    }
}

/// `[webhooks]`: how deliveries are sent and retried.
///
/// A failed attempt `n` (1-based) is retried after `initial_backoff_ms * 2^(n-1)`, capped at
/// `max_backoff_ms`. A delivery fails for good when the next attempt would fall more than
/// `retry_window_secs` after its first attempt, or (when `max_attempts` > 0) after `max_attempts`
/// attempts. Defaults: 1 s doubling, capped at 30 min, for 6 hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Deliveries in flight at once, per replica.
    pub max_in_flight: usize,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub retry_window_secs: u64,
    /// 0 = bounded by the retry window only.
    pub max_attempts: u32,
    /// Connect + request + response, per attempt.
    pub request_timeout_ms: u64,
    /// How often an idle worker looks for due deliveries.
    pub poll_interval_ms: u64,
    /// How long a claimed delivery is held before another replica may take it over (a replica that
    /// died mid-attempt). Longer than `request_timeout_ms`.
    pub lease_ms: u64,
    /// Extra trusted CA certificates (PEM) for https webhooks, besides the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Refuse `http://` subscription URLs (payloads carry the BSN, as the standard's 301 does).
    /// On by default; only a local stack with its own loopback receivers turns it off.
    pub require_https: bool,
    /// Address ranges a webhook may reach although a rule of the SSRF guard refuses them
    /// ([`crate::egress`]): the tests' and the local stack's loopback receivers, never set in
    /// production. A list, or in the environment one comma-separated value
    /// (`RZ__WEBHOOKS__ALLOW_CIDRS=127.0.0.0/8,::1/128`).
    #[serde(deserialize_with = "cidr_list")]
    pub allow_cidrs: Vec<String>,
    /// Further ranges a webhook may never reach: the cluster's pod and service ranges (the
    /// loopback, private, link-local and unique-local ranges are refused anyway). As `allow_cidrs`.
    #[serde(deserialize_with = "cidr_list")]
    pub deny_cidrs: Vec<String>,
    /// The file of keys that seal subscription secrets at rest ([`crate::secrets`]): one
    /// `<key id> <base64 of 32 bytes>` per line, outside the database. Required.
    pub secret_keys_file: Option<PathBuf>,
    /// The key that seals new secrets; the file's last key when empty.
    pub secret_key_id: String,
    /// Keep-alive connections kept per receiver origin (scheme, host, port) between deliveries;
    /// 0 = a fresh connection per attempt.
    pub max_idle_per_origin: usize,
    /// A kept-alive connection unused this long is closed (receivers close idle connections
    /// too; staying under their timeout avoids sending on a connection they are closing).
    pub idle_timeout_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 30 * 60 * 1_000,
            retry_window_secs: 6 * 3_600,
            max_attempts: 0,
            request_timeout_ms: 10_000,
            poll_interval_ms: 250,
            lease_ms: 60_000,
            ca_file: None,
            require_https: true,
            allow_cidrs: Vec::new(),
            deny_cidrs: Vec::new(),
            secret_keys_file: None,
            secret_key_id: String::new(),
            max_idle_per_origin: 64,
            idle_timeout_ms: 4_000,
        }
    }
}

impl WebhookConfig {
    /// The delay after the `attempts`-th failed attempt.
    pub fn backoff(&self, attempts: u32) -> Duration {
        backoff(self.initial_backoff_ms, self.max_backoff_ms, attempts)
    }

    pub fn retry_window(&self) -> Duration {
        Duration::from_secs(self.retry_window_secs)
    }
}

/// A list of ranges from a TOML list or from one comma-separated string (the environment).
fn cidr_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(l) => l,
        Either::Text(t) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_sets_access_endpoints_per_cbs_code() {
        // A prefix of its own: tests run in parallel and share the process environment.
        // SAFETY: no other thread of this test binary reads these variables.
        unsafe {
            std::env::set_var(
                "RZNOTTEST__NOTIFICATION__ACCESS_ENDPOINTS__0222",
                "http://127.0.0.1:7001",
            );
            std::env::set_var(
                "RZNOTTEST__NOTIFICATION__ACCESS_ENDPOINTS__1859",
                "http://127.0.0.1:7002",
            );
            std::env::set_var(
                "RZNOTTEST__NOTIFICATION__ASSIGNMENT_ENDPOINT",
                "http://127.0.0.1:7100",
            );
            std::env::set_var("RZNOTTEST__NOTIFICATION__SCAN_INTERVAL_SECS", "0");
            std::env::set_var("RZNOTTEST__NOTIFICATION__TODAY_FILE", "/tmp/rz-today");
            std::env::set_var("RZNOTTEST__NOTIFICATION__LETTERS__CHANNEL", "post");
            std::env::set_var(
                "RZNOTTEST__NOTIFICATION__LETTERS__SPOOL_DIR",
                "/tmp/rz-spool",
            );
            std::env::set_var("RZNOTTEST__NOTIFICATION__LETTERS__MAX_ATTEMPTS", "5");
            std::env::set_var("RZNOTTEST__WEBHOOKS__ALLOW_CIDRS", "127.0.0.0/8, ::1/128");
            std::env::set_var("RZNOTTEST__WEBHOOKS__REQUIRE_HTTPS", "false");
            std::env::set_var("RZNOTTEST__WEBHOOKS__SECRET_KEYS_FILE", "/etc/rz/keys");
            std::env::set_var(
                "RZNOTTEST__NOTIFICATION__LETTERS__SMTP__MAILROOM__0222",
                "postkamer@doetinchem.example",
            );
        }
        let c: Config = rz_platform::config::load_with_env(None, "RZNOTTEST").unwrap_or_default();
        let n = &c.notification;
        assert_eq!(
            n.access_endpoints.get("0222").map(String::as_str),
            Some("http://127.0.0.1:7001")
        );
        assert_eq!(n.access_endpoints.len(), 2);
        assert_eq!(n.assignment_endpoint, "http://127.0.0.1:7100");
        assert_eq!(n.scan_interval_secs, 0);
        assert_eq!(n.alert_within_days, 7);
        assert_eq!(n.today_file, Some(PathBuf::from("/tmp/rz-today")));
        assert_eq!(n.today, None);
        assert_eq!(Config::default().notification.scan_interval_secs, 900);
        let l = &n.letters;
        assert_eq!(l.channel, LetterChannelKind::Post);
        assert_eq!(l.spool_dir, Some(PathBuf::from("/tmp/rz-spool")));
        assert_eq!(l.max_attempts, 5);
        assert_eq!(l.lease_ms, 120_000);
        assert_eq!(
            l.smtp.mailroom.get("0222").map(String::as_str),
            Some("postkamer@doetinchem.example")
        );
        assert_eq!(l.smtp.relay, "127.0.0.1:25");
        assert_eq!(l.validate(), Ok(()));
        let w = &c.webhooks;
        assert_eq!(w.allow_cidrs, vec!["127.0.0.0/8", "::1/128"]);
        assert!(w.deny_cidrs.is_empty());
        assert!(!w.require_https);
        assert_eq!(w.secret_keys_file, Some(PathBuf::from("/etc/rz/keys")));
        assert!(Config::default().webhooks.require_https, "https by default");
        assert_eq!(
            Config::default().notification.letters.channel,
            LetterChannelKind::None
        );
    }

    #[test]
    fn letters_config_rules_name_the_key() {
        let mut c = LettersConfig {
            channel: LetterChannelKind::Post,
            ..LettersConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .contains("notification.letters.spool_dir")
        );
        c.spool_dir = Some(PathBuf::from("/tmp/x"));
        c.max_attempts = 0;
        assert!(c.validate().unwrap_err().contains("max_attempts"));
        c.max_attempts = 3;
        c.lease_ms = c.send_timeout_ms;
        assert!(c.validate().unwrap_err().contains("lease_ms"));
        assert_eq!(LettersConfig::default().validate(), Ok(()));
    }

    #[test]
    fn letter_backoff_gives_up_after_about_four_and_a_half_hours() {
        let c = LettersConfig::default();
        assert_eq!(c.backoff(1), Duration::from_secs(1));
        assert_eq!(c.backoff(11), Duration::from_secs(1024));
        assert_eq!(c.backoff(12), Duration::from_secs(1800));
        // The delays between the 20 attempts: 1+2+...+1024 s, then eight of 30 minutes.
        let total: Duration = (1..c.max_attempts).map(|n| c.backoff(n)).sum();
        assert_eq!(total, Duration::from_secs(2047 + 8 * 1800));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = WebhookConfig::default();
        assert_eq!(c.backoff(1), Duration::from_secs(1));
        assert_eq!(c.backoff(2), Duration::from_secs(2));
        assert_eq!(c.backoff(5), Duration::from_secs(16));
        assert_eq!(c.backoff(12), Duration::from_secs(1800));
        assert_eq!(c.backoff(200), Duration::from_secs(1800));
        // 1+2+...+1024 s (34 min), then ten 30-minute steps: 21 retries within 6 hours.
        let mut total = Duration::ZERO;
        let mut n = 0;
        while total + c.backoff(n + 1) <= c.retry_window() {
            n += 1;
            total += c.backoff(n);
        }
        assert_eq!(n, 21);
    }
}
