//! The host's CPU counters and memory on Linux: /proc/stat and /proc/meminfo (parsed by
//! the pure functions of ../mod.rs).
use super::host::{OsIdentity, parse_os_release};
use super::procs::{WorkerProc, is_worker_argv};
use super::{
    CgroupLimits, CpuTimes, Memory, ProcCpu, parse_btime, parse_meminfo, parse_pid_stat,
    parse_proc_stat, parse_psi_some_avg10, read_cgroup_limits_at, used_by,
};
use crate::control::desired::MemoryMetric;
use crate::sys::process::{self, Sig};
use std::path::{Path, PathBuf};

pub fn read_cpu_times() -> std::io::Result<CpuTimes> {
    let text = std::fs::read_to_string("/proc/stat")?;
    parse_proc_stat(&text).ok_or_else(|| std::io::Error::other("no cpu line in /proc/stat"))
}

/// The host's memory, used memory measured by `metric`. Inside a cgroup limit below the
/// host's memory, the cgroup is the box that is filled: used is its limit less what is
/// available in it (whatever the metric).
pub fn read_memory_as(cg: &CgroupLimits, metric: MemoryMetric) -> std::io::Result<Memory> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    let (total, avail) = parse_meminfo(&text)
        .ok_or_else(|| std::io::Error::other("/proc/meminfo lacks MemTotal or MemAvailable"))?;
    let used = used_by(metric, &text).ok_or_else(|| {
        std::io::Error::other(format!(
            "/proc/meminfo lacks a field memory.metric {} needs ({})",
            metric.name(),
            metric.formula()
        ))
    })?;
    let mut m = Memory {
        total_bytes: total,
        available_bytes: avail,
        used_bytes: used,
        cgroup_bounded: false,
    };
    if let (Some(limit), Some(usage)) = (cg.memory_limit_bytes, cg.memory_usage_bytes)
        && limit < total
    {
        m.total_bytes = limit;
        m.available_bytes = avail.min(limit.saturating_sub(usage));
        m.used_bytes = limit.saturating_sub(m.available_bytes);
        m.cgroup_bounded = true;
    }
    Ok(m)
}

/// CPU time of these processes now; those that are gone are left out.
pub fn read_proc_cpu(pids: &[u32]) -> Vec<ProcCpu> {
    let hz = crate::sys::clock_ticks_per_second().max(1) as f64;
    let Some(btime) = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_btime(&t))
    else {
        return vec![];
    };
    pids.iter()
        .filter_map(|&pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (start, cpu) = parse_pid_stat(&text)?;
            Some(ProcCpu {
                pid,
                started: btime + start as f64 / hz,
                cpu_seconds: cpu as f64 / hz,
            })
        })
        .collect()
}

/// Memory PSI `some avg10` (percent of the last 10 s some task stalled on memory).
/// None where the kernel has PSI disabled (RHEL 8 default).
pub fn read_memory_psi() -> Option<f64> {
    parse_psi_some_avg10(&std::fs::read_to_string("/proc/pressure/memory").ok()?)
}

pub fn read_cgroup_limits() -> CgroupLimits {
    read_cgroup_limits_at(
        Path::new("/sys/fs/cgroup"),
        &std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
    )
}

/// The distribution (os-release), the kernel's release, and whether we run in a container.
pub fn os_identity() -> OsIdentity {
    let (platform, os) = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_else(|_| ("linux".into(), None));
    OsIdentity {
        platform,
        os,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_string())
            .unwrap_or_default(),
        container: in_container(),
    }
}

/// Inside a container? (systemd's and Docker's markers, or a container= environment.)
fn in_container() -> bool {
    std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
        || std::fs::read_to_string("/run/systemd/container").is_ok_and(|s| !s.trim().is_empty())
        || std::fs::read("/proc/1/environ")
            .is_ok_and(|e| e.split(|&b| b == 0).any(|v| v.starts_with(b"container=")))
}

/// The host's name, as the kernel has it ("this host" when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this host".into())
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
