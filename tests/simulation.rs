//! Deterministic simulation of the reconcile loop (TigerBeetle's VOPR in miniature): the
//! real tick (`cro::reconcile::tick::tick_in`: planner, policy, executor, history record) runs
//! against a simulated world whose clock, observations, process table and files are a
//! seeded model. Between ticks the model runs the workers and injects faults: workers
//! killed, job files torn or deleted, lock and status files vanishing, clock jumps,
//! failing writes and spawns, unmounted filesystems, torn history lines, desired-state
//! edits. After every tick the invariants of docs/DESIGN.md are checked.
//!
//! A failure prints its seed and step; `CRO_SIM_SEED=<seed> cargo test --test simulation`
//! replays exactly that run. `CRO_SIM_SEEDS=<n>` and `CRO_SIM_STEPS=<n>` run longer.
mod common;
use common::Rng;
use cro::control::desired::Resolved;
use cro::control::window::Windows;
use cro::error::{Error, Result};
use cro::observe::{CgroupLimits, DiskObservation, FsUsage, Memory, Observation};
use cro::reconcile::tick::{World, tick_in};
use cro::state::history::Record;
use cro::state::jobs::{Job, JobFound, JobSpec, WorkerStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const GIB: u64 = 1 << 30;
const MEM_TOTAL: u64 = 16 * GIB;
const DISK_CAP: u64 = 100 * GIB;
const MOUNTS: [&str; 2] = ["/data", "/var/lib/app"];

#[derive(Clone, Debug)]
enum JobFile {
    Good(Job),
    Torn(String),
}

/// A worker process: the slot it holds the lock of (by lock-file inode) and the last job
/// it read, which is what it acts on.
#[derive(Clone, Debug)]
struct Proc {
    id: String,
    lock_inode: u64,
    spec: JobSpec,
    started_at: f64,
    /// What it holds (percent of the resource) since its last poll: the world lags the
    /// worker, as on a host (organic load moves between polls; sense sees what is held,
    /// not what the worker would hold now).
    held: f64,
}

/// How often each kind of event happened ("kills", "starts", ...), for the report and
/// to prove the faults were injected.
type Counts = BTreeMap<&'static str, u64>;

/// Faults armed for the coming tick only.
#[derive(Default)]
struct TickFaults {
    write_fails: bool,
    spawn_fails: bool,
    history_torn: bool,
}

struct Sim {
    rng: Rng,
    now: f64,
    last_sense: Option<f64>,
    next_pid: u32,
    next_inode: u64,
    // files in the state directory
    jobs: BTreeMap<String, JobFile>,
    locks: BTreeMap<String, u64>,
    statuses: BTreeMap<String, WorkerStatus>,
    history: Vec<Record>,
    windows: Windows,
    // the host
    procs: BTreeMap<u32, Proc>,
    /// organic percent of cpu, memory, and each mount
    organic: [f64; 2],
    disk_organic: BTreeMap<PathBuf, f64>,
    ballast: BTreeMap<PathBuf, u64>,
    unmounted: BTreeSet<PathBuf>,
    faults: TickFaults,
    counts: Counts,
    /// Every event in order, with its time: two runs of one seed must write the same log.
    log: Vec<String>,
}

fn io_err(path: &str, what: &'static str) -> Error {
    Error::io(
        Path::new(path),
        what,
        std::io::Error::from_raw_os_error(libc::ENOSPC),
    )
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let disk_organic = MOUNTS
            .iter()
            .map(|m| (PathBuf::from(m), 5.0 + rng.unit() * 60.0))
            .collect();
        Sim {
            organic: [rng.unit() * 60.0, 10.0 + rng.unit() * 40.0],
            rng,
            now: 1_790_000_000.0,
            last_sense: None,
            next_pid: 1000,
            next_inode: 1,
            jobs: BTreeMap::new(),
            locks: BTreeMap::new(),
            statuses: BTreeMap::new(),
            history: vec![],
            windows: Windows::default(),
            procs: BTreeMap::new(),
            disk_organic,
            ballast: BTreeMap::new(),
            unmounted: BTreeSet::new(),
            faults: TickFaults::default(),
            counts: Counts::default(),
            log: vec![],
        }
    }

    /// The job slots as `JobDir::list` would find them (reading changes nothing).
    fn found(&self) -> Vec<JobFound> {
        let mut ids: BTreeSet<String> = self.jobs.keys().cloned().collect();
        ids.extend(self.locks.keys().cloned());
        ids.extend(self.statuses.keys().cloned());
        ids.into_iter()
            .map(|id| {
                let (job, corrupt) = match self.jobs.get(&id) {
                    None => (None, None),
                    Some(JobFile::Good(j)) => (Some(j.clone()), None),
                    Some(JobFile::Torn(t)) => (None, Some(format!("cannot parse {t:?}"))),
                };
                JobFound {
                    written_at: None,
                    alive: self.alive(&id),
                    status: self.statuses.get(&id).cloned(),
                    id,
                    job,
                    corrupt,
                }
            })
            .collect()
    }

    fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
        self.log.push(format!("{:.3} {kind}", self.now));
    }

    /// Is a live process holding the lock on the slot's current lock file?
    fn alive(&self, id: &str) -> bool {
        self.locks.get(id).is_some_and(|ino| {
            self.procs
                .values()
                .any(|p| p.id == id && p.lock_inode == *ino)
        })
    }

    /// What the worker holds now, as the ideal inner loop would (simulate.rs's model):
    /// the total is max(organic, min(level, organic + cap)); ballast above a floor goes.
    fn synthetic(&self, spec: &JobSpec) -> f64 {
        match spec {
            JobSpec::Cpu {
                level_percent,
                max_synthetic_percent,
                ..
            } => {
                let o = self.organic[0];
                (level_percent.min(o + max_synthetic_percent) - o).max(0.0)
            }
            JobSpec::Memory {
                level_percent,
                min_available_percent,
                ..
            } => {
                let o = self.organic[1];
                (level_percent.min(100.0 - min_available_percent) - o).max(0.0)
            }
            JobSpec::Disk {
                mount,
                level_percent,
                min_free_percent,
                ..
            } => {
                let o = self.disk_organic[mount];
                (level_percent.min(100.0 - min_free_percent) - o).max(0.0)
            }
        }
    }

    /// One worker poll: lock check, job re-read, ballast moved, status written.
    fn run_workers(&mut self) {
        let pids: Vec<u32> = self.procs.keys().copied().collect();
        for pid in pids {
            let p = self.procs[&pid].clone();
            if self.locks.get(&p.id) != Some(&p.lock_inode) {
                // End::LockLost: leave, touching nothing (a successor may own it all).
                self.procs.remove(&pid);
                self.count("lock_losses");
                continue;
            }
            let spec = match self.jobs.get(&p.id) {
                None => {
                    self.exit_cleanly(pid);
                    continue;
                }
                Some(JobFile::Torn(_)) => p.spec.clone(), // keep the last good one
                Some(JobFile::Good(j)) if j.spec.resource() != p.spec.resource() => {
                    self.exit_cleanly(pid);
                    continue;
                }
                Some(JobFile::Good(j)) => j.spec.clone(),
            };
            let syn = self.synthetic(&spec);
            let proc = self.procs.get_mut(&pid).unwrap();
            proc.spec = spec.clone();
            proc.held = syn;
            let mut st = WorkerStatus {
                id: p.id.clone(),
                pid,
                state: cro::state::jobs::WorkerState::Running,
                started_at: p.started_at,
                updated_at: self.now,
                level_percent: spec.level_percent(),
                synthetic_percent: syn,
                ..Default::default()
            };
            match &spec {
                JobSpec::Memory { .. } => {
                    st.ballast_bytes = (syn / 100.0 * MEM_TOTAL as f64) as u64
                }
                JobSpec::Disk { mount, .. } => {
                    if self.unmounted.contains(mount) {
                        st.message = Some("filesystem not mounted".into());
                    } else {
                        let b = (syn / 100.0 * DISK_CAP as f64) as u64;
                        self.ballast.insert(mount.clone(), b);
                        st.ballast_bytes = b;
                    }
                }
                JobSpec::Cpu { .. } => {}
            }
            self.statuses.insert(p.id.clone(), st);
        }
    }

    /// Job removed or SIGTERM: give everything back, say "exited", release the lock.
    fn exit_cleanly(&mut self, pid: u32) {
        let p = self.procs.remove(&pid).unwrap();
        if let JobSpec::Disk { mount, .. } = &p.spec
            && !self.unmounted.contains(mount)
        {
            self.ballast.remove(mount);
        }
        if let Some(st) = self.statuses.get_mut(&p.id)
            && st.pid == pid
        {
            st.state = cro::state::jobs::WorkerState::Exited;
            st.synthetic_percent = 0.0;
            st.ballast_bytes = 0;
        }
    }

    fn walk(&mut self) {
        let step = |rng: &mut Rng, x: f64| (x + (rng.unit() - 0.5) * 6.0).clamp(0.0, 95.0);
        self.organic[0] = step(&mut self.rng, self.organic[0]);
        self.organic[1] = step(&mut self.rng, self.organic[1]).clamp(5.0, 90.0);
        let mounts: Vec<PathBuf> = self.disk_organic.keys().cloned().collect();
        for m in mounts {
            let v = self.disk_organic[&m] + (self.rng.unit() - 0.45) * 0.5;
            self.disk_organic.insert(m, v.clamp(1.0, 90.0));
        }
    }

    /// The faults between two ticks.
    fn inject(&mut self) {
        let r = &mut self.rng;
        if r.chance(0.03) && !self.procs.is_empty() {
            // kill -9: no cleanup; the status still says "running"; ballast stays.
            let pids: Vec<u32> = self.procs.keys().copied().collect();
            let pid = pids[self.rng.below(pids.len() as u64) as usize];
            self.procs.remove(&pid);
            self.count("kills");
        }
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        if !ids.is_empty() {
            let id = ids[self.rng.below(ids.len() as u64) as usize].clone();
            if self.rng.chance(0.02) {
                let junk = ["", "{\"version\":1,\"id\":", "\u{0}\u{1}garbage", "[]"];
                let j = junk[self.rng.below(junk.len() as u64) as usize];
                self.jobs.insert(id.clone(), JobFile::Torn(j.into()));
                self.count("torn_jobs");
            }
            if self.rng.chance(0.01) {
                self.jobs.remove(&id);
                self.count("vanished");
            }
            if self.rng.chance(0.01) {
                self.locks.remove(&id);
                self.count("vanished");
            }
            if self.rng.chance(0.02) {
                self.statuses.remove(&id);
                self.count("vanished");
            }
        }
        if self.rng.chance(0.01) {
            self.now += 3600.0 + self.rng.unit() * 3.0 * 86_400.0;
            self.count("clock_jumps");
        } else if self.rng.chance(0.01) {
            self.now -= 1.0 + self.rng.unit() * 600.0;
            self.count("clock_jumps");
        }
        self.faults.write_fails = self.rng.chance(0.02);
        self.faults.spawn_fails = self.rng.chance(0.01);
        self.faults.history_torn = self.rng.chance(0.01);
        if self.rng.chance(0.01) {
            let m = PathBuf::from(MOUNTS[self.rng.below(2) as usize]);
            if !self.unmounted.remove(&m) {
                self.unmounted.insert(m);
                self.count("unmounts");
            }
        }
    }

    fn random_desired(&mut self) -> Resolved {
        let r = &mut self.rng;
        let mut parts = vec![r#""version":1"#.to_string()];
        if r.chance(0.1) {
            parts.push(r#""paused":true"#.into());
        }
        let stat = |r: &mut Rng| ["mean", "p95", "p50"][r.below(3) as usize];
        if r.chance(0.8) {
            parts.push(format!(
                r#""cpu":{{"target_percent":{},"statistic":"{}"}}"#,
                r.below(60),
                stat(r)
            ));
        } else {
            parts.push(r#""cpu":{"enabled":false}"#.into());
        }
        if r.chance(0.7) {
            parts.push(format!(r#""memory":{{"target_percent":{}}}"#, r.below(50)));
        } else {
            parts.push(r#""memory":{"enabled":false}"#.into());
        }
        let mounts: Vec<String> = MOUNTS
            .iter()
            .filter(|_| r.chance(0.6))
            .map(|m| format!("\"{m}\""))
            .collect();
        if mounts.is_empty() {
            parts.push(r#""disk":{"enabled":false}"#.into());
        } else {
            parts.push(format!(
                r#""disk":{{"target_percent":{},"min_free_gib":0,"mounts":[{}]}}"#,
                r.below(70),
                mounts.join(",")
            ));
        }
        let text = format!("{{{}}}", parts.join(","));
        cro::control::desired::parse(text.as_bytes(), Path::new("desired.json"))
            .and_then(|d| d.resolve(Path::new("desired.json"), MEM_TOTAL, None))
            .unwrap_or_else(|e| panic!("the generator wrote an invalid file {text}: {e}"))
    }
}

impl World for Sim {
    fn list(&mut self) -> Result<Vec<JobFound>> {
        Ok(self.found())
    }

    fn sense(&mut self, desired: &Resolved, found: &[JobFound]) -> Result<Observation> {
        let interval = self
            .last_sense
            .map_or(0.5, |t| self.now - t)
            .clamp(0.5, 86_400.0);
        self.last_sense = Some(self.now);
        let live = |id: &str| {
            self.procs
                .values()
                .find(|p| p.id == id && self.locks.get(id) == Some(&p.lock_inode))
        };
        let cpu_syn = live("cpu").map_or(0.0, |p| p.held);
        let mem_syn = live("memory").map_or(0.0, |p| p.held);
        let mem_used = ((self.organic[1] + mem_syn) / 100.0 * MEM_TOTAL as f64) as u64;
        let _ = found;
        let mut disks = BTreeMap::new();
        for m in desired.disk.iter().flat_map(|d| d.mounts.iter()) {
            let d = if self.unmounted.contains(m) {
                DiskObservation {
                    error: Some(format!("{}: not mounted", m.display())),
                    ..Default::default()
                }
            } else {
                let ballast = self.ballast.get(m).copied().unwrap_or(0);
                let used = (self.disk_organic[m] / 100.0 * DISK_CAP as f64) as u64 + ballast;
                DiskObservation {
                    usage: FsUsage {
                        used_bytes: used.min(DISK_CAP),
                        avail_bytes: DISK_CAP.saturating_sub(used),
                    },
                    synthetic_bytes: ballast,
                    error: None,
                }
            };
            disks.insert(m.clone(), d);
        }
        Ok(Observation {
            at: self.now,
            interval_s: interval,
            cpu_total_percent: (self.organic[0] + cpu_syn).min(100.0),
            cpu_synthetic_percent: cpu_syn,
            host_cpus: 4,
            usable_cpus: 4.0,
            memory: Memory {
                total_bytes: MEM_TOTAL,
                available_bytes: MEM_TOTAL - mem_used.min(MEM_TOTAL),
                used_bytes: mem_used.min(MEM_TOTAL),
                cgroup_bounded: false,
            },
            memory_synthetic_bytes: (mem_syn / 100.0 * MEM_TOTAL as f64) as u64,
            memory_psi_some_avg10: Some(0.0),
            disks,
            cgroup: CgroupLimits::default(),
        })
    }

    fn windows(&mut self, now: f64, window_s: f64) -> std::borrow::Cow<'_, Windows> {
        self.windows.forget_before(now - window_s);
        std::borrow::Cow::Borrowed(&self.windows)
    }

    fn write_job(&mut self, job: &Job) -> Result<()> {
        if self.faults.write_fails {
            self.count("failed_writes");
            return Err(io_err("jobs/x.json", "create a temporary file in"));
        }
        self.jobs.insert(job.id.clone(), JobFile::Good(job.clone()));
        Ok(())
    }

    fn start(&mut self, id: &str) -> Result<Option<u32>> {
        if self.alive(id) {
            return Ok(None);
        }
        if self.faults.spawn_fails {
            self.count("failed_spawns");
            return Err(Error::Runtime(format!("cannot start worker {id}: EAGAIN")));
        }
        // The lock file is created if missing (a new inode), then locked and handed over.
        let ino = match self.locks.get(id) {
            Some(i) => *i,
            None => {
                self.next_inode += 1;
                self.locks.insert(id.to_string(), self.next_inode);
                self.next_inode
            }
        };
        let Some(JobFile::Good(job)) = self.jobs.get(id) else {
            // The worker starts, finds no readable job, and exits.
            return Ok(None);
        };
        self.next_pid += 1;
        let pid = self.next_pid;
        self.procs.insert(
            pid,
            Proc {
                id: id.to_string(),
                lock_inode: ino,
                spec: job.spec.clone(),
                started_at: self.now,
                held: 0.0,
            },
        );
        self.count("starts");
        Ok(Some(pid))
    }

    fn remove(&mut self, f: &JobFound) -> Result<()> {
        self.count("removes");
        self.jobs.remove(&f.id);
        // SIGTERM to the lock holder(s): each gives back and exits.
        let holders: Vec<u32> = self
            .procs
            .iter()
            .filter(|(_, p)| p.id == f.id && self.locks.get(&f.id) == Some(&p.lock_inode))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in holders {
            self.exit_cleanly(pid);
        }
        if let Some(mount) = cro::reconcile::this_host::removal_mount(f)
            && !self.unmounted.contains(&mount)
        {
            self.ballast.remove(&mount);
        }
        if !self.alive(&f.id) {
            self.locks.remove(&f.id);
            self.statuses.remove(&f.id);
        }
        Ok(())
    }

    fn sweep_orphan_ballast(&mut self, keep: &[PathBuf]) -> Vec<(PathBuf, u64)> {
        let orphans: Vec<PathBuf> = self
            .ballast
            .keys()
            .filter(|m| !keep.contains(m) && !self.unmounted.contains(*m))
            .cloned()
            .collect();
        orphans
            .into_iter()
            .map(|m| {
                let b = self.ballast.remove(&m).unwrap_or(0);
                (m, b)
            })
            .collect()
    }

    fn append_history(&mut self, _at: f64, rec: &Record) -> Result<()> {
        if self.faults.write_fails {
            return Err(io_err("history/day.jsonl", "append to"));
        }
        if self.faults.history_torn {
            // Half a line: readers skip it, the record is lost, nothing else.
            self.count("torn_history");
            return Ok(());
        }
        self.history.push(rec.clone());
        self.windows.add(rec);
        Ok(())
    }

    fn prune_history(&mut self, _now: f64, _keep_days: u32) -> Result<usize> {
        Ok(0)
    }
}

/// The invariants after a tick that ran without injected in-tick faults.
fn check(
    sim: &Sim,
    desired: &Resolved,
    report: &cro::reconcile::tick::TickReport,
    clean: bool,
) -> std::result::Result<(), String> {
    let planned: BTreeMap<&str, &Job> = report
        .plan
        .jobs
        .iter()
        .map(|j| (j.id.as_str(), j))
        .collect();
    // Never two workers for one job, whatever happened.
    let mut ids: BTreeSet<&str> = sim.procs.values().map(|p| p.id.as_str()).collect();
    ids.extend(planned.keys());
    for id in &ids {
        let live = sim
            .procs
            .values()
            .filter(|p| p.id == *id && sim.locks.get(*id) == Some(&p.lock_inode))
            .count();
        if live > 1 {
            return Err(format!("{live} workers hold the lock of {id}"));
        }
    }
    for j in &report.plan.jobs {
        let l = j.spec.level_percent();
        if !(0.0..=100.0).contains(&l) || !l.is_finite() {
            return Err(format!("job {} has level {l}", j.id));
        }
    }
    let starts: BTreeMap<&str, usize> =
        report
            .started
            .iter()
            .fold(BTreeMap::new(), |mut m, (id, _)| {
                *m.entry(id.as_str()).or_default() += 1;
                m
            });
    if let Some((id, n)) = starts.iter().find(|(_, n)| **n > 1) {
        return Err(format!("{n} workers started for {id} in one tick"));
    }
    if !clean {
        return Ok(());
    }
    if !report.errors.is_empty() {
        return Err(format!(
            "errors without an injected fault: {:?}",
            report.errors
        ));
    }
    // Converged: every planned job is on disk as planned and has exactly one worker.
    for (id, job) in &planned {
        match sim.jobs.get(*id) {
            Some(JobFile::Good(j)) if j == *job => {}
            other => return Err(format!("job {id}: file is {other:?}, planned {job:?}")),
        }
        if !sim.alive(id) {
            return Err(format!("job {id} has no live worker after the tick"));
        }
    }
    // Nothing else runs, holds ballast or has a job file.
    for p in sim.procs.values() {
        if !planned.contains_key(p.id.as_str()) && sim.locks.get(&p.id) == Some(&p.lock_inode) {
            return Err(format!("worker for {} runs, not planned", p.id));
        }
    }
    for id in sim.jobs.keys() {
        if !planned.contains_key(id.as_str()) {
            return Err(format!("job file {id} left, not planned"));
        }
    }
    for (m, b) in &sim.ballast {
        let id = cro::control::slot::Slot::disk(m).id();
        if *b > 0 && !planned.contains_key(id.as_str()) && !sim.unmounted.contains(m) {
            return Err(format!(
                "{b} B of ballast left on {} without a job",
                m.display()
            ));
        }
    }
    // (A worker whose lock file vanished is not a holder: it leaves at its next poll.)
    let holders = sim
        .procs
        .values()
        .filter(|p| sim.locks.get(&p.id) == Some(&p.lock_inode))
        .count();
    if desired.paused
        && (holders > 0 || !planned.is_empty() || !sim.ballast.values().all(|b| *b == 0))
    {
        let mounted_ballast = sim
            .ballast
            .iter()
            .any(|(m, b)| *b > 0 && !sim.unmounted.contains(m));
        if holders > 0 || !planned.is_empty() || mounted_ballast {
            return Err("paused, yet workers, jobs or ballast remain".into());
        }
    }
    // Idempotence is what the checks above establish from the world's own state (every
    // planned job on disk as planned with one live worker, nothing else), without asking
    // the planner (the code under test) again; a second real pass rewriting nothing is
    // tests/cli.rs `reconcile_twice_rewrites_nothing_and_keeps_workers`.
    Ok(())
}

/// One seeded run of `steps` ticks: the event counts, and the log of every event, plan
/// action and history record. Err names the step and what broke.
fn run(seed: u64, steps: u64) -> std::result::Result<(Counts, Vec<String>), String> {
    let mut sim = Sim::new(seed);
    let mut desired = sim.random_desired();
    for step in 0..steps {
        let fail = |m: String| format!("step {step} (t = {}): {m}", sim_time(step));
        // Workers run for an interval, the host moves, faults land.
        sim.run_workers();
        sim.walk();
        sim.now += desired.interval_seconds as f64;
        let faulty = step % 7 != 0; // every 7th tick is fault-free: it must converge
        if faulty {
            sim.inject();
            if sim.rng.chance(0.03) {
                desired = sim.random_desired();
                sim.count("desired_edits");
            }
        } else {
            sim.faults = TickFaults::default();
        }
        let in_tick = sim.faults.write_fails || sim.faults.spawn_fails;
        let before = sim.history.len();
        let report = tick_in(&mut sim, &desired).map_err(|e| fail(format!("tick failed: {e}")))?;
        sim.count("ticks");
        for a in &report.plan.actions {
            sim.log.push(a.describe());
        }
        if let Some(r) = sim.history.last().filter(|_| sim.history.len() > before) {
            sim.log
                .push(serde_json::to_string(r).expect("a record serializes"));
        }
        let appended = sim.history.len() - before;
        let expect = usize::from(!sim.faults.write_fails && !sim.faults.history_torn);
        if appended != expect {
            return Err(fail(format!(
                "{appended} history records appended, expected {expect}"
            )));
        }
        check(&sim, &desired, &report, !in_tick).map_err(|m| {
            fail(format!(
                "{m}\n  actions {:?}\n  errors {:?}\n  jobs {:?}\n  locks {:?}\n  procs {:?}\n  statuses {:?}\n  unmounted {:?}",
                report.plan.actions.iter().map(|a| a.describe()).collect::<Vec<_>>(),
                report.errors,
                sim.jobs.keys().collect::<Vec<_>>(),
                sim.locks,
                sim.procs.iter().map(|(pid, p)| (pid, &p.id, p.lock_inode)).collect::<Vec<_>>(),
                sim.statuses.keys().collect::<Vec<_>>(),
                sim.unmounted,
            ))
        })?;
        sim.faults = TickFaults::default();
    }
    Ok((sim.counts, sim.log))
}

fn sim_time(step: u64) -> String {
    format!("tick {step}")
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn the_reconcile_loop_keeps_its_invariants_under_faults() {
    let steps = env_u64("CRO_SIM_STEPS").unwrap_or(3000);
    let seeds: Vec<u64> = match env_u64("CRO_SIM_SEED") {
        Some(s) => vec![s],
        None => {
            // A fixed base keeps CI reproducible; a fresh one widens the search locally.
            let base = env_u64("CRO_SIM_BASE").unwrap_or(0xC20);
            (0..env_u64("CRO_SIM_SEEDS").unwrap_or(16))
                .map(|i| base + i)
                .collect()
        }
    };
    let mut total = Counts::default();
    for seed in seeds {
        let result = std::panic::catch_unwind(|| run(seed, steps));
        match result {
            Ok(Ok((c, _))) => {
                for (k, v) in c {
                    *total.entry(k).or_default() += v;
                }
            }
            Ok(Err(msg)) => panic!(
                "simulation failed with seed {seed}: {msg}\nreplay: CRO_SIM_SEED={seed} CRO_SIM_STEPS={steps} cargo test --test simulation"
            ),
            Err(_) => panic!(
                "simulation panicked with seed {seed} (message above)\nreplay: CRO_SIM_SEED={seed} CRO_SIM_STEPS={steps} cargo test --test simulation"
            ),
        }
    }
    eprintln!("{total:#?}");
    // The faults really happened (a model that injects nothing proves nothing).
    for kind in [
        "kills",
        "torn_jobs",
        "vanished",
        "clock_jumps",
        "failed_writes",
        "failed_spawns",
        "unmounts",
        "torn_history",
        "desired_edits",
        "removes",
        "lock_losses",
    ] {
        assert!(
            total.get(kind).is_some_and(|n| *n > 0),
            "no {kind}: {total:?}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (counts_a, log_a) = run(7, 500).unwrap();
    let (counts_b, log_b) = run(7, 500).unwrap();
    assert_eq!(counts_a, counts_b);
    // the whole log, event by event (equal counts could hide a different order)
    assert_eq!(log_a.len(), log_b.len());
    for (i, (a, b)) in log_a.iter().zip(&log_b).enumerate() {
        assert_eq!(a, b, "the runs part at event {i}");
    }
    assert!(
        log_a.iter().any(|l| l.starts_with('{')),
        "the log holds the history records"
    );
    // and another seed gives another run (a log that ignored the seed would pass above)
    let (_, log_c) = run(8, 500).unwrap();
    assert_ne!(log_a, log_c);
}

// ---------------------------------------------------------------------------------------
// The window policy on the example traces (`cro simulate`'s code path), here rather than
// in the unit tests because a debug build takes minutes for these 30-day replays.

use cro::control::simulate::{Policy, Trace, parse_trace, simulate};

fn resolved(json: &str) -> Resolved {
    cro::control::desired::parse(json.as_bytes(), Path::new("d"))
        .unwrap()
        .resolve(Path::new("d"), 8 << 30, None)
        .unwrap()
}

fn example(name: &str) -> Trace {
    let path = format!("{}/examples/traces/{name}.csv", env!("CARGO_MANIFEST_DIR"));
    parse_trace(&std::fs::read_to_string(&path).unwrap(), Path::new(&path)).unwrap()
}

/// Issue 15's goals, on the example traces (mean 40 % over 30 days): under `first_window:
/// defer` a rising load and a step up cost at most 1.3x and 1.5x the least possible (the
/// default, pacing from the start, pays 1.5x and 2.0x), the stationary ones no more than
/// before (1.05x), every trace compliant under every rule in examples/sim/, whether the
/// first window defers or paces.
#[test]
fn a_rising_load_pays_for_itself_and_every_example_stays_compliant() {
    let rule = |name: &str, extra: &str| {
        let text = std::fs::read_to_string(format!(
            "{}/examples/sim/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        resolved(&text.replacen('{', &format!("{{{extra}"), 1))
    };
    // Judged by the test's own arithmetic on the trace and the totals the policy made,
    // not by `simulate`'s verdict and minimum (the code under test).
    let ratio = |trace: &str, d: &Resolved| {
        let t = example(trace);
        let r = simulate(&t, d, Policy::Cro).resources["cpu"].clone();
        let o = Oracle::new(&t, d);
        assert!(o.compliant(&r.totals), "{trace}: {}", o.says(&r.totals));
        o.cost(&r.totals) / o.least_cost()
    };
    let mean40 = rule("mean40", r#""first_window":"defer","#);
    let paced = rule("mean40", "");
    let (rising, step) = (ratio("rising", &mean40), ratio("step-up", &mean40));
    assert!(rising <= 1.3, "rising: {rising:.3}x the minimum");
    assert!(step <= 1.5, "step up: {step:.3}x the minimum");
    // what pacing pays there: the reason for deferring
    assert!(ratio("rising", &paced) > 1.4 && ratio("step-up", &paced) > 1.8);
    for trace in ["idle-vm", "diurnal-web", "nightly-batch", "weekly-spikes"] {
        let r = ratio(trace, &mean40);
        assert!(r <= 1.05, "{trace}: {r:.3}x the minimum");
    }
    for entry in
        std::fs::read_dir(format!("{}/examples/traces", env!("CARGO_MANIFEST_DIR"))).unwrap()
    {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue; // regressions/: each with its own rule, below
        }
        let t = parse_trace(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        for name in ["mean25", "mean40", "p95-20"] {
            for extra in ["", r#""first_window":"defer","#] {
                let d = rule(name, extra);
                let r = &simulate(&t, &d, Policy::Cro).resources["cpu"];
                let o = Oracle::new(&t, &d);
                assert!(
                    o.compliant(&r.totals),
                    "{} {name} {extra}: {}",
                    path.display(),
                    o.says(&r.totals)
                );
                // and simulate's own verdict agrees with the oracle
                assert!(r.compliant, "{} {name} {extra}: {r:?}", path.display());
            }
        }
    }
}

/// Every miss `cro simulate --search` found, kept as a regression trace with its rule
/// (examples/traces/regressions/<shape>-<case id>.csv and .json): each is compliant now,
/// judged by the test's own arithmetic. Before the fixes (policy.rs `believable`,
/// `hourly_overforecast`) they ended at 9.85 (p95 20), 24.81 and 24.98 (mean 25).
#[test]
fn every_miss_the_search_found_is_met_now() {
    let dir = format!("{}/examples/traces/regressions", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        let t = parse_trace(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        let d = resolved(&std::fs::read_to_string(path.with_extension("json")).unwrap());
        let resource = if t.columns[0] { "cpu" } else { "memory" };
        let r = simulate(&t, &d, Policy::Cro).resources[resource].clone();
        let o = Oracle::of(&t, &d, resource);
        println!(
            "{}: {}, {:.2}x the least cost",
            path.display(),
            o.says(&r.totals),
            o.cost(&r.totals) / o.least_cost()
        );
        assert!(
            o.compliant(&r.totals),
            "{}: {}",
            path.display(),
            o.says(&r.totals)
        );
        seen += 1;
    }
    assert!(seen >= 3, "the regression traces are missing from {dir}");
}

/// The search itself, at CI size: 100 generated cases from a fixed seed through the real
/// policy, judged by the test's own oracle. Where holding the limit on every recorded row
/// would meet the rule (feasible, by the same oracle), the policy must meet it, outside
/// the outage class (an online policy cannot see a multi-day outage coming;
/// docs/SIMULATION.md has the outage figures). `cro simulate --search 500` is the record.
#[test]
fn a_search_of_100_cases_finds_no_miss_that_could_be_met() {
    use cro::control::search;
    let (mut misses, mut feasible) = (vec![], 0);
    for id in search::ids(20261206, 100) {
        let c = search::case(id);
        let d = resolved(&c.desired_json());
        let r = simulate(&c.trace, &d, Policy::Cro).resources[c.resource].clone();
        let o = Oracle::of(&c.trace, &d, c.resource);
        let max_level = match &d.memory {
            Some(m) if c.resource == "memory" => 100.0 - m.min_available_percent,
            _ => 100.0,
        };
        let held: Vec<(f64, f64)> = o
            .organic
            .iter()
            .map(|(t, x)| (*t, x.max(max_level.min(x + o.max_synthetic))))
            .collect();
        if !o.compliant(&held) || c.class == "outage" {
            continue;
        }
        feasible += 1;
        if !o.compliant(&r.totals) {
            misses.push(format!(
                "case {id} ({}, {}): {}",
                c.class,
                c.params,
                o.says(&r.totals)
            ));
        }
    }
    println!(
        "{feasible} feasible cases outside the outage class, {} missed",
        misses.len()
    );
    assert!(
        feasible >= 80,
        "only {feasible} feasible cases: the generator changed"
    );
    assert!(
        misses.is_empty(),
        "replay each with `cro simulate --case ID`: {misses:#?}"
    );
}

/// The window a CPU rule judges, computed by the test: the trace's last `window_days`
/// (before the first record counts as 0 %, as `before_first_record: zero` says), one
/// sample per row, a missing row 0 %; the mean, or the nearest-rank percentile. And what
/// meeting it costs at the least: padding only the last window, exactly the deficit (mean)
/// or the cheapest samples (percentile).
struct Oracle {
    target: f64,
    /// None: mean; Some(p): the p-th percentile
    percentile: Option<u32>,
    max_synthetic: f64,
    dt: f64,
    end: f64,
    window_s: f64,
    /// (time, organic CPU) of every row of the trace
    organic: Vec<(f64, f64)>,
}

impl Oracle {
    fn new(t: &Trace, d: &Resolved) -> Oracle {
        Oracle::of(t, d, "cpu")
    }
    /// The rule of `resource` (`cpu` or `memory`; memory pads without a synthetic cap).
    fn of(t: &Trace, d: &Resolved, resource: &str) -> Oracle {
        let (k, target, stat, max_synthetic) = match resource {
            "cpu" => {
                let c = d.cpu.as_ref().unwrap();
                (0, c.target_percent, c.statistic, c.max_synthetic_percent)
            }
            _ => {
                let m = d.memory.as_ref().unwrap();
                (1, m.target_percent, m.statistic, 100.0)
            }
        };
        let percentile = match stat.name().as_str() {
            "mean" => None,
            p => Some(p.trim_start_matches('p').parse().unwrap()),
        };
        Oracle {
            target,
            percentile,
            max_synthetic,
            dt: t.interval,
            end: t.rows.last().unwrap().0,
            window_s: d.window_days as f64 * 86_400.0,
            organic: t
                .rows
                .iter()
                .filter_map(|(at, v)| Some((*at, v[k]?)))
                .collect(),
        }
    }
    fn slots(&self) -> usize {
        (self.window_s / self.dt).round() as usize
    }
    fn in_window(&self, at: f64) -> bool {
        at > self.end - self.window_s + 1e-6 && at <= self.end + 1e-6
    }
    /// The window's samples, missing ones as 0 %.
    fn window(&self, rows: &[(f64, f64)]) -> Vec<f64> {
        let mut v: Vec<f64> = rows
            .iter()
            .filter(|(at, _)| self.in_window(*at))
            .map(|(_, x)| *x)
            .collect();
        v.resize(self.slots().max(v.len()), 0.0);
        v
    }
    fn rank(&self, p: u32) -> usize {
        ((p as f64 / 100.0) * self.slots() as f64).ceil() as usize
    }
    fn achieved(&self, totals: &[(f64, f64)]) -> f64 {
        let mut v = self.window(totals);
        match self.percentile {
            None => v.iter().sum::<f64>() / self.slots() as f64,
            Some(p) => {
                v.sort_by(|a, b| a.total_cmp(b));
                v[self.rank(p) - 1]
            }
        }
    }
    fn compliant(&self, totals: &[(f64, f64)]) -> bool {
        self.achieved(totals) >= self.target - 1e-9
    }
    fn says(&self, totals: &[(f64, f64)]) -> String {
        format!(
            "achieved {:.3} for a target of {}",
            self.achieved(totals),
            self.target
        )
    }
    /// Percent-hours of synthetic load over the whole trace: total minus organic, row by row.
    fn cost(&self, totals: &[(f64, f64)]) -> f64 {
        assert_eq!(totals.len(), self.organic.len(), "one total per trace row");
        totals
            .iter()
            .zip(&self.organic)
            .map(|((a, total), (b, organic))| {
                assert_eq!(a, b);
                (total - organic).max(0.0)
            })
            .sum::<f64>()
            * self.dt
            / 3600.0
    }
    fn least_cost(&self) -> f64 {
        let organic = self.window(&self.organic);
        let need = match self.percentile {
            None => (self.target * self.slots() as f64 - organic.iter().sum::<f64>()).max(0.0),
            Some(p) => {
                let at_or_above = self.slots() - self.rank(p) + 1;
                let have = organic.iter().filter(|o| **o >= self.target).count();
                let mut gaps: Vec<f64> = organic
                    .iter()
                    .filter(|o| **o < self.target && self.target - **o <= self.max_synthetic)
                    .map(|o| self.target - o)
                    .collect();
                gaps.sort_by(|a, b| a.total_cmp(b));
                gaps.iter().take(at_or_above.saturating_sub(have)).sum()
            }
        };
        need * self.dt / 3600.0
    }
}
