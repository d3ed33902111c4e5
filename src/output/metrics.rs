//! Prometheus metrics in the classic text format (not OpenMetrics), for node_exporter's
//! textfile collector (`reconcile --textfile-dir DIR` writes DIR/cro.prom). Ratios are 0-1.
use crate::error::{Error, Result};
use crate::output::status::{Status, Usage};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

/// Reconcile outcomes, counted across runs (state/metrics.json).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReconcileCounts {
    pub ok: u64,
    pub error: u64,
    pub last_reconcile: f64,
}

pub fn load_counters(state_dir: &Path) -> ReconcileCounts {
    std::fs::read(state_dir.join("metrics.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Count one reconcile (the caller holds the state lock).
pub fn count(state_dir: &Path, ok: bool, at: f64) -> Result<ReconcileCounts> {
    let mut c = load_counters(state_dir);
    if ok {
        c.ok += 1
    } else {
        c.error += 1
    }
    c.last_reconcile = at;
    crate::state::fsutil::write_atomic(
        &state_dir.join("metrics.json"),
        &serde_json::to_vec(&c).expect("serializes"),
        0o600,
        true,
    )?;
    Ok(c)
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: vec![],
        }
    }
    fn add(&mut self, labels: &[(&str, &str)], v: f64) {
        let l = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect::<Vec<_>>()
            .join(",");
        self.samples.push((
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            },
            v,
        ));
    }
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn gauge(name: &'static str, help: &'static str) -> Family {
    Family::new(name, "gauge", help)
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Every family cro exposes, in the order they are written.
struct Families {
    target: Family,
    util: Family,
    level: Family,
    window: Family,
    coverage: Family,
    compliant: Family,
    on_track: Family,
    organic_forecast: Family,
    cost: Family,
    share: Family,
    ballast: Family,
    workers: Family,
    total: Family,
    last: Family,
    valid: Family,
    paused: Family,
    build: Family,
}

impl Families {
    fn new() -> Families {
        Families {
            target: gauge("cro_target_ratio", "Utilization target of the resource."),
            util: gauge(
                "cro_utilization_ratio",
                "Utilization now, by source (organic or synthetic).",
            ),
            level: gauge("cro_level_ratio", "Total utilization the worker holds now."),
            window: gauge("cro_window_ratio", "The window statistic so far."),
            coverage: gauge(
                "cro_window_coverage_ratio",
                "Share of the window with records.",
            ),
            compliant: gauge(
                "cro_compliant",
                "1 when the window statistic meets the target (gaps count as 0).",
            ),
            on_track: gauge(
                "cro_forecast_on_track",
                "1 when the policy can meet the target within the limits.",
            ),
            organic_forecast: gauge(
                "cro_forecast_organic_ratio",
                "The organic load the window policy expects over its horizon.",
            ),
            cost: gauge(
                "cro_synthetic_cost",
                "Synthetic load over the window so far, in the unit label (cpu-core-hours, gib-hours).",
            ),
            share: gauge(
                "cro_synthetic_cost_share_ratio",
                "Synthetic share of the resource, averaged over the recorded part of the window.",
            ),
            ballast: gauge("cro_ballast_bytes", "Ballast held now."),
            workers: gauge("cro_workers", "Live workers."),
            total: Family::new(
                "cro_reconcile_total",
                "counter",
                "Reconcile passes, by result.",
            ),
            last: gauge(
                "cro_last_reconcile_timestamp_seconds",
                "Unix time of the last reconcile pass.",
            ),
            valid: gauge(
                "cro_config_valid",
                "1 when the desired-state file is valid.",
            ),
            paused: gauge("cro_paused", "1 when the desired state says paused."),
            build: gauge("cro_build_info", "Build information."),
        }
    }

    /// A resource's series (`mount` for a disk).
    fn resource(&mut self, name: &str, mount: Option<&str>, u: &Usage) {
        let mut l: Vec<(&str, &str)> = vec![("resource", name)];
        if let Some(m) = mount {
            l.push(("mount", m));
        }
        let with = |k: &'static str, v: &'static str| {
            let mut l2 = l.clone();
            l2.push((k, v));
            l2
        };
        self.target.add(&l, u.target_percent / 100.0);
        self.level.add(&l, u.level_percent / 100.0);
        self.util
            .add(&with("source", "organic"), u.organic_percent / 100.0);
        self.util
            .add(&with("source", "synthetic"), u.synthetic_percent / 100.0);
        if let Some(c) = &u.cost {
            let mut l2 = l.clone();
            l2.push(("unit", c.unit.name()));
            self.cost.add(&l2, c.amount);
            self.share.add(&l, c.share_percent / 100.0);
        }
        if let Some(w) = &u.window {
            let mut l2 = l.clone();
            l2.push(("statistic", &w.statistic));
            self.window.add(&l2, w.value / 100.0);
            self.coverage.add(&l, w.coverage);
            self.compliant.add(&l, flag(w.compliant));
        }
        if let Some(f) = &u.forecast {
            self.on_track.add(&l, flag(f.on_track));
            self.organic_forecast
                .add(&l, f.organic_forecast_percent / 100.0);
        }
    }

    /// A job's worker and the ballast it holds.
    fn job(&mut self, j: &crate::output::status::JobInfo) {
        let slot = crate::control::slot::Slot::from_id(&j.id);
        let res = slot.as_ref().map_or(j.id.as_str(), |s| s.resource());
        let mount = slot
            .as_ref()
            .and_then(|s| s.mount())
            .map(|m| m.display().to_string())
            .unwrap_or_default();
        if res == "disk" || res == "memory" {
            let l: Vec<(&str, &str)> = vec![("resource", res), ("mount", &mount)];
            self.ballast.add(&l, j.ballast_bytes.unwrap_or(0) as f64);
        }
        let mut l: Vec<(&str, &str)> = vec![("resource", res)];
        if res == "disk" {
            l.push(("mount", &mount));
        }
        self.workers.add(&l, flag(j.alive));
    }

    /// The classic text format: HELP and TYPE, then the samples; empty families left out.
    fn write(self) -> String {
        let mut out = String::new();
        for f in [
            self.target,
            self.util,
            self.level,
            self.window,
            self.coverage,
            self.compliant,
            self.on_track,
            self.organic_forecast,
            self.cost,
            self.share,
            self.ballast,
            self.workers,
            self.total,
            self.last,
            self.valid,
            self.paused,
            self.build,
        ] {
            if f.samples.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} {}",
                f.name, f.help, f.name, f.kind
            );
            for (l, v) in f.samples {
                let _ = writeln!(out, "{}{l} {}", f.name, num(v));
            }
        }
        out
    }
}

/// The metrics text for a status view and the reconcile counters.
pub fn render(s: &Status, c: &ReconcileCounts) -> String {
    let mut f = Families::new();
    if let Some(u) = &s.resources.cpu {
        f.resource("cpu", None, u);
    }
    if let Some(u) = &s.resources.memory {
        f.resource("memory", None, u);
    }
    for (m, u) in &s.resources.disk {
        f.resource("disk", Some(m), u);
    }
    for j in &s.jobs {
        f.job(j);
    }
    f.total.add(&[("result", "ok")], c.ok as f64);
    f.total.add(&[("result", "error")], c.error as f64);
    f.last.add(&[], c.last_reconcile);
    f.valid.add(&[], flag(s.desired.valid));
    f.paused.add(&[], flag(s.desired.paused));
    f.build.add(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    f.write()
}

/// Write DIR/cro.prom for node_exporter: a temporary name that does not end in `.prom`
/// (the collector would read a half-written file), mode 0644, then rename.
pub fn write_textfile(dir: &Path, text: &str) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::Runtime(format!(
            "--textfile-dir {}: not a directory (create it, or point it at node_exporter's --collector.textfile.directory)",
            dir.display()
        )));
    }
    crate::state::fsutil::write_atomic(&dir.join("cro.prom"), text.as_bytes(), 0o644, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strict reader of the classic text format: every sample line is `name{labels} value`,
    /// every family has HELP and TYPE before its samples.
    pub fn check_exposition(text: &str) -> Vec<(String, f64)> {
        let mut typed = std::collections::HashSet::new();
        let mut out = vec![];
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let name = it.next().unwrap();
                assert!(["gauge", "counter"].contains(&it.next().unwrap()), "{l}");
                assert!(typed.insert(name.to_string()), "TYPE twice: {l}");
                continue;
            }
            if l.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = l.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{l}"
            );
            assert!(typed.contains(name), "sample before TYPE: {l}");
            if let Some(labels) = series.strip_prefix(name)
                && !labels.is_empty()
            {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{l}");
            }
            out.push((
                series.to_string(),
                value
                    .parse::<f64>()
                    .unwrap_or_else(|_| panic!("bad value: {l}")),
            ));
        }
        out
    }

    #[test]
    fn escapes_labels() {
        let mut f = Family::new("x", "gauge", "h");
        f.add(&[("mount", "/a\"b\\c")], 1.0);
        assert_eq!(f.samples[0].0, r#"{mount="/a\"b\\c"}"#);
    }

    #[test]
    fn counters_persist() {
        let d = tempfile::tempdir().unwrap();
        count(d.path(), true, 1.0).unwrap();
        let c = count(d.path(), false, 2.0).unwrap();
        assert_eq!(
            c,
            ReconcileCounts {
                ok: 1,
                error: 1,
                last_reconcile: 2.0
            }
        );
    }

    #[test]
    fn renders_valid_exposition() {
        let d = tempfile::tempdir().unwrap();
        let s = crate::output::status::status(d.path(), &d.path().join("desired.json")).unwrap();
        let text = render(
            &s,
            &ReconcileCounts {
                ok: 3,
                error: 1,
                last_reconcile: 1.7e9,
            },
        );
        let samples = check_exposition(&text);
        let get = |k: &str| samples.iter().find(|(s, _)| s == k).map(|x| x.1);
        assert_eq!(get(r#"cro_reconcile_total{result="ok"}"#), Some(3.0));
        assert_eq!(get("cro_config_valid"), Some(1.0));
        assert!(
            get(r#"cro_target_ratio{resource="cpu"}"#).is_some_and(|v| (0.0..=1.0).contains(&v))
        );
        assert!(text.contains("cro_build_info{version="));
    }
}
