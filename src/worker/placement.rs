//! Where the CPU burners run, so that real work never waits for them.
//!
//! SCHED_IDLE acts only inside a task group. A worker in its own session is its own
//! autogroup, and the woken task of another group is not preferred over it at once: it
//! waits for the next scheduler tick. Measured on the development VM with a real server and
//! its own client (docs/BENCHMARKS.md has the later runs): p99 1.7 ms alone, 4.0 ms next to burners at level 70 with SCHED_IDLE
//! and autogroup 19, 1.8 ms with the same burners in a cgroup whose `cpu.idle` is 1
//! (kernel >= 5.15): an idle group is preempted by a woken task of any other group.
//!
//! So, in order of preference:
//! - **cgroup v1** `cpu` controller (hybrid hosts like this one, CentOS 8 ...): a child of
//!   the worker's own cpu cgroup, `cro-burners-<tag>`, with `cpu.idle = 1`; each burner
//!   thread moves itself in (v1 takes thread ids), the worker's control thread stays out.
//! - **cgroup v2** with the cpu controller: the child is made where the v2 rules allow it:
//!   under the root when the worker runs in the root cgroup, or under a delegated subtree
//!   (its own cgroup enables `cpu` for children). v2 moves whole processes, so the worker
//!   moves itself (its control loop is synthetic work too).
//! - the worker's own cgroup already has `cpu.idle = 1` (a unit with CPUWeight=idle):
//!   nothing to do.
//! - otherwise SCHED_IDLE and autogroup nice 19, as before, and status says why.
//!
//! `<tag>` is derived from the state directory, so `recover` finds the group to remove.
use crate::control::job::Placement;
use std::path::{Path, PathBuf};

/// What to do, decided from mountinfo and /proc/self/cgroup alone (tested on fixtures).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Make `dir` (a v1 cpu cgroup) with cpu.idle = 1; threads join by id.
    V1 { dir: PathBuf },
    /// Make `dir` (a v2 cgroup) with cpu.idle = 1, first enabling `+cpu` in
    /// `enable_in`/cgroup.subtree_control when given; the process joins.
    V2 {
        dir: PathBuf,
        enable_in: Option<PathBuf>,
    },
    /// Our own cgroup is idle already.
    Inherited { dir: PathBuf },
    /// Autogroup mode, with the reason.
    Fallback(String),
    /// Windows: the idle priority class, burner threads at idle priority in it.
    IdleClass,
}

/// The group's name for a state directory.
pub fn group_name(state_dir: &Path) -> String {
    format!("cro-burners-{}", state_dir_id(state_dir))
}

/// The name of a state directory's workers' group on Windows: their job object, which
/// `recover` ends as one (`sys::process::end_worker_group`).
pub fn workers_group_name(state_dir: &Path) -> String {
    format!("cro-workers-{}", state_dir_id(state_dir))
}

/// A short id of a state directory, the same however it is named (a hash of its
/// canonical path).
fn state_dir_id(state_dir: &Path) -> String {
    let canon = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    // FNV-1a: stable across runs and versions (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canon.as_os_str().as_encoded_bytes() {
        h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:08x}", h as u32)
}

/// (mount point, fstype, super options) of each cgroup mount in mountinfo.
fn cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            let mut r = right.split_whitespace();
            let fstype = r.next()?;
            let opts = r.nth(1).unwrap_or("");
            fstype.starts_with("cgroup").then(|| {
                (
                    crate::sys::fs::path_from_bytes(crate::worker::ballast::unescape(mount_point)),
                    fstype.to_string(),
                    opts.to_string(),
                )
            })
        })
        .collect()
}

fn join(mount: &Path, cgroup_path: &str) -> PathBuf {
    mount.join(cgroup_path.trim_start_matches('/'))
}

/// Decide where burners go. `exists` and `read` look at the cgroup filesystem (real or a
/// fixture).
pub fn plan(
    mountinfo: &str,
    proc_cgroup: &str,
    name: &str,
    exists: impl Fn(&Path) -> bool,
    read: impl Fn(&Path) -> Option<String>,
) -> Target {
    let mounts = cgroup_mounts(mountinfo);
    let (v2_path, v1) = crate::observe::parse_proc_cgroup(proc_cgroup);
    // v1 cpu controller first: where it is mounted, v2 cannot have it.
    let v1_cpu = mounts
        .iter()
        .find(|(_, t, o)| t == "cgroup" && o.split(',').any(|x| x == "cpu"));
    if let (Some((mp, _, _)), Some(path)) = (v1_cpu, v1.get("cpu")) {
        let own = join(mp, path);
        if !exists(&own.join("cpu.idle")) {
            return Target::Fallback(format!(
                "cgroup v1 cpu controller at {} has no cpu.idle (needs Linux 5.15 or later)",
                mp.display()
            ));
        }
        if read(&own.join("cpu.idle")).is_some_and(|v| v.trim() == "1") {
            return Target::Inherited { dir: own };
        }
        return Target::V1 {
            dir: own.join(name),
        };
    }
    let Some((mp, _, _)) = mounts.iter().find(|(_, t, _)| t == "cgroup2") else {
        return Target::Fallback("no cgroup filesystem with the cpu controller is mounted".into());
    };
    let Some(path) = v2_path else {
        return Target::Fallback("this process is in no cgroup v2 group".into());
    };
    let has_cpu = |dir: &Path, file: &str| {
        read(&dir.join(file)).is_some_and(|t| t.split_whitespace().any(|c| c == "cpu"))
    };
    let own = join(mp, &path);
    if read(&own.join("cpu.idle")).is_some_and(|v| v.trim() == "1") {
        return Target::Inherited { dir: own };
    }
    if !has_cpu(mp, "cgroup.controllers") {
        return Target::Fallback(format!(
            "cgroup v2 at {} does not offer the cpu controller",
            mp.display()
        ));
    }
    if path == "/" {
        return Target::V2 {
            dir: mp.join(name),
            enable_in: (!has_cpu(mp, "cgroup.subtree_control")).then(|| mp.clone()),
        };
    }
    if has_cpu(&own, "cgroup.subtree_control") {
        // A delegated subtree (systemd Delegate=yes): children may use cpu.
        return Target::V2 {
            dir: own.join(name),
            enable_in: None,
        };
    }
    Target::Fallback(format!(
        "cgroup v2: {} does not delegate the cpu controller to its children (run the \
         service with Delegate=yes, or CPUWeight=idle for the whole unit)",
        own.display()
    ))
}

/// `CRO_CPU_PLACEMENT=autogroup` keeps the burners out of any cgroup (an escape hatch,
/// and the A/B switch of bench/neighbours.sh).
pub const ENV: &str = "CRO_CPU_PLACEMENT";

/// The target on this host for `state_dir`.
pub fn plan_here(state_dir: &Path) -> Target {
    if cfg!(windows) {
        return Target::IdleClass;
    }
    if std::env::var(ENV).is_ok_and(|v| v == "autogroup") {
        return Target::Fallback(format!("{ENV}=autogroup"));
    }
    plan(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        &std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        &group_name(state_dir),
        |p| p.exists(),
        |p| std::fs::read_to_string(p).ok(),
    )
}

/// Make the group (idempotent); Err says why it could not be used.
pub fn prepare(t: &Target) -> std::result::Result<(), String> {
    let (dir, enable_in) = match t {
        Target::V1 { dir } => (dir, None),
        Target::V2 { dir, enable_in } => (dir, enable_in.as_ref()),
        Target::Inherited { .. } | Target::Fallback(_) | Target::IdleClass => return Ok(()),
    };
    if let Some(parent) = enable_in {
        let f = parent.join("cgroup.subtree_control");
        std::fs::write(&f, "+cpu")
            .map_err(|e| format!("cannot enable cpu in {}: {e}", f.display()))?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let idle = dir.join("cpu.idle");
    std::fs::write(&idle, "1").map_err(|e| format!("cannot write {}: {e}", idle.display()))
}

/// Move the calling thread (v1) or this whole process (v2) into the group.
pub fn enter(t: &Target, whole_process: bool) -> std::io::Result<()> {
    match t {
        Target::V1 { dir } if !whole_process => {
            std::fs::write(dir.join("tasks"), crate::sys::thread_id().to_string())
        }
        Target::V2 { dir, .. } if whole_process => {
            std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
        }
        _ => Ok(()),
    }
}

impl Target {
    /// How status describes it once in force.
    pub fn describe(&self) -> Placement {
        match self {
            Target::V1 { dir } | Target::V2 { dir, .. } => Placement {
                mode: "cgroup-idle".into(),
                cgroup: Some(dir.clone()),
                why: "burners in a cgroup with cpu.idle = 1: real work preempts them at once"
                    .into(),
            },
            Target::Inherited { dir } => Placement {
                mode: "unit-idle".into(),
                cgroup: Some(dir.clone()),
                why: "cro's own cgroup has cpu.idle = 1 (CPUWeight=idle)".into(),
            },
            Target::Fallback(why) => fallback(why),
            Target::IdleClass => Placement {
                mode: "idle-class".into(),
                cgroup: None,
                why: "burner threads at idle priority in the idle priority class: any thread \
                      at normal priority runs first"
                    .into(),
            },
        }
    }
}

pub fn fallback(why: &str) -> Placement {
    Placement {
        mode: "autogroup".into(),
        cgroup: None,
        why: format!(
            "SCHED_IDLE with autogroup nice 19 (a woken task may wait up to one scheduler tick): {why}"
        ),
    }
}

/// Remove the group of `state_dir` once empty (recover, removal of the cpu job). Whether
/// one was removed.
pub fn remove(state_dir: &Path) -> bool {
    match plan_here(state_dir) {
        Target::V1 { dir } | Target::V2 { dir, .. } => std::fs::remove_dir(&dir).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    const V2: &str = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

    fn fs(files: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        files
            .iter()
            .map(|(p, c)| (PathBuf::from(p), c.to_string()))
            .collect()
    }

    fn run(mi: &str, cg: &str, files: &BTreeMap<PathBuf, String>) -> Target {
        plan(
            mi,
            cg,
            "cro-burners-x",
            |p| files.contains_key(p),
            |p| files.get(p).cloned(),
        )
    }

    #[test]
    fn v1_cpu_controller_with_cpu_idle_gets_a_child_group() {
        let f = fs(&[("/sys/fs/cgroup/cpu/system.slice/cro.service/cpu.idle", "0")]);
        assert_eq!(
            run(
                HYBRID,
                "1:cpu:/system.slice/cro.service\n0::/system.slice/cro.service\n",
                &f
            ),
            Target::V1 {
                dir: "/sys/fs/cgroup/cpu/system.slice/cro.service/cro-burners-x".into()
            }
        );
        // co-mounted cpu,cpuacct (CentOS 7/8)
        let mi = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu\n";
        let f = fs(&[("/sys/fs/cgroup/cpu,cpuacct/cpu.idle", "0")]);
        assert_eq!(
            run(mi, "4:cpuacct,cpu:/\n", &f),
            Target::V1 {
                dir: "/sys/fs/cgroup/cpu,cpuacct/cro-burners-x".into()
            }
        );
    }

    #[test]
    fn an_old_kernel_without_cpu_idle_falls_back_and_says_why() {
        let t = run(HYBRID, "1:cpu:/\n", &fs(&[]));
        let Target::Fallback(why) = t else {
            panic!("{t:?}")
        };
        assert!(why.contains("5.15"), "{why}");
        assert_eq!(Target::Fallback(why).describe().mode, "autogroup");
    }

    #[test]
    fn v2_root_group_enables_cpu_and_a_delegated_subtree_is_used() {
        let f = fs(&[(
            "/sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory pids",
        )]);
        assert_eq!(
            run(V2, "0::/\n", &f),
            Target::V2 {
                dir: "/sys/fs/cgroup/cro-burners-x".into(),
                enable_in: Some("/sys/fs/cgroup".into())
            }
        );
        let f = fs(&[
            ("/sys/fs/cgroup/cgroup.controllers", "cpu memory"),
            (
                "/sys/fs/cgroup/system.slice/cro.service/cgroup.subtree_control",
                "cpu memory",
            ),
        ]);
        assert_eq!(
            run(V2, "0::/system.slice/cro.service\n", &f),
            Target::V2 {
                dir: "/sys/fs/cgroup/system.slice/cro.service/cro-burners-x".into(),
                enable_in: None
            }
        );
    }

    #[test]
    fn v2_service_without_delegation_falls_back_or_inherits_an_idle_unit() {
        let f = fs(&[("/sys/fs/cgroup/cgroup.controllers", "cpu memory")]);
        let t = run(V2, "0::/system.slice/cro.service\n", &f);
        assert!(
            matches!(&t, Target::Fallback(w) if w.contains("Delegate=yes")),
            "{t:?}"
        );
        let f = fs(&[
            ("/sys/fs/cgroup/cgroup.controllers", "cpu memory"),
            ("/sys/fs/cgroup/system.slice/cro.service/cpu.idle", "1\n"),
        ]);
        assert!(matches!(
            run(V2, "0::/system.slice/cro.service\n", &f),
            Target::Inherited { .. }
        ));
        let t = run(
            V2,
            "0::/\n",
            &fs(&[("/sys/fs/cgroup/cgroup.controllers", "memory")]),
        );
        assert!(
            matches!(&t, Target::Fallback(w) if w.contains("cpu controller")),
            "{t:?}"
        );
        assert!(matches!(run("", "", &fs(&[])), Target::Fallback(_)));
    }

    #[test]
    fn group_names_are_stable_per_state_dir() {
        let a = group_name(Path::new("/nonexistent/a"));
        assert_eq!(a, group_name(Path::new("/nonexistent/a")));
        assert_ne!(a, group_name(Path::new("/nonexistent/b")));
        assert!(a.starts_with("cro-burners-") && a.len() == "cro-burners-".len() + 8);
    }
}
