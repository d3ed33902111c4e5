//! Processes on Windows: ended by handle (TerminateProcess); Windows has no signals to
//! ask a process to stop, so both `Sig`s end it.
use windows_sys::Win32::Foundation::CloseHandle;
use windows_sys::Win32::System::Threading as th;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Term,
    Kill,
}

/// Windows has no pidfd; a process handle (OpenProcess) plays its part.
pub fn pidfd(_pid: i32) -> Option<std::fs::File> {
    None
}

/// End `pid` only if `still()` says it is still the process meant. The handle is opened
/// before the check, so the check and the end name the same process.
pub fn signal_if(pid: i32, _sig: Sig, still: impl FnOnce() -> bool) -> bool {
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    // SAFETY: plain integers in; a null handle on failure is checked below.
    let h = unsafe { th::OpenProcess(th::PROCESS_TERMINATE, 0, pid) };
    if h.is_null() {
        return false;
    }
    let ok = still() && {
        // SAFETY: `h` is an open process handle with PROCESS_TERMINATE access.
        unsafe { th::TerminateProcess(h, 1) != 0 }
    };
    // SAFETY: `h` is open and closed exactly once, here.
    unsafe { CloseHandle(h) };
    ok
}

pub fn signal_pidfd(_fd: &std::fs::File, _sig: Sig) -> bool {
    false
}

pub fn signal_pid(pid: i32, sig: Sig) -> bool {
    signal_if(pid, sig, || true)
}

/// Windows reaps exited children itself.
pub fn reap_one() -> bool {
    false
}

/// End this process at once, as a crash would.
pub fn kill_self() -> ! {
    std::process::abort()
}

/// Windows has no per-process limit on open handles of this kind.
pub fn raise_fd_limit(want: u64) -> u64 {
    want
}

/// Windows shows the executable's own name.
pub fn set_arg0(_cmd: &mut std::process::Command, _name: &std::ffi::OsStr) {}

/// When process `pid` started (Unix seconds) and the CPU seconds it has used (kernel +
/// user, all threads); None when it is gone or not ours to query.
pub fn times(pid: u32) -> Option<(f64, f64)> {
    let z = || windows_sys::Win32::Foundation::FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut c, mut e, mut k, mut u) = (z(), z(), z(), z());
    // SAFETY: plain integers in; a null handle on failure is checked below.
    let h = unsafe { th::OpenProcess(th::PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if h.is_null() {
        return None;
    }
    // SAFETY: `h` is an open process handle with query access; the FILETIMEs are valid
    // and writable.
    let ok = unsafe { th::GetProcessTimes(h, &mut c, &mut e, &mut k, &mut u) } != 0;
    // SAFETY: `h` is open and closed exactly once, here.
    unsafe { CloseHandle(h) };
    let t = |f: windows_sys::Win32::Foundation::FILETIME| {
        ((u64::from(f.dwHighDateTime) << 32) | u64::from(f.dwLowDateTime)) as f64 / 1e7
    };
    // FILETIME counts 100 ns from 1601-01-01; Unix time starts 11,644,473,600 s later.
    ok.then(|| (t(c) - 11_644_473_600.0, t(k) + t(u)))
}

/// Windows has no autogroups: the idle priority class is the whole of it.
pub fn lower_autogroup() -> std::io::Result<()> {
    Ok(())
}

/// Windows has no OOM killer to steer; the memory worker gives its ballast back when
/// available memory nears the floor.
pub fn first_to_go_on_oom() -> std::io::Result<()> {
    Ok(())
}
