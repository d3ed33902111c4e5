//! The host's CPU counters and memory on Windows, as Windows and its cloud agents report
//! them: GetSystemTimes (busy = kernel + user - idle, the processor-time counters' basis)
//! and GlobalMemoryStatusEx (used = total - available physical memory: Windows' own
//! "memory load", what Task Manager, Azure's and CloudWatch's agents show).
use super::host::OsIdentity;
use super::{CgroupLimits, CpuTimes, Memory, ProcCpu};
use crate::control::desired::MemoryMetric;

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

/// Windows has no pressure stall information; low memory is signalled another way.
pub fn read_memory_psi() -> Option<f64> {
    None
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
