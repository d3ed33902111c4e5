//! Finding and signalling workers. A process is a worker of a state directory only if it
//! runs `cro worker` *and* holds open a `.lock` file of that state's jobs directory (the
//! lock it holds for its whole life). A PID from a status file is never trusted alone:
//! it may have been reused by an unrelated process.
use crate::sys::process::{self, Sig};
use std::path::Path;
use std::time::{Duration, Instant};

// Finding a worker differs by platform: /proc on Linux (the command line and the lock it
// holds open), the status file's pid and start time and the slot's lock on Windows.
pub use super::platform::{pids, signal, workers};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorkerProc {
    pub pid: i32,
    /// Job id from the lock file's name.
    pub id: String,
    /// The lock file was deleted while the worker held it.
    pub lock_deleted: bool,
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
