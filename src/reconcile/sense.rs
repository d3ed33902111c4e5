//! The sense step: one observation of the host for a pass (CPU over the interval since
//! the last pass, cro's own share of it, memory, each disk mount and its ballast).
use crate::control::desired::Resolved;
use crate::error::{Error, Result};
use crate::observe::{self, CpuTimes, DiskObservation, Observation};
use crate::state::fsutil;
use crate::state::jobs::{JobDir, JobFound};
use crate::timefmt;
use crate::worker::ballast;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
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
    q: &JobDir,
    desired: &Resolved,
    found: &[JobFound],
    persist: bool,
) -> Result<Observation> {
    let cg = observe::read_cgroup_limits();
    let host_cpus = observe::host_cpus();
    let cpu = sense_cpu(&q.state_dir, found, persist, host_cpus)?;
    let metric = desired
        .memory
        .as_ref()
        .map_or(crate::control::desired::MemoryMetric::Available, |m| {
            m.metric
        });
    let memory =
        observe::read_memory_as(&cg, metric).map_err(|e| Error::io("/proc/meminfo", "read", e))?;
    let memory_synthetic_bytes = found
        .iter()
        .find(|f| f.id == "memory")
        .filter(|f| f.alive)
        .and_then(|f| f.status.as_ref())
        .map_or(0, |s| s.ballast_bytes);
    Ok(Observation {
        at: cpu.at,
        interval_s: cpu.interval_s,
        cpu_total_percent: cpu.total,
        cpu_synthetic_percent: cpu.synthetic,
        host_cpus,
        usable_cpus: observe::usable_cpus(&cg),
        memory,
        memory_synthetic_bytes,
        memory_psi_some_avg10: observe::read_memory_psi(),
        disks: sense_disks(desired),
        cgroup: cg,
    })
}

/// CPU over the interval: when it ended, how long it was, the total and cro's share.
struct CpuReading {
    at: f64,
    interval_s: f64,
    total: f64,
    synthetic: f64,
}

fn read_cpu_times() -> Result<CpuTimes> {
    observe::read_cpu_times().map_err(|e| Error::io("/proc/stat", "read", e))
}

/// CPU since the last pass's counters (or over a half-second sample of our own when there
/// are none), and the part of it cro's own processes used.
fn sense_cpu(
    state_dir: &Path,
    found: &[JobFound],
    persist: bool,
    host_cpus: usize,
) -> Result<CpuReading> {
    let prev: Option<CpuCounters> = fsutil::read_optional(&counters_path(state_dir))?
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut now_cpu = read_cpu_times()?;
    let mut at = timefmt::now_unix();
    // The previous pass was a moment ago (passes back to back): wait until half a second
    // has passed since its counters rather than taking a fresh half-second sample.
    if let Some(p) = prev.as_ref().filter(|p| (0.0..0.5).contains(&(at - p.at))) {
        std::thread::sleep(Duration::from_secs_f64(0.5 - (at - p.at)));
        now_cpu = read_cpu_times()?;
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
            now_cpu = read_cpu_times()?;
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
    Ok(CpuReading {
        at,
        interval_s: interval,
        total,
        synthetic,
    })
}

/// Each listed mount: its usage and the ballast on it (what is on disk, worker or not:
/// the honest synthetic share), or why it cannot be read or padded.
fn sense_disks(desired: &Resolved) -> BTreeMap<std::path::PathBuf, DiskObservation> {
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
    disks
}
