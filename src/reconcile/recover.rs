//! `cro recover`: deterministic teardown from any state. Stop every worker (only lock
//! holders), delete every ballast file (only inside `.cro-ballast/`, no links followed)
//! and every file in the jobs directory. The history and the desired file are kept.
//! Running it twice gives the same result.
use crate::error::{Error, Result};
use crate::format::{human_bytes, round2};
use crate::observe;
use crate::observe::procs::{self, WorkerProc};
use crate::state::jobs::{JobDir, JobSpec};
use crate::worker::ballast;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    pub workers: Vec<WorkerSeen>,
    pub job_files: Vec<String>,
    pub ballast: Vec<BallastSeen>,
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub disk_percent: Vec<(PathBuf, f64)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerSeen {
    pub pid: i32,
    pub id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BallastSeen {
    pub mount: PathBuf,
    pub bytes: u64,
    pub entries: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub dry_run: bool,
    pub before: Snapshot,
    pub after: Snapshot,
    pub stopped_by_sigterm: usize,
    pub stopped_by_sigkill: usize,
    pub deleted_job_files: usize,
    pub deleted_ballast_bytes: u64,
    pub problems: Vec<String>,
    /// With --legacy: the original Python tool's processes and temp_*.dat files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy: Option<crate::reconcile::legacy_procs::LegacyReport>,
}

/// Mounts that may hold our ballast: those this state directory owns (src/state/owned.rs), named
/// by job files or by the desired state (a mount may be unreadable or gone), and with
/// `all_mounts` every mount of the host that has a `.cro-ballast` directory (after the
/// state directory was lost; it also takes another cro instance's ballast).
fn candidate_mounts(q: &JobDir, extra: &[PathBuf], all_mounts: bool) -> Vec<PathBuf> {
    let mut set: BTreeSet<PathBuf> = crate::state::owned::load(&q.state_dir);
    if all_mounts {
        set.extend(ballast::mounts_with_ballast());
    }
    set.extend(extra.iter().cloned());
    for id in q.ids().unwrap_or_default() {
        if let Ok(Some(Ok(j))) = q.read_job(&id)
            && let JobSpec::Disk { mount, .. } = j.spec
        {
            set.insert(mount);
        }
    }
    set.into_iter().collect()
}

fn job_files(q: &JobDir) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&q.jobs_dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn snapshot(q: &JobDir, mounts: &[PathBuf]) -> Snapshot {
    let workers = procs::workers(&q.state_dir)
        .into_iter()
        .map(|w| WorkerSeen {
            pid: w.pid,
            id: w.id,
        })
        .collect();
    let mut bal = vec![];
    let mut disk_percent = vec![];
    for m in mounts {
        if let Ok(Some(d)) = ballast::open(m, false) {
            let es = ballast::list(&d).unwrap_or_default();
            bal.push(BallastSeen {
                mount: m.clone(),
                bytes: es.iter().filter(|e| e.is_file).map(|e| e.allocated).sum(),
                entries: es.len(),
            });
        }
        if let Ok(u) = observe::fs_usage(m) {
            disk_percent.push((m.clone(), round2(u.used_percent())));
        }
    }
    let cpu_percent = cpu_sample(Duration::from_millis(300));
    let cg = observe::read_cgroup_limits();
    let memory_percent = observe::read_memory(&cg)
        .map(|m| round2(m.used_percent()))
        .unwrap_or(0.0);
    Snapshot {
        workers,
        job_files: job_files(q),
        ballast: bal,
        cpu_percent,
        memory_percent,
        disk_percent,
    }
}

pub fn cpu_sample(d: Duration) -> f64 {
    let a = observe::read_cpu_times();
    std::thread::sleep(d);
    let b = observe::read_cpu_times();
    match (a, b) {
        (Ok(a), Ok(b)) => round2(b.percent_since(&a).unwrap_or(0.0)),
        _ => 0.0,
    }
}

/// Delete every regular file and symlink in the jobs directory (links as links).
fn clear_jobs_dir(q: &JobDir) -> Result<usize> {
    let rd = match std::fs::read_dir(&q.jobs_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(&q.jobs_dir, "list", e)),
    };
    let mut n = 0;
    for e in rd.flatten() {
        let p = e.path();
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => tracing::warn!(
                "leaving directory {} in the jobs directory (cro never makes one)",
                p.display()
            ),
            Ok(_) => {
                std::fs::remove_file(&p).map_err(|err| Error::io(&p, "delete", err))?;
                n += 1;
            }
            Err(_) => {}
        }
    }
    Ok(n)
}

/// `progress` hears each step as it happens (the command prints it; it is not part of
/// the report).
pub fn run(
    state_dir: &Path,
    desired_mounts: &[PathBuf],
    dry_run: bool,
    all_mounts: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<Recovery> {
    let q = JobDir::new(state_dir);
    let mounts = candidate_mounts(&q, desired_mounts, all_mounts);
    let before = snapshot(&q, &mounts);
    let mut report = Recovery {
        dry_run,
        after: before.clone(),
        before,
        stopped_by_sigterm: 0,
        stopped_by_sigkill: 0,
        deleted_job_files: 0,
        deleted_ballast_bytes: 0,
        problems: vec![],
        legacy: None,
    };
    if dry_run {
        return Ok(report);
    }
    let ws: Vec<WorkerProc> = procs::workers(state_dir);
    if !ws.is_empty() {
        progress(&format!("stopping {} worker(s)...", ws.len()));
    }
    let (term, kill, left) = procs::stop(state_dir, &ws, Duration::from_secs(10), progress);
    report.stopped_by_sigterm = term;
    report.stopped_by_sigkill = kill;
    for w in left {
        report.problems.push(format!(
            "worker {} (pid {}) did not stop, even after SIGKILL",
            w.id, w.pid
        ));
    }
    // Windows: what is left in the workers' job object (a worker whose status file is
    // gone, so none of the above found it) ends with the job. Nothing on Linux.
    match crate::sys::process::end_worker_group(&crate::worker::placement::workers_group_name(
        state_dir,
    )) {
        Ok(0) => {}
        Ok(n) => {
            progress(&format!(
                "ended {n} worker(s) left in the workers' job object"
            ));
            report.stopped_by_sigkill += n as usize;
        }
        Err(e) => report
            .problems
            .push(format!("the workers' job object: {e}")),
    }
    crate::fault::point(crate::fault::CrashPoint::RecoverAfterStop);
    // The CPU burners' idle cgroup, empty now.
    if crate::worker::placement::remove(state_dir) {
        progress("removed the burners' idle cgroup");
    }
    for m in &mounts {
        delete_ballast(m, &mut report, progress);
    }
    crate::fault::point(crate::fault::CrashPoint::RecoverAfterBallast);
    report.deleted_job_files = clear_jobs_dir(&q)?;
    forget_owned(state_dir)?;
    // Temp files an interrupted write left (workers are stopped, we hold the state lock).
    for dir in [
        q.state_dir.clone(),
        crate::state::history::history_dir(&q.state_dir),
    ] {
        for p in crate::state::fsutil::remove_stale_temps(&dir, Duration::ZERO) {
            progress(&format!(
                "deleted {} (left by an interrupted write)",
                p.display()
            ));
        }
    }
    report.after = snapshot(&q, &mounts);
    Ok(report)
}

/// Delete the ballast on one mount; what is not a file cro makes stays, and is reported.
fn delete_ballast(m: &Path, report: &mut Recovery, progress: &mut dyn FnMut(&str)) {
    match ballast::remove_all(m) {
        Ok(r) => {
            report.deleted_ballast_bytes += r.bytes;
            if r.bytes > 0 {
                progress(&format!(
                    "deleted {} of ballast in {}",
                    human_bytes(r.bytes),
                    m.display()
                ));
            }
            for l in r.left {
                report.problems.push(format!(
                    "left {}/{}/{l} in place: not a file cro makes",
                    m.display(),
                    ballast::DIR
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => report.problems.push(format!("{}: {e}", m.display())),
    }
}

/// Still owned: only the mounts that may still hold ballast (left in place, or
/// unmounted now).
fn forget_owned(state_dir: &Path) -> Result<()> {
    let owned = crate::state::owned::load(state_dir);
    let still: BTreeSet<PathBuf> = owned
        .iter()
        .filter(|m| ballast::open(m, false).ok().flatten().is_some() || !ballast::is_mount_point(m))
        .cloned()
        .collect();
    if still != owned && state_dir.exists() {
        crate::state::owned::save(state_dir, &still)?;
    }
    Ok(())
}

pub fn describe(s: &Snapshot) -> String {
    let workers = if s.workers.is_empty() {
        "no workers".to_string()
    } else {
        format!(
            "{} worker(s) ({})",
            s.workers.len(),
            s.workers
                .iter()
                .map(|w| format!("{} pid {}", w.id, w.pid))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let bal = if s.ballast.iter().all(|b| b.entries == 0) {
        "no ballast".to_string()
    } else {
        s.ballast
            .iter()
            .filter(|b| b.entries > 0)
            .map(|b| {
                format!(
                    "{} of ballast in {}",
                    human_bytes(b.bytes),
                    b.mount.display()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut usage = format!(
        "cpu {:.1} %, memory {:.1} %",
        s.cpu_percent, s.memory_percent
    );
    for (m, p) in &s.disk_percent {
        usage.push_str(&format!(", {} {p:.1} %", m.display()));
    }
    format!(
        "{workers}; {} job file(s); {bal}; {usage}",
        s.job_files.len()
    )
}
