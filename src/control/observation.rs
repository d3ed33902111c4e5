//! One reading of the host as the planner sees it (`Observation`), and the figures it is
//! made of. Data types and their arithmetic only: `observe` fills them from /proc, cgroups
//! and statvfs; `control` decides from them.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Memory as the workload sees it: the host, or the cgroup when its limit is lower.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
    /// Used memory as the desired state's `memory.metric` measures it (MemTotal -
    /// MemAvailable by default); what the level and the window are about.
    pub used_bytes: u64,
    /// true when a cgroup limit below the host's memory is the box we fill.
    pub cgroup_bounded: bool,
}

impl Memory {
    pub fn used_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        self.used_bytes.min(self.total_bytes) as f64 / self.total_bytes as f64 * 100.0
    }
}

/// A filesystem as `df` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct FsUsage {
    pub used_bytes: u64,
    /// Available to unprivileged users (f_bavail): root's reserve is not ours to fill.
    pub avail_bytes: u64,
}

impl FsUsage {
    /// used + avail: the size `df` divides by (root's reserved blocks excluded).
    pub fn capacity_bytes(&self) -> u64 {
        self.used_bytes + self.avail_bytes
    }
    pub fn used_percent(&self) -> f64 {
        let cap = self.capacity_bytes();
        if cap == 0 {
            0.0
        } else {
            self.used_bytes as f64 / cap as f64 * 100.0
        }
    }
}

/// Which cgroup hierarchy the resource controllers (cpu, memory) are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// No cgroup controllers found (or /proc/self/cgroup unreadable).
    #[default]
    None,
    V1,
    V2,
    /// Some controllers on v1, some on v2 (systemd's hybrid layout).
    Hybrid,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            CgroupVersion::None => "none",
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
            CgroupVersion::Hybrid => "hybrid",
        })
    }
}

/// Limits of the cgroup this process runs in (v1 or v2), the tightest along the path.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CgroupLimits {
    pub version: CgroupVersion,
    pub memory_limit_bytes: Option<u64>,
    pub memory_usage_bytes: Option<u64>,
    /// CPU quota in CPUs (quota / period), None when unlimited.
    pub cpu_quota_cpus: Option<f64>,
}

/// One reading of the host, everything in percent of capacity. This is what the planner
/// and the history see.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// Unix seconds.
    pub at: f64,
    /// Seconds the CPU figures average over.
    pub interval_s: f64,
    pub cpu_total_percent: f64,
    pub cpu_synthetic_percent: f64,
    pub host_cpus: usize,
    pub usable_cpus: f64,
    pub memory: Memory,
    pub memory_synthetic_bytes: u64,
    pub memory_psi_some_avg10: Option<f64>,
    pub disks: BTreeMap<PathBuf, DiskObservation>,
    pub cgroup: CgroupLimits,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DiskObservation {
    pub usage: FsUsage,
    pub synthetic_bytes: u64,
    /// Set when the mount could not be read (vanished, unmounted, permission).
    pub error: Option<String>,
}

impl Observation {
    pub fn memory_synthetic_percent(&self) -> f64 {
        pct(self.memory_synthetic_bytes, self.memory.total_bytes)
    }
}

pub fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 100.0).min(100.0)
    }
}

/// (total, synthetic) -> organic, never negative.
pub fn organic(total: f64, synthetic: f64) -> f64 {
    (total - synthetic).max(0.0)
}
