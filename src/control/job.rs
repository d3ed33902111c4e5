//! A job: what one worker must hold (its resource, level and limits). Written by the
//! reconciler as `<state-dir>/jobs/<id>.json`, read by the worker; the types and the
//! ranges a worker accepts live here, the files in `state::jobs`.
use crate::control::desired::{Fill, MemoryMetric};

fn is_available(m: &MemoryMetric) -> bool {
    *m == MemoryMetric::Available
}
use crate::control::slot::Slot;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const JOB_VERSION: u32 = 1;

/// One job file.
// No deny_unknown_fields: serde does not support it together with `flatten` and an
// internally tagged enum. Job files are written by cro alone; the desired state (written
// by people) is the strict one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub version: u32,
    pub id: String,
    #[serde(flatten)]
    pub spec: JobSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JobSpec {
    Cpu {
        /// Total host CPU (organic + synthetic) to hold, percent.
        level_percent: f64,
        /// The target the level was planned for (the level moves gently only while the
        /// target stays the same).
        #[serde(default)]
        target_percent: f64,
        /// Never add more than this, percent of the host.
        max_synthetic_percent: f64,
    },
    Memory {
        level_percent: f64,
        #[serde(default)]
        target_percent: f64,
        min_available_percent: f64,
        /// How used memory is measured (the desired state's memory.metric).
        #[serde(default, skip_serializing_if = "is_available")]
        metric: MemoryMetric,
    },
    Disk {
        mount: PathBuf,
        level_percent: f64,
        #[serde(default)]
        target_percent: f64,
        min_free_percent: f64,
        min_free_bytes: u64,
        fill: Fill,
        /// Pad even when `mount` is not a mount point (see the desired state's field).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        allow_plain_directory: bool,
    },
}

impl JobSpec {
    pub fn level_percent(&self) -> f64 {
        match self {
            JobSpec::Cpu { level_percent, .. }
            | JobSpec::Memory { level_percent, .. }
            | JobSpec::Disk { level_percent, .. } => *level_percent,
        }
    }
    pub fn target_percent(&self) -> f64 {
        match self {
            JobSpec::Cpu { target_percent, .. }
            | JobSpec::Memory { target_percent, .. }
            | JobSpec::Disk { target_percent, .. } => *target_percent,
        }
    }
    pub fn resource(&self) -> &'static str {
        match self {
            JobSpec::Cpu { .. } => "cpu",
            JobSpec::Memory { .. } => "memory",
            JobSpec::Disk { .. } => "disk",
        }
    }

    /// The ranges the planner keeps: a worker refuses a job file outside them (a hand
    /// edit, a hostile file) rather than, say, holding 1e9 % of memory.
    pub fn check(&self) -> std::result::Result<(), String> {
        let pct = |name: &str, v: f64| {
            if v.is_finite() && (0.0..=100.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} {v} is not a percentage (0-100)"))
            }
        };
        pct("level_percent", self.level_percent())?;
        pct("target_percent", self.target_percent())?;
        match self {
            JobSpec::Cpu {
                max_synthetic_percent,
                ..
            } => pct("max_synthetic_percent", *max_synthetic_percent),
            JobSpec::Memory {
                min_available_percent,
                ..
            } => pct("min_available_percent", *min_available_percent),
            JobSpec::Disk {
                mount,
                min_free_percent,
                ..
            } => {
                pct("min_free_percent", *min_free_percent)?;
                if !mount.is_absolute()
                    || mount
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(format!("mount {} is not an absolute path", mount.display()));
                }
                Ok(())
            }
        }
    }
}

impl Job {
    /// The slot this job fills, from its spec (a disk job's mount names its slot).
    pub fn slot(&self) -> Slot {
        self.spec.slot()
    }
}

impl JobSpec {
    pub fn slot(&self) -> Slot {
        match self {
            JobSpec::Cpu { .. } => Slot::Cpu,
            JobSpec::Memory { .. } => Slot::Memory,
            JobSpec::Disk { mount, .. } => Slot::Disk(mount.clone()),
        }
    }
}

/// What a worker says of itself in its status file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Holding its job (a status that still says so while no process holds the slot's
    /// lock means the worker crashed).
    #[default]
    Running,
    /// Ended cleanly (its job was removed, or it was told to stop), everything given back.
    Exited,
    /// Ended on an error (see its log).
    Failed,
    /// A state this version does not know (a newer worker wrote it).
    #[serde(other)]
    Unknown,
}

impl WorkerState {
    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Exited => "exited",
            WorkerState::Failed => "failed",
            WorkerState::Unknown => "unknown",
        }
    }
}

/// What a worker reports about itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub id: String,
    pub pid: u32,
    pub state: WorkerState,
    pub started_at: f64,
    pub updated_at: f64,
    pub level_percent: f64,
    /// What the worker adds now, percent of the resource's capacity.
    pub synthetic_percent: f64,
    /// CPU seconds the worker has used since it started (cpu jobs).
    #[serde(default)]
    pub cpu_seconds_total: f64,
    /// Ballast held now (memory and disk jobs).
    #[serde(default)]
    pub ballast_bytes: u64,
    /// Ballast the worker is heading for.
    #[serde(default)]
    pub ballast_target_bytes: u64,
    /// How fast the ballast grows now, bytes per second (disk workers while filling).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fill_rate_bytes_per_s: f64,
    /// Where the CPU burners run (cpu jobs): a cgroup with cpu.idle, or autogroup mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Why the worker holds less than asked (floor reached, pressure, ...), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// A job slot as found on disk.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobFound {
    pub id: String,
    /// The job file, if present and readable.
    pub job: Option<Job>,
    /// The job file exists but cannot be parsed.
    pub corrupt: Option<String>,
    /// A worker holds the lock.
    pub alive: bool,
    pub status: Option<WorkerStatus>,
    /// When the job file was last written (its mtime), Unix seconds.
    pub written_at: Option<f64>,
}

/// What the CPU worker uses, as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// `cgroup-idle` (a cgroup with cpu.idle = 1), `unit-idle` (the worker's own cgroup
    /// is idle already), `autogroup` (SCHED_IDLE with autogroup nice 19) or, on Windows,
    /// `idle-class` (the idle priority class, threads at idle priority).
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// Why this mode: what was found, or what stopped the better one.
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_values_are_checked_as_the_planner_keeps_them() {
        let cpu = |l: f64| JobSpec::Cpu {
            level_percent: l,
            target_percent: 30.0,
            max_synthetic_percent: 90.0,
        };
        assert!(cpu(40.0).check().is_ok());
        for bad in [-1.0, 100.5, f64::NAN, 1e9] {
            assert!(cpu(bad).check().is_err(), "{bad}");
        }
        let disk = JobSpec::Disk {
            mount: "data/../x".into(),
            level_percent: 10.0,
            target_percent: 10.0,
            min_free_percent: 10.0,
            min_free_bytes: 0,
            fill: Fill::Allocate,
            allow_plain_directory: false,
        };
        assert!(disk.check().unwrap_err().contains("absolute"));
    }
}
