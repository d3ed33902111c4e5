//! The file-based job queue under `<state-dir>/jobs/`.
//!
//! - `<id>.json`: what the worker must hold; written only by the reconciler, by rename.
//! - `<id>.lock`: never replaced; the worker holds flock on it for its whole life, so "lock
//!   free" means "no worker" however the worker died (the kernel drops flock on exit).
//!   The reconciler takes the lock *before* it starts a worker and hands the locked file
//!   to the child (nq's "lock before visible"), so there is no moment at which a second
//!   reconciler could see the slot free while a worker is starting.
//! - `<id>.status.json`: what the worker holds now; written only by the worker.
pub use crate::control::job::{JOB_VERSION, Job, JobFound, JobSpec, WorkerState, WorkerStatus};
pub use crate::control::slot::valid_id;
use crate::error::{Error, Result};
use crate::state::fsutil;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct JobDir {
    pub state_dir: PathBuf,
    pub jobs_dir: PathBuf,
}

impl JobDir {
    pub fn new(state_dir: &Path) -> JobDir {
        JobDir {
            state_dir: state_dir.to_path_buf(),
            jobs_dir: state_dir.join("jobs"),
        }
    }

    /// Create the state layout, 0700 (it holds locks and process control; nobody else's).
    /// Create the state tree (0700) and check that root may trust it: every directory
    /// owned by us and writable by nobody else (else exit 1 naming it).
    pub fn ensure(&self) -> Result<()> {
        fsutil::ensure_dir(&self.state_dir, 0o700)?;
        fsutil::check_trusted_dir(&self.state_dir, true)?;
        for d in [
            self.jobs_dir.clone(),
            self.state_dir.join("history"),
            self.state_dir.join("logs"),
        ] {
            fsutil::ensure_dir(&d, 0o700)?;
            fsutil::check_trusted_dir(&d, false)?;
        }
        Ok(())
    }

    pub fn job_path(&self, id: &str) -> PathBuf {
        self.jobs_dir.join(format!("{id}.json"))
    }
    pub fn lock_path(&self, id: &str) -> PathBuf {
        self.jobs_dir.join(format!("{id}.lock"))
    }
    pub fn status_path(&self, id: &str) -> PathBuf {
        self.jobs_dir.join(format!("{id}.status.json"))
    }
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.state_dir.join("logs").join(format!("{id}.log"))
    }

    /// Every job id that has any file in the jobs directory.
    pub fn ids(&self) -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.jobs_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(&self.jobs_dir, "list", e)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with('.') {
                    return None;
                }
                let stem = n
                    .strip_suffix(".status.json")
                    .or_else(|| n.strip_suffix(".json"))
                    .or_else(|| n.strip_suffix(".lock"))?;
                valid_id(stem).then(|| stem.to_string())
            })
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    pub fn read_job(&self, id: &str) -> Result<Option<std::result::Result<Job, String>>> {
        let p = self.job_path(id);
        Ok(read_regular(&p)?.map(|b| serde_json::from_slice::<Job>(&b).map_err(|e| e.to_string())))
    }

    pub fn read_status(&self, id: &str) -> Option<WorkerStatus> {
        read_regular(&self.status_path(id))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Is a worker holding this slot? (A non-blocking lock attempt: the only proof.)
    /// Does a live process hold the slot's lock? Read from /proc/locks: looking takes no
    /// lock (a try-lock would hold the slot for a moment, and a reconciler could see it
    /// taken) and creates no file.
    pub fn is_alive(&self, id: &str) -> bool {
        let Ok(md) = std::fs::symlink_metadata(self.lock_path(id)) else {
            return false;
        };
        if !md.is_file() {
            return false;
        }
        crate::sys::fs::lock_held(&self.lock_path(id), &md)
    }

    /// Take the slot's lock if nobody holds it. The returned file keeps it.
    pub fn try_lock_slot(&self, id: &str) -> Result<Option<File>> {
        let p = self.lock_path(id);
        let f = fsutil::open_lock_file(&p)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(p, "lock", e)),
        }
    }

    pub fn list(&self) -> Result<Vec<JobFound>> {
        self.ids()?
            .into_iter()
            .map(|id| {
                let (job, corrupt) = match self.read_job(&id)? {
                    None => (None, None),
                    Some(Ok(j)) if j.id == id && j.version == JOB_VERSION => (Some(j), None),
                    Some(Ok(j)) => (
                        None,
                        Some(format!("job file says id {:?} version {}", j.id, j.version)),
                    ),
                    Some(Err(e)) => (None, Some(e)),
                };
                let written_at = std::fs::metadata(self.job_path(&id))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs_f64());
                Ok(JobFound {
                    written_at,
                    alive: self.is_alive(&id),
                    status: self.read_status(&id),
                    id,
                    job,
                    corrupt,
                })
            })
            .collect()
    }

    /// Write the job file if its content differs. Returns whether it was written.
    pub fn write_job(&self, job: &Job) -> Result<bool> {
        let p = self.job_path(&job.id);
        let bytes = serde_json::to_vec_pretty(job).expect("job serializes");
        if read_regular(&p)?.as_deref() == Some(&bytes[..]) {
            return Ok(false);
        }
        fsutil::write_atomic(&p, &bytes, 0o600, true)?;
        Ok(true)
    }
}

/// Read a file only if it is a regular file (a symlink in the jobs directory is not
/// followed: it is not something cro wrote).
fn read_regular(p: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::symlink_metadata(p) {
        Ok(md) if md.file_type().is_file() => fsutil::read_optional(p),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(p, "inspect", e)),
    }
}

/// The state lock: held by whoever reconciles or recovers.
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Take the lock, waiting up to `wait`. `Error::Locked` (exit 75) when it stays held.
    pub fn acquire(state_dir: &Path, wait: Duration) -> Result<StateLock> {
        let p = state_dir.join("lock");
        let f = fsutil::open_lock_file(&p)?;
        let deadline = Instant::now() + wait;
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(StateLock { _file: f }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: p }),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(p, "lock", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_is_read_without_locking_or_creating() {
        let d = tempfile::tempdir().unwrap();
        let q = JobDir::new(d.path());
        q.ensure().unwrap();
        assert!(!q.is_alive("cpu"));
        assert!(!q.lock_path("cpu").exists(), "looking created a lock file");
        let held = q.try_lock_slot("cpu").unwrap().unwrap();
        assert!(q.is_alive("cpu"));
        drop(held);
        assert!(!q.is_alive("cpu"));
    }

    #[test]
    fn lock_is_exclusive_and_write_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let q = JobDir::new(d.path());
        q.ensure().unwrap();
        let job = Job {
            version: 1,
            id: "cpu".into(),
            spec: JobSpec::Cpu {
                level_percent: 40.0,
                target_percent: 40.0,
                max_synthetic_percent: 90.0,
            },
        };
        assert!(q.write_job(&job).unwrap());
        assert!(!q.write_job(&job).unwrap(), "same content is not rewritten");
        assert!(!q.is_alive("cpu"));
        let held = q.try_lock_slot("cpu").unwrap().expect("free slot");
        assert!(q.is_alive("cpu"));
        assert!(q.try_lock_slot("cpu").unwrap().is_none());
        drop(held);
        assert!(!q.is_alive("cpu"));
        let found = q.list().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].job.as_ref(), Some(&job));
        std::fs::write(q.job_path("memory"), "{garbage").unwrap();
        let found = q.list().unwrap();
        assert!(
            found
                .iter()
                .any(|f| f.id == "memory" && f.corrupt.is_some())
        );
    }

    #[test]
    fn state_lock_times_out_with_locked() {
        let d = tempfile::tempdir().unwrap();
        let _a = StateLock::acquire(d.path(), Duration::ZERO).unwrap();
        let b = StateLock::acquire(d.path(), Duration::from_millis(100));
        assert!(matches!(b, Err(Error::Locked { .. })));
    }
}
