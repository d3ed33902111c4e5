//! `ThisHost`: the tick's `World` on a real host (its /proc, the state directory, real
//! worker processes), and the effects it has: starting a worker with its slot lock,
//! removing a job and everything it held.
use crate::control::desired::Resolved;
use crate::control::slot::Slot;
use crate::control::window::Windows;
use crate::error::{Error, Result};
use crate::observe::Observation;
use crate::observe::procs;
use crate::reconcile::tick::World;
use crate::state::fsutil;
use crate::state::history::{self, Record};
use crate::state::jobs::{Job, JobDir, JobFound, JobSpec};
use crate::worker::ballast;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The real world: this host, its /proc and the state directory.
pub struct ThisHost<'a> {
    pub q: &'a JobDir,
    /// A reconcile keeps the CPU counters for the next pass and counts itself as cro's
    /// own load; a read-only pass (`status`, `plan`) does neither.
    pub persist: bool,
}

impl World for ThisHost<'_> {
    fn list(&mut self) -> Result<Vec<JobFound>> {
        self.q.list()
    }
    fn sense(&mut self, desired: &Resolved, found: &[JobFound]) -> Result<Observation> {
        let obs = crate::reconcile::sense::sense(self.q, desired, found, self.persist)?;
        crate::fault::point(crate::fault::CrashPoint::AfterSense);
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
        crate::fault::point(crate::fault::CrashPoint::AfterWriteJob);
        Ok(())
    }
    fn start(&mut self, id: &str) -> Result<Option<u32>> {
        match self.q.try_lock_slot(id)? {
            Some(lock) => {
                crate::fault::point(crate::fault::CrashPoint::AfterLockSlot);
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
        crate::fault::point(crate::fault::CrashPoint::AfterHistory);
        Ok(())
    }
    fn prune_history(&mut self, now: f64, keep_days: u32) -> Result<usize> {
        history::prune(&self.q.state_dir, now, keep_days).map(|gone| gone.len())
    }
}

/// The program a worker runs: this very binary. Normally its path; when that path no
/// longer names it (a package upgrade replaced /usr/bin/cro under a running daemon: the
/// kernel then shows the path as "/usr/bin/cro (deleted)", which does not exist),
/// `/proc/self/exe`, which still does until the daemon is restarted on the new binary
/// (the packages restart it). Returns the program and the name to show as its argv[0].
/// (The path's existence is the test, not its inode: under qemu-user, /proc/self/exe is
/// the emulator while the path is the guest binary.)
fn worker_program() -> Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().map_err(|e| Error::os("find our own executable", e))?;
    if exe.exists() {
        return Ok((exe.clone(), exe));
    }
    let shown = PathBuf::from(
        exe.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_string(),
    );
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!(
            "{} was replaced since this process started (an upgrade?); workers start from the \
             running version until cro is restarted",
            shown.display()
        )
    });
    Ok((PathBuf::from("/proc/self/exe"), shown))
}

/// Start the worker for `id`, handing it the slot lock we already hold.
pub fn spawn_worker(q: &JobDir, id: &str, lock: File) -> Result<u32> {
    let (exe, shown) = worker_program()?;
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
    crate::sys::process::set_arg0(&mut cmd, shown.as_os_str());
    cmd.arg("worker")
        .arg("--job")
        .arg(&job_path)
        // Crash points are for this process only: a worker must not inherit them.
        .env_remove(crate::fault::ENV)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // Detached: the worker outlives a cron run and is not killed with the reconciler's
    // terminal. The slot lock goes with it (sys::spawn_worker says how on each platform).
    let child = crate::sys::spawn_worker(&mut cmd, lock)
        .map_err(|e| Error::os(format!("start worker {id}"), e))?;
    crate::fault::point(crate::fault::CrashPoint::AfterSpawn);
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
pub fn remove_job(q: &JobDir, f: &JobFound) -> Result<()> {
    let p = q.job_path(&f.id);
    if std::fs::symlink_metadata(&p).is_ok() {
        std::fs::remove_file(&p).map_err(|e| Error::io(&p, "delete", e))?;
        fsutil::sync_dir(&q.jobs_dir)?;
    }
    crate::fault::point(crate::fault::CrashPoint::RemoveAfterDelete);
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
    crate::fault::point(crate::fault::CrashPoint::RemoveBeforeBallast);
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
