//! Processes on Windows: ended by handle (TerminateProcess); Windows has no signals to
//! ask a process to stop, so both `Sig`s end it.
use windows_sys::Win32::Foundation::CloseHandle;
use windows_sys::Win32::System::Threading as th;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Term,
    Kill,
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

/// The job object all of one state directory's workers join (`Global\<group>`, or
/// `Local\` where the global namespace is refused: a user without the privilege to
/// create global objects).
fn group_names(group: &str) -> [Vec<u16>; 2] {
    [
        super::wide(&format!("Global\\{group}")),
        super::wide(&format!("Local\\{group}")),
    ]
}

/// Put this process (a worker) in its state directory's job object, made by the first
/// worker and kept while any worker holds it open: `end_worker_group` ends them as one.
/// (A job inside the job this process may already be in: Windows 8 / Server 2012 on.)
pub fn join_worker_group(group: &str) -> std::io::Result<()> {
    use windows_sys::Win32::System::JobObjects as job;
    let mut last = None;
    for name in group_names(group) {
        // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the call; no
        // security attributes (the default: Administrators and SYSTEM). Null is checked.
        let h = unsafe { job::CreateJobObjectW(std::ptr::null(), name.as_ptr()) };
        if h.is_null() {
            last = Some(std::io::Error::last_os_error());
            continue;
        }
        // SAFETY: `h` is the job just opened; the pseudo-handle names this process.
        let joined =
            super::win!(unsafe { job::AssignProcessToJobObject(h, th::GetCurrentProcess()) });
        // The handle stays open for the process's life: it keeps the job (and its name)
        // alive for `end_worker_group` while this worker runs.
        return joined;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no job object name")))
}

/// End every process in the state directory's job object (workers no status file names
/// any more, after the per-worker stop): how many were still running. Zero when no
/// worker ever made the job or all have ended.
pub fn end_worker_group(group: &str) -> std::io::Result<u32> {
    use windows_sys::Win32::System::JobObjects as job;
    // JOB_OBJECT_QUERY | JOB_OBJECT_TERMINATE (winnt.h).
    const ACCESS: u32 = 0x0004 | 0x0008;
    for name in group_names(group) {
        // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the call. Null
        // (no such job) is checked.
        let h = unsafe { job::OpenJobObjectW(ACCESS, 0, name.as_ptr()) };
        if h.is_null() {
            continue;
        }
        let mut info = job::JOBOBJECT_BASIC_ACCOUNTING_INFORMATION::default();
        // SAFETY: `h` is an open job handle with JOB_OBJECT_QUERY; `info` is a writable
        // struct of the size passed; no return length is asked for.
        let queried = super::win!(unsafe {
            job::QueryInformationJobObject(
                h,
                job::JobObjectBasicAccountingInformation,
                (&raw mut info).cast(),
                std::mem::size_of_val(&info) as u32,
                std::ptr::null_mut(),
            )
        });
        let running = if queried.is_ok() {
            info.ActiveProcesses
        } else {
            0
        };
        // SAFETY: `h` is an open job handle with JOB_OBJECT_TERMINATE.
        let ended = super::win!(unsafe { job::TerminateJobObject(h, 1) });
        // SAFETY: `h` is open and closed exactly once, here.
        unsafe { CloseHandle(h) };
        ended?;
        return Ok(running);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const CHILD: &str = "CRO_TEST_WORKER_GROUP";

    /// The child's part of the next test: join the group, then wait to be ended (a
    /// worker's life). Without the variable (a plain test run) it does nothing.
    #[test]
    fn worker_group_child() {
        if let Ok(group) = std::env::var(CHILD) {
            join_worker_group(&group).expect("join the group");
            std::thread::sleep(Duration::from_secs(60));
        }
    }

    /// A process in a state directory's job object ends with `end_worker_group`, which
    /// counts it: how `recover` ends a worker no status file names.
    #[test]
    fn ending_the_workers_group_ends_a_worker_in_it() {
        let group = format!("cro-workers-test-{}", std::process::id());
        assert_eq!(end_worker_group(&group).unwrap(), 0, "no group yet");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sys::windows::process::tests::worker_group_child",
            ])
            .env(CHILD, &group)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut ended = 0;
        while ended == 0 && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(200));
            ended = end_worker_group(&group).unwrap();
        }
        let status = child.wait().unwrap();
        assert_eq!(ended, 1, "the child was never in the group");
        assert_eq!(
            status.code(),
            Some(1),
            "ended by the job, not by itself: {status:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "it slept its minute out"
        );
    }
}
