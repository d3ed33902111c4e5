//! Finding and signalling workers. A process is a worker of a state directory only if it
//! runs `cro worker` *and* holds open a `.lock` file of that state's jobs directory (the
//! lock it holds for its whole life). A PID from a status file is never trusted alone:
//! it may have been reused by an unrelated process.
use crate::sys::process::{self, Sig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorkerProc {
    pub pid: i32,
    /// Job id from the lock file's name.
    pub id: String,
    /// The lock file was deleted while the worker held it.
    pub lock_deleted: bool,
}

/// Does this process run `cro ... worker --job ...`? The subcommand may follow global
/// options (`cro --state-dir X worker`), and the executable must be a cro binary (its
/// name in /proc/PID/exe, " (deleted)" after an upgrade allowed).
fn is_worker_cmdline(pid: i32) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let exe_is_cro = std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("cro"))
    });
    exe_is_cro && is_worker_argv(&raw)
}

/// `worker` as the subcommand: the first argument that is not an option or an option's
/// value, with `--job` after it.
pub fn is_worker_argv(raw: &[u8]) -> bool {
    let args: Vec<&[u8]> = raw.split(|&b| b == 0).skip(1).collect();
    // global options that take a value
    const VALUED: [&[u8]; 5] = [
        b"--state-dir",
        b"--desired",
        b"--log-level",
        b"--log-dir",
        b"--log-keep",
    ];
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a == b"worker" {
            return args[i + 1..]
                .iter()
                .any(|x| *x == b"--job" || x.starts_with(b"--job="));
        }
        if VALUED.contains(&a) {
            i += 2;
        } else if a.starts_with(b"-") {
            i += 1;
        } else {
            return false;
        }
    }
    false
}

/// The job lock this process holds open in `jobs_dir`, if any.
fn held_lock(pid: i32, jobs_dir: &Path) -> Option<(String, bool)> {
    let prefix = format!("{}/", jobs_dir.display());
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        let Some(name) = t.strip_prefix(&prefix) else {
            continue;
        };
        let (name, deleted) = match name.strip_suffix(" (deleted)") {
            Some(n) => (n, true),
            None => (name, false),
        };
        if let Some(id) = name.strip_suffix(".lock")
            && !id.contains('/')
        {
            return Some((id.to_string(), deleted));
        }
    }
    None
}

/// Canonical jobs directory (what /proc/PID/fd links show).
pub fn canonical_jobs_dir(state_dir: &Path) -> PathBuf {
    let j = state_dir.join("jobs");
    std::fs::canonicalize(&j).unwrap_or(j)
}

/// Every process ID in /proc now.
pub fn pids() -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .collect()
}

/// Every live worker of this state directory.
pub fn workers(state_dir: &Path) -> Vec<WorkerProc> {
    let jobs_dir = canonical_jobs_dir(state_dir);
    let me = std::process::id() as i32;
    let mut out = vec![];
    for pid in pids() {
        if pid == me || !is_worker_cmdline(pid) {
            continue;
        }
        if let Some((id, lock_deleted)) = held_lock(pid, &jobs_dir) {
            out.push(WorkerProc {
                pid,
                id,
                lock_deleted,
            });
        }
    }
    out.sort();
    out
}

/// Send `sig` to `w` only if it is still that worker (`process::signal_if`).
pub fn signal(w: &WorkerProc, state_dir: &Path, sig: Sig) -> bool {
    let jobs_dir = canonical_jobs_dir(state_dir);
    process::signal_if(w.pid, sig, || {
        is_worker_cmdline(w.pid) && held_lock(w.pid, &jobs_dir).is_some_and(|(id, _)| id == w.id)
    })
}

/// What `escalate` did with each process: ended by SIGTERM, by SIGKILL, or still running.
pub struct Escalated<P> {
    pub by_term: Vec<P>,
    pub by_kill: Vec<P>,
    pub left: Vec<P>,
}

/// SIGTERM each of `which`, wait up to `grace` for them to end, SIGKILL the rest and wait
/// 5 s more. `signal` must check that a process is still the one meant before it signals;
/// `alive` says which of a list still run; `progress` hears, once a second, who is still
/// waited for (the command prints it; the daemon logs it).
pub fn escalate<P: Clone + PartialEq>(
    which: &[P],
    grace: Duration,
    signal: &dyn Fn(&P, Sig) -> bool,
    alive: &dyn Fn(&[P]) -> Vec<P>,
    describe: &dyn Fn(&P) -> String,
    progress: &mut dyn FnMut(&str),
) -> Escalated<P> {
    for p in which {
        signal(p, Sig::Term);
    }
    let wait = |ps: &[P], d: Duration, progress: &mut dyn FnMut(&str)| -> Vec<P> {
        let start = Instant::now();
        let mut said = 0;
        loop {
            let left = alive(ps);
            if left.is_empty() || start.elapsed() >= d {
                return left;
            }
            let secs = start.elapsed().as_secs();
            if secs > said {
                said = secs;
                progress(&format!(
                    "waiting for {} process(es) to stop ({secs} s): {}",
                    left.len(),
                    left.iter().map(describe).collect::<Vec<_>>().join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let after_term = wait(which, grace, progress);
    for p in &after_term {
        progress(&format!("{} ignored SIGTERM; sending SIGKILL", describe(p)));
        signal(p, Sig::Kill);
    }
    let left = wait(&after_term, Duration::from_secs(5), progress);
    Escalated {
        by_term: which
            .iter()
            .filter(|p| !after_term.contains(p))
            .cloned()
            .collect(),
        by_kill: after_term
            .iter()
            .filter(|p| !left.contains(p))
            .cloned()
            .collect(),
        left,
    }
}

/// Stop these workers (`escalate`). Returns (stopped by SIGTERM, stopped by SIGKILL,
/// still running).
pub fn stop(
    state_dir: &Path,
    which: &[WorkerProc],
    grace: Duration,
    progress: &mut dyn FnMut(&str),
) -> (usize, usize, Vec<WorkerProc>) {
    let e = escalate(
        which,
        grace,
        &|w, sig| signal(w, state_dir, sig),
        &|ws| {
            let now = workers(state_dir);
            ws.iter().filter(|w| now.contains(w)).cloned().collect()
        },
        &|w| format!("worker {} (pid {})", w.id, w.pid),
        progress,
    );
    (e.by_term.len(), e.by_kill.len(), e.left)
}

/// Reap exited children (the daemon starts workers and must not collect zombies).
pub fn reap_children() {
    while process::reap_one() {}
}

#[cfg(test)]
mod tests {
    use super::is_worker_argv;

    #[test]
    fn the_worker_subcommand_is_found_after_global_options() {
        let argv = |a: &[&str]| a.join("\0").into_bytes();
        assert!(is_worker_argv(&argv(&[
            "cro",
            "worker",
            "--job",
            "/s/jobs/cpu.json"
        ])));
        assert!(is_worker_argv(&argv(&[
            "/usr/bin/cro",
            "--state-dir",
            "/s",
            "--log-level",
            "info",
            "worker",
            "--job",
            "x"
        ])));
        assert!(is_worker_argv(&argv(&[
            "cro",
            "--state-dir=/s",
            "worker",
            "--job=x"
        ])));
        assert!(
            !is_worker_argv(&argv(&["cro", "status", "worker"])),
            "worker as a value"
        );
        assert!(!is_worker_argv(&argv(&["cro", "worker"])), "no job");
        assert!(!is_worker_argv(&argv(&["sleep", "60"])));
    }
}
