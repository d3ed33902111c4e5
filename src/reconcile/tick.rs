//! One reconcile tick: sense the host, plan, carry the plan out, append a history record.
//! `reconcile --once` and every daemon tick run exactly this, under the state lock.
use crate::control::desired::Resolved;
use crate::control::plan::{self, Action, Plan};
use crate::control::policy::{self, Decision};
use crate::control::slot::Slot;
use crate::control::window::Windows;
use crate::error::{Error, Result};
use crate::observe::procs;
use crate::observe::{self, CpuTimes, DiskObservation, Observation};
use crate::state::fsutil;
use crate::state::history::{self, Record, Sample};
use crate::state::queue::{Job, JobFound, JobSpec, Queue};
use crate::timefmt;
use crate::worker::ballast;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Cumulative counters kept between runs, so a `--once` every 5 minutes still averages
/// CPU over the whole 5 minutes rather than over a point sample.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CpuCounters {
    pub at: f64,
    pub cpu: CpuTimes,
    /// CPU time of cro's own processes (workers, the reconciler) at `at`.
    #[serde(default)]
    pub own: Vec<observe::ProcCpu>,
}

fn counters_path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("counters.json")
}

/// Read the host now. With `persist`, the CPU counters are saved for the next run (only
/// a reconcile does that; `status` and `plan` change nothing).
pub fn sense(
    q: &Queue,
    desired: &Resolved,
    found: &[JobFound],
    persist: bool,
) -> Result<Observation> {
    let state_dir = &q.state_dir;
    let cg = observe::read_cgroup_limits();
    let host_cpus = observe::host_cpus();
    let prev: Option<CpuCounters> = fsutil::read_optional(&counters_path(state_dir))?
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut now_cpu = observe::read_cpu_times().map_err(|e| Error::io("/proc/stat", "read", e))?;
    let mut at = timefmt::now_unix();
    // The previous pass was a moment ago (passes back to back): wait until half a second
    // has passed since its counters rather than taking a fresh half-second sample.
    if let Some(p) = prev.as_ref().filter(|p| (0.0..0.5).contains(&(at - p.at))) {
        std::thread::sleep(Duration::from_secs_f64(0.5 - (at - p.at)));
        now_cpu = observe::read_cpu_times().map_err(|e| Error::io("/proc/stat", "read", e))?;
        at = timefmt::now_unix();
    }
    // Every cro process is synthetic load: the workers (a memory worker filling its
    // ballast burns CPU too) and the reconciler itself (issue: a 4 GiB fill was recorded as
    // 50 % organic CPU). A one-shot pass only lives during this interval, so all of it counts.
    let mut own_pids: Vec<u32> = found
        .iter()
        .filter(|f| f.alive)
        .filter_map(|f| f.status.as_ref().map(|s| s.pid))
        .collect();
    if persist {
        own_pids.push(std::process::id());
    }
    let mut own_now = observe::read_proc_cpu(&own_pids);

    let (interval, total, own_before, base_at) = match prev
        .as_ref()
        .and_then(|p| Some((p, now_cpu.percent_since(&p.cpu)?)))
    {
        Some((p, total)) if at - p.at >= 0.5 => (at - p.at, total, p.own.clone(), p.at),
        _ => {
            // No usable counters (first run, reboot): a short sample of our own.
            let start = now_cpu;
            let own_start = own_now;
            std::thread::sleep(Duration::from_millis(500));
            now_cpu = observe::read_cpu_times().map_err(|e| Error::io("/proc/stat", "read", e))?;
            own_now = observe::read_proc_cpu(&own_pids);
            let t0 = at;
            at = timefmt::now_unix();
            (
                at - t0,
                now_cpu.percent_since(&start).unwrap_or(0.0),
                own_start,
                t0,
            )
        }
    };
    let synthetic =
        observe::synthetic_cpu_percent(&own_before, &own_now, base_at, interval, host_cpus, total);

    if persist {
        let c = CpuCounters {
            at,
            cpu: now_cpu,
            own: own_now,
        };
        fsutil::write_atomic(
            &counters_path(state_dir),
            &serde_json::to_vec(&c).expect("serializes"),
            0o600,
            true,
        )?;
    }

    let memory = observe::read_memory(&cg).map_err(|e| Error::io("/proc/meminfo", "read", e))?;
    let memory_synthetic_bytes = found
        .iter()
        .find(|f| f.id == "memory")
        .filter(|f| f.alive)
        .and_then(|f| f.status.as_ref())
        .map_or(0, |s| s.ballast_bytes);
    let mut disks = BTreeMap::new();
    let plain_ok = desired
        .disk
        .as_ref()
        .is_some_and(|d| d.allow_plain_directory);
    for m in desired.disk.iter().flat_map(|d| d.mounts.iter()) {
        if !plain_ok && !ballast::is_mount_point(m) {
            // Its usage would be the root filesystem's: nothing to record or pad.
            disks.insert(
                m.clone(),
                DiskObservation {
                    error: Some(format!(
                        "{} is not a mount point (not mounted?)",
                        m.display()
                    )),
                    ..Default::default()
                },
            );
            continue;
        }
        let d = match (observe::fs_usage(m), ballast::open(m, false)) {
            // A .cro-ballast that is not ours is refused: nothing is padded there.
            (Ok(usage), Err(e)) => DiskObservation {
                usage,
                synthetic_bytes: 0,
                error: Some(e.to_string()),
            },
            // Ballast is what is on disk, worker or not: the honest synthetic share.
            (Ok(usage), Ok(dir)) => DiskObservation {
                usage,
                synthetic_bytes: dir.map_or(0, |d| ballast::held(&d)),
                error: None,
            },
            (Err(e), _) => DiskObservation {
                error: Some(e.to_string()),
                ..Default::default()
            },
        };
        disks.insert(m.clone(), d);
    }
    Ok(Observation {
        at,
        interval_s: interval,
        cpu_total_percent: total,
        cpu_synthetic_percent: synthetic,
        host_cpus,
        usable_cpus: observe::usable_cpus(&cg),
        memory,
        memory_synthetic_bytes,
        memory_psi_some_avg10: observe::read_memory_psi(),
        disks,
        cgroup: cg,
    })
}

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
        ts: timefmt::rfc3339(obs.at),
        interval_s: (obs.interval_s * 10.0).round() / 10.0,
        cpu,
        memory,
        disk,
    }
}

/// Start the worker for `id`, handing it the slot lock we already hold.
pub fn spawn_worker(q: &Queue, id: &str, lock: File) -> Result<u32> {
    let exe = std::env::current_exe().map_err(|e| Error::os("find our own executable", e))?;
    let log_path = q.log_path(id);
    // A log full from an earlier worker is rotated before the next one starts.
    if let Err(e) = crate::worker::logfile::rotate(
        &log_path,
        crate::worker::logfile::CAP,
        crate::worker::logfile::KEEP,
    ) {
        tracing::warn!("cannot rotate {}: {e}", log_path.display());
    }
    let log = crate::worker::logfile::open(&log_path)
        .map_err(|e| Error::io(&log_path, "open worker log", e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io(&log_path, "open worker log", e))?;
    let job_path =
        std::path::absolute(q.job_path(id)).map_err(|e| Error::io(q.job_path(id), "resolve", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg("worker")
        .arg("--job")
        .arg(&job_path)
        // the locked slot, handed over as descriptor 3 by spawn_detached_with_lock
        .arg("--lock-fd")
        .arg("3")
        // Crash points are for this process only: a worker must not inherit them.
        .env_remove(crate::fault::ENV)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // Its own session: the worker outlives a cron run and is not killed with the
    // reconciler's terminal.
    let child = crate::sys::spawn_detached_with_lock(&mut cmd, &lock)
        .map_err(|e| Error::os(format!("start worker {id}"), e))?;
    crate::fault::point("after-spawn");
    // Our copy of the lock goes; the child's keeps the lock held.
    drop(lock);
    Ok(child.id())
}

/// Where a removed job's ballast is: its job file says, and when that is lost or corrupt
/// (a crash, a hand edit) the id does.
pub fn removal_mount(f: &JobFound) -> Option<std::path::PathBuf> {
    match &f.job {
        Some(Job {
            spec: JobSpec::Disk { mount, .. },
            ..
        }) => Some(mount.clone()),
        Some(_) => None,
        None => Slot::from_id(&f.id).and_then(|s| s.mount().map(Path::to_path_buf)),
    }
}

/// Remove a job: delete its file, SIGTERM its worker (which gives everything back and
/// exits; SIGKILL after 5 s), delete leftover ballast and the slot's files.
pub fn remove_job(q: &Queue, f: &JobFound) -> Result<()> {
    let p = q.job_path(&f.id);
    if std::fs::symlink_metadata(&p).is_ok() {
        std::fs::remove_file(&p).map_err(|e| Error::io(&p, "delete", e))?;
        fsutil::sync_dir(&q.jobs_dir)?;
    }
    crate::fault::point("remove-after-delete");
    // The worker would notice the deleted job within a second; SIGTERM now makes it give
    // everything back at once (the same clean exit), SIGKILL after 5 s if it hangs.
    if q.is_alive(&f.id) {
        let ws: Vec<_> = procs::workers(&q.state_dir)
            .into_iter()
            .filter(|w| w.id == f.id)
            .collect();
        procs::stop(&q.state_dir, &ws, Duration::from_secs(5), &mut |m| {
            tracing::info!("{m}")
        });
    }
    crate::fault::point("remove-before-ballast");
    if f.id == "cpu" {
        crate::worker::placement::remove(&q.state_dir);
    }
    if let Some(mount) = removal_mount(f)
        && let Err(e) = ballast::remove_all(&mount)
    {
        tracing::warn!(mount = %mount.display(), "cannot remove ballast: {e}");
    }
    // Only with the slot lock in hand may its files go (a worker could be holding it).
    if let Some(lock) = q.try_lock_slot(&f.id)? {
        for path in [q.lock_path(&f.id), q.status_path(&f.id)] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(Error::io(&path, "delete", e));
            }
        }
        drop(lock);
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct TickReport {
    pub plan: Plan,
    pub decisions: BTreeMap<String, Decision>,
    pub started: Vec<(String, u32)>,
    pub record: Record,
    pub errors: Vec<String>,
}

/// A job whose level the policy wants moved by less than LEVEL_STEP points keeps it until
/// its file is LEVEL_HOLD_S old. A mean over a window of days gains nothing from following
/// organic load's every dip, and each rewrite is churn: the soak saw a level flip
/// 0 <-> 1 every few ticks. A large move (a percentile burst) applies at once, and so does
/// an operator's new target (`prev` is None then). With three jobs, at most 12 small
/// rewrites an hour in all.
pub const LEVEL_HOLD_S: f64 = 900.0;
pub const LEVEL_STEP: f64 = 5.0;

pub fn hold_small_change(prev: f64, wanted: f64, written_at: Option<f64>, now: f64) -> bool {
    (wanted - prev).abs() < LEVEL_STEP
        && written_at.is_some_and(|w| now >= w && now - w < LEVEL_HOLD_S)
}

/// The level for a small move (under LEVEL_STEP points from `prev`, the job's level for
/// the same target): kept while the job is fresh, else the wanted level at once (a step
/// that small is within a minute of the rate limit anyway, and a ramp's last points would
/// otherwise wait a hold each). None: not a small move; the policy's rate-limited level.
pub fn small_change(
    prev: Option<f64>,
    wanted: f64,
    written_at: Option<f64>,
    now: f64,
) -> Option<f64> {
    let p = prev?;
    if (wanted - p).abs() >= LEVEL_STEP {
        return None;
    }
    Some(if hold_small_change(p, wanted, written_at, now) {
        p
    } else {
        wanted
    })
}

/// Levels for every job from the policy, with each resource's decision (for status).
pub fn decide_levels(
    desired: &Resolved,
    windows: &Windows,
    obs: &Observation,
    found: &[JobFound],
) -> (plan::Levels, BTreeMap<String, Decision>) {
    let [cpu, memory, disk] = policy::rules(desired);
    let window_s = desired.window_days as f64 * 86_400.0;
    // The policy is asked again at the next tick; from cron that may be later than
    // interval_seconds, as the observed interval tells.
    let tick_s = (desired.interval_seconds as f64).max(obs.interval_s);
    // The level moves gently from the job's level only while the target is the one it
    // was planned for: an operator's change of target takes effect at once.
    let prev = |id: &str, target: f64| {
        found
            .iter()
            .find(|f| f.id == id)
            .and_then(|f| f.job.as_ref())
            .filter(|j| j.spec.target_percent() == target)
            .map(|j| j.spec.level_percent())
    };
    let mut levels = plan::Levels::new();
    let mut decisions = BTreeMap::new();
    let mut decide = |slot: Slot,
                      rule: &policy::Rule,
                      series: Option<&crate::control::window::Series>,
                      organic_now: f64| {
        let id = slot.id();
        let empty = crate::control::window::Series::default();
        let prev_level = prev(&id, rule.target);
        let d = policy::decide(&policy::Input {
            now: obs.at,
            window_s,
            tick_s,
            target: rule.target,
            statistic: rule.statistic,
            limits: rule.limits,
            series: series.unwrap_or(&empty),
            prev_level,
            organic_now: Some(organic_now),
        });
        let written_at = found.iter().find(|f| f.id == id).and_then(|f| f.written_at);
        let level = small_change(prev_level, d.wanted, written_at, obs.at).unwrap_or(d.level);
        levels.insert(id, level);
        decisions.insert(slot.label(), d);
    };
    if let Some(r) = &cpu {
        decide(
            Slot::Cpu,
            r,
            Some(&windows.cpu),
            observe::organic(obs.cpu_total_percent, obs.cpu_synthetic_percent),
        );
    }
    if let Some(r) = &memory {
        decide(
            Slot::Memory,
            r,
            Some(&windows.memory),
            observe::organic(obs.memory.used_percent(), obs.memory_synthetic_percent()),
        );
    }
    if let Some(r) = &disk {
        for (m, o) in &obs.disks {
            let organic = observe::organic(
                o.usage.used_percent(),
                observe::pct(o.synthetic_bytes, o.usage.capacity_bytes()),
            );
            let series = windows.disk.get(&m.display().to_string());
            decide(Slot::disk(m), r, series, organic);
        }
    }
    (levels, decisions)
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
pub fn prepare(q: &Queue, desired: &Resolved, found: &[JobFound]) -> Result<Pass> {
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

/// The real world: this host, its /proc and the state directory.
pub struct ThisHost<'a> {
    pub q: &'a Queue,
    /// A reconcile keeps the CPU counters for the next pass and counts itself as cro's
    /// own load; a read-only pass (`status`, `plan`) does neither.
    pub persist: bool,
}

impl World for ThisHost<'_> {
    fn list(&mut self) -> Result<Vec<JobFound>> {
        self.q.list()
    }
    fn sense(&mut self, desired: &Resolved, found: &[JobFound]) -> Result<Observation> {
        let obs = sense(self.q, desired, found, self.persist)?;
        crate::fault::point("after-sense");
        Ok(obs)
    }
    fn windows(&mut self, now: f64, window_s: f64) -> std::borrow::Cow<'_, Windows> {
        let (windows, warnings) =
            crate::state::window_cache::load(&self.q.state_dir, now, window_s);
        for w in warnings {
            tracing::warn!("{w}");
        }
        std::borrow::Cow::Owned(windows)
    }
    fn write_job(&mut self, job: &Job) -> Result<()> {
        if let JobSpec::Disk { mount, .. } = &job.spec {
            // Owned before any worker can put ballast there.
            crate::state::owned::add(&self.q.state_dir, mount)?;
        }
        self.q.write_job(job)?;
        crate::fault::point("after-write-job");
        Ok(())
    }
    fn start(&mut self, id: &str) -> Result<Option<u32>> {
        match self.q.try_lock_slot(id)? {
            Some(lock) => {
                crate::fault::point("after-lock-slot");
                spawn_worker(self.q, id, lock).map(Some)
            }
            // Someone started it since we looked: the lock says it lives.
            None => Ok(None),
        }
    }
    fn remove(&mut self, found: &JobFound) -> Result<()> {
        remove_job(self.q, found)
    }
    fn sweep_orphan_ballast(
        &mut self,
        keep: &[std::path::PathBuf],
    ) -> Vec<(std::path::PathBuf, u64)> {
        let state_dir = &self.q.state_dir;
        let mut owned = crate::state::owned::load(state_dir);
        let before = owned.len();
        let mut gone = vec![];
        for m in owned.clone() {
            if keep.contains(&m) {
                continue;
            }
            if ballast::open(&m, false).ok().flatten().is_none() {
                // Nothing there. Forget the mount unless it may just be unmounted now
                // (its ballast would be back with it).
                if ballast::is_mount_point(&m) {
                    owned.remove(&m);
                }
                continue;
            }
            match ballast::remove_all(&m) {
                Ok(r) => {
                    owned.remove(&m);
                    gone.push((m, r.bytes));
                }
                Err(e) => {
                    tracing::warn!(mount = %m.display(), "cannot remove ballast no job owns: {e}")
                }
            }
        }
        if owned.len() != before
            && let Err(e) = crate::state::owned::save(state_dir, &owned)
        {
            tracing::warn!("{e}");
        }
        gone
    }
    fn append_history(&mut self, at: f64, rec: &Record) -> Result<()> {
        history::append(&self.q.state_dir, at, rec)?;
        crate::fault::point("after-history");
        Ok(())
    }
    fn prune_history(&mut self, now: f64, keep_days: u32) -> Result<usize> {
        history::prune(&self.q.state_dir, now, keep_days).map(|gone| gone.len())
    }
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
pub fn tick(q: &Queue, desired: &Resolved) -> Result<TickReport> {
    q.ensure()?;
    crate::fault::point("tick-start");
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

#[cfg(test)]
mod hold_tests {
    use super::*;

    #[test]
    fn small_changes_wait_for_the_hold_large_ones_do_not() {
        // 1 -> 0 or 1 -> 4 five minutes after the write: held
        assert!(hold_small_change(1.0, 0.0, Some(1000.0), 1300.0));
        assert!(hold_small_change(1.0, 4.0, Some(1000.0), 1300.0));
        // once the job file is old enough, or for a large move (a burst), not held
        assert!(!hold_small_change(
            1.0,
            0.0,
            Some(1000.0),
            1000.0 + LEVEL_HOLD_S
        ));
        assert!(!hold_small_change(1.0, 31.0, Some(1000.0), 1001.0));
        // unknown write time or a clock that went backwards: never frozen
        assert!(!hold_small_change(1.0, 0.0, None, 1001.0));
        assert!(!hold_small_change(1.0, 0.0, Some(1000.0), 500.0));
        // after the hold a small move lands on the wanted level at once (a ramp's tail);
        // a large one is left to the rate-limited level
        assert_eq!(
            small_change(Some(25.0), 29.9, Some(1000.0), 1300.0),
            Some(25.0)
        );
        assert_eq!(small_change(Some(25.0), 30.1, Some(1000.0), 1300.0), None);
        assert_eq!(
            small_change(Some(26.0), 30.0, Some(1000.0), 2000.0),
            Some(30.0)
        );
        assert_eq!(small_change(None, 30.0, Some(1000.0), 1300.0), None);
    }
}
