//! Windows implementations of the platform seam (see ../mod.rs), over windows-sys. Each
//! call is made once, here, with the reason it is sound; the functions keep the Linux
//! side's names and meanings (a reading of the same thing, said in the same units).
//!
//! Windows has no signals, no /proc and no lock hand-over: see `spawn_worker` and
//! `process` for what stands in for them.
pub mod fs;
pub mod mem;
pub mod process;
mod service;
pub use service::{not_under_scm, run_as_service};

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use windows_sys::Win32::Foundation::FILETIME;
use windows_sys::Win32::System::Threading as th;

/// One call that returns a Win32 BOOL, checked: `Err(last OS error)` when it failed.
macro_rules! win {
    ($call:expr) => {
        if $call == 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
}
pub(crate) use win;

fn ticks(t: FILETIME) -> u64 {
    (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime)
}

fn zero() -> FILETIME {
    FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    }
}

/// The host's cumulative (busy, total) CPU time over all processors, in 100 ns units
/// (GetSystemTimes: kernel time includes idle time).
pub fn system_times() -> io::Result<(u64, u64)> {
    let (mut idle, mut kernel, mut user) = (zero(), zero(), zero());
    // SAFETY: three valid, writable FILETIMEs that outlive the call.
    win!(unsafe { th::GetSystemTimes(&mut idle, &mut kernel, &mut user) })?;
    let total = ticks(kernel) + ticks(user);
    Ok((total.saturating_sub(ticks(idle)), total))
}

/// What Windows reports of physical memory and commit (GlobalMemoryStatusEx), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStatus {
    pub total: u64,
    pub available: u64,
    /// The commit limit (physical memory plus page files) and what is left of it.
    pub commit_limit: u64,
    pub commit_available: u64,
}

pub fn memory_status() -> io::Result<MemoryStatus> {
    use windows_sys::Win32::System::SystemInformation::{GlobalMemoryStatusEx, MEMORYSTATUSEX};
    // SAFETY: MEMORYSTATUSEX is plain data; all zeros is a valid value.
    let mut m: MEMORYSTATUSEX = unsafe { std::mem::zeroed() };
    m.dwLength = std::mem::size_of::<MEMORYSTATUSEX>() as u32;
    // SAFETY: `m` is a valid, writable MEMORYSTATUSEX with dwLength set, as the call needs.
    win!(unsafe { GlobalMemoryStatusEx(&mut m) })?;
    Ok(MemoryStatus {
        total: m.ullTotalPhys,
        available: m.ullAvailPhys,
        commit_limit: m.ullTotalPageFile,
        commit_available: m.ullAvailPageFile,
    })
}

/// Windows has no user ids of this kind: files are judged by their ACLs, which cro does
/// not read yet, so every file reads as owned by "0", the user running cro.
pub fn euid() -> u32 {
    0
}

/// CPU seconds used by this thread (`thread`) or this whole process.
pub fn cpu_seconds(thread: bool) -> f64 {
    let (mut c, mut e, mut k, mut u) = (zero(), zero(), zero(), zero());
    // SAFETY: the pseudo-handles of the current thread and process need no closing and
    // stay valid; the four FILETIMEs are valid, writable and outlive the call.
    let r = unsafe {
        if thread {
            th::GetThreadTimes(th::GetCurrentThread(), &mut c, &mut e, &mut k, &mut u)
        } else {
            th::GetProcessTimes(th::GetCurrentProcess(), &mut c, &mut e, &mut k, &mut u)
        }
    };
    if r == 0 {
        return 0.0;
    }
    (ticks(k) + ticks(u)) as f64 / 1e7
}

/// This thread's id.
pub fn thread_id() -> i32 {
    // SAFETY: no arguments, no preconditions.
    unsafe { th::GetCurrentThreadId() as i32 }
}

/// Point this process's standard output and error at `f` (a rotated log's fresh file).
pub fn redirect_output(f: &std::fs::File) -> io::Result<()> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::System::Console::{STD_ERROR_HANDLE, STD_OUTPUT_HANDLE, SetStdHandle};
    for which in [STD_OUTPUT_HANDLE, STD_ERROR_HANDLE] {
        // SAFETY: the handle is open while `f` lives; the caller keeps the file open for
        // as long as output goes there (the worker's log, held to the end).
        win!(unsafe { SetStdHandle(which, f.as_raw_handle()) })?;
    }
    Ok(())
}

/// The page size Windows reports.
pub fn real_page_size() -> usize {
    use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};
    // SAFETY: SYSTEM_INFO is plain data; all zeros is valid; the call only writes it.
    let mut si: SYSTEM_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: `si` is valid and writable.
    unsafe { GetSystemInfo(&mut si) };
    (si.dwPageSize as usize).max(4096)
}

/// Processors active now, in every processor group.
pub fn online_cpus() -> usize {
    // SAFETY: takes a group number and has no other preconditions.
    let n = unsafe { th::GetActiveProcessorCount(th::ALL_PROCESSOR_GROUPS) };
    (n as usize).max(1)
}

/// Run this thread (and the process's other threads) only when nothing else wants a CPU:
/// the idle priority class, and idle priority for this thread within it. Real work at
/// normal priority always runs first.
pub fn sched_idle() -> io::Result<()> {
    // SAFETY: the pseudo-handles need no closing; the calls take plain integers.
    unsafe {
        win!(th::SetPriorityClass(
            th::GetCurrentProcess(),
            th::IDLE_PRIORITY_CLASS
        ))?;
        win!(th::SetThreadPriority(
            th::GetCurrentThread(),
            th::THREAD_PRIORITY_IDLE
        ))
    }
}

/// Background mode: this process's disk and memory priority drop to the lowest.
pub fn ioprio_idle() -> io::Result<()> {
    // SAFETY: as above.
    win!(unsafe {
        th::SetPriorityClass(th::GetCurrentProcess(), th::PROCESS_MODE_BACKGROUND_BEGIN)
    })
}

/// Start a worker (`cmd`: `cro worker --job ...`) detached from the reconciler (no
/// console; its own process group; out of the reconciler's job object where that job
/// allows it, so a scheduled task's end does not end the worker). Windows cannot hand a
/// LockFileEx lock to another process, so the slot lock is let go just before the start
/// and the worker takes it itself; the state lock the reconciler holds keeps every other
/// reconciler away meanwhile, and a second worker for the slot finds it taken and exits.
pub fn spawn_worker(
    cmd: &mut std::process::Command,
    lock: std::fs::File,
) -> io::Result<std::process::Child> {
    use std::os::windows::process::CommandExt;
    const DETACHED_PROCESS: u32 = 0x0000_0008;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    const CREATE_BREAKAWAY_FROM_JOB: u32 = 0x0100_0000;
    // Let go of the lock before the worker looks for it (closing the handle would too,
    // but Windows may release a closed handle's locks a moment later). std unlocks twice
    // (a shared and an exclusive lock); Wine answers the second with ERROR_LOCK_VIOLATION
    // rather than ERROR_NOT_LOCKED, which std passes on: the lock is gone either way.
    let _ = lock.unlock();
    drop(lock);
    let flags = DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP;
    match cmd
        .creation_flags(flags | CREATE_BREAKAWAY_FROM_JOB)
        .spawn()
    {
        // a job that does not allow breaking away refuses the flag
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => cmd.creation_flags(flags).spawn(),
        r => r,
    }
}

/// Windows workers take their slot lock themselves (`spawn_worker`): `--lock-fd` is
/// refused.
pub fn take_inherited_lock(_fd: i32) -> io::Result<std::fs::File> {
    Err(not_yet(
        "--lock-fd (a slot lock inherited from the reconciler)",
    ))
}

pub(crate) fn not_yet(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is not supported on Windows in this version of cro"),
    )
}

/// Where the host claim is kept: %ProgramData%\cro\run (an absolute path: a service's
/// working directory is System32, and a path without a drive would land on its drive).
pub fn system_run_dir() -> std::path::PathBuf {
    let data = std::env::var_os("ProgramData")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "C:\\ProgramData".into());
    std::path::PathBuf::from(data).join("cro").join("run")
}

/// The flags `on_stop` set: a service stop sets them as Ctrl+C does.
static STOP_FLAGS: std::sync::Mutex<Vec<Arc<AtomicBool>>> = std::sync::Mutex::new(Vec::new());

/// Set `flag` when the process is asked to stop: Ctrl+C or Ctrl+Break in a console
/// (SIGINT/SIGTERM of the C runtime), a stop or a system shutdown under the service control
/// manager (`ask_to_stop`).
pub fn on_stop(flag: Arc<AtomicBool>) -> io::Result<()> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    STOP_FLAGS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(flag);
    Ok(())
}

/// Ask every part that called `on_stop` to stop (the service's stop control).
fn ask_to_stop() {
    for f in STOP_FLAGS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        f.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One line in the Application event log under the source "cro" (install.ps1 registers
/// it with .NET's message file, which shows the text as written): warnings and errors,
/// and the service's start and stop. Not registered, Windows still keeps the line.
pub fn event_log(level: tracing::Level, text: &str) -> io::Result<()> {
    use std::sync::OnceLock;
    use windows_sys::Win32::System::EventLog as ev;
    static SOURCE: OnceLock<usize> = OnceLock::new();
    let h = *SOURCE.get_or_init(|| {
        let name = wide("cro");
        // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the call; a null
        // server name is the local computer. A null result is checked below.
        unsafe { ev::RegisterEventSourceW(std::ptr::null(), name.as_ptr()) as usize }
    });
    if h == 0 {
        return Err(io::Error::last_os_error());
    }
    let kind = match level {
        tracing::Level::ERROR => ev::EVENTLOG_ERROR_TYPE,
        tracing::Level::WARN => ev::EVENTLOG_WARNING_TYPE,
        _ => ev::EVENTLOG_INFORMATION_TYPE,
    };
    // The event log's limit for one string is 31,839 characters.
    let text: String = text.chars().take(31_000).collect();
    let text = wide(&text);
    let strings = [text.as_ptr()];
    // SAFETY: `h` is the event source opened above (kept for the process's life);
    // `strings` holds one valid NUL-terminated UTF-16 pointer that outlives the call; no
    // user SID and no raw data.
    win!(unsafe {
        ev::ReportEventW(
            h as _,
            kind,
            0,
            1,
            std::ptr::null_mut(),
            1,
            0,
            strings.as_ptr(),
            std::ptr::null(),
        )
    })
}

/// `s` as a NUL-terminated UTF-16 string.
fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Windows has no reload signal: a change to the desired file is seen by the watch.
pub fn on_reload(_flag: Arc<AtomicBool>) -> io::Result<()> {
    Ok(())
}

/// Is Windows signalling low memory now (CreateMemoryResourceNotification's low-memory
/// object: physical memory is running short)? None when the signal cannot be read.
pub fn low_memory() -> Option<bool> {
    use std::sync::OnceLock;
    use windows_sys::Win32::System::Memory as vm;
    // One notification object for the process's life (it is a handle to a system event;
    // closing it would gain nothing). Kept as an address: a HANDLE is a raw pointer.
    static OBJECT: OnceLock<usize> = OnceLock::new();
    let h = *OBJECT.get_or_init(|| {
        // SAFETY: takes an enumeration value; a null result is checked by the caller.
        let h = unsafe { vm::CreateMemoryResourceNotification(vm::LowMemoryResourceNotification) };
        h as usize
    });
    if h == 0 {
        return None;
    }
    let mut state = 0;
    // SAFETY: `h` is the notification handle made above, open for the process's life;
    // `state` is a valid, writable BOOL.
    win!(unsafe { vm::QueryMemoryResourceNotification(h as _, &mut state) }).ok()?;
    Some(state != 0)
}
