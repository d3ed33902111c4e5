//! `cro recover --legacy`: stop the original Python tool and delete its disk files, so an
//! operator switches over in two commands (`cro init --from-env`, `cro recover --legacy`).
//!
//! Its processes are Python interpreters running one of its four scripts; each is found
//! by its command line and checked again, through a pidfd where the kernel has one, right
//! before it is signalled (a PID reused in between is never signalled). Its disk files are
//! `temp_*.dat` regular files in the directories the operator names; nothing is followed
//! through a symlink.
use crate::sys::process::{self, Sig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The original tool's scripts, as they appear in a command line.
pub const SCRIPTS: [&str; 4] = [
    "dynamic_redundancy.py",
    "cpu_stresser.py",
    "memory_stresser.py",
    "disk_stresser.py",
];

/// A process of the original tool.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyProc {
    pub pid: i32,
    pub script: &'static str,
}

/// Which script a command line (/proc/PID/cmdline: NUL-separated) runs, if it is a Python
/// interpreter running one of the original tool's scripts.
pub fn script_of(cmdline: &[u8]) -> Option<&'static str> {
    let args: Vec<&[u8]> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let base = |a: &[u8]| -> Vec<u8> { a.rsplit(|&b| b == b'/').next().unwrap_or(a).to_vec() };
    let interp = base(args.first()?);
    if !interp.starts_with(b"python") {
        return None;
    }
    // the script is the first argument that is not an interpreter option
    let script = args[1..].iter().find(|a| !a.starts_with(b"-"))?;
    let name = base(script);
    SCRIPTS
        .iter()
        .copied()
        .find(|s| s.as_bytes() == name.as_slice())
}

fn cmdline(pid: i32) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/cmdline")).ok()
}

/// The original tool's processes running now.
pub fn find() -> Vec<LegacyProc> {
    let mut out: Vec<LegacyProc> = crate::observe::procs::pids()
        .into_iter()
        .filter_map(|pid| {
            let script = cmdline(pid).as_deref().and_then(script_of)?;
            Some(LegacyProc { pid, script })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// Signal `p` if it is still that script (`process::signal_if`).
fn signal(p: &LegacyProc, sig: Sig) -> bool {
    process::signal_if(p.pid, sig, || {
        cmdline(p.pid).as_deref().and_then(script_of) == Some(p.script)
    })
}

/// What `stop_and_clean` did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LegacyReport {
    /// (pid, script) stopped by SIGTERM, and by SIGKILL.
    pub stopped: Vec<(i32, String)>,
    pub killed: Vec<(i32, String)>,
    /// Still running after SIGKILL.
    pub left: Vec<(i32, String)>,
    /// temp_*.dat files deleted, and their bytes.
    pub deleted: Vec<PathBuf>,
    pub deleted_bytes: u64,
    /// What could not be done (a directory that cannot be read, a file that is a link).
    pub problems: Vec<String>,
}

/// Stop the original tool (SIGTERM, then SIGKILL after `grace`) and delete its temp_*.dat
/// files in `dirs`. With `dry_run`, only report what is there.
pub fn stop_and_clean(
    dirs: &[PathBuf],
    grace: Duration,
    dry_run: bool,
    progress: &mut dyn FnMut(&str),
) -> LegacyReport {
    let mut r = LegacyReport::default();
    let found = find();
    let name = |p: &LegacyProc| (p.pid, p.script.to_string());
    if dry_run {
        r.left = found.iter().map(name).collect();
    } else {
        for p in &found {
            progress(&format!(
                "stopping the original tool's {} (pid {})",
                p.script, p.pid
            ));
        }
        let alive = |ps: &[LegacyProc]| -> Vec<LegacyProc> {
            ps.iter()
                .filter(|p| cmdline(p.pid).as_deref().and_then(script_of) == Some(p.script))
                .cloned()
                .collect()
        };
        let e = crate::observe::procs::escalate(
            &found,
            grace,
            &signal,
            &alive,
            &|p| format!("{} (pid {})", p.script, p.pid),
            progress,
        );
        r.stopped = e.by_term.iter().map(name).collect();
        r.killed = e.by_kill.iter().map(name).collect();
        r.left = e.left.iter().map(name).collect();
    }
    for d in dirs {
        clean_dir(d, dry_run, &mut r, progress);
    }
    r
}

/// Is this one of the original disk stresser's files? `temp_<anything>.dat`.
pub fn is_temp_file_name(name: &str) -> bool {
    name.starts_with("temp_") && name.ends_with(".dat") && name.len() >= "temp_.dat".len()
}

fn clean_dir(dir: &Path, dry_run: bool, r: &mut LegacyReport, progress: &mut dyn FnMut(&str)) {
    use crate::sys::fs::{self as sysfs, Kind};
    let fd = match sysfs::open_dir_at(None, dir) {
        Ok(fd) => fd,
        Err(e) => {
            r.problems.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    let names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_temp_file_name(n))
            .collect(),
        Err(e) => {
            r.problems.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for n in names {
        let path = dir.join(&n);
        match sysfs::meta_at(&fd, &n) {
            Ok(m) if m.kind == Kind::File => {
                if !dry_run {
                    if let Err(e) = sysfs::unlink_at(&fd, &n) {
                        r.problems.push(format!("{}: {e}", path.display()));
                        continue;
                    }
                    progress(&format!(
                        "deleted {} ({})",
                        path.display(),
                        crate::format::human_bytes(m.allocated)
                    ));
                }
                r.deleted_bytes += m.allocated;
                r.deleted.push(path);
            }
            Ok(_) => r.problems.push(format!(
                "{} is not a regular file; left in place",
                path.display()
            )),
            Err(e) => r.problems.push(format!("{}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<u8> {
        a.join("\0").into_bytes()
    }

    #[test]
    fn only_python_running_one_of_the_four_scripts() {
        let yes = [
            (
                vec!["python3", "scripts/cpu_stresser.py", "--threads", "2"],
                "cpu_stresser.py",
            ),
            (
                vec![
                    "/usr/bin/python3.6",
                    "-u",
                    "/opt/cro/scripts/dynamic_redundancy.py",
                ],
                "dynamic_redundancy.py",
            ),
            (
                vec!["python", "memory_stresser.py", "512"],
                "memory_stresser.py",
            ),
            (
                vec!["/usr/local/bin/python2.7", "/x/disk_stresser.py", "/data"],
                "disk_stresser.py",
            ),
        ];
        for (a, s) in yes {
            assert_eq!(script_of(&argv(&a)), Some(s), "{a:?}");
        }
        for a in [
            vec!["bash", "scripts/cpu_stresser.py"],
            vec!["python3", "other.py", "cpu_stresser.py"],
            vec!["vim", "cpu_stresser.py"],
            vec!["python3", "cpu_stresser.py.bak"],
            vec!["python3"],
        ] {
            assert_eq!(script_of(&argv(&a)), None, "{a:?}");
        }
        assert!(is_temp_file_name("temp_0.dat"));
        assert!(!is_temp_file_name("temp.dat"));
        assert!(!is_temp_file_name("mytemp_0.dat"));
        assert!(!is_temp_file_name("temp_0.dat.keep"));
    }
}
