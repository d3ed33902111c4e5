//! Rendering what cro sees: `status`, `plan` and `history` output, text and JSON.
use crate::control::cost::CostUnit;
use crate::control::desired::{self, Resolved, Source, Statistic};
use crate::control::job::Placement;
use crate::control::plan::Plan;
use crate::control::policy::Decision;
use crate::control::slot::Slot;
use crate::control::window::{self, WindowStat};
use crate::error::{Error, Result};
use crate::format::{human_bytes, round2};
use crate::observe::{self, Observation};
use crate::reconcile::tick;
use crate::state::history::{self, Record};
use crate::state::jobs::{JobDir, JobFound, WorkerState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize)]
pub struct Status {
    pub desired: DesiredInfo,
    pub host: crate::observe::host::Host,
    pub resources: Resources,
    pub jobs: Vec<JobInfo>,
    /// Timestamp of the last history record (the last reconcile).
    pub last_reconcile: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DesiredInfo {
    pub path: PathBuf,
    pub built_in_default: bool,
    pub valid: bool,
    pub error: Option<String>,
    pub paused: bool,
    /// The window the targets are judged over (the built-in default's when invalid).
    pub window_days: u32,
}

#[derive(Debug, Serialize, Default)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Usage>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub disk: BTreeMap<String, Usage>,
}

impl Resources {
    /// Every resource shown, with its slot (whose `label()` names it: `cpu`, `memory`,
    /// `disk:/data`), in the order status lists them.
    pub fn each(&self) -> Vec<(Slot, &Usage)> {
        let mut v = vec![];
        if let Some(u) = &self.cpu {
            v.push((Slot::Cpu, u));
        }
        if let Some(u) = &self.memory {
            v.push((Slot::Memory, u));
        }
        for (m, u) in &self.disk {
            v.push((Slot::disk(m), u));
        }
        v
    }
}

#[derive(Debug, Serialize, Clone)]
pub struct Usage {
    pub target_percent: f64,
    pub statistic: Statistic,
    pub total_percent: f64,
    pub organic_percent: f64,
    pub synthetic_percent: f64,
    pub level_percent: f64,
    /// What holds this resource now.
    pub state: SlotState,
    /// Why, when not `running`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The statistic over the window so far.
    pub window: Option<WindowStat>,
    /// What the policy plans and whether the limits allow it.
    pub forecast: Option<Decision>,
    /// What the synthetic load has cost over the window so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// How the total is measured (memory: the desired state's memory.metric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

/// The cost of compliance: synthetic load over the window so far, in the resource's own
/// unit (CPU core-hours, GiB-hours of memory or disk), and as an average share of it.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub amount: f64,
    pub unit: CostUnit,
    /// The synthetic share of the resource, averaged over the recorded part of the window.
    pub share_percent: f64,
}

/// What `synthetic_percent_hours` of a resource of `capacity` units cost (`recorded_h`:
/// the recorded hours of the window, for the average share).
pub fn cost(synthetic_percent_hours: f64, capacity: f64, unit: CostUnit, recorded_h: f64) -> Cost {
    Cost {
        amount: round2(synthetic_percent_hours / 100.0 * capacity),
        unit,
        share_percent: if recorded_h > 0.0 {
            round2(synthetic_percent_hours / recorded_h)
        } else {
            0.0
        },
    }
}

/// What holds a resource now, as status says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SlotState {
    /// A live worker holds it.
    #[serde(rename = "running")]
    Running,
    /// No pass has run yet, or its worker ended (the next pass starts it again).
    #[serde(rename = "not running")]
    NotRunning,
    /// It cannot be held here (e.g. a disk that is not a mount point).
    #[serde(rename = "cannot pad")]
    CannotPad,
    /// `"paused": true` in the desired state.
    #[serde(rename = "paused")]
    Paused,
}

impl SlotState {
    pub fn name(self) -> &'static str {
        match self {
            SlotState::Running => "running",
            SlotState::NotRunning => "not running",
            SlotState::CannotPad => "cannot pad",
            SlotState::Paused => "paused",
        }
    }
}

/// A job's worker as status shows it: what its status file says, or `crashed` when it
/// says running but no process holds the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Exited,
    Failed,
    Crashed,
    Unknown,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Exited => "exited",
            JobState::Failed => "failed",
            JobState::Crashed => "crashed",
            JobState::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct JobInfo {
    pub id: String,
    pub pid: Option<u32>,
    pub alive: bool,
    pub state: Option<JobState>,
    pub level_percent: Option<f64>,
    pub synthetic_percent: Option<f64>,
    pub ballast_bytes: Option<u64>,
    pub ballast_target_bytes: Option<u64>,
    /// While a disk ballast fills: bytes per second.
    pub fill_rate_bytes_per_s: Option<f64>,
    pub limited_by: Option<String>,
    pub corrupt: Option<String>,
    pub message: Option<String>,
}

fn usage(target: f64, statistic: Statistic, total: f64, synthetic: f64, level: f64) -> Usage {
    Usage {
        target_percent: round2(target),
        statistic,
        total_percent: round2(total),
        organic_percent: round2(observe::organic(total, synthetic)),
        // + 0.0: never print "-0.0"
        synthetic_percent: round2(synthetic.min(total)) + 0.0,
        level_percent: round2(level),
        state: SlotState::Running,
        state_note: None,
        error: None,
        window: None,
        forecast: None,
        cost: None,
        metric: None,
    }
}

pub fn resources(obs: &Observation, d: &Resolved, found: &[JobFound]) -> Resources {
    let level = |id: &str| {
        found
            .iter()
            .find(|f| f.id == id && f.alive)
            .and_then(|f| f.job.as_ref())
            .map_or(0.0, |j| j.spec.level_percent())
    };
    let mut r = Resources::default();
    if let Some(c) = &d.cpu {
        r.cpu = Some(usage(
            c.target_percent,
            c.statistic,
            obs.cpu_total_percent,
            obs.cpu_synthetic_percent,
            level("cpu"),
        ));
    }
    if let Some(m) = &d.memory {
        let mut u = usage(
            m.target_percent,
            m.statistic,
            obs.memory.used_percent(),
            obs.memory_synthetic_percent(),
            level("memory"),
        );
        u.metric = Some(m.metric.name().to_string());
        r.memory = Some(u);
    }
    if let Some(k) = &d.disk {
        for (m, o) in &obs.disks {
            let mut u = usage(
                k.target_percent,
                k.statistic,
                o.usage.used_percent(),
                observe::pct(o.synthetic_bytes, o.usage.capacity_bytes()),
                level(&Slot::disk(m).id()),
            );
            u.error = o.error.clone();
            set_state(&mut u, &Slot::disk(m).id(), d, found);
            r.disk.insert(m.display().to_string(), u);
        }
    }
    if let Some(u) = r.cpu.as_mut() {
        set_state(u, "cpu", d, found);
    }
    if let Some(u) = r.memory.as_mut() {
        set_state(u, "memory", d, found);
    }
    r
}

/// Say what is true of a resource's slot: status must not call a resource "on track"
/// when nothing holds it.
fn set_state(u: &mut Usage, id: &str, d: &Resolved, found: &[JobFound]) {
    let f = found.iter().find(|f| f.id == id);
    let (state, note) = if d.paused {
        (
            SlotState::Paused,
            Some("\"paused\": true in the desired state".to_string()),
        )
    } else if let Some(e) = &u.error {
        (SlotState::CannotPad, Some(e.clone()))
    } else {
        match f {
            Some(f) if f.alive => (SlotState::Running, None),
            Some(f) => (
                SlotState::NotRunning,
                Some(format!(
                    "its worker {}; the next pass starts it again",
                    match f.status.as_ref().map(|s| s.state) {
                        Some(WorkerState::Running) => "crashed",
                        Some(WorkerState::Failed) => "failed (see its log)",
                        Some(_) => "exited",
                        None => "never started",
                    }
                )),
            ),
            None => (
                SlotState::NotRunning,
                Some(
                    "no pass has run yet: `cro reconcile --once`, or start the service or timer"
                        .to_string(),
                ),
            ),
        }
    };
    u.state = state;
    u.state_note = note;
}

fn job_info(f: &JobFound) -> JobInfo {
    let s = f.status.as_ref();
    JobInfo {
        id: f.id.clone(),
        pid: s.map(|s| s.pid),
        alive: f.alive,
        state: s.map(|s| match s.state {
            WorkerState::Running if !f.alive => JobState::Crashed,
            WorkerState::Running => JobState::Running,
            WorkerState::Exited => JobState::Exited,
            WorkerState::Failed => JobState::Failed,
            WorkerState::Unknown => JobState::Unknown,
        }),
        level_percent: f.job.as_ref().map(|j| j.spec.level_percent()),
        synthetic_percent: s.filter(|_| f.alive).map(|s| s.synthetic_percent),
        ballast_bytes: s
            .filter(|_| f.alive)
            .map(|s| s.ballast_bytes)
            .filter(|&b| b > 0),
        ballast_target_bytes: s
            .filter(|_| f.alive)
            .map(|s| s.ballast_target_bytes)
            .filter(|&b| b > 0),
        fill_rate_bytes_per_s: s
            .filter(|_| f.alive)
            .map(|s| s.fill_rate_bytes_per_s)
            .filter(|&r| r > 0.0),
        limited_by: s.filter(|_| f.alive).and_then(|s| s.limited_by.clone()),
        corrupt: f.corrupt.clone(),
        message: s.and_then(|s| s.message.clone()),
    }
}

/// Build the status view. A bad desired file is reported, not fatal: status must work
/// exactly when something is wrong.
pub fn status(state_dir: &Path, desired_path: &Path) -> Result<Status> {
    let q = JobDir::new(state_dir);
    let cg = observe::read_cgroup_limits();
    let mem = observe::read_memory(&cg).map_err(|e| Error::io("/proc/meminfo", "read", e))?;
    let (resolved, mut info) = desired_info(desired_path, mem.total_bytes);
    let found = q.list()?;
    // With an invalid file, show usage against the built-in default's shape (no targets
    // are enforced from it; the workers keep whatever job they have).
    let shown = resolved.unwrap_or_else(|| {
        desired::DesiredState::default()
            .resolve(desired_path, mem.total_bytes, None)
            .expect("default is valid")
    });
    info.window_days = shown.window_days;
    let pass = tick::prepare(&q, &shown, &found)?;
    let host = crate::observe::host::Host {
        memory_tier_gib: shown.memory_tier_gib,
        cpu_placement: cpu_placement(state_dir, &shown, &found),
        ..crate::observe::host::detect()
    };
    let mut res = resources(&pass.observation, &shown, &found);
    judge_windows(&mut res, &pass, &shown);
    Ok(Status {
        resources: res,
        jobs: found.iter().map(job_info).collect(),
        last_reconcile: history::last(state_dir, pass.observation.at).map(|r| r.ts),
        desired: info,
        host,
    })
}

/// The desired file resolved for this host, or why not, as status tells it.
fn desired_info(desired_path: &Path, memory_total: u64) -> (Option<Resolved>, DesiredInfo) {
    let loaded = crate::state::desired_file::load(desired_path).and_then(|(d, src)| {
        Ok((
            d.resolve(
                desired_path,
                memory_total,
                Some(&crate::observe::mount_path_problem),
            )?,
            src,
        ))
    });
    let mut info = DesiredInfo {
        path: desired_path.to_path_buf(),
        built_in_default: false,
        valid: false,
        error: None,
        paused: false,
        window_days: 0,
    };
    match loaded {
        Ok((r, src)) => {
            info.built_in_default = matches!(src, Source::BuiltIn(_));
            info.valid = true;
            info.paused = r.paused;
            (Some(r), info)
        }
        Err(e) => {
            info.error = Some(e.to_string());
            (None, info)
        }
    }
}

/// Where the CPU burners run: the live worker's placement, else where one would go.
fn cpu_placement(state_dir: &Path, shown: &Resolved, found: &[JobFound]) -> Option<Placement> {
    found
        .iter()
        .find(|f| f.id == "cpu" && f.alive)
        .and_then(|f| f.status.as_ref()?.placement.clone())
        .or_else(|| {
            shown.cpu.as_ref()?;
            let mut p = crate::worker::placement::plan_here(state_dir).describe();
            p.why = format!("no cpu worker runs; one would use this: {}", p.why);
            Some(p)
        })
}

/// Each resource's window so far (by `window::stat`, the one rule), its cost and the
/// policy's forecast.
fn judge_windows(res: &mut Resources, pass: &tick::Pass, shown: &Resolved) {
    let (obs, windows) = (&pass.observation, &pass.windows);
    let window_s = shown.window_days as f64 * 86_400.0;
    let empty = window::Series::default();
    const GIB: f64 = (1u64 << 30) as f64;
    // capacity: CPUs, or GiB of memory or disk
    let attach = |u: &mut Usage,
                  series: Option<&window::Series>,
                  key: &str,
                  capacity: f64,
                  unit: CostUnit| {
        let series = series.unwrap_or(&empty);
        let first = windows.first_record(series);
        let w = window::stat(
            series,
            first,
            obs.at,
            window_s,
            u.target_percent,
            u.statistic,
            shown.before_first_record,
        );
        let recorded_h = w.coverage
            * window::judged_span(first, obs.at, window_s, shown.before_first_record)
            / 3600.0;
        u.cost = Some(cost(w.synthetic_percent_hours, capacity, unit, recorded_h));
        u.window = Some(w);
        u.forecast = pass.decisions.get(key).cloned();
    };
    if let Some(u) = res.cpu.as_mut() {
        let cpus = obs.host_cpus as f64;
        attach(u, Some(&windows.cpu), "cpu", cpus, CostUnit::CpuCoreHours);
    }
    if let Some(u) = res.memory.as_mut() {
        let gib = obs.memory.total_bytes as f64 / GIB;
        attach(u, Some(&windows.memory), "memory", gib, CostUnit::GibHours);
    }
    for (m, u) in res.disk.iter_mut() {
        let gib = obs
            .disks
            .get(std::path::Path::new(m))
            .map_or(0.0, |d| d.usage.capacity_bytes() as f64 / GIB);
        attach(
            u,
            windows.disk.get(m),
            &Slot::disk(m).label(),
            gib,
            CostUnit::GibHours,
        );
    }
}

/// `cro status` as a person reads it: the header (desired file, host, placement), the
/// resource table, the cost line, the job table.
pub fn render_status(s: &Status) -> String {
    let mut o = status_header(s);
    o += &resource_table(s);
    o += &cost_line(s);
    o += &job_table(s);
    o
}

/// The desired file, the host, how memory is measured, PSI, CPU placement, the last pass.
fn status_header(s: &Status) -> String {
    let mut o = String::new();
    let d = &s.desired;
    let src = if d.built_in_default {
        " (no file: built-in default)"
    } else {
        ""
    };
    o += &format!(
        "desired: {}{src}{}\n",
        d.path.display(),
        if d.paused { "  PAUSED" } else { "" }
    );
    if let Some(e) = &d.error {
        o += &format!("CONFIG ERROR: {e}\n  (workers keep their last good jobs)\n");
    }
    // Windows has no kernel release of this kind to show, and no cgroups.
    let windows = s.host.platform == "windows";
    o += &format!(
        "host: {} ({}{}, {} pages), {} memory (tier {} GiB{}), {} CPUs ({} usable){}{}\n",
        s.host.os.as_deref().unwrap_or("Linux"),
        s.host.platform,
        if s.host.kernel.is_empty() {
            String::new()
        } else {
            format!(", kernel {}", s.host.kernel)
        },
        human_bytes(s.host.page_size as u64).replace(".0 ", " "),
        human_bytes(s.host.memory_total_bytes),
        s.host.memory_tier_gib,
        if s.host.memory_bounded_by_cgroup {
            ", cgroup limit"
        } else {
            ""
        },
        s.host.cpus,
        s.host.usable_cpus,
        if windows {
            String::new()
        } else {
            format!(", cgroup {}", s.host.cgroup.version)
        },
        if s.host.container {
            ", in a container"
        } else {
            ""
        }
    );
    if let Some(m) = s
        .resources
        .memory
        .as_ref()
        .and_then(|u| u.metric.as_deref())
        && m != "available"
    {
        let formula =
            crate::control::desired::MemoryMetric::from_name(m).map_or("", |x| x.formula());
        o += &format!("memory measured as {formula} (memory.metric {m})\n");
    }
    if !s.host.memory_psi && !windows {
        o += "memory pressure (PSI): not reported by this kernel; the memory worker gives \
               ballast back by MemAvailable alone\n";
    }
    if let Some(p) = &s.host.cpu_placement {
        o += &format!(
            "cpu placement: {}{}: {}\n",
            p.mode,
            p.cgroup
                .as_ref()
                .map(|c| format!(" ({})", c.display()))
                .unwrap_or_default(),
            p.why
        );
    }
    o += &format!(
        "last reconcile: {}\n\n",
        s.last_reconcile.as_deref().unwrap_or("never")
    );
    o
}

/// One row per resource, the first column as wide as its longest name.
fn resource_table(s: &Status) -> String {
    let mut o = String::new();
    // The first column is as wide as its longest name (a disk's mount path can be long), so
    // every value stays under its header.
    let rw = name_width(
        s.resources
            .disk
            .keys()
            .map(|m| m.chars().count() + "disk ".len())
            .chain(["RESOURCE".len(), "memory".len()]),
    );
    o += &format!(
        "{:<rw$} {:>7} {:>6} {:>7} {:>8} {:>10} {:>7} {:>8} {:>6}  {}\n",
        "RESOURCE",
        "TARGET",
        "STAT",
        "TOTAL",
        "ORGANIC",
        "SYNTHETIC",
        "LEVEL",
        "WINDOW",
        "COVER",
        "FORECAST"
    );
    let mut row = |name: &str, u: &Usage| {
        o += &format!(
            "{:<rw$} {:>6.1}% {:>6} {:>6.1}% {:>7.1}% {:>9.1}% {:>6.1}% {:>7.1}% {:>5.0}%  {}\n",
            name,
            u.target_percent,
            u.statistic,
            u.total_percent,
            u.organic_percent,
            u.synthetic_percent,
            u.level_percent,
            u.window.as_ref().map_or(0.0, |w| w.value),
            u.window.as_ref().map_or(0.0, |w| w.coverage * 100.0),
            if u.state == SlotState::Running {
                u.forecast.as_ref().map_or(String::new(), forecast_text)
            } else {
                format!(
                    "{}: {}",
                    u.state.name().to_uppercase(),
                    u.state_note.as_deref().unwrap_or("")
                )
            },
        )
    };
    if let Some(u) = &s.resources.cpu {
        row("cpu", u);
    }
    if let Some(u) = &s.resources.memory {
        row("memory", u);
    }
    for (m, u) in &s.resources.disk {
        row(&format!("disk {m}"), u);
    }
    o
}

/// The cost of compliance so far, one clause per resource (empty when nothing cost).
fn cost_line(s: &Status) -> String {
    let mut o = String::new();
    let mut costs = vec![];
    let mut cost_of = |name: &str, u: &Usage| {
        if let Some(c) = &u.cost {
            let unit = c.unit.words();
            costs.push(format!(
                "{name} {:.2} {unit} ({:.1} % of it on average)",
                c.amount, c.share_percent
            ));
        }
    };
    if let Some(u) = &s.resources.cpu {
        cost_of("cpu", u);
    }
    if let Some(u) = &s.resources.memory {
        cost_of("memory", u);
    }
    for (m, u) in &s.resources.disk {
        cost_of(&format!("disk {m}"), u);
    }
    if !costs.is_empty() {
        o += &format!(
            "synthetic cost over the window so far: {}\n",
            costs.join("; ")
        );
    }
    o
}

/// One row per job: pid, state, what it holds, its ballast and a note.
fn job_table(s: &Status) -> String {
    let mut o = String::new();
    let jw = name_width(
        s.jobs
            .iter()
            .map(|j| j.id.chars().count())
            .chain(["JOB".len()]),
    );
    o += &format!(
        "\n{:<jw$} {:>8} {:<8} {:>7} {:>24}  {}\n",
        "JOB", "PID", "STATE", "HOLDS", "BALLAST", "NOTE"
    );
    if s.jobs.is_empty() {
        o += "(no jobs)\n";
    }
    for j in &s.jobs {
        let ballast = match (j.ballast_bytes, j.ballast_target_bytes) {
            // still filling: done -> total, and how fast
            (Some(b), Some(t)) if t > b + (16 << 20) => match j.fill_rate_bytes_per_s {
                Some(r) => format!(
                    "{} -> {} at {}/s",
                    human_bytes(b),
                    human_bytes(t),
                    human_bytes(r as u64)
                ),
                None => format!("{} -> {}", human_bytes(b), human_bytes(t)),
            },
            (Some(b), _) => human_bytes(b),
            _ => "-".into(),
        };
        let note = j
            .corrupt
            .as_ref()
            .map(|c| format!("corrupt job file: {c}"))
            .or(j.limited_by.as_ref().map(|l| format!("limited by {l}")))
            .unwrap_or_default();
        o += &format!(
            "{:<jw$} {:>8} {:<8} {:>7} {:>24}  {}\n",
            j.id,
            j.pid.map_or("-".into(), |p| p.to_string()),
            if j.alive {
                "running"
            } else {
                j.state.map_or("stopped", JobState::name)
            },
            j.synthetic_percent
                .map_or("-".into(), |p| format!("{p:.1}%")),
            ballast,
            note
        );
    }
    o
}

/// The width of a table's first column: its longest name, at least 16 (the width the
/// table had when every name was short, so a plain host's output does not move).
fn name_width(lens: impl Iterator<Item = usize>) -> usize {
    lens.max().unwrap_or(0).max(16)
}

fn forecast_text(d: &Decision) -> String {
    match d.risk_text() {
        Some(risk) => format!("{risk}; {}", forecast_plain(d)),
        None => forecast_plain(d),
    }
}

fn forecast_plain(d: &Decision) -> String {
    if !d.on_track {
        return d.note.clone();
    }
    if d.deferring {
        return format!("on track: {}", d.note);
    }
    if d.hours_needed > 0.0 {
        format!(
            "on track: needs {:.0} more h at the level ({})",
            d.hours_needed, d.note
        )
    } else {
        format!("compliant at this pace ({})", d.note)
    }
}

/// `plan` as text: each action, and for each job written the level in the host's terms
/// (the level is the *total* the worker holds; it adds only what organic load leaves).
pub fn render_plan(p: &Plan, obs: &Observation, decisions: &BTreeMap<String, Decision>) -> String {
    if p.actions.is_empty() {
        return "nothing to change\n".into();
    }
    let mut o = String::new();
    for a in &p.actions {
        o += &a.describe();
        if let crate::control::plan::Action::Write { job, .. } = a {
            let why = Slot::from_id(&job.id).and_then(|s| decisions.get(&s.label()));
            o += &format!(" ({})", level_in_host_terms(&job.spec, obs, why));
        }
        o += "\n";
    }
    o
}

fn level_in_host_terms(
    spec: &crate::state::jobs::JobSpec,
    obs: &Observation,
    why: Option<&Decision>,
) -> String {
    use crate::state::jobs::JobSpec;
    let l = spec.level_percent();
    if l <= 0.0 {
        return match why {
            Some(d) => format!("level 0: add nothing now; {}", d.note),
            None => "level 0: add nothing now; organic load or the window so far meets the target"
                .into(),
        };
    }
    match spec {
        JobSpec::Cpu { .. } => format!(
            "hold {l:.1} % CPU in total = {:.1} of {} CPUs; now organic {:.1} %, so about {:.1} % synthetic",
            l / 100.0 * obs.host_cpus as f64,
            obs.host_cpus,
            observe::organic(obs.cpu_total_percent, obs.cpu_synthetic_percent),
            (l - observe::organic(obs.cpu_total_percent, obs.cpu_synthetic_percent)).max(0.0)
        ),
        JobSpec::Memory { .. } => {
            let total = obs.memory.total_bytes as f64;
            let organic = obs.memory.used_percent() - obs.memory_synthetic_percent();
            format!(
                "hold {l:.1} % of memory used = {} of {}; memory ballast about {} now",
                human_bytes((l / 100.0 * total) as u64),
                human_bytes(obs.memory.total_bytes),
                human_bytes(((l - organic).max(0.0) / 100.0 * total) as u64)
            )
        }
        JobSpec::Disk { mount, .. } => match obs.disks.get(mount) {
            Some(d) if d.error.is_none() => {
                let cap = d.usage.capacity_bytes() as f64;
                let organic = d.usage.used_bytes.saturating_sub(d.synthetic_bytes) as f64;
                format!(
                    "hold {l:.1} % of {} used = {} of {}; disk ballast about {} now",
                    mount.display(),
                    human_bytes((l / 100.0 * cap) as u64),
                    human_bytes(cap as u64),
                    human_bytes((l / 100.0 * cap - organic).max(0.0) as u64)
                )
            }
            _ => format!("hold {l:.1} % of {} used", mount.display()),
        },
    }
}

/// `plan`: what a reconcile would do now (same observation, windows and policy).
pub fn plan_now(
    state_dir: &Path,
    d: &Resolved,
) -> Result<(Plan, Observation, BTreeMap<String, Decision>)> {
    let q = JobDir::new(state_dir);
    let found = q.list()?;
    let tick::Pass {
        observation: obs,
        plan,
        decisions,
        ..
    } = tick::prepare(&q, d, &found)?;
    Ok((plan, obs, decisions))
}

/// `history --csv`: one row per record and resource (csv quotes a mount path with a
/// comma, a quote, a CR or a LF in it).
pub fn history_csv(rs: &[Record]) -> String {
    let mut w = csv::Writer::from_writer(vec![]);
    let header = [
        "ts",
        "interval_s",
        "resource",
        "total",
        "organic",
        "synthetic",
        "level",
        "target",
    ];
    w.write_record(header).expect("writes to memory");
    for r in rs {
        let mut line = |name: &str, s: &history::Sample| {
            w.write_record([
                r.ts.clone(),
                r.interval_s.to_string(),
                name.to_string(),
                s.total.to_string(),
                round2(s.organic()).to_string(),
                s.synthetic.to_string(),
                s.level.to_string(),
                s.target.to_string(),
            ])
            .expect("writes to memory");
        };
        if let Some(s) = &r.cpu {
            line("cpu", s);
        }
        if let Some(s) = &r.memory {
            line("memory", s);
        }
        for (m, s) in &r.disk {
            line(&format!("disk:{m}"), s);
        }
    }
    String::from_utf8(w.into_inner().expect("writes to memory")).expect("UTF-8 in, UTF-8 out")
}

pub fn history_text(rs: &[Record]) -> String {
    let mut o = format!(
        "{:<21} {:>7}  {:<22} {:<22} {}\n",
        "TIME", "SECS", "CPU total/syn/level", "MEMORY total/syn/level", "DISK"
    );
    let f = |s: &Option<history::Sample>| {
        s.map_or("-".to_string(), |s| {
            format!("{:.1}/{:.1}/{:.1}", s.total, s.synthetic, s.level)
        })
    };
    for r in rs {
        let disk: Vec<String> = r
            .disk
            .iter()
            .map(|(m, s)| format!("{m} {:.1}/{:.1}/{:.1}", s.total, s.synthetic, s.level))
            .collect();
        o += &format!(
            "{:<21} {:>7}  {:<22} {:<22} {}\n",
            r.ts,
            r.interval_s,
            f(&r.cpu),
            f(&r.memory),
            disk.join("  ")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25, 7: a mount path with a comma, a quote, a CR or a LF is one CSV field.
    #[test]
    fn history_csv_quotes_every_awkward_mount_path() {
        let s = history::Sample::new(40.0, 10.0, 40.0, 40.0);
        let mut disk = std::collections::BTreeMap::new();
        for m in ["/a,b", "/q\"uote", "/cr\rlf", "/nl\nx"] {
            disk.insert(m.to_string(), s);
        }
        let r = Record {
            ts: "2026-12-06T00:00:00Z".into(),
            interval_s: 60.0,
            cpu: None,
            memory: None,
            disk,
            memory_metric: None,
        };
        let text = history_csv(&[r]);
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let got: Vec<String> = rd
            .records()
            .map(|r| r.unwrap().get(2).unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            ["disk:/a,b", "disk:/cr\rlf", "disk:/nl\nx", "disk:/q\"uote"]
        );
    }
}
