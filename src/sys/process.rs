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
