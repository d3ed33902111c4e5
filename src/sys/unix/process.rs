//! Signals and children.
use rustix::process::{Pid, Signal};
use std::os::fd::OwnedFd;

/// The signals cro sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Term,
    Kill,
}

impl Sig {
    fn to_rustix(self) -> Signal {
        match self {
            Sig::Term => Signal::TERM,
            Sig::Kill => Signal::KILL,
        }
    }
}

/// A descriptor that names one process for as long as we hold it, even if its PID is
/// reused (Linux >= 5.3; None on older kernels or when the process is gone).
pub fn pidfd(pid: i32) -> Option<OwnedFd> {
    let pid = Pid::from_raw(pid)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Signal `pid` only if `still()` says it is still the process meant. The pidfd is opened
/// before the check, so with one (Linux >= 5.3) the check and the signal name the same
/// process even if the PID is reused in between; older kernels fall back to kill(2) right
/// after the check.
pub fn signal_if(pid: i32, sig: Sig, still: impl FnOnce() -> bool) -> bool {
    let fd = pidfd(pid);
    if !still() {
        return false;
    }
    match fd {
        Some(fd) => signal_pidfd(&fd, sig),
        None => signal_pid(pid, sig),
    }
}

/// Signal the process a pidfd names.
pub fn signal_pidfd(fd: &OwnedFd, sig: Sig) -> bool {
    rustix::process::pidfd_send_signal(fd, sig.to_rustix()).is_ok()
}

/// Signal a process by PID (when no pidfd is to be had).
pub fn signal_pid(pid: i32, sig: Sig) -> bool {
    Pid::from_raw(pid).is_some_and(|p| rustix::process::kill_process(p, sig.to_rustix()).is_ok())
}

/// Reap one exited child without waiting; false when there is none.
pub fn reap_one() -> bool {
    matches!(
        rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG),
        Ok(Some(_))
    )
}

/// End this process at once, as a crash would (the crash points of `fault`).
pub fn kill_self() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL);
    std::process::abort()
}

/// Raise this process's soft limit on open files towards `want` (never above the hard
/// limit, never lowered). Returns the soft limit in force afterwards.
pub fn raise_fd_limit(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let cur = now.current.unwrap_or(u64::MAX);
    let target = now.maximum.map_or(want, |max| want.min(max));
    if cur >= target {
        return cur;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: now.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => target,
        Err(_) => cur,
    }
}

/// Show `name` as the program's name in ps and top (argv[0]).
pub fn set_arg0(cmd: &mut std::process::Command, name: &std::ffi::OsStr) {
    std::os::unix::process::CommandExt::arg0(cmd, name);
}

/// Lower this process's autogroup (its session's scheduling group) to nice 19.
pub fn lower_autogroup() -> std::io::Result<()> {
    std::fs::write("/proc/self/autogroup", "19")
}

/// Make this process the first the kernel's OOM killer picks (oom_score_adj 1000).
pub fn first_to_go_on_oom() -> std::io::Result<()> {
    std::fs::write("/proc/self/oom_score_adj", "1000")
}

/// Windows groups a state directory's workers in a job object; here nothing is needed:
/// the burners share their idle cgroup, and `recover` finds every worker through /proc.
pub fn join_worker_group(_group: &str) -> std::io::Result<()> {
    Ok(())
}

/// (Windows': end the workers' job object.) Nothing is left here once each worker found
/// through /proc is stopped.
pub fn end_worker_group(_group: &str) -> std::io::Result<u32> {
    Ok(0)
}
