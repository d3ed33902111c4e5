//! `cro worker --job FILE`: hold one job's level until the job file disappears, changes
//! kind, or the worker is told to stop (SIGTERM/SIGINT).
//!
//! The worker takes its slot lock before anything else. Started by a reconciler it
//! inherits the lock already taken (the descriptor named by `--lock-fd`); started by hand it takes it
//! itself and exits at once if another worker has it.
pub mod ballast;
pub mod cpu;
pub mod disk;
pub mod logfile;
pub mod memory;
pub mod placement;

use crate::error::{Error, Result};
use crate::state::fsutil;
use crate::state::jobs::{Job, JobDir, JobSpec, WorkerState, WorkerStatus};
use crate::timefmt::now_unix;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a worker shares with its controller loop.
pub struct Ctx {
    pub id: String,
    pub job_path: PathBuf,
    pub jobs: JobDir,
    pub spec: JobSpec,
    stop: Arc<AtomicBool>,
    last_check: Instant,
    last_publish: Option<Instant>,
    pub status: WorkerStatus,
    /// Repeated warnings, said at most once a minute each.
    pub quiet: logfile::Quiet,
    _lock: File,
}

/// Why the loop should end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    /// The job file is gone (or became another kind of job): give everything back.
    JobRemoved,
    /// SIGTERM/SIGINT.
    Signalled,
    /// The slot's lock file is gone or replaced: the reconciler sees the slot free and may
    /// already have started a successor, which adopts what we hold. Leave at once and
    /// give nothing back on the way (a disk worker would delete the successor's ballast).
    LockLost,
}

impl Ctx {
    /// Re-read the job file about once a second. `Err(End)` when the worker must stop.
    pub fn poll(&mut self) -> std::result::Result<(), End> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(End::Signalled);
        }
        if self.last_check.elapsed() < Duration::from_millis(900) {
            return Ok(());
        }
        self.last_check = Instant::now();
        logfile::rotate_own(&self.jobs.log_path(&self.id));
        if !self.lock_is_current() {
            tracing::warn!(id = %self.id, "the slot's lock file was removed or replaced; leaving to whoever holds it now");
            return Err(End::LockLost);
        }
        match self.jobs.read_job(&self.id) {
            Ok(None) => Err(End::JobRemoved),
            Ok(Some(Ok(job))) if job.spec.resource() != self.spec.resource() => {
                Err(End::JobRemoved)
            }
            Ok(Some(Ok(job))) => {
                if let Err(why) = job.spec.check() {
                    self.quiet.warn(
                        "job-range",
                        format_args!("job file out of range ({why}); keeping the last good one"),
                    );
                } else if job.spec != self.spec {
                    tracing::info!(id = %self.id, from = self.spec.level_percent(), to = job.spec.level_percent(), "job changed");
                    self.spec = job.spec;
                }
                Ok(())
            }
            // A corrupt job file: keep holding the last good one; the reconciler rewrites it.
            Ok(Some(Err(e))) => {
                self.quiet.warn(
                    "job-unreadable",
                    format_args!("job file unreadable, keeping the last good one: {e}"),
                );
                Ok(())
            }
            Err(e) => {
                self.quiet
                    .warn("job-read", format_args!("cannot read job file: {e}"));
                Ok(())
            }
        }
    }

    /// Does the lock path still name the file we hold the lock on?
    fn lock_is_current(&self) -> bool {
        match (
            self._lock.metadata(),
            std::fs::symlink_metadata(self.jobs.lock_path(&self.id)),
        ) {
            (Ok(held), Ok(md)) => crate::sys::fs::same_file(&md, &held),
            _ => false,
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleep up to `d`, waking early for a stop signal.
    pub fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopping() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Publish the status file (at most about once a second unless `force`).
    pub fn publish(&mut self, force: bool) {
        if !force
            && self
                .last_publish
                .is_some_and(|t| t.elapsed() < Duration::from_millis(950))
        {
            return;
        }
        self.last_publish = Some(Instant::now());
        self.status.updated_at = now_unix();
        self.status.level_percent = self.spec.level_percent();
        let bytes = serde_json::to_vec_pretty(&self.status).expect("status serializes");
        if let Err(e) = fsutil::write_atomic(&self.jobs.status_path(&self.id), &bytes, 0o600, false)
        {
            self.quiet
                .warn("status", format_args!("cannot write status: {e}"));
        }
    }
}

/// Take the slot lock: the inherited one, or our own. `Ok(None)`: another worker has it.
fn take_lock(jobs: &JobDir, id: &str, inherited: Option<i32>) -> Result<Option<File>> {
    let path = jobs.lock_path(id);
    let lock = match inherited {
        Some(fd) => {
            let f = crate::sys::take_slot_lock_fd(fd)
                .map_err(|e| Error::Usage(format!("worker {id}: {e}")))?;
            // An inherited lock is already ours: flock locks belong to the open file
            // description, which we now share with nobody. Taking it again proves it (a
            // no-op on our own lock; a lock someone else holds is refused).
            if f.try_lock().is_err() {
                return Ok(None);
            }
            f
        }
        None => match jobs.try_lock_slot(id)? {
            Some(f) => f,
            None => return Ok(None),
        },
    };
    // The lock must be on the file that is at the path now: if recover removed the slot
    // between the reconciler opening it and us running, we hold a lock nobody can see.
    let held = lock
        .metadata()
        .map_err(|e| Error::io(&path, "inspect lock", e))?;
    match std::fs::symlink_metadata(&path) {
        Ok(md) if crate::sys::fs::same_file(&md, &held) => Ok(Some(lock)),
        _ => Ok(None),
    }
}

/// Where a job file is: its state directory, and its id (`<state-dir>/jobs/<id>.json`).
fn job_place(job_path: &Path) -> Result<(PathBuf, PathBuf, String)> {
    let job_path = std::path::absolute(job_path).map_err(|e| Error::io(job_path, "resolve", e))?;
    let not_a_job = || Error::Usage("--job must be <state-dir>/jobs/<id>.json".into());
    let state_dir = job_path
        .parent()
        .and_then(Path::parent)
        .ok_or_else(not_a_job)?
        .to_path_buf();
    let id = job_path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .filter(|n| crate::state::jobs::valid_id(n) && !n.ends_with(".status"))
        .ok_or_else(|| {
            Error::Usage(format!(
                "{} is not a job file (<id>.json)",
                job_path.display()
            ))
        })?
        .to_string();
    Ok((job_path, state_dir, id))
}

/// The job as written, checked (None: its file is gone, nothing to do).
fn read_job(jobs: &JobDir, id: &str, job_path: &Path) -> Result<Option<Job>> {
    match jobs.read_job(id)? {
        Some(Ok(j)) => {
            j.spec.check().map_err(|why| {
                Error::Runtime(format!("{}: job out of range: {why}", job_path.display()))
            })?;
            Ok(Some(j))
        }
        Some(Err(e)) => Err(Error::Runtime(format!(
            "{}: unreadable job file: {e}",
            job_path.display()
        ))),
        None => Ok(None),
    }
}

/// A worker: take the job's lock, hold the job's level until it is removed, changed to
/// another slot, the lock is lost or a signal comes, then say how it ended.
pub fn run(job_path: &Path, lock_fd: Option<i32>) -> Result<()> {
    let (job_path, state_dir, id) = job_place(job_path)?;
    let jobs = JobDir::new(&state_dir);
    let Some(lock) = take_lock(&jobs, &id, lock_fd)? else {
        tracing::info!(%id, "another worker holds this job; exiting");
        return Ok(());
    };
    let Some(job) = read_job(&jobs, &id, &job_path)? else {
        tracing::info!(%id, "job file is gone; nothing to do");
        return Ok(());
    };
    // Windows: with every worker of this state directory in one job object, which
    // `recover` ends as one (a worker no status file names any more included).
    if let Err(e) =
        crate::sys::process::join_worker_group(&placement::workers_group_name(&state_dir))
    {
        tracing::warn!(%id, "cannot join the workers' job object: {e}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    // A worker has nothing to reload: a reload signal (a hangup) stops it too.
    crate::sys::on_stop(Arc::clone(&stop))
        .and_then(|()| crate::sys::on_reload(Arc::clone(&stop)))
        .map_err(|e| Error::os("install signal handler", e))?;
    let status = WorkerStatus {
        id: id.clone(),
        pid: std::process::id(),
        state: WorkerState::Running,
        started_at: now_unix(),
        ..Default::default()
    };
    let mut ctx = Ctx {
        id: id.clone(),
        job_path: job_path.clone(),
        jobs,
        spec: job.spec.clone(),
        stop,
        last_check: Instant::now(),
        last_publish: None,
        status,
        quiet: Default::default(),
        _lock: lock,
    };
    ctx.publish(true);
    tracing::info!(%id, pid = std::process::id(), level = job.spec.level_percent(), "worker started");
    let result = match &job.spec {
        JobSpec::Cpu { .. } => cpu::run(&mut ctx),
        JobSpec::Memory { .. } => memory::run(&mut ctx),
        JobSpec::Disk { .. } => disk::run(&mut ctx),
    };
    if matches!(result, Ok(End::LockLost)) {
        // The status file is the successor's now.
        tracing::info!(%id, "worker exiting: lock lost");
        return Ok(());
    }
    // The "exited" status is the evidence of a clean end (a crash leaves "running").
    ctx.status.synthetic_percent = 0.0;
    match &result {
        Ok(end) => {
            ctx.status.state = WorkerState::Exited;
            ctx.status.message = Some(format!("{end:?}"));
            tracing::info!(%id, "worker exiting: {end:?}");
        }
        Err(e) => {
            ctx.status.state = WorkerState::Failed;
            ctx.status.message = Some(e.to_string());
            tracing::error!(%id, "worker failed: {e}");
        }
    }
    ctx.publish(true);
    result.map(|_| ())
}

/// Lower this process's autogroup to nice 19. A worker runs in its own session, and with
/// `kernel.sched_autogroup_enabled=1` that session is its own scheduling group with an
/// equal share of the CPU, which SCHED_IDLE inside it does not change: measured here, a
/// detached SCHED_IDLE burner slowed a saturating workload in another session by ~34 %,
/// and ~2.6 % after this write (measured on the development VM, 2 vCPUs, kernel 6.18).
pub fn lower_autogroup() {
    if let Err(e) = crate::sys::process::lower_autogroup()
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot lower autogroup priority: {e}");
    }
}

/// Cheap non-repeating bytes (xorshift64*) so ballast cannot be deduplicated by KSM or
/// shrunk by zswap/compression.
pub struct Noise(u64);

impl Noise {
    pub fn new() -> Noise {
        let seed = (now_unix() * 1e9) as u64 ^ ((std::process::id() as u64) << 32) | 1;
        Noise(seed)
    }
    #[inline]
    pub fn next_word(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_word().to_ne_bytes());
        }
        let rest = chunks.into_remainder();
        let v = self.next_word().to_ne_bytes();
        rest.copy_from_slice(&v[..rest.len()]);
    }
}

impl Default for Noise {
    fn default() -> Self {
        Noise::new()
    }
}
