//! The host's CPU counters and memory on Windows, as Windows and its cloud agents report
//! them: GetSystemTimes (busy = kernel + user - idle, the processor-time counters' basis)
//! and GlobalMemoryStatusEx (used = total - available physical memory: Windows' own
//! "memory load", what Task Manager, Azure's and CloudWatch's agents show).
use super::host::OsIdentity;
use super::procs::WorkerProc;
use super::{CgroupLimits, CpuTimes, Memory, ProcCpu};
use crate::control::desired::MemoryMetric;
use crate::control::job::WorkerStatus;
use crate::sys::process::Sig;
use std::path::Path;

/// Cumulative host CPU time, in 100 ns units (only ratios of these are used).
pub fn read_cpu_times() -> std::io::Result<CpuTimes> {
    let (busy, total) = crate::sys::system_times()?;
    Ok(CpuTimes { busy, total })
}

/// Every `memory.metric` reads the same on Windows: total less available physical
/// memory. Windows counts its standby list (the page cache) as available, which is what
/// `available` means on Linux; `used` and `used_with_cache` have no separate counter in
/// GlobalMemoryStatusEx. Windows has no cgroups: `_cg` is empty.
pub fn read_memory_as(_cg: &CgroupLimits, _metric: MemoryMetric) -> std::io::Result<Memory> {
    let m = crate::sys::memory_status()?;
    Ok(Memory {
        total_bytes: m.total,
        available_bytes: m.available,
        used_bytes: m.total.saturating_sub(m.available),
        cgroup_bounded: false,
    })
}

/// CPU time of these processes now (GetProcessTimes); those that are gone are left out.
pub fn read_proc_cpu(pids: &[u32]) -> Vec<ProcCpu> {
    pids.iter()
        .filter_map(|&pid| {
            let (started, cpu_seconds) = crate::sys::process::times(pid)?;
            Some(ProcCpu {
                pid,
                started,
                cpu_seconds,
            })
        })
        .collect()
}

/// Windows has no pressure stall information; it signals low memory instead
/// (CreateMemoryResourceNotification). The signal is read on the PSI scale the memory
/// worker acts on: 100 while Windows says memory is low (the ballast gives way at once),
/// 0 otherwise.
pub fn read_memory_psi() -> Option<f64> {
    crate::sys::low_memory().map(|low| if low { 100.0 } else { 0.0 })
}

/// Windows has no cgroups: nothing bounds cro but the host.
pub fn read_cgroup_limits() -> CgroupLimits {
    CgroupLimits::default()
}

/// "windows", and what Windows calls itself (the product name is not read yet).
pub fn os_identity() -> OsIdentity {
    OsIdentity {
        platform: "windows".into(),
        os: Some("Windows".into()),
        kernel: String::new(),
        container: false,
    }
}

/// The computer's name (COMPUTERNAME, set for every Windows process).
pub fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "this host".into())
}

/// No process list is read on Windows (the original tool's processes are found by the
/// Linux side only).
pub fn pids() -> Vec<i32> {
    vec![]
}

/// The worker status files of a state directory: (job id, status), read as
/// `state::jobs` writes them (`jobs/<id>.status.json`). Read here directly: observe sits
/// below state in the order of stages.
fn statuses(state_dir: &Path) -> Vec<(String, WorkerStatus)> {
    let jobs = state_dir.join("jobs");
    let Ok(rd) = std::fs::read_dir(&jobs) else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".status.json")?.to_string();
            let bytes = std::fs::read(e.path()).ok()?;
            Some((id, serde_json::from_slice(&bytes).ok()?))
        })
        .collect()
}

/// Is `id`'s worker the process `pid`? Its status file names the pid and when it
/// started, the process with that pid started then (a reused pid started later), and the
/// slot's lock is held.
fn is_worker(state_dir: &Path, id: &str, st: &WorkerStatus, pid: i32) -> bool {
    let started = u32::try_from(pid)
        .ok()
        .filter(|&p| p == st.pid)
        .and_then(crate::sys::process::times)
        .map(|(t, _)| t);
    let lock = state_dir.join("jobs").join(format!("{id}.lock"));
    started.is_some_and(|t| (t - st.started_at).abs() < 5.0)
        && std::fs::symlink_metadata(&lock).is_ok_and(|md| crate::sys::fs::lock_held(&lock, &md))
}

/// Every live worker of this state directory.
pub fn workers(state_dir: &Path) -> Vec<WorkerProc> {
    let me = std::process::id();
    let mut out: Vec<WorkerProc> = statuses(state_dir)
        .into_iter()
        .filter(|(id, st)| st.pid != me && is_worker(state_dir, id, st, st.pid as i32))
        .map(|(id, st)| WorkerProc {
            pid: st.pid as i32,
            id,
            lock_deleted: false,
        })
        .collect();
    out.sort();
    out
}

/// End `w` only if it is still that worker (Windows has no signal to ask it first).
pub fn signal(w: &WorkerProc, state_dir: &Path, sig: Sig) -> bool {
    let st = statuses(state_dir).into_iter().find(|(id, _)| *id == w.id);
    crate::sys::process::signal_if(w.pid, sig, || {
        st.as_ref()
            .is_some_and(|(id, st)| is_worker(state_dir, id, st, w.pid))
    })
}
