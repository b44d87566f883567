//! The result of a run: every figure is either measured or `null` with the reason in
//! `not_measured`; nothing is filled in that was not measured. Printed as a table and written as
//! JSON (`var/bench/result.json`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The figures of `var/bench/result.json`, in table order, with their units.
pub const FIGURES: &[(&str, &str)] = &[
    (
        "pg_insert_tps",
        "PostgreSQL single-row INSERT commits/s (pgbench, 32 clients)",
    ),
    (
        "js_publish_per_s",
        "JetStream publishes/s, async acks, file storage",
    ),
    (
        "rpc_plain_p50_ms",
        "unary gRPC call, plain h2c, p50 ms (in-process server, tls.rs)",
    ),
    ("rpc_plain_p99_ms", "unary gRPC call, plain h2c, p99 ms"),
    ("rpc_mtls_p50_ms", "unary gRPC call, mutual TLS, p50 ms"),
    ("rpc_mtls_p99_ms", "unary gRPC call, mutual TLS, p99 ms"),
    (
        "rpc_checked_p50_ms",
        "unary gRPC call, mutual TLS + identity, policy, rate limit, field check, p50 ms",
    ),
    (
        "rpc_checked_p99_ms",
        "unary gRPC call, mutual TLS + the checks, p99 ms",
    ),
    ("rpc_plain_per_s", "unary gRPC calls/s, 64 in flight, plain"),
    (
        "rpc_mtls_per_s",
        "unary gRPC calls/s, 64 in flight, mutual TLS",
    ),
    (
        "rpc_checked_per_s",
        "unary gRPC calls/s, 64 in flight, mutual TLS + the checks",
    ),
    (
        "rpc_checks_cost_p50_ms",
        "rpc_checked_p50_ms - rpc_plain_p50_ms: what TLS and the checks add to a call",
    ),
    (
        "tls_connect_ms",
        "a new mutual-TLS connection and its first checked call, mean ms",
    ),
    (
        "floor_flows_per_s",
        "floor flows/s: the least a flow needs in this shape (floor.rs)",
    ),
    (
        "floor_to_pg_ratio",
        "floor_flows_per_s / pg_insert_tps (the highest ratio the shape allows)",
    ),
    (
        "flows_per_s",
        "care flows/s at saturation (decision -> report)",
    ),
    (
        "flow_to_floor_ratio",
        "flows_per_s / floor_flows_per_s (how near the product is to the floor)",
    ),
    (
        "flow_to_pg_ratio",
        "flows_per_s / pg_insert_tps (target >= 0.2)",
    ),
    (
        "decision_to_provider_p50_ms",
        "decision commit -> provider receipt, p50 ms",
    ),
    (
        "decision_to_provider_p95_ms",
        "decision commit -> provider receipt, p95 ms",
    ),
    (
        "decision_to_provider_p99_ms",
        "decision commit -> provider receipt, p99 ms (target < 50)",
    ),
    (
        "decision_to_report_p50_ms",
        "decision commit -> client in care in the report, p50 ms",
    ),
    (
        "decision_to_report_p95_ms",
        "decision commit -> client in care in the report, p95 ms",
    ),
    (
        "decision_to_report_p99_ms",
        "decision commit -> client in care in the report, p99 ms",
    ),
    ("handover_per_s", "clients handed over/s (RunHandover)"),
    (
        "webhook_per_s",
        "webhook deliveries/s (signed CloudEvents POSTs)",
    ),
    ("webhook_p50_ms", "event commit -> webhook receipt, p50 ms"),
    (
        "webhook_p99_ms",
        "event commit -> webhook receipt, p99 ms (target < 100)",
    ),
    (
        "national_clients_in_care",
        "clients in care preloaded for the national figures",
    ),
    (
        "national_flows_per_s",
        "care flows/s at saturation, national scale",
    ),
    (
        "national_decision_to_provider_p99_ms",
        "decision commit -> provider receipt, p99 ms, national scale",
    ),
    (
        "national_decision_to_report_p99_ms",
        "decision commit -> report, p99 ms, national scale",
    ),
    (
        "national_to_region_flows",
        "national_flows_per_s / flows_per_s (target >= 0.8)",
    ),
    (
        "handover_clients",
        "clients handed over in the handover_per_s run (target 100,000)",
    ),
];

#[derive(Debug, Default)]
pub struct Report {
    /// Put before every key while set (`national_`): the same section measured a second time.
    prefix: &'static str,
    figures: BTreeMap<&'static str, f64>,
    peak_rss_mb: BTreeMap<String, f64>,
    not_measured: BTreeMap<String, String>,
    details: Map<String, Value>,
    /// How long each phase took, in the order they ran (`phase_seconds` in the JSON).
    phases: Vec<(String, f64)>,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys from now on are `prefix` + key; a prefixed key that is not a listed figure is kept
    /// under `details.<prefix>figures`. `""` ends it.
    pub fn set_prefix(&mut self, prefix: &'static str) {
        self.prefix = prefix;
    }

    fn listed(key: &str) -> Option<&'static str> {
        FIGURES.iter().map(|(k, _)| *k).find(|k| *k == key)
    }

    /// A measured figure. Unknown keys are refused, so a typo cannot hide a figure.
    pub fn measured(&mut self, key: &'static str, value: f64) {
        if !self.prefix.is_empty() {
            let full = format!("{}{key}", self.prefix);
            match Self::listed(&full) {
                Some(k) if value.is_finite() => {
                    self.figures.insert(k, value);
                    self.not_measured.remove(k);
                }
                _ => self.prefixed_detail(key, json!(value)),
            }
            return;
        }
        if Self::listed(key).is_some() && value.is_finite() {
            self.figures.insert(key, value);
            self.not_measured.remove(key);
        } else {
            self.not_measured
                .insert(key.to_owned(), format!("measurement gave {value}"));
        }
    }

    /// A figure that may be missing (an empty sample set): the reason is recorded when it is.
    pub fn maybe(&mut self, key: &'static str, value: Option<f64>, reason: &str) {
        match value {
            Some(v) => self.measured(key, v),
            None => self.not_measured(key, reason),
        }
    }

    fn prefixed_detail(&mut self, key: &str, value: Value) {
        let group = format!("{}figures", self.prefix);
        if let Value::Object(m) = self
            .details
            .entry(group)
            .or_insert_with(|| Value::Object(Map::new()))
        {
            m.insert(key.to_owned(), value);
        }
    }

    /// A figure that was not measured, and why. Keeps the first reason given.
    pub fn not_measured(&mut self, key: &str, reason: &str) {
        if !self.prefix.is_empty() {
            let full = format!("{}{key}", self.prefix);
            if Self::listed(&full).is_some() {
                let prefix = std::mem::take(&mut self.prefix);
                self.not_measured(&full, reason);
                self.prefix = prefix;
            } else {
                self.prefixed_detail(key, json!({ "not_measured": reason }));
            }
            return;
        }
        if !self.figures.contains_key(key) {
            self.not_measured
                .entry(key.to_owned())
                .or_insert_with(|| reason.to_owned());
        }
    }

    pub fn peak_rss(&mut self, service: &str, mb: f64) {
        self.peak_rss_mb.insert(service.to_owned(), mb);
    }

    /// A supporting figure (counts, durations, settings) kept under `details`.
    pub fn detail(&mut self, key: &str, value: Value) {
        self.details.insert(format!("{}{key}", self.prefix), value);
    }

    /// Ends a phase that began at `started`: says how long it took now, and keeps it for the
    /// table and the JSON.
    pub fn phase(&mut self, name: &str, started: std::time::Instant) {
        let secs = started.elapsed().as_secs_f64();
        eprintln!("bench: {name}: {secs:.0} s");
        self.phases.push((name.to_owned(), secs));
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.figures.get(key).copied()
    }

    /// Derives `flow_to_pg_ratio`, `floor_to_pg_ratio`, `flow_to_floor_ratio` and gives every figure still missing a reason.
    pub fn finish(&mut self) {
        match (self.get("flows_per_s"), self.get("pg_insert_tps")) {
            (Some(f), Some(p)) if p > 0.0 => self.measured("flow_to_pg_ratio", f / p),
            _ => self.not_measured(
                "flow_to_pg_ratio",
                "needs both flows_per_s and pg_insert_tps in the same run",
            ),
        }
        match (self.get("floor_flows_per_s"), self.get("pg_insert_tps")) {
            (Some(f), Some(p)) if p > 0.0 => self.measured("floor_to_pg_ratio", f / p),
            _ => self.not_measured(
                "floor_to_pg_ratio",
                "needs both floor_flows_per_s and pg_insert_tps in the same run",
            ),
        }
        match (self.get("flows_per_s"), self.get("floor_flows_per_s")) {
            (Some(f), Some(l)) if l > 0.0 => self.measured("flow_to_floor_ratio", f / l),
            _ => self.not_measured(
                "flow_to_floor_ratio",
                "needs both flows_per_s and floor_flows_per_s in the same run",
            ),
        }
        match (self.get("national_flows_per_s"), self.get("flows_per_s")) {
            (Some(n), Some(r)) if r > 0.0 => self.measured("national_to_region_flows", n / r),
            _ => self.not_measured(
                "national_to_region_flows",
                "needs flows_per_s and national_flows_per_s in the same run",
            ),
        }
        for (k, _) in FIGURES {
            self.not_measured(k, "not run in this invocation");
        }
        if self.peak_rss_mb.is_empty() {
            self.not_measured("peak_rss_mb", "no service processes ran in this invocation");
        }
    }

    pub fn to_json(&self, meta: Value) -> Value {
        let mut out = Map::new();
        for (k, _) in FIGURES {
            out.insert(
                (*k).to_owned(),
                self.figures
                    .get(k)
                    .map_or(Value::Null, |v| json!(round(*v))),
            );
        }
        out.insert(
            "peak_rss_mb".into(),
            if self.peak_rss_mb.is_empty() {
                Value::Null
            } else {
                json!(
                    self.peak_rss_mb
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(round(*v))))
                        .collect::<Map<_, _>>()
                )
            },
        );
        out.insert("not_measured".into(), json!(self.not_measured));
        out.insert(
            "phase_seconds".into(),
            Value::Array(
                self.phases
                    .iter()
                    .map(|(name, secs)| json!({"phase": name, "seconds": round(*secs)}))
                    .collect(),
            ),
        );
        out.insert("details".into(), Value::Object(self.details.clone()));
        out.insert("meta".into(), meta);
        Value::Object(out)
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("{:<30} {:>14}  {}\n", "figure", "value", "what"));
        s.push_str(&format!("{}\n", "-".repeat(100)));
        for (k, what) in FIGURES {
            let v = match self.figures.get(k) {
                Some(v) => format_value(*v),
                None => "-".to_owned(),
            };
            s.push_str(&format!("{k:<30} {v:>14}  {what}\n"));
        }
        for (svc, mb) in &self.peak_rss_mb {
            s.push_str(&format!(
                "{:<30} {:>14}  peak resident memory, MB\n",
                format!("peak_rss_mb.{svc}"),
                format_value(*mb)
            ));
        }
        if !self.phases.is_empty() {
            s.push_str("\nphases, seconds:\n");
            for (name, secs) in &self.phases {
                s.push_str(&format!("  {name:<36} {secs:>8.0}\n"));
            }
        }
        if !self.not_measured.is_empty() {
            s.push_str("\nnot measured:\n");
            for (k, why) in &self.not_measured {
                s.push_str(&format!("  {k}: {why}\n"));
            }
        }
        s
    }
}

fn round(v: f64) -> f64 {
    if v.abs() >= 100.0 {
        (v * 10.0).round() / 10.0
    } else {
        (v * 1000.0).round() / 1000.0
    }
}

fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn missing_figures_are_null_with_a_reason() {
        let mut r = Report::new();
        r.measured("pg_insert_tps", 1000.0);
        r.not_measured("webhook_per_s", "receiver failed");
        r.finish();
        let j = r.to_json(json!({}));
        assert_eq!(j["pg_insert_tps"], json!(1000.0));
        assert_eq!(j["flows_per_s"], Value::Null);
        assert_eq!(j["webhook_per_s"], Value::Null);
        assert_eq!(j["not_measured"]["webhook_per_s"], json!("receiver failed"));
        assert!(j["not_measured"]["flows_per_s"].is_string());
        assert!(j["not_measured"]["flow_to_pg_ratio"].is_string());
        assert_eq!(j["peak_rss_mb"], Value::Null);
        for (k, _) in FIGURES {
            assert!(
                !j[*k].is_null() || j["not_measured"][*k].is_string(),
                "{k} null without a reason"
            );
        }
    }

    #[test]
    fn ratio_is_derived_and_a_measurement_clears_an_earlier_reason() {
        let mut r = Report::new();
        r.not_measured("flows_per_s", "first attempt failed");
        r.measured("flows_per_s", 500.0);
        r.measured("pg_insert_tps", 2000.0);
        r.peak_rss("assignment", 42.0);
        r.finish();
        let j = r.to_json(json!({}));
        assert_eq!(j["flow_to_pg_ratio"], json!(0.25));
        assert!(j["not_measured"].get("flows_per_s").is_none());
        assert_eq!(j["peak_rss_mb"]["assignment"], json!(42.0));
        assert!(j["not_measured"]["floor_to_pg_ratio"].is_string());
        let mut r = Report::new();
        r.measured("pg_insert_tps", 2000.0);
        r.measured("floor_flows_per_s", 400.0);
        r.measured("flows_per_s", 100.0);
        r.finish();
        let j = r.to_json(json!({}));
        assert_eq!(j["floor_to_pg_ratio"], json!(0.2));
        assert_eq!(j["flow_to_floor_ratio"], json!(0.25));
    }

    #[test]
    fn a_prefix_files_the_second_measurement_apart() {
        let mut r = Report::new();
        r.measured("flows_per_s", 400.0);
        r.set_prefix("national_");
        r.measured("flows_per_s", 360.0);
        r.measured("decision_to_provider_p50_ms", 9.0);
        r.not_measured("decision_to_report_p99_ms", "report did not catch up");
        r.detail("flow_saturation", json!({"decisions": 10}));
        r.set_prefix("");
        r.finish();
        let j = r.to_json(json!({}));
        assert_eq!(j["flows_per_s"], json!(400.0));
        assert_eq!(j["national_flows_per_s"], json!(360.0));
        assert_eq!(j["national_to_region_flows"], json!(0.9));
        assert_eq!(
            j["details"]["national_figures"]["decision_to_provider_p50_ms"],
            json!(9.0)
        );
        assert_eq!(
            j["not_measured"]["national_decision_to_report_p99_ms"],
            json!("report did not catch up")
        );
        assert_eq!(
            j["details"]["national_flow_saturation"]["decisions"],
            json!(10)
        );
    }

    #[test]
    fn non_finite_values_are_not_figures() {
        let mut r = Report::new();
        r.measured("flows_per_s", f64::NAN);
        r.finish();
        let j = r.to_json(json!({}));
        assert_eq!(j["flows_per_s"], Value::Null);
        assert!(j["not_measured"]["flows_per_s"].is_string());
    }
}
