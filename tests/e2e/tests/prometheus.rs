//! A real Prometheus (Debian's package `prometheus`; `deploy/prometheus/check.sh` installs it)
//! scrapes every service of the stack — registration, access, assignment, notification and
//! reporting, each serving `/metrics` on a port of its own — with the region's alert rules
//! loaded: every target is up, each exports its metrics, a call is visible through Prometheus'
//! HTTP API, and no service-down alert is pending or firing.
//!
//! The same Prometheus then checks the Grafana dashboards of `deploy/grafana/dashboards/`: every
//! PromQL expression of every panel (nested rows included) and every template variable's query,
//! with the variables filled in, runs through `/api/v1/query` without an error, and every metric
//! name it uses is one Prometheus knows after each service has answered a call.
//!
//! Exemplars: a call made in a trace of the test's own (its `traceparent`) leaves that trace id
//! as the exemplar of its latency bucket in the service's `/metrics` (OpenMetrics text), and
//! Prometheus, started with `--enable-feature=exemplar-storage` as `deploy/local-stack.sh` starts
//! it, returns it from `/api/v1/query_exemplars`: what a Grafana latency panel links to the trace.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rz_proto::registration::v1 as pb;
use rz_proto::{access::v1 as access_pb, reporting::v1 as reporting_pb};
use rz_proto::{assignment::v1 as assignment_pb, notification::v1 as notification_pb};
use rz_stack::Stack;
use serde_json::Value;

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
            .arg("--enable-feature=exemplar-storage")
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
        let (code, _, body) = http_get(self.addr, path).await;
        (code, body)
    }

    /// `GET path` whose body is Prometheus' JSON answer: (status code, the answer).
    async fn get_json(&self, path: &str) -> (u16, Value) {
        let (code, body) = self.get(path).await;
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {code}, not JSON ({e}): {body}"));
        (code, json)
    }

    /// The single number an instant query gives, if any.
    async fn value(&self, query: &str) -> Option<f64> {
        let encoded = encode(query);
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

/// `GET path` from `addr` over HTTP/1.0 (no chunked body): (status code, the head, the body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
            return (0, String::new(), String::new());
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
        (code, head.to_owned(), body.to_owned())
    })
    .await
    .unwrap()
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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

    // One call to see in Prometheus: a provider that is not registered (nobody else asks), in a
    // trace of the test's own, whose id must come back as the exemplar of the call's latency.
    let trace_id = format!(
        "{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            | (1 << 127)
    );
    let mut request = tonic::Request::new(pb::GetProviderRequest {
        agb_code: "09999999".into(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let err = stack
        .registration()
        .get_provider(request)
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
    check_exemplars(&prometheus, registration, &trace_id).await;
    // The reporting consumers' lag is sampled and scraped, one series per consumer.
    prometheus
        .wait_until("count(rz_consumer_pending{job=\"reporting\"})", 1.0, |v| {
            v >= 1.0
        })
        .await;

    // The services' own gauges are served from the start, 0 included: notification's queues per
    // state, the deadlines of access (statutory) and assignment (chain) for Doetinchem.
    prometheus
        .wait_for(
            "count(rz_webhook_deliveries{job=\"notification\"} == 0) \
             + count(rz_letters{job=\"notification\"} == 0)",
            6.0,
        )
        .await;
    for (job, kinds) in [
        ("access", "investigation|decision"),
        ("assignment", "start_of_care|request_answer"),
    ] {
        prometheus
            .wait_for(
                &format!(
                    "count(rz_deadlines_overdue{{job=\"{job}\", municipality=\"0222\", kind=~\"{kinds}\"}})"
                ),
                2.0,
            )
            .await;
    }

    // The rules are loaded and healthy; no service is reported down.
    let (code, rules) = prometheus.get("/api/v1/rules").await;
    assert_eq!(code, 200);
    for alert in [
        "RegiozorgServiceDown",
        "RegiozorgOutboxNotDraining",
        "RegiozorgConsumerLagGrowing",
        "RegiozorgDeadLetters",
        "RegiozorgWebhookDeliveriesFailing",
        "RegiozorgWebhookDeliveriesDelayed",
        "RegiozorgStatutoryDeadlinesOverdue",
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

    // A call to each of the other services too (whatever they answer: each is counted), so that
    // every metric the dashboards use has a series.
    let _ = stack
        .access("0222")
        .get_resident(access_pb::GetResidentRequest::default())
        .await;
    let _ = stack
        .assignment()
        .get_assignment(assignment_pb::GetAssignmentRequest::default())
        .await;
    let _ = stack
        .notification()
        .list_subscriptions(notification_pb::ListSubscriptionsRequest::default())
        .await;
    let _ = stack
        .reporting()
        .get_status(reporting_pb::GetStatusRequest::default())
        .await;
    prometheus
        .wait_for(
            "count(sum by (job) (rz_rpc_requests_total{service!=\"grpc.health.v1.Health\"}))",
            5.0,
        )
        .await;
    // Two scrapes of each after the calls, so that rate() over them has its two samples.
    tokio::time::sleep(Duration::from_secs(3)).await;
    check_dashboards(&prometheus).await;

    drop(prometheus);
    stack.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- exemplars

/// The call of `trace_id` to registration's GetProvider (NOT_FOUND) has its trace id as the
/// exemplar of a latency bucket: in the service's OpenMetrics text, and in Prometheus' exemplar
/// storage.
async fn check_exemplars(prometheus: &Prometheus, registration: SocketAddr, trace_id: &str) {
    let (code, head, text) = http_get(registration, "/metrics").await;
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "exemplars need the OpenMetrics text format: {head}"
    );
    let exemplar = format!(" # {{trace_id=\"{trace_id}\"}} ");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("rz_rpc_duration_seconds_bucket{")
                && l.contains("method=\"GetProvider\"")
                && l.contains("code=\"NOT_FOUND\"")
        })
        .collect();
    assert!(
        lines.iter().any(|l| l.contains(&exemplar)),
        "no exemplar of trace {trace_id} on GetProvider's latency buckets:\n{}",
        lines.join("\n")
    );
    // Prometheus stored it (scraped every second): the exemplar a latency panel shows as a point.
    let query = encode(
        "rz_rpc_duration_seconds_bucket{job=\"registration\",method=\"GetProvider\",code=\"NOT_FOUND\"}",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let path = format!(
        "/api/v1/query_exemplars?query={query}&start={}&end={}",
        now - 600,
        now + 600
    );
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < Duration::from_secs(60) {
        let (code, answer) = prometheus.get_json(&path).await;
        assert_eq!(code, 200, "{answer}");
        let found = answer["data"].as_array().is_some_and(|series| {
            series.iter().any(|s| {
                s["exemplars"].as_array().is_some_and(|es| {
                    es.iter()
                        .any(|e| e["labels"]["trace_id"].as_str() == Some(trace_id))
                })
            })
        });
        if found {
            println!(
                "exemplars: trace {trace_id} on GetProvider's latency, in /metrics and in Prometheus after {:?}",
                start.elapsed()
            );
            return;
        }
        last = answer;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "Prometheus has no exemplar of trace {trace_id} after 60 s: {last}\nlog: {}",
        prometheus.log()
    );
}

// ---------------------------------------------------------------- the dashboards

fn dashboard_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/dashboards")
}

/// Every dashboard of deploy/grafana/dashboards: (file name, its JSON), by name.
fn dashboards() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dashboard_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let json = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
            (name, json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every `targets[].expr` under `v` (panels, rows' collapsed panels, anything nested): (the
/// panel's title, the expression).
fn exprs(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
            if let Some(targets) = map.get("targets").and_then(Value::as_array) {
                for t in targets {
                    if let Some(expr) = t.get("expr").and_then(Value::as_str) {
                        out.push((title.to_owned(), expr.to_owned()));
                    }
                }
            }
            for (key, child) in map {
                if key != "templating" {
                    exprs(child, title, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| exprs(i, title, out)),
        _ => {}
    }
}

/// Every `datasource.uid` under `v` that is not the `${datasource}` variable (a hard-coded data
/// source would not exist in another Grafana). Grafana's own (`-- Grafana --`) is allowed.
fn fixed_datasources(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(uid) = map
                .get("datasource")
                .and_then(|d| d.get("uid"))
                .and_then(Value::as_str)
                && uid != "${datasource}"
                && uid != "-- Grafana --"
            {
                out.push(uid.to_owned());
            }
            map.values().for_each(|c| fixed_datasources(c, out));
        }
        Value::Array(items) => items.iter().for_each(|i| fixed_datasources(i, out)),
        _ => {}
    }
}

/// `expr` with Grafana's variables filled in: the built-in intervals and `vars` (name, value),
/// as `$name`, `${name}` and `[[name]]`.
fn substitute(expr: &str, vars: &[(String, String)]) -> String {
    let mut all: Vec<(String, String)> = [
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__range", "1h"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
    .chain(vars.iter().cloned())
    .collect();
    // The longest names first, so that $instance is not taken for $in followed by "stance".
    all.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut out = expr.to_owned();
    for (name, value) in &all {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("[[{name}]]"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// PromQL's words that are not metric names (aggregations, keywords, set operators).
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// The metric names an expression selects: its identifiers outside strings, label matchers
/// (`{...}`), ranges (`[...]`) and grouping lists (`by (...)`, `on (...)`, ...), that are not
/// function calls or PromQL's words.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    // Skips a string literal starting at `i`; returns the index after it.
    let skip_string = |i: usize| {
        let quote = chars[i];
        let mut j = i + 1;
        while j < chars.len() && chars[j] != quote {
            j += if chars[j] == '\\' { 2 } else { 1 };
        }
        j + 1
    };
    // Skips from the opening bracket at `i` to after its closing one (strings inside skipped).
    let skip_group = |i: usize, open: char, close: char| {
        let mut depth = 0;
        let mut j = i;
        while j < chars.len() {
            match chars[j] {
                '"' | '\'' | '`' => {
                    j = skip_string(j);
                    continue;
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
        } else if c == '{' {
            i = skip_group(i, '{', '}');
        } else if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration (0.99, 1e3, 5m).
            while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if ident_start(c) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = next < chars.len() && chars[next] == '(';
            let grouping = [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&word.as_str());
            if grouping && call {
                i = skip_group(next, '(', ')');
            } else if !call && !PROMQL_WORDS.contains(&word.as_str()) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// `label_values(selector, label)` of a query variable: (the selector, if any, the label).
fn label_values_query(query: &str) -> Option<(Option<String>, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((selector, label)) => {
            Some((Some(selector.trim().to_owned()), label.trim().to_owned()))
        }
        None => Some((None, inner.trim().to_owned())),
    }
}

#[test]
fn metric_names_are_told_from_functions_labels_and_words() {
    let expr = "histogram_quantile(0.99, sum by (job, le) (rate(rz_rpc_duration_seconds_bucket\
                {job=~\"access.*\", code!=\"OK\"}[1m]))) / on (job) group_left(service) \
                max without (instance) (up offset 5m) > bool 1 or vector(0) and ignoring(x) \
                rz_db_pool_idle{method=\"sum by\"}";
    assert_eq!(
        metric_names(expr),
        ["rz_rpc_duration_seconds_bucket", "up", "rz_db_pool_idle"]
    );
    assert_eq!(
        substitute(
            "rate(x{instance=~\"$instance\", c=\"${consumer}\"}[$__rate_interval])",
            &[
                ("instance".into(), "h:1".into()),
                ("consumer".into(), "c1".into())
            ]
        ),
        "rate(x{instance=~\"h:1\", c=\"c1\"}[1m])"
    );
    assert_eq!(
        label_values_query("label_values(up{job=~\"a, b\"}, instance)"),
        Some((Some("up{job=~\"a, b\"}".into()), "instance".into()))
    );
}

#[test]
fn every_dashboard_takes_its_prometheus_from_the_datasource_variable() {
    let boards = dashboards();
    assert!(boards.len() >= 7, "{} dashboards", boards.len());
    // Each is in the ConfigMap generator for Kubernetes (k8s/base/observability/grafana).
    let generator = std::fs::read_to_string(dashboard_dir().join("../kustomization.yaml")).unwrap();
    for (name, _) in &boards {
        assert!(
            generator.contains(&format!("[dashboards/{name}]")),
            "deploy/grafana/kustomization.yaml does not generate a ConfigMap of {name}"
        );
    }
    let mut uids = std::collections::HashSet::new();
    for (name, board) in &boards {
        let uid = board["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(uids.insert(uid.to_owned()), "{name}: uid {uid} used twice");
        assert!(board["title"].as_str().is_some(), "{name}: no title");
        assert!(
            board["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
            "{name}: schemaVersion {}",
            board["schemaVersion"]
        );
        let vars = board["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: no Prometheus data source variable `datasource`"
        );
        let mut fixed = Vec::new();
        fixed_datasources(board, &mut fixed);
        assert!(
            fixed.is_empty(),
            "{name}: hard-coded data sources {fixed:?}"
        );
        let mut found = Vec::new();
        exprs(board, "", &mut found);
        assert!(!found.is_empty(), "{name}: no query");
        // A query of the RPC latency shows its exemplars (points that open the trace).
        let mut without = Vec::new();
        latency_targets_without_exemplars(board, &mut without);
        assert!(
            without.is_empty(),
            "{name}: rz_rpc_duration_seconds_bucket queries without \"exemplar\": true: {without:?}"
        );
    }
    // The data source example links an exemplar's trace_id to the trace data source.
    let datasources = std::fs::read_to_string(dashboard_dir().join("../datasources.yaml")).unwrap();
    for needed in [
        "type: prometheus",
        "exemplarTraceIdDestinations:",
        "name: trace_id",
        "datasourceUid: tempo",
        "uid: tempo",
        "type: tempo",
    ] {
        assert!(
            datasources.contains(needed),
            "deploy/grafana/datasources.yaml lacks `{needed}`"
        );
    }
}

/// The expressions of the targets under `v` that read `rz_rpc_duration_seconds_bucket` without
/// `"exemplar": true`.
fn latency_targets_without_exemplars(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(targets) = map.get("targets").and_then(Value::as_array) {
                for t in targets {
                    if let Some(expr) = t.get("expr").and_then(Value::as_str)
                        && expr.contains("rz_rpc_duration_seconds_bucket")
                        && t.get("exemplar") != Some(&Value::Bool(true))
                    {
                        out.push(expr.to_owned());
                    }
                }
            }
            map.values()
                .for_each(|c| latency_targets_without_exemplars(c, out));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|i| latency_targets_without_exemplars(i, out)),
        _ => {}
    }
}

/// Runs every dashboard query through Prometheus (see the module's documentation).
async fn check_dashboards(prometheus: &Prometheus) {
    let (code, names) = prometheus.get_json("/api/v1/label/__name__/values").await;
    assert_eq!(code, 200, "{names}");
    let known: std::collections::HashSet<String> = names["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    let (mut checked, mut with_data, mut variables) = (0, 0, 0);
    let mut empty = Vec::new();
    let mut failures = Vec::new();
    let boards = dashboards();
    for (name, board) in &boards {
        // The variables in order (a later one may use an earlier one): a query variable takes the
        // first value Prometheus gives for it, a custom or constant one its first option.
        let mut vars: Vec<(String, String)> = Vec::new();
        for var in board["templating"]["list"].as_array().unwrap() {
            let var_name = var["name"].as_str().unwrap().to_owned();
            let value = match var["type"].as_str().unwrap_or("") {
                "datasource" => "prometheus".to_owned(),
                "query" => {
                    let query = var["query"]
                        .as_str()
                        .or_else(|| var["query"]["query"].as_str())
                        .unwrap_or_else(|| panic!("{name}: ${var_name} has no query"));
                    let query = substitute(query, &vars);
                    let Some((selector, label)) = label_values_query(&query) else {
                        failures.push(format!(
                            "{name}: ${var_name}: not label_values(...): {query}"
                        ));
                        continue;
                    };
                    let mut path = format!("/api/v1/label/{label}/values");
                    if let Some(selector) = &selector {
                        for metric in metric_names(selector) {
                            if !known.contains(&metric) {
                                failures
                                    .push(format!("{name}: ${var_name}: unknown metric {metric}"));
                            }
                        }
                        path.push_str(&format!("?match[]={}", encode(selector)));
                    }
                    let (code, answer) = prometheus.get_json(&path).await;
                    variables += 1;
                    match answer["data"]
                        .as_array()
                        .and_then(|v| v.first())
                        .and_then(Value::as_str)
                    {
                        Some(first) if code == 200 => first.to_owned(),
                        _ => {
                            failures.push(format!(
                                "{name}: ${var_name} ({query}) has no value: {code} {answer}"
                            ));
                            continue;
                        }
                    }
                }
                _ => var["options"][0]["value"]
                    .as_str()
                    .or_else(|| var["query"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
            };
            vars.push((var_name, value));
        }
        let mut found = Vec::new();
        exprs(board, "", &mut found);
        for (panel, expr) in found {
            let query = substitute(&expr, &vars);
            if query.contains('$') {
                failures.push(format!("{name} / {panel}: a variable left in {query}"));
                continue;
            }
            for metric in metric_names(&query) {
                if !known.contains(&metric) {
                    failures.push(format!(
                        "{name} / {panel}: unknown metric {metric} in {query}"
                    ));
                }
            }
            let (code, answer) = prometheus
                .get_json(&format!("/api/v1/query?query={}", encode(&query)))
                .await;
            checked += 1;
            if code != 200 || answer["status"] != "success" {
                failures.push(format!("{name} / {panel}: {query}: {code} {answer}"));
            } else if answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                with_data += 1;
            } else {
                empty.push(format!("{name} / {panel}"));
            }
        }
    }
    println!(
        "dashboards: {} dashboards, {checked} queries checked ({with_data} with data now, {} empty), \
         {variables} variable queries, {} metric names known",
        boards.len(),
        empty.len(),
        known.len()
    );
    for e in &empty {
        println!("  empty now: {e}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 50, "only {checked} queries");
}
