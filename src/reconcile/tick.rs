//! One reconcile tick: sense the host, plan, carry the plan out, append a history record.
//! `reconcile --once` and every daemon tick run exactly this, under the state lock.
use crate::control::desired::Resolved;
use crate::control::levels::decide_levels;
use crate::control::plan::{self, Action, Plan};
use crate::control::policy::Decision;
use crate::control::slot::Slot;
use crate::control::window::Windows;
use crate::error::Result;
use crate::observe::{self, Observation};
use crate::reconcile::this_host::ThisHost;
use crate::state::fsutil;
use crate::state::history::{Record, Sample};
use crate::state::jobs::{Job, JobDir, JobFound, JobSpec};
use crate::timefmt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The history record for this tick.
pub fn record(obs: &Observation, desired: &Resolved, jobs: &[Job]) -> Record {
    let level = |id: &str| {
        jobs.iter()
            .find(|j| j.id == id)
            .map_or(0.0, |j| j.spec.level_percent())
    };
    let cpu = desired.cpu.as_ref().map(|c| {
        Sample::new(
            obs.cpu_total_percent,
            obs.cpu_synthetic_percent,
            level("cpu"),
            c.target_percent,
        )
    });
    let memory = desired.memory.as_ref().map(|m| {
        Sample::new(
            obs.memory.used_percent(),
            obs.memory_synthetic_percent(),
            level("memory"),
            m.target_percent,
        )
    });
    let mut disk = BTreeMap::new();
    if let Some(d) = &desired.disk {
        for (m, o) in &obs.disks {
            if o.error.is_none() {
                let syn = observe::pct(o.synthetic_bytes, o.usage.capacity_bytes());
                disk.insert(
                    m.display().to_string(),
                    Sample::new(
                        o.usage.used_percent(),
                        syn,
                        level(&Slot::disk(m).id()),
                        d.target_percent,
                    ),
                );
            }
        }
    }
    Record {
        memory_metric: desired
            .memory
            .as_ref()
            .map(|m| m.metric)
            .filter(|m| *m != crate::control::desired::MemoryMetric::Available)
            .map(|m| m.name().to_string()),
        ts: timefmt::rfc3339(obs.at),
        interval_s: (obs.interval_s * 10.0).round() / 10.0,
        cpu,
        memory,
        disk,
    }
}

#[derive(Debug, Serialize)]
pub struct TickReport {
    pub plan: Plan,
    pub decisions: BTreeMap<String, Decision>,
    pub started: Vec<(String, u32)>,
    pub record: Record,
    pub errors: Vec<String>,
}

/// One pass's view of the host: what was observed, the window it is judged on, what the
/// policy decided for each resource, and the plan that follows. The tick, `status` and
/// `plan` all make it with `prepare_in`; only the tick then carries the plan out.
#[derive(Debug, Clone)]
pub struct Pass {
    pub observation: Observation,
    pub windows: Windows,
    pub decisions: BTreeMap<String, Decision>,
    pub plan: Plan,
}

/// The pass a reconcile would make now on this host, persisting nothing (for `status`
/// and `plan`, which only read).
pub fn prepare(q: &JobDir, desired: &Resolved, found: &[JobFound]) -> Result<Pass> {
    prepare_in(&mut ThisHost { q, persist: false }, desired, found)
}

/// What a tick does to the world. The tick's logic runs unchanged against the host
/// (`ThisHost`) or against a simulated world (tests/simulation.rs), where clock, observations,
/// process table and files are a seeded model and faults are injected at will.
pub trait World {
    /// The job slots as they are now (job file, lock, status).
    fn list(&mut self) -> Result<Vec<JobFound>>;
    /// Read the host (a reconcile persists the CPU counters).
    fn sense(&mut self, desired: &Resolved, found: &[JobFound]) -> Result<Observation>;
    /// The recorded window ending at `now` (borrowed where the world keeps it in memory).
    fn windows(&mut self, now: f64, window_s: f64) -> std::borrow::Cow<'_, Windows>;
    fn write_job(&mut self, job: &Job) -> Result<()>;
    /// Start the worker for `id` unless something already holds its slot; its PID if
    /// this call started it.
    fn start(&mut self, id: &str) -> Result<Option<u32>>;
    /// Delete the job, stop its worker, give its ballast back.
    fn remove(&mut self, found: &JobFound) -> Result<()>;
    /// Delete ballast on the mounts this state directory owns other than `keep` (left by a
    /// job removed while its filesystem was unmounted, say); what went where.
    fn sweep_orphan_ballast(
        &mut self,
        keep: &[std::path::PathBuf],
    ) -> Vec<(std::path::PathBuf, u64)>;
    fn append_history(&mut self, at: f64, rec: &Record) -> Result<()>;
    /// Delete history older than `keep_days`; how many files went.
    fn prune_history(&mut self, now: f64, keep_days: u32) -> Result<usize>;
}

/// The pass, from what `world` shows now: sense, load the window, decide, plan.
pub fn prepare_in(world: &mut impl World, desired: &Resolved, found: &[JobFound]) -> Result<Pass> {
    let observation = world.sense(desired, found)?;
    let windows = world
        .windows(observation.at, desired.window_days as f64 * 86_400.0)
        .into_owned();
    let (levels, decisions) = decide_levels(desired, &windows, &observation, found);
    let plan = plan::plan(desired, &levels, found);
    Ok(Pass {
        observation,
        windows,
        decisions,
        plan,
    })
}

/// One tick on this host. The caller holds the state lock.
pub fn tick(q: &JobDir, desired: &Resolved) -> Result<TickReport> {
    q.ensure()?;
    crate::fault::point(crate::fault::CrashPoint::TickStart);
    // A crash between writing a temp file and renaming it leaves the temp behind. Under
    // the state lock only a reader's cache write can be in flight, never a minute long.
    for p in fsutil::remove_stale_temps(&q.state_dir, Duration::from_secs(60)) {
        tracing::info!("deleted {} (left by an interrupted write)", p.display());
    }
    tick_in(&mut ThisHost { q, persist: true }, desired)
}

/// One tick in `world`: list, sense, plan, carry the plan out action by action (a failed
/// action is reported and the rest still run), append the history record, prune.
pub fn tick_in(world: &mut impl World, desired: &Resolved) -> Result<TickReport> {
    let found = world.list()?;
    let Pass {
        observation: obs,
        decisions,
        plan,
        ..
    } = prepare_in(world, desired, &found)?;
    let mut started = vec![];
    let mut errors = vec![];
    for a in &plan.actions {
        let r = match a {
            Action::Write { job, .. } => world.write_job(job),
            Action::Start { id, .. } => world
                .start(id)
                .map(|pid| started.extend(pid.map(|p| (id.clone(), p)))),
            Action::Remove { id, .. } => {
                let f = found
                    .iter()
                    .find(|f| &f.id == id)
                    .cloned()
                    .unwrap_or_default();
                world.remove(&f)
            }
        };
        // Reported once, by the caller: the daemon logs each action, `--once` prints them
        // (logging here too printed every action twice on a terminal).
        if let Err(e) = r {
            errors.push(format!("{}: {e}", a.describe()));
        }
    }
    // Ballast no job owns: only after a tick in which everything went as planned (a failed
    // removal keeps its slot, and its ballast, for the next tick).
    if errors.is_empty() {
        let keep: Vec<std::path::PathBuf> = plan
            .jobs
            .iter()
            .filter_map(|j| match &j.spec {
                JobSpec::Disk { mount, .. } => Some(mount.clone()),
                _ => None,
            })
            .collect();
        for (m, bytes) in world.sweep_orphan_ballast(&keep) {
            tracing::warn!(mount = %m.display(), bytes, "deleted ballast no job owns");
        }
    }
    let record = record(&obs, desired, &plan.jobs);
    if let Err(e) = world.append_history(obs.at, &record) {
        errors.push(e.to_string());
    }
    // Retention: the window (plus a day for the day file still being written) is never
    // deleted, whatever the grace.
    let keep = desired.window_days + 1 + desired.history_grace_days;
    match world.prune_history(obs.at, keep) {
        Ok(gone) if gone > 0 => tracing::info!(
            files = gone,
            keep_days = keep,
            "deleted history older than the window and its grace"
        ),
        Ok(_) => {}
        Err(e) => errors.push(e.to_string()),
    }
    Ok(TickReport {
        plan,
        decisions,
        started,
        record,
        errors,
    })
}
