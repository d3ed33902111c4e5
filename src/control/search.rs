//! The search for windows the policy misses (issue: never miss a window that can be met).
//!
//! A case is one number. From it come a shape of organic load (its class and random
//! parameters), the rule it is judged by (target, statistic, window, `first_window`,
//! resource) and the trace, so any case replays from its id alone (`cro simulate --case
//! ID`). The search runs the real policy over many cases and judges each as status does
//! (`window::stat`): a case is *feasible* when holding the limit (`max_level`) on every
//! recorded row would have met the target, and a miss of a feasible case is a bug.
//! Pure: no clock, no files; the caller prints.
use crate::control::desired::{FirstWindow, Resolved, Statistic};
use crate::control::policy::{Limits, Rule};
use crate::control::simulate::{self, Policy, Trace};
use serde::Serialize;
use std::fmt::Write;

/// The shapes organic load takes on real hosts, one class each.
pub const CLASSES: [&str; 12] = [
    "stationary",
    "cyclic",
    "rising",
    "falling",
    "step-up",
    "step-down",
    "bursty",
    "idle",
    "outage",
    "reboots",
    "gaps",
    "neighbour",
];

/// Seconds between trace rows: a pass every 5 minutes, as cron runs `reconcile --once`.
pub const DT: f64 = 300.0;

/// SplitMix64. Our own rather than a crate's generator: a case id must give the same
/// trace in every later version of cro (a crate may change its stream between releases),
/// and this is eight lines.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// One of `n` choices.
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
    /// Roughly normal noise with standard deviation `sd`.
    pub fn noise(&mut self, sd: f64) -> f64 {
        (self.unit() + self.unit() + self.unit() - 1.5) * 2.0 * sd
    }
}

/// One case of the search: the rule and the trace, and how they were drawn.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: u64,
    pub class: &'static str,
    /// The shape's parameters, in words (what made it).
    pub params: String,
    /// `cpu` or `memory`.
    pub resource: &'static str,
    pub target: f64,
    pub statistic: Statistic,
    pub window_days: u32,
    pub first_window: FirstWindow,
    /// Days the trace covers: one window (the first window after install) or more.
    pub days: u32,
    pub trace: Trace,
}

impl Case {
    /// The desired state this case is judged by (the resource's own target; the other
    /// resources off).
    pub fn desired_json(&self) -> String {
        let own = format!(
            r#"{{"target_percent":{},"statistic":"{}"}}"#,
            self.target,
            self.statistic.name()
        );
        let (cpu, memory) = match self.resource {
            "cpu" => (own, r#"{"enabled":false}"#.to_string()),
            _ => (r#"{"enabled":false}"#.to_string(), own),
        };
        format!(
            r#"{{"version":1,"window_days":{},"first_window":"{}","cpu":{cpu},"memory":{memory},"disk":{{"enabled":false}}}}"#,
            self.window_days,
            match self.first_window {
                FirstWindow::Pace => "pace",
                FirstWindow::Defer => "defer",
            }
        )
    }

    /// The rule's kind: statistic, window, and whether the trace is the host's first
    /// window or a later one (the target and resource left out).
    pub fn rule_kind(&self) -> String {
        format!(
            "{} {} d {}",
            self.statistic.name(),
            self.window_days,
            if self.days == self.window_days {
                "first"
            } else {
                "later"
            }
        )
    }

    /// The trace as CSV (`t,cpu` or `t,memory`), to keep a miss as a regression trace.
    pub fn csv(&self) -> String {
        let k = if self.resource == "cpu" { 0 } else { 1 };
        let mut o = format!("t,{}\n", self.resource);
        for (t, v) in &self.trace.rows {
            if let Some(x) = v[k] {
                let _ = writeln!(o, "{t},{x:.2}");
            }
        }
        o
    }
}

/// The case `id`: everything drawn from it.
pub fn case(id: u64) -> Case {
    let mut r = Rng::new(id);
    let class = CLASSES[r.below(CLASSES.len())];
    let (target, statistic) = [
        (25.0, Statistic::Mean),
        (40.0, Statistic::Mean),
        (20.0, Statistic::Percentile(95)),
        (20.0, Statistic::Percentile(99)),
    ][r.below(4)];
    let window_days = [7, 30][r.below(2)];
    let first_window = [FirstWindow::Pace, FirstWindow::Defer][r.below(2)];
    let resource = ["cpu", "memory"][r.below(2)];
    // half the cases are a host's first window, half an established host's later one
    let days = if r.unit() < 0.5 {
        window_days
    } else {
        window_days + 1 + r.below(window_days as usize) as u32
    };
    let (params, rows) = shape(class, &mut r, days);
    let k = if resource == "cpu" { 0 } else { 1 };
    let rows = rows
        .into_iter()
        .map(|(t, o)| {
            let mut v = [None; 3];
            v[k] = Some(o);
            (t, v)
        })
        .collect();
    let mut columns = [false; 3];
    columns[k] = true;
    Case {
        id,
        class,
        params,
        resource,
        target,
        statistic,
        window_days,
        first_window,
        days,
        trace: Trace {
            interval: DT,
            rows,
            columns,
        },
    }
}

fn clamp(x: f64) -> f64 {
    crate::format::round2(x.clamp(0.0, 100.0))
}

/// Hour of day (0..24) and day number of a trace time.
fn clock(t: f64) -> (f64, u32) {
    ((t % 86_400.0) / 3600.0, (t / 86_400.0) as u32)
}

/// A day cycle: `a` at `peak` o'clock, falling off over about `width` hours either side,
/// `weekend` of it on days 5 and 6 of each week.
fn daily(t: f64, a: f64, peak: f64, width: f64, weekend: f64) -> f64 {
    let (h, day) = clock(t);
    let d = ((h - peak + 36.0) % 24.0 - 12.0).abs();
    let v = a * (-(d / width).powi(2)).exp();
    if day % 7 >= 5 { v * weekend } else { v }
}

/// The rows of a class's shape over `days` days (missing rows: the host was down).
fn shape(class: &str, r: &mut Rng, days: u32) -> (String, Vec<(f64, f64)>) {
    let n = (days as f64 * 86_400.0 / DT) as usize;
    let end = days as f64 * 86_400.0;
    let times: Vec<f64> = (1..=n).map(|i| i as f64 * DT).collect();
    let sd = r.range(0.5, 6.0);
    match class {
        "stationary" => {
            let b = r.range(1.0, 60.0);
            let rows = times.iter().map(|&t| (t, clamp(b + r.noise(sd)))).collect();
            (format!("level {b:.1} %, noise {sd:.1}"), rows)
        }
        "cyclic" => {
            let (b, a) = (r.range(1.0, 30.0), r.range(5.0, 60.0));
            let (peak, width, weekend) = (r.range(8.0, 22.0), r.range(1.0, 6.0), r.range(0.1, 1.0));
            let rows = times
                .iter()
                .map(|&t| {
                    (
                        t,
                        clamp(b + daily(t, a, peak, width, weekend) + r.noise(sd)),
                    )
                })
                .collect();
            (
                format!(
                    "base {b:.1} % + {a:.1} at {peak:.1} h (width {width:.1} h, weekends x{weekend:.2}), noise {sd:.1}"
                ),
                rows,
            )
        }
        "rising" | "falling" => trend(class, r, &times, end, sd),
        "step-up" | "step-down" => {
            let (lo, hi) = (r.range(0.0, 15.0), r.range(25.0, 80.0));
            let (from, to) = if class == "step-up" {
                (lo, hi)
            } else {
                (hi, lo)
            };
            let at = r.range(0.05, 0.95) * end;
            let rows = times
                .iter()
                .map(|&t| (t, clamp(if t < at { from } else { to } + r.noise(sd))))
                .collect();
            (
                format!(
                    "{from:.1} -> {to:.1} % at day {:.1}, noise {sd:.1}",
                    at / 86_400.0
                ),
                rows,
            )
        }
        "bursty" => bursty(r, &times, days, sd),
        "idle" => {
            let b = r.range(0.0, 3.0);
            let busy = r.range(5.0, 30.0);
            let hour = r.range(0.0, 24.0);
            let rows = times
                .iter()
                .map(|&t| {
                    let (h, _) = clock(t);
                    let v = if (h - hour).abs() < 0.5 { busy } else { b };
                    (t, clamp(v + r.noise(0.3)))
                })
                .collect();
            (
                format!("idle at {b:.1} %, one hour a day at {busy:.1} % ({hour:.1} h)"),
                rows,
            )
        }
        "outage" | "reboots" | "gaps" | "neighbour" => with_events(class, r, &times, end, sd),
        other => unreachable!("no class {other}"),
    }
}

/// A load that rises or falls over part of the trace, from a random day.
fn trend(class: &str, r: &mut Rng, times: &[f64], end: f64, sd: f64) -> (String, Vec<(f64, f64)>) {
    let (lo, hi) = (r.range(0.0, 20.0), r.range(30.0, 90.0));
    let (from, to) = if class == "rising" {
        (lo, hi)
    } else {
        (hi, lo)
    };
    // the change takes part of the trace, starting at a random day
    let start = r.range(0.0, 0.6) * end;
    let len = r.range(0.1, 1.0) * (end - start);
    let rows = times
        .iter()
        .map(|&t| {
            let x = ((t - start) / len).clamp(0.0, 1.0);
            (t, clamp(from + (to - from) * x + r.noise(sd)))
        })
        .collect();
    (
        format!(
            "{from:.1} -> {to:.1} % from day {:.1} over {:.1} days, noise {sd:.1}",
            start / 86_400.0,
            len / 86_400.0
        ),
        rows,
    )
}

/// A low base and batch jobs at random hours every day.
fn bursty(r: &mut Rng, times: &[f64], days: u32, sd: f64) -> (String, Vec<(f64, f64)>) {
    let b = r.range(0.0, 8.0);
    let per_day = 1 + r.below(4);
    let mut jobs = vec![];
    for d in 0..days {
        for _ in 0..per_day {
            let s = d as f64 * 86_400.0 + r.range(0.0, 86_400.0);
            jobs.push((s, s + r.range(0.25, 4.0) * 3600.0, r.range(40.0, 100.0)));
        }
    }
    let rows = times
        .iter()
        .map(|&t| {
            let job = jobs
                .iter()
                .filter(|j| t > j.0 && t <= j.1)
                .map(|j| j.2)
                .fold(0.0, f64::max);
            (t, clamp((b + r.noise(sd)).max(job)))
        })
        .collect();
    (
        format!("base {b:.1} %, {per_day} batch job(s) a day of 15 min to 4 h at 40-100 %"),
        rows,
    )
}

/// A stationary or cyclic base, and the class's events on top: the host down for hours
/// to days, short reboots, lost records, or load someone else adds and removes.
fn with_events(
    class: &str,
    r: &mut Rng,
    times: &[f64],
    end: f64,
    sd: f64,
) -> (String, Vec<(f64, f64)>) {
    let b = r.range(1.0, 40.0);
    let (a, peak) = if r.unit() < 0.5 {
        (0.0, 12.0)
    } else {
        (r.range(5.0, 40.0), r.range(8.0, 22.0))
    };
    let base = |t: f64, r: &mut Rng| b + daily(t, a, peak, 3.0, 0.6) + r.noise(sd);
    let e = events(class, r, end);
    let mut rows = vec![];
    for &t in times {
        let v = base(t, r)
            + e.added
                .iter()
                .filter(|(s, e, _)| t > *s && t <= *e)
                .map(|x| x.2)
                .sum::<f64>();
        // the last row always stays: the window is judged at its end, the host up again
        let lost = r.unit() < e.drop_share && t < end;
        if lost || t < end && e.down.iter().any(|(s, e)| t > *s && t <= *e) {
            continue;
        }
        rows.push((t, clamp(v)));
    }
    let cycle = if a > 0.0 {
        format!(" + {a:.1} at {peak:.1} h")
    } else {
        String::new()
    };
    (
        format!("base {b:.1} %{cycle}, noise {sd:.1}; {}", e.what),
        rows,
    )
}

/// What happens to a host besides its own load.
struct Events {
    /// In words.
    what: String,
    /// (from, to): the host is down.
    down: Vec<(f64, f64)>,
    /// (from, to, percent): someone else's load.
    added: Vec<(f64, f64, f64)>,
    /// Share of the records lost at random.
    drop_share: f64,
}

/// The class's events over a trace ending at `end`.
fn events(class: &str, r: &mut Rng, end: f64) -> Events {
    let mut down: Vec<(f64, f64)> = vec![];
    let mut added: Vec<(f64, f64, f64)> = vec![];
    let mut drop_share = 0.0;
    let what = match class {
        "outage" => {
            for i in 0..1 + r.below(3) {
                let len = (3600.0 * r.range(1.0, 120.0)).min(end * 0.4);
                // the first outage, half the time, in the last ten days of the trace
                let s = if i == 0 && r.unit() < 0.5 {
                    end - r.range(len, (10.0_f64 * 86_400.0).max(len + 1.0)).min(end)
                } else {
                    r.range(0.0, end - len)
                };
                down.push((s, s + len));
            }
            format!(
                "down {}",
                down.iter()
                    .map(|(s, e)| format!("{:.1} h from day {:.1}", (e - s) / 3600.0, s / 86_400.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        "reboots" => {
            for _ in 0..1 + r.below(6) {
                let s = r.range(0.0, end);
                down.push((s, s + r.range(300.0, 1800.0)));
            }
            format!("{} reboot(s) of 5-30 min", down.len())
        }
        "gaps" => {
            drop_share = r.range(0.005, 0.05);
            format!("{:.1} % of the records lost", drop_share * 100.0)
        }
        _ => {
            for _ in 0..1 + r.below(3) {
                let s = r.range(0.0, end);
                added.push((s, s + r.range(1.0, 10.0) * 86_400.0, r.range(10.0, 50.0)));
            }
            format!(
                "another load added {}",
                added
                    .iter()
                    .map(|(s, e, l)| format!(
                        "{l:.0} % from day {:.1} for {:.1} days",
                        s / 86_400.0,
                        (e - s) / 86_400.0
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    Events {
        what,
        down,
        added,
        drop_share,
    }
}

/// How one case came out.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub id: u64,
    pub class: &'static str,
    /// The rule's kind, for the cost table: `mean 7 d first`, `p95 30 d later` ...
    pub rule: String,
    /// Holding the limit on every recorded row would have met the target.
    pub feasible: bool,
    pub compliant: bool,
    /// The statistic as judged at the trace's end.
    pub achieved: f64,
    pub cost_percent_hours: f64,
    pub minimum_percent_hours: f64,
}

impl Verdict {
    /// Cost over the least cost; None where the least is under one %·h (nothing to pay:
    /// a ratio would say nothing).
    pub fn ratio(&self) -> Option<f64> {
        (self.minimum_percent_hours >= 1.0)
            .then(|| self.cost_percent_hours / self.minimum_percent_hours)
    }
}

/// The rule a case is judged by, resolved as `cro simulate` resolves it.
pub fn resolved(c: &Case) -> Resolved {
    let json = c.desired_json();
    crate::control::desired::parse(json.as_bytes(), std::path::Path::new("case"))
        .and_then(|d| d.resolve(std::path::Path::new("case"), 8 << 30, None))
        .expect("a case's desired state is valid")
}

/// Run the case through the policy, and through "hold the limit" for feasibility.
pub fn judge(c: &Case) -> Verdict {
    let d = resolved(c);
    judge_simulation(c, &d, &simulate::simulate(&c.trace, &d, Policy::Cro))
}

/// A case's verdict from a simulation already run (with `d`, its resolved rule).
pub fn judge_simulation(c: &Case, d: &Resolved, sim: &simulate::Simulation) -> Verdict {
    let o = &sim.resources[c.resource];
    let k = if c.resource == "cpu" { 0 } else { 1 };
    let rule = crate::control::policy::rules(d)[k].expect("enabled");
    Verdict {
        id: c.id,
        class: c.class,
        rule: c.rule_kind(),
        feasible: feasible(&c.trace, k, &rule, d),
        compliant: o.compliant,
        achieved: o.achieved,
        cost_percent_hours: o.cost_percent_hours,
        minimum_percent_hours: o.minimum_percent_hours,
    }
}

/// Whether holding `max_level` (within `max_synthetic`) on every recorded row would meet
/// the rule, judged by the same `window::stat`.
fn feasible(trace: &Trace, k: usize, rule: &Rule, d: &Resolved) -> bool {
    let Limits {
        max_level,
        max_synthetic,
    } = rule.limits;
    let totals: Vec<(f64, f64)> = trace
        .rows
        .iter()
        .filter_map(|(t, v)| v[k].map(|o| (*t, o.max(max_level.min(o + max_synthetic)))))
        .collect();
    let before = d.before_first_record;
    simulate::judge_totals(
        &totals,
        trace.interval,
        d.window_days as f64 * 86_400.0,
        rule.target,
        rule.statistic,
        before,
    )
    .compliant
}

/// Per class: cases, feasible, misses among them, and the cost ratio's spread.
#[derive(Debug, Clone, Serialize)]
pub struct ClassSummary {
    pub class: &'static str,
    pub cases: usize,
    pub feasible: usize,
    pub compliant_feasible: usize,
    pub infeasible_missed: usize,
    pub cost_ratio_median: Option<f64>,
    pub cost_ratio_p95: Option<f64>,
    pub cost_ratio_max: Option<f64>,
}

/// The cost of compliance on the stationary and cyclic classes (where the cost goals
/// are set), per kind of rule.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCost {
    pub rule: String,
    pub cases: usize,
    pub cost_ratio_median: Option<f64>,
    pub cost_ratio_p95: Option<f64>,
    pub cost_ratio_max: Option<f64>,
}

/// The search's result: the summary per class and every miss of a feasible case.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub first_case: u64,
    pub cases: usize,
    pub classes: Vec<ClassSummary>,
    pub steady_cost_by_rule: Vec<RuleCost>,
    pub misses: Vec<Verdict>,
}

/// The case ids of a search: `n` of them from `seed` (each a case's own seed).
pub fn ids(seed: u64, n: usize) -> Vec<u64> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.u64() >> 16).collect()
}

/// The median, p95 and max of some ratios (nearest rank, two decimals).
fn spread(mut ratios: Vec<f64>) -> [Option<f64>; 3] {
    ratios.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        (!ratios.is_empty()).then(|| {
            let i = ((q * ratios.len() as f64).ceil() as usize).clamp(1, ratios.len());
            crate::format::round2(ratios[i - 1])
        })
    };
    [at(0.5), at(0.95), at(1.0)]
}

/// What compliance cost on the stationary and cyclic classes, per kind of rule.
fn steady_cost_by_rule(verdicts: &[Verdict]) -> Vec<RuleCost> {
    let mut by: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for v in verdicts
        .iter()
        .filter(|v| matches!(v.class, "stationary" | "cyclic") && v.feasible && v.compliant)
    {
        if let Some(r) = v.ratio() {
            by.entry(&v.rule).or_default().push(r);
        }
    }
    by.into_iter()
        .map(|(rule, ratios)| {
            let cases = ratios.len();
            let [m, p, x] = spread(ratios);
            RuleCost {
                rule: rule.to_string(),
                cases,
                cost_ratio_median: m,
                cost_ratio_p95: p,
                cost_ratio_max: x,
            }
        })
        .collect()
}

/// Summarize verdicts per class.
pub fn summarize(seed: u64, verdicts: &[Verdict]) -> Search {
    let classes = CLASSES
        .iter()
        .map(|&class| {
            let vs: Vec<&Verdict> = verdicts.iter().filter(|v| v.class == class).collect();
            let feasible: Vec<&&Verdict> = vs.iter().filter(|v| v.feasible).collect();
            // what compliance cost: a miss pays less than the least and says nothing
            let ratios: Vec<f64> = feasible
                .iter()
                .filter(|v| v.compliant)
                .filter_map(|v| v.ratio())
                .collect();
            let [median, p95, max] = spread(ratios);
            ClassSummary {
                class,
                cases: vs.len(),
                feasible: feasible.len(),
                compliant_feasible: feasible.iter().filter(|v| v.compliant).count(),
                infeasible_missed: vs.iter().filter(|v| !v.feasible && !v.compliant).count(),
                cost_ratio_median: median,
                cost_ratio_p95: p95,
                cost_ratio_max: max,
            }
        })
        .collect();
    Search {
        first_case: seed,
        cases: verdicts.len(),
        classes,
        steady_cost_by_rule: steady_cost_by_rule(verdicts),
        misses: verdicts
            .iter()
            .filter(|v| v.feasible && !v.compliant)
            .cloned()
            .collect(),
    }
}

/// The search as a table, and each miss with the command that replays it.
pub fn render(s: &Search) -> String {
    let mut o = format!(
        "{} cases from seed {}\n{:<11} {:>5} {:>8} {:>18} {:>11} {:>26}\n",
        s.cases,
        s.first_case,
        "class",
        "cases",
        "feasible",
        "compliant (feas.)",
        "infeas.miss",
        "cost / least: median p95 max"
    );
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
    for c in &s.classes {
        let _ = writeln!(
            o,
            "{:<11} {:>5} {:>8} {:>11} ({:>5.1} %) {:>11} {:>12} {:>6} {:>6}",
            c.class,
            c.cases,
            c.feasible,
            c.compliant_feasible,
            if c.feasible > 0 {
                c.compliant_feasible as f64 / c.feasible as f64 * 100.0
            } else {
                100.0
            },
            c.infeasible_missed,
            f(c.cost_ratio_median),
            f(c.cost_ratio_p95),
            f(c.cost_ratio_max),
        );
    }
    o.push_str("stationary and cyclic, compliant: cost / least by rule\n");
    for r in &s.steady_cost_by_rule {
        let _ = writeln!(
            o,
            "  {:<16} {:>4} cases  median {:>6}  p95 {:>6}  max {:>6}",
            r.rule,
            r.cases,
            f(r.cost_ratio_median),
            f(r.cost_ratio_p95),
            f(r.cost_ratio_max)
        );
    }
    if s.misses.is_empty() {
        o.push_str("no miss where the target could be met\n");
    }
    for m in &s.misses {
        let c = case(m.id);
        let _ = writeln!(
            o,
            "MISS {} ({}, {} {} {} %, {} days window, {:?} first window, {} days): achieved {:.2}; {}\n  replay: cro simulate --case {}",
            m.id,
            c.class,
            c.resource,
            c.statistic.name(),
            c.target,
            c.window_days,
            c.first_window,
            c.days,
            m.achieved,
            c.params,
            m.id
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_the_same_from_its_id_alone() {
        for id in ids(7, 24) {
            let (a, b) = (case(id), case(id));
            assert_eq!(a.trace, b.trace);
            assert_eq!((a.class, &a.params), (b.class, &b.params));
        }
    }

    #[test]
    fn every_class_is_drawn_and_makes_rows_within_0_to_100() {
        let mut seen = std::collections::BTreeSet::new();
        for id in ids(1, 200) {
            let c = case(id);
            seen.insert(c.class);
            assert!(c.trace.rows.len() > 100, "{} {}", c.class, c.params);
            assert!(
                c.trace
                    .rows
                    .iter()
                    .flat_map(|r| r.1.iter().flatten())
                    .all(|v| (0.0..=100.0).contains(v))
            );
        }
        assert_eq!(seen.len(), CLASSES.len(), "{seen:?}");
    }

    #[test]
    fn an_outage_removes_rows_and_a_case_csv_reads_back() {
        let c = (0..)
            .map(case)
            .find(|c| c.class == "outage" && c.days == c.window_days)
            .unwrap();
        let full = (c.days as f64 * 86_400.0 / DT) as usize;
        assert!(c.trace.rows.len() < full, "{}", c.params);
        let back = simulate::parse_trace(&c.csv(), std::path::Path::new("x.csv")).unwrap();
        assert_eq!(back.rows.len(), c.trace.rows.len());
    }
}
