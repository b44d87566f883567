//! A real Prometheus (Debian's package `prometheus`; `deploy/prometheus/check.sh` installs it)
//! scrapes every service of the stack — registration, access, assignment, notification and
//! reporting, each serving `/metrics` on a port of its own — with the region's alert rules
//! loaded: every target is up, each exports its metrics, a call is visible through Prometheus'
//! HTTP API, and no service-down alert is pending or firing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rz_proto::registration::v1 as pb;
use rz_stack::Stack;

/// A port nothing listens on now (the service binds it a moment later).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn prometheus_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no prometheus binary: install Debian's package `prometheus` \
                 (deploy/prometheus/check.sh does)"
            )
        })
}

/// Prometheus as a child process, killed when dropped (also when the test fails).
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    fn start(targets: &[(&str, SocketAddr)]) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let rules = root.join("deploy/prometheus/rules/regiozorg.yml");
        let dir = std::env::temp_dir().join(format!(
            "rz-prometheus-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - \"{}\"\nscrape_configs:\n  - job_name: regiozorg\n    static_configs:\n",
            rules.display()
        );
        for (job, addr) in targets {
            config.push_str(&format!(
                "      - targets: [\"{addr}\"]\n        labels: {{job: \"{job}\"}}\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr = free_addr();
        let child = Command::new(prometheus_binary())
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        Self { child, addr, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` over HTTP/1.0 (no chunked body): (status code, body).
    async fn get(&self, path: &str) -> (u16, String) {
        let (addr, path) = (self.addr, path.to_owned());
        tokio::task::spawn_blocking(move || {
            let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
                return (0, String::new());
            };
            write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
            let mut raw = String::new();
            let _ = conn.read_to_string(&mut raw);
            let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
            let code = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            (code, body.to_owned())
        })
        .await
        .unwrap()
    }

    /// The single number an instant query gives, if any.
    async fn value(&self, query: &str) -> Option<f64> {
        let encoded: String = query
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (_, body) = self.get(&format!("/api/v1/query?query={encoded}")).await;
        // {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.7e9,"5"]}]}}
        let value = body.split("\"value\":[").nth(1)?;
        let number = value.split(',').nth(1)?.split('"').nth(1)?;
        number.parse().ok()
    }

    /// Waits (at most 60 s) until `query` gives `expected`.
    async fn wait_for(&self, query: &str, expected: f64) {
        self.wait_until(query, expected, |v| v == expected).await;
    }

    /// Waits (at most 60 s) until `query` gives a value `ok` accepts.
    async fn wait_until(&self, query: &str, expected: f64, ok: impl Fn(f64) -> bool) {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < Duration::from_secs(60) {
            last = self.value(query).await;
            if last.is_some_and(&ok) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (_, targets) = self.get("/api/v1/targets").await;
        panic!(
            "`{query}` is {last:?}, not {expected}, after 60 s\ntargets: {targets}\nlog: {}",
            self.log()
        );
    }
}

#[tokio::test]
async fn prometheus_scrapes_every_service_with_the_alert_rules_loaded() {
    let (registration, access, assignment, notification, reporting) = (
        free_addr(),
        free_addr(),
        free_addr(),
        free_addr(),
        free_addr(),
    );
    let stack = Stack::builder()
        .access("0222")
        .assignment()
        .notification()
        .reporting()
        .registration_config(move |c| {
            c.metrics.listen = Some(registration);
            c.metrics.sample_secs = 1;
        })
        .access_config(move |c| {
            c.metrics.listen = Some(access);
            c.metrics.sample_secs = 1;
        })
        .assignment_config(move |c| {
            c.metrics.listen = Some(assignment);
            c.metrics.sample_secs = 1;
        })
        .notification_config(move |c| {
            c.metrics.listen = Some(notification);
            c.metrics.sample_secs = 1;
        })
        .reporting_config(move |c| {
            c.metrics.listen = Some(reporting);
            c.metrics.sample_secs = 1;
        })
        .start()
        .await;
    let targets = [
        ("registration", registration),
        ("access", access),
        ("assignment", assignment),
        ("notification", notification),
        ("reporting", reporting),
    ];
    let prometheus = Prometheus::start(&targets);
    let start = Instant::now();
    while prometheus.get("/-/ready").await.0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Prometheus not ready: {}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One call to see in Prometheus: a provider that is not registered (nobody else asks).
    let err = stack
        .registration()
        .get_provider(pb::GetProviderRequest {
            agb_code: "09999999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    prometheus.wait_for("count(up == 1)", 5.0).await;
    for (job, _) in &targets {
        prometheus
            .wait_for(
                &format!("count(rz_db_pool_max_connections{{job=\"{job}\"}})"),
                1.0,
            )
            .await;
    }
    prometheus
        .wait_for(
            "sum(rz_rpc_requests_total{job=\"registration\",method=\"GetProvider\",code=\"NOT_FOUND\"})",
            1.0,
        )
        .await;
    // The reporting consumers' lag is sampled and scraped, one series per consumer.
    prometheus
        .wait_until("count(rz_consumer_pending{job=\"reporting\"})", 1.0, |v| {
            v >= 1.0
        })
        .await;

    // The rules are loaded and healthy; no service is reported down.
    let (code, rules) = prometheus.get("/api/v1/rules").await;
    assert_eq!(code, 200);
    for alert in [
        "RegiozorgServiceDown",
        "RegiozorgOutboxNotDraining",
        "RegiozorgConsumerLagGrowing",
        "RegiozorgDeadLetters",
    ] {
        assert!(rules.contains(&format!("\"name\":\"{alert}\"")), "{alert}");
    }
    assert!(!rules.contains("\"health\":\"err\""), "{rules}");
    assert_eq!(
        prometheus
            .value("count(ALERTS{alertname=\"RegiozorgServiceDown\"}) or vector(0)")
            .await,
        Some(0.0)
    );

    drop(prometheus);
    stack.shutdown().await.unwrap();
}
