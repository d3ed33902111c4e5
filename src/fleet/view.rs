//! The fleet as an operator reads it, built from the answers of three queries (pure: no
//! I/O, the evaluation time comes with the answers). A host is identified by its
//! `instance` label; each of its resources gets a state, and the host the worst of them.
use crate::control::cost::CostUnit;
use crate::fleet::prometheus::{Answer, Series};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The raw cro series the view reads (38 a host with one disk), in three selectors asked
/// at once, so a server with several cores answers them side by side.
pub const RAW_QUERIES: [&str; 3] = [
    "{__name__=~\"cro_(target_ratio|window_ratio|window_coverage_ratio|compliant|forecast_on_track)\"}",
    "{__name__=~\"cro_(forecast_organic_ratio|synthetic_cost|synthetic_cost_share_ratio|level_ratio)\"}",
    "{__name__=~\"cro_(utilization_ratio|last_reconcile_timestamp_seconds|config_valid|paused|build_info)\"}",
];
/// The series examples/prometheus-rules.yml records for the view (group `cro-fleet-view`:
/// 4 a host and resource, 1 a host), read instead of the raw ones where they exist. One
/// query a family: at 100,000 hosts the largest answer stays near 50 MiB, under
/// `prometheus::MAX_ANSWER_BYTES`.
pub const RECORDED_QUERIES: [&str; 5] = [
    "instance_resource:cro_fleet_a:packed",
    "instance_resource:cro_fleet_b:packed",
    "instance_resource:cro_fleet_c:packed",
    "instance_resource:cro_synthetic_cost:max",
    "instance:cro_fleet_host:packed",
];
/// The last pass of every host with raw cro metrics now, read beside the recorded series:
/// a timestamp a rule copied would be up to a round old. The recorded series must cover
/// every host it names (a Prometheus that scrapes hosts without loading the rules leaves
/// some out).
pub const LAST_PASS_QUERY: &str = "max by (instance) (cro_last_reconcile_timestamp_seconds)";
/// Hosts seen in the last 6 hours whose metrics are gone now (no sample for 5 minutes),
/// with their last pass. The store leaves out the live ones: the answer stays small.
pub const SEEN_QUERY: &str = "max by (instance) (max_over_time(cro_last_reconcile_timestamp_seconds[6h])) unless on(instance) cro_last_reconcile_timestamp_seconds";
/// Whether each target's last scrape worked (with the recorded series, the host's packed
/// series says).
pub const UP_QUERY: &str = "min by (instance) (up)";

/// Which series the view is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The recording rules' series (`RECORDED_QUERIES`).
    Recorded,
    /// Every host's raw cro series (`RAW_QUERIES`).
    Raw,
}

/// How a resource (and, the worst of them, a host) stands, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum State {
    /// The policy says the target cannot be met within the limits: it will miss.
    #[serde(rename = "not on track")]
    NotOnTrack,
    /// cro is not working there: no recent pass, an invalid desired state, or its metrics
    /// are gone. It will miss unless someone looks.
    #[serde(rename = "not reconciling")]
    NotReconciling,
    /// On track, but the window statistic is below the target so far.
    #[serde(rename = "at risk")]
    AtRisk,
    #[serde(rename = "compliant")]
    Compliant,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::NotOnTrack => "not on track",
            State::NotReconciling => "not reconciling",
            State::AtRisk => "at risk",
            State::Compliant => "compliant",
        }
    }
    pub const ALL: [State; 4] = [
        State::NotOnTrack,
        State::NotReconciling,
        State::AtRisk,
        State::Compliant,
    ];
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostCost {
    pub amount: f64,
    pub unit: CostUnit,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_percent: Option<f64>,
}

/// One resource's synthetic load summed over the fleet.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FleetCost {
    /// `cpu`, `memory` or `disk`.
    pub resource: String,
    pub amount: f64,
    /// `cpu-core-hours` or `gib-hours`.
    pub unit: CostUnit,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Resource {
    /// `cpu`, `memory` or `disk`.
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    pub state: State,
    pub target_percent: Option<f64>,
    /// `mean` or `pNN`.
    pub statistic: Option<String>,
    /// The window statistic so far.
    pub window_percent: Option<f64>,
    pub coverage_percent: Option<f64>,
    pub compliant: Option<bool>,
    pub on_track: Option<bool>,
    /// The organic load the host's policy expects.
    pub organic_forecast_percent: Option<f64>,
    pub level_percent: Option<f64>,
    pub organic_percent: Option<f64>,
    pub synthetic_percent: Option<f64>,
    /// Synthetic load over the window so far.
    pub cost: Option<HostCost>,
}

impl Resource {
    /// `cpu`, `memory`, `disk /data`.
    pub fn label(&self) -> String {
        match &self.mount {
            Some(m) => format!("{} {m}", self.resource),
            None => self.resource.clone(),
        }
    }
    /// How far the window is above (+) or below (-) the target, in points: within a
    /// state, the worst first.
    fn margin(&self) -> f64 {
        match (self.window_percent, self.target_percent) {
            (Some(w), Some(t)) => w - t,
            _ => f64::NEG_INFINITY,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FleetHost {
    pub instance: String,
    pub state: State,
    /// Why the host is not reconciling, or other things worth a look, in words.
    pub problems: Vec<String>,
    /// Seconds since the last reconcile pass, by Prometheus's clock.
    pub last_pass_age_s: Option<f64>,
    pub config_valid: Option<bool>,
    pub paused: bool,
    /// Whether Prometheus's last scrape of this instance worked.
    pub up: Option<bool>,
    pub version: Option<String>,
    pub resources: Vec<Resource>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub hosts: usize,
    #[serde(rename = "not on track")]
    pub not_on_track: usize,
    #[serde(rename = "not reconciling")]
    pub not_reconciling: usize,
    #[serde(rename = "at risk")]
    pub at_risk: usize,
    pub compliant: usize,
}

impl Counts {
    fn add(&mut self, s: State) {
        self.hosts += 1;
        match s {
            State::NotOnTrack => self.not_on_track += 1,
            State::NotReconciling => self.not_reconciling += 1,
            State::AtRisk => self.at_risk += 1,
            State::Compliant => self.compliant += 1,
        }
    }
    pub fn get(&self, s: State) -> usize {
        match s {
            State::NotOnTrack => self.not_on_track,
            State::NotReconciling => self.not_reconciling,
            State::AtRisk => self.at_risk,
            State::Compliant => self.compliant,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fleet {
    pub prometheus: String,
    /// The series it was read from: `recorded` (the recording rules') or `raw`.
    pub source: Source,
    /// Prometheus's evaluation time, RFC 3339.
    pub evaluated_at: String,
    /// Hosts by their (worst) state.
    pub hosts_by_state: Counts,
    /// Per resource (`cpu`, `memory`, `disk`): hosts by that resource's worst state.
    pub resources: BTreeMap<String, Counts>,
    /// The fleet's synthetic load over the window so far, per resource and unit.
    pub cost: Vec<FleetCost>,
    /// Worst first.
    pub hosts: Vec<FleetHost>,
}

/// Options of the view.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A host whose last pass is older than this is not reconciling.
    pub stale_after_s: f64,
}

/// A ratio as a percentage in hundredths, rounded half up as PromQL's `round` does, so the
/// raw series and the recorded ones (rounded by the rules) give the same figure.
fn pct(v: f64) -> Option<f64> {
    v.is_finite().then(|| (v * 1e4 + 0.5).floor() / 100.0)
}

/// Build the view from the answers (`metrics`: those of `RAW_QUERIES` or, by `source`,
/// `RECORDED_QUERIES`; `seen`: SEEN_QUERY; `up`: UP_QUERY): read them into hosts, judge
/// each host, rank the hosts, total the fleet.
pub fn build(
    prometheus: &str,
    source: Source,
    metrics: &[Answer],
    seen: &Answer,
    up: &Answer,
    r: Rules,
) -> Fleet {
    let now = evaluated_at(metrics, seen, up);
    let mut hosts = read(source, metrics, seen, up, now);
    judge_all(&mut hosts, r);
    rank(&mut hosts);
    total(prometheus, source, now, hosts)
}

/// The server's evaluation time: the latest an answer carries (an empty one carries 0).
pub fn evaluated_at(metrics: &[Answer], seen: &Answer, up: &Answer) -> f64 {
    metrics
        .iter()
        .chain([seen, up])
        .map(|a| a.at)
        .fold(0.0, f64::max)
}

/// The answers read into hosts, not yet judged, in the order of their names. With the
/// recorded series, the last answer of `metrics` is LAST_PASS_QUERY's.
pub fn read(
    source: Source,
    metrics: &[Answer],
    seen: &Answer,
    up: &Answer,
    now: f64,
) -> Vec<FleetHost> {
    let mut reading = Reading::default();
    match source {
        Source::Raw => {
            for s in metrics.iter().flat_map(|a| &a.samples) {
                reading.sample(s, now)
            }
        }
        Source::Recorded => {
            let (last_pass, recorded) = metrics.split_last().expect("LAST_PASS_QUERY's answer");
            for s in recorded.iter().flat_map(|a| &a.samples) {
                reading.recorded(s)
            }
            for s in &last_pass.samples {
                if let Some(h) = reading.known(s.label("instance")) {
                    h.last_pass_age_s = age(now, s.value);
                }
            }
        }
    }
    reading.gone(seen, now);
    reading.up(up);
    let mut hosts = reading.hosts;
    hosts.sort_by(|a, b| a.instance.cmp(&b.instance));
    hosts
}

/// Every host judged (`judge`).
pub fn judge_all(hosts: &mut [FleetHost], r: Rules) {
    for h in hosts {
        judge(h, r);
    }
}

/// Seconds since a pass at `at` (a timestamp of 0 means none yet).
fn age(now: f64, at: f64) -> Option<f64> {
    (at > 0.0).then(|| (now - at).max(0.0).round())
}

/// Hosts by instance as the answers are read, and where each (instance, resource, mount)
/// stands in its host's list: a lookup by key, so a host with many mounts (or an answer
/// made to have them) costs no more per sample.
#[derive(Default)]
struct Reading {
    hosts: Vec<FleetHost>,
    /// Where each instance stands in `hosts`.
    host_at: HashMap<String, usize>,
    /// Where each (host, resource, mount) stands in its host's list, for a host with more
    /// resources than a look down the list should take.
    resource_at: HashMap<(usize, String, Option<String>), usize>,
}

/// A host with at most this many resources is searched by a look down its list (no
/// allocation per sample); past it, by key.
const SHORT_LIST: usize = 8;

impl Reading {
    fn host_index(&mut self, instance: &str) -> usize {
        if let Some(&at) = self.host_at.get(instance) {
            return at;
        }
        self.hosts.push(FleetHost {
            instance: instance.to_string(),
            state: State::Compliant,
            problems: vec![],
            last_pass_age_s: None,
            config_valid: None,
            paused: false,
            up: None,
            version: None,
            resources: vec![],
        });
        self.host_at
            .insert(instance.to_string(), self.hosts.len() - 1);
        self.hosts.len() - 1
    }

    fn host(&mut self, instance: &str) -> &mut FleetHost {
        let at = self.host_index(instance);
        &mut self.hosts[at]
    }

    fn known(&mut self, instance: &str) -> Option<&mut FleetHost> {
        let at = *self.host_at.get(instance)?;
        Some(&mut self.hosts[at])
    }

    /// The resource a sample is about (by its `resource` and, for disk, `mount` labels).
    fn resource(&mut self, s: &Series) -> &mut Resource {
        let name = s.label("resource");
        let mount = Some(s.label("mount")).filter(|m| !m.is_empty() && name == "disk");
        let hi = self.host_index(s.label("instance"));
        let list = &self.hosts[hi].resources;
        let found = if list.len() <= SHORT_LIST {
            list.iter()
                .position(|x| x.resource == name && x.mount.as_deref() == mount)
        } else {
            self.resource_at
                .get(&(hi, name.to_string(), mount.map(str::to_string)))
                .copied()
        };
        let at = match found {
            Some(at) => at,
            None => {
                let h = &mut self.hosts[hi];
                h.resources.push(Resource {
                    resource: name.to_string(),
                    mount: mount.map(str::to_string),
                    state: State::Compliant,
                    target_percent: None,
                    statistic: None,
                    window_percent: None,
                    coverage_percent: None,
                    compliant: None,
                    on_track: None,
                    organic_forecast_percent: None,
                    level_percent: None,
                    organic_percent: None,
                    synthetic_percent: None,
                    cost: None,
                });
                let at = h.resources.len() - 1;
                self.resource_at
                    .insert((hi, name.to_string(), mount.map(str::to_string)), at);
                at
            }
        };
        &mut self.hosts[hi].resources[at]
    }

    /// One sample of METRICS_QUERY: a host's own series, or one of a resource's.
    fn sample(&mut self, s: &Series, now: f64) {
        let v = s.value;
        let h = self.host(s.label("instance"));
        match s.label("__name__") {
            "cro_last_reconcile_timestamp_seconds" => h.last_pass_age_s = age(now, v),
            "cro_config_valid" => h.config_valid = Some(v == 1.0),
            "cro_paused" => h.paused = v == 1.0,
            "cro_build_info" => h.version = Some(s.label("version").to_string()),
            _ if s.label("resource").is_empty() => {}
            name => resource_sample(self.resource(s), name, s),
        }
    }

    /// One sample of RECORDED_QUERIES: the same fields as the raw series give, unpacked
    /// (the encoding is examples/prometheus-rules.yml's, group `cro-fleet-view`).
    fn recorded(&mut self, s: &Series) {
        let v = s.value;
        let h = self.host(s.label("instance"));
        let name = s.label("__name__");
        if name == "instance_resource:cro_synthetic_cost:max" {
            set_cost(self.resource(s), v, s.label("unit"));
            return;
        }
        // a packed value out of range says nothing (the host is still listed)
        let Some(x) = packed(v) else { return };
        match name {
            "instance:cro_fleet_host:packed" => {
                h.up = flag(x >> 3);
                h.config_valid = flag((x >> 1) & 3);
                h.paused = x & 1 == 1;
                if let Some(version) = s.labels.get("version") {
                    h.version = Some(version.clone());
                }
            }
            "instance_resource:cro_fleet_a:packed" => {
                let r = self.resource(s);
                r.target_percent = hundredths(x >> 28);
                r.window_percent = hundredths(x >> 14);
                r.coverage_percent = hundredths(x);
                r.statistic = s.labels.get("statistic").cloned();
            }
            "instance_resource:cro_fleet_b:packed" => {
                let r = self.resource(s);
                r.organic_forecast_percent = hundredths(x >> 28);
                r.level_percent = hundredths(x >> 14);
                r.organic_percent = hundredths(x);
            }
            "instance_resource:cro_fleet_c:packed" => {
                let r = self.resource(s);
                let flags = (x >> 28) & 15;
                r.compliant = flag(flags / 3);
                r.on_track = flag(flags % 3);
                r.synthetic_percent = hundredths(x >> 14);
                if x & FIELD != 0 {
                    set_share(r, hundredths(x));
                }
            }
            _ => {}
        }
    }

    /// Hosts seen lately (SEEN_QUERY) whose metrics are gone now.
    fn gone(&mut self, seen: &Answer, now: f64) {
        for s in &seen.samples {
            let i = s.label("instance");
            if !self.host_at.contains_key(i) {
                let h = self.host(i);
                h.last_pass_age_s = age(now, s.value);
                h.problems.push(
                    "no cro metrics in the last 5 minutes (the scrape fails, or cro serve / the textfile is gone)"
                        .into(),
                );
            }
        }
    }

    /// Whether Prometheus's last scrape of each host worked (UP_QUERY).
    fn up(&mut self, up: &Answer) {
        for s in &up.samples {
            if let Some(h) = self.known(s.label("instance")) {
                h.up = Some(s.value == 1.0);
            }
        }
    }
}

/// A packed field's bits (examples/prometheus-rules.yml, `cro-fleet-view`).
const FIELD: u64 = 16383;

/// A packed value as the integer it is (exact below 2^53), if it is one.
fn packed(v: f64) -> Option<u64> {
    ((0.0..9_007_199_254_740_992.0).contains(&v) && v.fract() == 0.0).then_some(v as u64)
}

/// A packed percentage (the 14 bits at the bottom of `x`): 0 when not exported, else 1 +
/// hundredths of a percent, as `pct` rounds a raw ratio.
fn hundredths(x: u64) -> Option<f64> {
    let h = x & FIELD;
    (h != 0).then(|| (h - 1) as f64 / 100.0)
}

/// A packed flag: 0 not exported, 1 no, 2 yes.
fn flag(x: u64) -> Option<bool> {
    match x {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    }
}

/// The synthetic cost so far (keeping a share already read).
fn set_cost(x: &mut Resource, amount: f64, unit: &str) {
    let share = x.cost.as_ref().and_then(|c| c.share_percent);
    x.cost = Some(HostCost {
        amount,
        unit: CostUnit::from_name(unit),
        share_percent: share,
    });
}

/// The synthetic share of the window so far (keeping a cost already read).
fn set_share(x: &mut Resource, share: Option<f64>) {
    match x.cost.as_mut() {
        Some(c) => c.share_percent = share,
        None => {
            x.cost = Some(HostCost {
                amount: f64::NAN,
                unit: CostUnit::Other(String::new()),
                share_percent: share,
            })
        }
    }
}

/// A resource's series `name` into its field.
fn resource_sample(x: &mut Resource, name: &str, s: &Series) {
    let v = s.value;
    match name {
        "cro_target_ratio" => x.target_percent = pct(v),
        "cro_window_ratio" => {
            x.window_percent = pct(v);
            x.statistic = Some(s.label("statistic").to_string());
        }
        "cro_window_coverage_ratio" => x.coverage_percent = pct(v),
        "cro_compliant" => x.compliant = Some(v == 1.0),
        "cro_forecast_on_track" => x.on_track = Some(v == 1.0),
        "cro_forecast_organic_ratio" => x.organic_forecast_percent = pct(v),
        "cro_level_ratio" => x.level_percent = pct(v),
        "cro_utilization_ratio" => match s.label("source") {
            "organic" => x.organic_percent = pct(v),
            "synthetic" => x.synthetic_percent = pct(v),
            _ => {}
        },
        "cro_synthetic_cost" => set_cost(x, v, s.label("unit")),
        "cro_synthetic_cost_share_ratio" => set_share(x, pct(v)),
        _ => {}
    }
}

/// A host's problems in words, each resource's state, and the host's: the worst of them.
fn judge(h: &mut FleetHost, r: Rules) {
    if h.up == Some(false) {
        h.problems
            .push("Prometheus cannot scrape it (up == 0)".into());
    }
    if h.config_valid == Some(false) {
        h.problems
            .push("its desired state is invalid (`cro validate` says why)".into());
    }
    match h.last_pass_age_s {
        Some(a) if a > r.stale_after_s => h.problems.push(format!(
            "no reconcile pass for {}",
            crate::format::duration(a)
        )),
        None if h.problems.is_empty() => h.problems.push("no reconcile pass yet".into()),
        _ => {}
    }
    if h.paused {
        h.problems
            .push("paused (\"paused\": true in its desired state)".into());
    }
    let broken = h.problems.iter().any(|p| !p.starts_with("paused"));
    for x in &mut h.resources {
        x.state = if broken {
            State::NotReconciling
        } else if x.on_track == Some(false) {
            State::NotOnTrack
        } else if x.compliant == Some(true) {
            State::Compliant
        } else {
            State::AtRisk
        };
    }
    h.resources.sort_by(|a, b| {
        (a.state, a.resource.as_str(), &a.mount).cmp(&(b.state, b.resource.as_str(), &b.mount))
    });
    h.state = h
        .resources
        .iter()
        .map(|x| x.state)
        .min()
        .unwrap_or(if broken {
            State::NotReconciling
        } else {
            State::Compliant
        });
}

/// Worst first: by state, then by how far the worst resource in that state is below its
/// target, then by name.
pub fn rank(hosts: &mut [FleetHost]) {
    let worst_margin = |h: &FleetHost| {
        h.resources
            .iter()
            .filter(|x| x.state == h.state)
            .map(Resource::margin)
            .reduce(f64::min)
            // nothing known (its metrics are gone): as bad as it gets within its state
            .unwrap_or(f64::NEG_INFINITY)
    };
    hosts.sort_by(|a, b| {
        a.state
            .cmp(&b.state)
            .then(worst_margin(a).total_cmp(&worst_margin(b)))
            .then(a.instance.cmp(&b.instance))
    });
}

/// The fleet's totals: hosts by state, by each resource's worst state, and the cost.
pub fn total(prometheus: &str, source: Source, now: f64, hosts: Vec<FleetHost>) -> Fleet {
    let mut by_state = Counts::default();
    let mut resources: BTreeMap<String, Counts> = BTreeMap::new();
    let mut cost: BTreeMap<(String, CostUnit), f64> = BTreeMap::new();
    for h in &hosts {
        by_state.add(h.state);
        let mut worst: BTreeMap<&str, State> = BTreeMap::new();
        for x in &h.resources {
            let w = worst.entry(&x.resource).or_insert(x.state);
            *w = (*w).min(x.state);
            if let Some(c) = &x.cost
                && c.amount.is_finite()
            {
                *cost
                    .entry((x.resource.clone(), c.unit.clone()))
                    .or_default() += c.amount;
            }
        }
        for (r, s) in worst {
            resources.entry(r.to_string()).or_default().add(s);
        }
    }
    Fleet {
        prometheus: prometheus.to_string(),
        source,
        evaluated_at: crate::timefmt::rfc3339(now),
        hosts_by_state: by_state,
        resources,
        cost: cost
            .into_iter()
            .map(|((resource, unit), amount)| FleetCost {
                resource,
                amount: crate::format::round2(amount),
                unit,
            })
            .collect(),
        hosts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, labels: &[(&str, &str)], v: f64) -> Series {
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert("__name__".into(), name.into());
        Series {
            labels: l,
            value: v,
        }
    }

    /// One host's series as cro's /metrics has them.
    fn host(i: &str, window: f64, compliant: bool, on_track: bool, age: f64) -> Vec<Series> {
        let cpu = [("instance", i), ("resource", "cpu")];
        vec![
            s("cro_target_ratio", &cpu, 0.25),
            s(
                "cro_window_ratio",
                &[("instance", i), ("resource", "cpu"), ("statistic", "mean")],
                window,
            ),
            s("cro_window_coverage_ratio", &cpu, 0.9),
            s("cro_compliant", &cpu, compliant as u8 as f64),
            s("cro_forecast_on_track", &cpu, on_track as u8 as f64),
            s(
                "cro_synthetic_cost",
                &[
                    ("instance", i),
                    ("resource", "cpu"),
                    ("unit", "cpu-core-hours"),
                ],
                10.0,
            ),
            s("cro_synthetic_cost_share_ratio", &cpu, 0.05),
            s(
                "cro_last_reconcile_timestamp_seconds",
                &[("instance", i)],
                100_000.0 - age,
            ),
            s("cro_config_valid", &[("instance", i)], 1.0),
            s("cro_paused", &[("instance", i)], 0.0),
        ]
    }

    fn answer(samples: Vec<Series>) -> Answer {
        Answer {
            at: 100_000.0,
            samples,
        }
    }

    #[test]
    fn states_and_order_worst_first() {
        let mut m = vec![];
        m.extend(host("ok", 0.30, true, true, 30.0));
        m.extend(host("risk-a", 0.20, false, true, 30.0));
        m.extend(host("risk-b", 0.10, false, true, 30.0));
        m.extend(host("miss", 0.22, false, false, 30.0));
        m.extend(host("stale", 0.30, true, true, 5000.0));
        let seen = answer(vec![
            s("", &[("instance", "ok")], 99_990.0),
            s("", &[("instance", "gone")], 90_000.0),
        ]);
        let up = answer(vec![s("", &[("instance", "ok")], 1.0)]);
        let f = build(
            "http://p",
            Source::Raw,
            &[answer(m)],
            &seen,
            &up,
            Rules {
                stale_after_s: 900.0,
            },
        );
        let order: Vec<(&str, State)> = f
            .hosts
            .iter()
            .map(|h| (h.instance.as_str(), h.state))
            .collect();
        assert_eq!(
            order,
            [
                ("miss", State::NotOnTrack),
                ("gone", State::NotReconciling),
                ("stale", State::NotReconciling),
                ("risk-b", State::AtRisk),
                ("risk-a", State::AtRisk),
                ("ok", State::Compliant),
            ]
        );
        let stale = &f.hosts[2];
        assert!(
            stale.problems[0].contains("no reconcile pass for 83 min"),
            "{:?}",
            stale.problems
        );
        assert!(f.hosts[1].problems[0].contains("no cro metrics"));
        assert_eq!(f.hosts_by_state.hosts, 6);
        assert_eq!(f.hosts_by_state.at_risk, 2);
        assert_eq!(f.resources["cpu"].not_on_track, 1);
        let ok = &f.hosts[5];
        assert_eq!(ok.up, Some(true));
        let r = &ok.resources[0];
        assert_eq!(r.window_percent, Some(30.0));
        assert_eq!(r.statistic.as_deref(), Some("mean"));
        assert_eq!(
            r.cost,
            Some(HostCost {
                amount: 10.0,
                unit: CostUnit::CpuCoreHours,
                share_percent: Some(5.0)
            })
        );
        // five hosts with metrics, 10 core-hours each
        assert_eq!(
            f.cost,
            [FleetCost {
                resource: "cpu".into(),
                amount: 50.0,
                unit: CostUnit::CpuCoreHours
            }]
        );
    }

    #[test]
    fn a_disk_resource_per_mount_and_the_worst_decides() {
        let i = "h";
        let mut m = host(i, 0.30, true, true, 0.0);
        for (mount, ok) in [("/data", true), ("/logs", false)] {
            let l = [("instance", i), ("resource", "disk"), ("mount", mount)];
            m.push(s("cro_target_ratio", &l, 0.25));
            m.push(s("cro_compliant", &l, ok as u8 as f64));
            m.push(s("cro_forecast_on_track", &l, 1.0));
        }
        let f = build(
            "p",
            Source::Raw,
            &[answer(m)],
            &answer(vec![]),
            &answer(vec![]),
            Rules {
                stale_after_s: 900.0,
            },
        );
        let h = &f.hosts[0];
        assert_eq!(h.state, State::AtRisk);
        assert_eq!(h.resources.len(), 3);
        assert_eq!(h.resources[0].label(), "disk /logs");
        assert_eq!(f.resources["disk"].at_risk, 1);
        assert_eq!(f.resources["cpu"].compliant, 1);
    }

    #[test]
    fn invalid_config_and_failed_scrape_are_not_reconciling() {
        let mut m = host("h", 0.30, true, true, 0.0);
        m.retain(|x| x.label("__name__") != "cro_config_valid");
        m.push(s("cro_config_valid", &[("instance", "h")], 0.0));
        let f = build(
            "p",
            Source::Raw,
            &[answer(m)],
            &answer(vec![]),
            &answer(vec![s("", &[("instance", "h")], 0.0)]),
            Rules {
                stale_after_s: 900.0,
            },
        );
        assert_eq!(f.hosts[0].state, State::NotReconciling);
        assert_eq!(f.hosts[0].problems.len(), 2, "{:?}", f.hosts[0].problems);
    }

    #[test]
    fn recorded_series_unpack_into_the_same_fields() {
        let i = [("instance", "h")];
        let cpu = [("instance", "h"), ("resource", "cpu"), ("statistic", "p95")];
        // each field 1 + hundredths, 0 when not exported
        let code = |a: u64, b: u64, c: u64| ((a << 28) + (b << 14) + c) as f64;
        let m = vec![
            // config valid (2), not paused
            s(
                "instance:cro_fleet_host:packed",
                &[("instance", "h"), ("version", "1.2")],
                20.0,
            ),
            // target 20.00 %, window 21.37 %, coverage not exported
            s(
                "instance_resource:cro_fleet_a:packed",
                &cpu,
                code(2001, 2138, 0),
            ),
            // forecast 12.5 %, level 30 %, organic 0.01 %
            s(
                "instance_resource:cro_fleet_b:packed",
                &cpu,
                code(1251, 3001, 2),
            ),
            // compliant (2), on track not exported (0): flags 6; synthetic 7 %, share 33.33 %
            s(
                "instance_resource:cro_fleet_c:packed",
                &cpu,
                code(6, 701, 3334),
            ),
            s(
                "instance_resource:cro_synthetic_cost:max",
                &[
                    ("instance", "h"),
                    ("resource", "cpu"),
                    ("unit", "cpu-core-hours"),
                ],
                1.5,
            ),
        ];
        let last_pass = answer(vec![s("", &i, 99_970.0)]);
        // the scrape worked (2 * 8), config valid (2 * 2), not paused
        let hosts = read(
            Source::Recorded,
            &[answer(m), last_pass],
            &answer(vec![]),
            &answer(vec![]),
            100_000.0,
        );
        let h = &hosts[0];
        assert_eq!(h.last_pass_age_s, Some(30.0));
        assert_eq!(
            (h.up, h.config_valid, h.paused),
            (Some(true), Some(true), false)
        );
        assert_eq!(h.version.as_deref(), Some("1.2"));
        let r = &h.resources[0];
        assert_eq!(
            (r.target_percent, r.window_percent, r.coverage_percent),
            (Some(20.0), Some(21.37), None)
        );
        assert_eq!(r.statistic.as_deref(), Some("p95"));
        assert_eq!(
            (
                r.organic_forecast_percent,
                r.level_percent,
                r.organic_percent
            ),
            (Some(12.5), Some(30.0), Some(0.01))
        );
        assert_eq!(
            (r.compliant, r.on_track, r.synthetic_percent),
            (Some(true), None, Some(7.0))
        );
        assert_eq!(
            r.cost,
            Some(HostCost {
                amount: 1.5,
                unit: CostUnit::CpuCoreHours,
                share_percent: Some(33.33)
            })
        );
        // a value that is not a packed integer says nothing, and the raw path rounds alike
        assert_eq!(packed(2.5), None);
        assert_eq!(packed(f64::NAN), None);
        assert_eq!(pct(0.21365), Some(21.37));
    }
}
