//! One cro per host. Two state directories on one host would each count the other's
//! ballast as organic load and fight over the same memory and CPU. A reconciling pass
//! therefore claims the host for its state directory in `/run/cro/host.json` (the run
//! directory is a tmpfs: a reboot, which also ends every worker, clears it). A pass from
//! another state directory is refused (exit 1) and names the holder, until that one is
//! recovered (`cro recover` releases the claim) or its directory is gone.
//!
//! `CRO_RUN_DIR` moves the run directory, so parallel tests can each have their own host.
//! A user who is not root has their own (see `run_dir`).
//! `status`, `plan`, `validate` and `serve` read only and need no claim.
use crate::error::{Error, Result};
use crate::state::fsutil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const ENV: &str = "CRO_RUN_DIR";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claim {
    /// The state directory that holds the host (canonical path).
    pub state_dir: PathBuf,
    /// When it first claimed the host (RFC 3339).
    pub since: String,
}

/// `CRO_RUN_DIR`, else the system's (/run/cro for root; on Windows
/// %ProgramData%\cro\run, which a reboot does not clear: a claim outlives it there, as
/// the state directory that holds it does); a user who is not root cannot write /run, and
/// gets their own runtime directory (XDG_RUNTIME_DIR/cro, else /tmp/cro-run-<uid>).
pub fn run_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    let uid = crate::sys::euid();
    if uid == 0 {
        return crate::sys::system_run_dir();
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("cro"),
        None => std::env::temp_dir().join(format!("cro-run-{uid}")),
    }
}

/// The host claim, kept in a run directory (`run_dir()` on a host; tests pass their own).
pub struct Claims {
    dir: PathBuf,
}

/// The host's claims, in `run_dir()`.
pub fn host() -> Claims {
    Claims::at(run_dir())
}

/// Who holds the host now, if anyone.
pub fn holder() -> Option<Claim> {
    host().holder()
}

/// Claim the host for `state_dir` (which must exist), or fail naming the holder.
pub fn take(state_dir: &Path) -> Result<()> {
    host().take(state_dir)
}

/// Give the host up if `state_dir` holds it (after a recover). Whether it did.
pub fn release(state_dir: &Path) -> Result<bool> {
    host().release(state_dir)
}

impl Claims {
    pub fn at(dir: PathBuf) -> Claims {
        Claims { dir }
    }

    fn claim_path(&self) -> PathBuf {
        self.dir.join("host.json")
    }

    /// Who holds the host now, if anyone.
    pub fn holder(&self) -> Option<Claim> {
        let bytes = fsutil::read_optional(&self.claim_path()).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Run `f` with the claim file's lock held, so two passes never both take the host.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let dir = &self.dir;
        fsutil::ensure_dir(dir, 0o700)?;
        fsutil::check_trusted_dir(dir, true)?;
        let lock = fsutil::open_lock_file(&dir.join("host.lock"))?;
        lock.lock()
            .map_err(|e| Error::io(dir.join("host.lock"), "lock", e))?;
        f()
    }

    /// Claim the host for `state_dir` (which must exist), or fail naming the holder.
    pub fn take(&self, state_dir: &Path) -> Result<()> {
        let me =
            std::fs::canonicalize(state_dir).map_err(|e| Error::io(state_dir, "resolve", e))?;
        self.locked(|| {
        match self.holder() {
            Some(c) if c.state_dir == me => return Ok(()),
            // A holder whose directory is gone cannot be recovered: nothing of it runs
            // that a `recover --all-mounts` would not also find. Take over, and say so.
            Some(c) if !c.state_dir.join("jobs").is_dir() => {
                tracing::warn!(
                    "the host was claimed by {} (since {}), which no longer exists; taking it over",
                    c.state_dir.display(),
                    c.since
                );
            }
            Some(c) => {
                return Err(Error::Runtime(format!(
                    "another state directory holds this host: {} (since {}). One cro per host: \
                     two would count each other's ballast as organic load. Use that state \
                     directory, or stop it first with `cro --state-dir {} recover`",
                    c.state_dir.display(),
                    c.since,
                    c.state_dir.display()
                )));
            }
            None => {}
        }
        let c = Claim {
            state_dir: me.clone(),
            since: crate::timefmt::rfc3339(crate::timefmt::now_unix()),
        };
        fsutil::write_atomic(
            &self.claim_path(),
            &serde_json::to_vec(&c).expect("serializes"),
            0o600,
            true,
        )
    })
    }

    /// Give the host up if `state_dir` holds it (after a recover). Whether it did.
    pub fn release(&self, state_dir: &Path) -> Result<bool> {
        let Ok(me) = std::fs::canonicalize(state_dir) else {
            return Ok(false);
        };
        if !self.dir.is_dir() {
            return Ok(false);
        }
        self.locked(|| match self.holder() {
            Some(c) if c.state_dir == me => {
                let p = self.claim_path();
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, "delete", e))?;
                fsutil::sync_dir(&self.dir)?;
                Ok(true)
            }
            _ => Ok(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_state_dir_holds_the_host_until_released() {
        let t = tempfile::tempdir().unwrap();
        let claims = Claims::at(t.path().join("run"));
        let (take, release, holder) = (
            |d: &Path| claims.take(d),
            |d: &Path| claims.release(d),
            || claims.holder(),
        );
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("jobs")).unwrap();
        }
        take(&a).unwrap();
        take(&a).unwrap(); // again: still ours
        let e = take(&b).unwrap_err().to_string();
        assert!(
            e.contains(&std::fs::canonicalize(&a).unwrap().display().to_string()),
            "{e}"
        );
        assert!(!release(&b).unwrap(), "b holds nothing to release");
        assert!(release(&a).unwrap());
        take(&b).unwrap();
        // a holder whose directory is gone is taken over
        std::fs::remove_dir_all(&b).unwrap();
        take(&a).unwrap();
        assert_eq!(
            holder().unwrap().state_dir,
            std::fs::canonicalize(&a).unwrap()
        );
    }
}
