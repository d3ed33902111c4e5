//! Reading the host: CPU counters, memory, filesystems, cgroup limits, PSI. Plain functions
//! over /proc and /sys (parsers take text so they are tested on fixtures), and the
//! `Observation` the planner sees.
pub mod host;
pub mod procs;

// The two readings that differ by platform: the host's CPU counters and its memory. The
// rest reads files that exist only on Linux (/proc, /sys/fs/cgroup) and finds nothing on
// Windows: no cgroup limits, no PSI, as on a Linux host without them.
#[cfg_attr(windows, path = "windows.rs")]
#[cfg_attr(not(windows), path = "linux.rs")]
mod platform;
pub use platform::{
    hostname, os_identity, read_cgroup_limits, read_cpu_times, read_memory_as, read_memory_psi,
    read_proc_cpu,
};

use crate::control::desired::MemoryMetric;
pub use crate::control::observation::{
    CgroupLimits, CgroupVersion, DiskObservation, FsUsage, Memory, Observation, organic, pct,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Cumulative CPU time of the whole host from the `cpu` line of /proc/stat, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

impl CpuTimes {
    /// Busy percent of the whole host between `earlier` and `self`; None when the counters
    /// went backwards (reboot) or did not move.
    pub fn percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let dt = self.total.checked_sub(earlier.total)?;
        let db = self.busy.checked_sub(earlier.busy)?;
        (dt > 0).then(|| (db as f64 / dt as f64 * 100.0).clamp(0.0, 100.0))
    }
}

pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is already inside user)
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let idle = get(3) + get(4);
    let total: u64 = (0..8).map(get).sum();
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// One process's cumulative CPU time, and when it started (so a reused PID is never taken
/// for the process we measured before).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcCpu {
    pub pid: u32,
    /// Start time, Unix seconds (boot time + start ticks).
    pub started: f64,
    /// user + system CPU seconds since it started, all threads.
    pub cpu_seconds: f64,
}

/// (start ticks since boot, utime + stime ticks) from /proc/PID/stat. The command name in
/// parentheses may hold spaces and parentheses: fields are counted after the last ')'.
pub fn parse_pid_stat(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after the name: state(0) ... utime(11) stime(12) ... starttime(19)
    let n = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some((n(19)?, n(11)? + n(12)?))
}

/// Boot time (Unix seconds) from /proc/stat's btime line.
pub fn parse_btime(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU seconds cro's own processes used between two readings: for a process seen both
/// times, the difference; for one that started after `since`, all it used. A process
/// seen only now that started before `since` (the first pass after an upgrade) adds
/// nothing rather than its whole life. Processes that exited in between are lost (their
/// seconds are not readable any more): a small undercount, never an overcount.
pub fn own_cpu_seconds(before: &[ProcCpu], now: &[ProcCpu], since: f64) -> f64 {
    now.iter()
        .map(|p| {
            match before
                .iter()
                .find(|b| b.pid == p.pid && (b.started - p.started).abs() < 1.0)
            {
                Some(b) => (p.cpu_seconds - b.cpu_seconds).max(0.0),
                None if p.started >= since - 1.0 => p.cpu_seconds,
                None => 0.0,
            }
        })
        .sum()
}

/// cro's own share of the host's CPU over an interval, in percent of all the host's CPUs
/// (the unit of /proc/stat's total): the CPU seconds its processes used since `since`
/// over the interval's capacity, never more than the `total_percent` measured for the
/// same interval (both are sampled a moment apart; cro cannot have used more than all).
pub fn synthetic_cpu_percent(
    own_before: &[ProcCpu],
    own_now: &[ProcCpu],
    since: f64,
    interval_s: f64,
    host_cpus: usize,
    total_percent: f64,
) -> f64 {
    let capacity = interval_s * host_cpus.max(1) as f64;
    if capacity <= 0.0 {
        return 0.0;
    }
    (own_cpu_seconds(own_before, own_now, since) / capacity * 100.0)
        .clamp(0.0, total_percent.max(0.0))
}

/// Online CPUs of the host (what /proc/stat's percent is relative to).
pub fn host_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(crate::sys::online_cpus())
}

/// CPUs this process may use: its affinity mask, further bounded by a cgroup CPU quota.
pub fn usable_cpus(cg: &CgroupLimits) -> f64 {
    let affinity = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    cg.cpu_quota_cpus.map_or(affinity, |q| q.min(affinity))
}

/// (MemTotal, MemAvailable) in bytes from /proc/meminfo.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    Some((
        meminfo_field(text, "MemTotal:")?,
        meminfo_field(text, "MemAvailable:")?,
    ))
}

/// (CommitLimit, Committed_AS) in bytes from /proc/meminfo.
pub fn parse_commit(text: &str) -> Option<(u64, u64)> {
    Some((
        meminfo_field(text, "CommitLimit:")?,
        meminfo_field(text, "Committed_AS:")?,
    ))
}

pub fn read_memory(cg: &CgroupLimits) -> std::io::Result<Memory> {
    read_memory_as(cg, MemoryMetric::Available)
}

/// Used memory by `metric` from /proc/meminfo text (bytes), None when a field it needs
/// is missing.
pub fn used_by(metric: MemoryMetric, text: &str) -> Option<u64> {
    let f = |name: &str| meminfo_field(text, name);
    let total = f("MemTotal:")?;
    Some(match metric {
        MemoryMetric::Available => total.saturating_sub(f("MemAvailable:")?),
        MemoryMetric::Used => total
            .saturating_sub(f("MemFree:")?)
            .saturating_sub(f("Buffers:")?)
            .saturating_sub(f("Cached:")?)
            .saturating_sub(f("SReclaimable:").unwrap_or(0)),
        MemoryMetric::UsedWithCache => total.saturating_sub(f("MemFree:")?),
    })
}

/// One /proc/meminfo field (`name` with its colon), in bytes.
fn meminfo_field(text: &str, name: &str) -> Option<u64> {
    let l = text.lines().find(|l| l.starts_with(name))?;
    l[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

pub fn parse_psi_some_avg10(text: &str) -> Option<f64> {
    let l = text.lines().find(|l| l.starts_with("some "))?;
    l.split_whitespace()
        .find_map(|kv| kv.strip_prefix("avg10="))
        .and_then(|v| v.parse().ok())
}

pub fn fs_usage(path: &Path) -> std::io::Result<FsUsage> {
    let s = crate::sys::fs::space(path)?;
    Ok(FsUsage {
        used_bytes: s.total.saturating_sub(s.free),
        avail_bytes: s.available,
    })
}

/// Parse /proc/self/cgroup into (v2 path, v1 controller -> path).
pub fn parse_proc_cgroup(text: &str) -> (Option<String>, BTreeMap<String, String>) {
    let mut v2 = None;
    let mut v1 = BTreeMap::new();
    for l in text.lines() {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        if ctrls.is_empty() {
            v2 = Some(path.to_string());
        } else {
            for c in ctrls.split(',') {
                v1.insert(c.to_string(), path.to_string());
            }
        }
    }
    (v2, v1)
}

/// `cpu.max` of cgroup v2 ("max 100000" or "50000 100000") to CPUs.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    let (q, p) = (it.next()?, it.next()?);
    let (q, p): (f64, f64) = (q.parse().ok()?, p.parse().ok()?);
    (q > 0.0 && p > 0.0).then(|| q / p)
}

/// A v1 memory limit of "no limit" is a huge page-rounded number; treat >= 2^60 as none.
fn limit_value(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|&v| v < (1u64 << 60))
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Walk from `leaf` up to `root`, yielding each directory (the tightest limit wins).
fn ancestors(root: &Path, rel: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut p = PathBuf::from(rel.trim_start_matches('/'));
    loop {
        out.push(root.join(&p));
        if !p.pop() {
            break;
        }
    }
    out
}

/// The cgroup limits this process lives under, read from `root` (the cgroup mounts) and
/// `proc_cgroup` (/proc/self/cgroup's text): v1's memory and cpu controllers, then v2's.
pub fn read_cgroup_limits_at(root: &Path, proc_cgroup: &str) -> CgroupLimits {
    let (v2, v1) = parse_proc_cgroup(proc_cgroup);
    let mut out = CgroupLimits {
        version: CgroupVersion::None,
        ..Default::default()
    };
    if let Some(path) = v1.get("memory") {
        out.version = CgroupVersion::V1;
        read_v1_memory(&mut out, root, path);
    }
    if let Some(path) = v1.get("cpu") {
        read_v1_cpu(&mut out, root, path);
    }
    if let Some(path) = v2 {
        read_v2(&mut out, root, &path);
    }
    out
}

/// The smaller of two limits, either of which may be absent.
fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// v1 memory: the lowest limit up the tree, and the usage without inactive page cache.
fn read_v1_memory(out: &mut CgroupLimits, root: &Path, path: &str) {
    let dirs = ancestors(&root.join("memory"), path);
    for d in &dirs {
        out.memory_limit_bytes = min_opt(
            out.memory_limit_bytes,
            read_trim(&d.join("memory.limit_in_bytes"))
                .as_deref()
                .and_then(limit_value),
        );
    }
    if let Some(u) = usage_less_inactive(&dirs[0], "memory.usage_in_bytes", "total_inactive_file") {
        out.memory_usage_bytes = Some(u);
    }
}

/// A cgroup's memory usage (`usage_file`) less its inactive page cache (`inactive_key` of
/// memory.stat), which the kernel reclaims before anything else: v1 and v2 name both
/// differently.
fn usage_less_inactive(dir: &Path, usage_file: &str, inactive_key: &str) -> Option<u64> {
    let u = read_trim(&dir.join(usage_file)).and_then(|s| s.parse::<u64>().ok())?;
    let inactive = stat_field(&dir.join("memory.stat"), inactive_key).unwrap_or(0);
    Some(u.saturating_sub(inactive))
}

/// v1 cpu: the lowest CFS quota up the tree, under whichever name the controller is
/// mounted (`cpu`, or co-mounted with cpuacct).
fn read_v1_cpu(out: &mut CgroupLimits, root: &Path, path: &str) {
    for ctrl in ["cpu", "cpu,cpuacct", "cpuacct,cpu"] {
        for d in ancestors(&root.join(ctrl), path) {
            let q = read_trim(&d.join("cpu.cfs_quota_us")).and_then(|s| s.parse::<i64>().ok());
            let p = read_trim(&d.join("cpu.cfs_period_us")).and_then(|s| s.parse::<i64>().ok());
            if let (Some(q), Some(p)) = (q, p)
                && q > 0
                && p > 0
            {
                let cpus = q as f64 / p as f64;
                out.cpu_quota_cpus = Some(out.cpu_quota_cpus.map_or(cpus, |c: f64| c.min(cpus)));
            }
        }
    }
}

/// v2: memory.max and cpu.max up the tree, the usage without inactive page cache, and
/// whether the host is v2 or hybrid.
fn read_v2(out: &mut CgroupLimits, root: &Path, path: &str) {
    // Pure v2 mounts at /sys/fs/cgroup; a hybrid host mounts it at unified/ (often with
    // no controllers, as on the machines we measured).
    let base = if root.join("cgroup.controllers").exists() {
        root.to_path_buf()
    } else {
        root.join("unified")
    };
    let controllers = read_trim(&base.join("cgroup.controllers")).unwrap_or_default();
    if !controllers
        .split_whitespace()
        .any(|c| c == "memory" || c == "cpu")
    {
        out.version = if out.version == CgroupVersion::None {
            CgroupVersion::V2
        } else {
            CgroupVersion::Hybrid
        };
        return;
    }
    out.version = if out.version == CgroupVersion::V1 {
        CgroupVersion::Hybrid
    } else {
        CgroupVersion::V2
    };
    let dirs = ancestors(&base, path);
    for d in &dirs {
        out.memory_limit_bytes = min_opt(
            out.memory_limit_bytes,
            read_trim(&d.join("memory.max"))
                .as_deref()
                .and_then(limit_value),
        );
        if let Some(c) = read_trim(&d.join("cpu.max"))
            .as_deref()
            .and_then(parse_cpu_max)
        {
            out.cpu_quota_cpus = Some(out.cpu_quota_cpus.map_or(c, |x: f64| x.min(c)));
        }
    }
    if let Some(u) = usage_less_inactive(&dirs[0], "memory.current", "inactive_file") {
        out.memory_usage_bytes = Some(u);
    }
}

fn stat_field(path: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Why `m` (absolute, normalized) cannot be a disk mount to pad on this host: a
/// component that is a symlink or missing, or not a directory. None: usable.
pub fn mount_path_problem(m: &Path) -> Option<String> {
    let check = || -> std::result::Result<(), String> {
        let mut cur = PathBuf::new();
        for c in m.components() {
            cur.push(c);
            // the root (and on Windows the volume) is where the walk starts
            if matches!(c, Component::Prefix(_) | Component::RootDir) {
                continue;
            }
            match std::fs::symlink_metadata(&cur) {
                Ok(md) if md.file_type().is_symlink() => {
                    return Err(format!(
                        "\"{}\" goes through the symlink {}; give the real mount point",
                        m.display(),
                        cur.display()
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "\"{}\" cannot be used: {e}; create or mount it, or remove it from the list",
                        m.display()
                    ));
                }
            }
        }
        if !m.is_dir() {
            return Err(format!("\"{}\" is not a directory", m.display()));
        }
        Ok(())
    };
    check().err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)] // symlinks: a Windows reparse point is tested on its own
    fn a_mount_path_through_a_symlink_or_missing_is_named() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink("/tmp", &link).unwrap();
        let why = mount_path_problem(&link).unwrap();
        assert!(why.contains("symlink"), "{why}");
        assert!(mount_path_problem(Path::new("/nonexistent-cro-mount")).is_some());
        assert_eq!(mount_path_problem(d.path()), None);
    }

    const MEMINFO: &str = "MemTotal:       16000000 kB\nMemFree:         2000000 kB\n\
MemAvailable:    9000000 kB\nBuffers:          500000 kB\nCached:          6000000 kB\n\
SwapCached:            0 kB\nSReclaimable:     700000 kB\n";

    #[test]
    fn each_memory_metric_by_its_formula() {
        let k = 1024u64;
        // MemTotal - MemAvailable
        assert_eq!(
            used_by(MemoryMetric::Available, MEMINFO),
            Some(7_000_000 * k)
        );
        // MemTotal - MemFree - Buffers - Cached - SReclaimable (free's "used")
        assert_eq!(used_by(MemoryMetric::Used, MEMINFO), Some(6_800_000 * k));
        // MemTotal - MemFree
        assert_eq!(
            used_by(MemoryMetric::UsedWithCache, MEMINFO),
            Some(14_000_000 * k)
        );
        // an old kernel without SReclaimable: counted as 0; without MemFree: no figure
        let old = MEMINFO.replace("SReclaimable:     700000 kB\n", "");
        assert_eq!(used_by(MemoryMetric::Used, &old), Some(7_500_000 * k));
        let broken = MEMINFO.replace("MemFree:", "MemFrei:");
        assert_eq!(used_by(MemoryMetric::UsedWithCache, &broken), None);
        for m in [
            MemoryMetric::Available,
            MemoryMetric::Used,
            MemoryMetric::UsedWithCache,
        ] {
            assert_eq!(MemoryMetric::from_name(m.name()), Some(m));
        }
    }

    fn proc_cpu(pid: u32, started: f64, cpu_seconds: f64) -> ProcCpu {
        ProcCpu {
            pid,
            started,
            cpu_seconds,
        }
    }

    #[test]
    fn synthetic_cpu_is_cro_seconds_over_the_intervals_capacity() {
        let before = [proc_cpu(10, 100.0, 50.0), proc_cpu(11, 100.0, 5.0)];
        // 10 s on 2 CPUs = 20 CPU-seconds; worker 10 used 5, worker 11 used 1: 30 %
        let now = [proc_cpu(10, 100.0, 55.0), proc_cpu(11, 100.0, 6.0)];
        let p = synthetic_cpu_percent(&before, &now, 1000.0, 10.0, 2, 80.0);
        assert!((p - 30.0).abs() < 1e-9, "{p}");
        // never more than the total measured for the interval
        assert_eq!(
            synthetic_cpu_percent(&before, &now, 1000.0, 10.0, 2, 20.0),
            20.0
        );
        // a PID reused by another process (other start time) is not charged its past
        let reused = [proc_cpu(10, 900.0, 70.0), proc_cpu(11, 100.0, 6.0)];
        let p = synthetic_cpu_percent(&before, &reused, 1000.0, 10.0, 2, 80.0);
        assert!((p - 5.0).abs() < 1e-9, "only worker 11's 1 s: {p}");
        // a worker started during the interval counts whole
        let fresh = [proc_cpu(12, 1001.0, 2.0)];
        let p = synthetic_cpu_percent(&[], &fresh, 1000.0, 10.0, 2, 80.0);
        assert!((p - 10.0).abs() < 1e-9, "{p}");
        // a zero-length interval is no share, not a division by zero
        assert_eq!(
            synthetic_cpu_percent(&before, &now, 1000.0, 0.0, 2, 80.0),
            0.0
        );
    }

    #[test]
    fn commit_figures() {
        let t = "MemTotal: 100 kB\nCommitLimit:    12342048 kB\nCommitted_AS:     197520 kB\n";
        assert_eq!(parse_commit(t), Some((12342048 * 1024, 197520 * 1024)));
        assert_eq!(parse_commit("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn pid_stat_and_btime() {
        // a name with spaces and a parenthesis; utime 250, stime 50, starttime 1234
        let line =
            "42 (cro (w) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1234 1000 10";
        assert_eq!(parse_pid_stat(line), Some((1234, 300)));
        assert_eq!(parse_pid_stat("garbage"), None);
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\nprocesses 5\n"),
            Some(1.7e9)
        );
    }

    #[test]
    fn own_cpu_counts_each_process_once() {
        let p = |pid, started, cpu_seconds| ProcCpu {
            pid,
            started,
            cpu_seconds,
        };
        let before = [p(10, 100.0, 5.0), p(11, 100.0, 1.0)];
        // 10 used 2 s more; 11's PID now belongs to a new process started at 150 (after
        // `since` = 120): all its 0.5 s count; 12 started before `since` but was never
        // seen: nothing (unknown share); 13 started after: all of it.
        let now = [
            p(10, 100.0, 7.0),
            p(11, 150.0, 0.5),
            p(12, 90.0, 40.0),
            p(13, 130.0, 0.25),
        ];
        assert!((own_cpu_seconds(&before, &now, 120.0) - 2.75).abs() < 1e-9);
        // counters never go backwards into a negative share
        assert_eq!(
            own_cpu_seconds(&[p(10, 100.0, 9.0)], &[p(10, 100.0, 7.0)], 0.0),
            0.0
        );
    }

    #[test]
    fn own_process_reads_its_own_cpu() {
        let me = std::process::id();
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let r = read_proc_cpu(&[me, u32::MAX]);
        assert_eq!(r.len(), 1, "a PID that does not exist is left out");
        assert!(r[0].cpu_seconds >= 0.2, "{r:?}");
        let now = crate::timefmt::now_unix();
        assert!(r[0].started <= now && r[0].started > now - 3600.0, "{r:?}");
    }

    #[test]
    fn proc_stat() {
        let t = parse_proc_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(
            t,
            CpuTimes {
                busy: 150,
                total: 1000
            }
        );
        let later = CpuTimes {
            busy: 250,
            total: 1200,
        };
        assert_eq!(later.percent_since(&t), Some(50.0));
        assert_eq!(
            t.percent_since(&later),
            None,
            "counters going backwards mean a reboot"
        );
    }

    #[test]
    fn meminfo_and_psi() {
        let m = parse_meminfo(
            "MemTotal:       24576000 kB\nMemFree: 1 kB\nMemAvailable:   12288000 kB\n",
        )
        .unwrap();
        assert_eq!(m, (24_576_000 * 1024, 12_288_000 * 1024));
        assert_eq!(
            parse_psi_some_avg10(
                "some avg10=1.50 avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            ),
            Some(1.5)
        );
        assert_eq!(parse_psi_some_avg10(""), None);
    }

    #[test]
    fn cgroup_v1_fixture() {
        let root = tempfile::tempdir().unwrap();
        let mem = root.path().join("memory/app");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(
            root.path().join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        std::fs::write(mem.join("memory.limit_in_bytes"), "1073741824\n").unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "600000000\n").unwrap();
        std::fs::write(
            mem.join("memory.stat"),
            "cache 1\ntotal_inactive_file 100000000\n",
        )
        .unwrap();
        let cpu = root.path().join("cpu,cpuacct/app");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("cpu.cfs_quota_us"), "150000\n").unwrap();
        std::fs::write(cpu.join("cpu.cfs_period_us"), "100000\n").unwrap();
        let cg = read_cgroup_limits_at(root.path(), "4:memory:/app\n3:cpu,cpuacct:/app\n0::/\n");
        assert_eq!(
            cg.version,
            CgroupVersion::Hybrid,
            "v1 controllers with an empty cgroup2 line"
        );
        assert_eq!(cg.memory_limit_bytes, Some(1 << 30));
        assert_eq!(cg.memory_usage_bytes, Some(500_000_000));
        assert_eq!(cg.cpu_quota_cpus, Some(1.5));
    }

    #[test]
    fn cgroup_v2_fixture() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let d = root.path().join("system.slice/cro.service");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(root.path().join("system.slice/memory.max"), "2147483648\n").unwrap();
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        std::fs::write(d.join("memory.current"), "300\n").unwrap();
        std::fs::write(d.join("cpu.max"), "50000 100000\n").unwrap();
        let cg = read_cgroup_limits_at(root.path(), "0::/system.slice/cro.service\n");
        assert_eq!(cg.version, CgroupVersion::V2);
        assert_eq!(
            cg.memory_limit_bytes,
            Some(2 << 30),
            "the parent's limit binds"
        );
        assert_eq!(cg.memory_usage_bytes, Some(300));
        assert_eq!(cg.cpu_quota_cpus, Some(0.5));
        assert_eq!(parse_cpu_max("max 100000"), None);
    }

    #[test]
    fn fs_usage_of_root_is_sane() {
        let u = fs_usage(Path::new("/")).unwrap();
        assert!(u.capacity_bytes() > 0);
        assert!((0.0..=100.0).contains(&u.used_percent()));
    }
}
