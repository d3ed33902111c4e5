//! Linux (and other Unix) implementations of the platform seam (see ../mod.rs).
pub mod fs;
pub mod mem;
pub mod process;
mod raw;

pub use raw::{ioprio_idle, online_cpus, sched_idle};

/// The effective user id of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Clock ticks per second, the unit of /proc/PID/stat's utime and stime.
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// CPU seconds used by this thread (`thread`) or this whole process.
pub fn cpu_seconds(thread: bool) -> f64 {
    use rustix::time::{ClockId, clock_gettime};
    let ts = clock_gettime(if thread {
        ClockId::ThreadCPUTime
    } else {
        ClockId::ProcessCPUTime
    });
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// This thread's id (for a cgroup's `tasks` file).
pub fn thread_id() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// Point this process's stdout and stderr at `f` (a rotated log's fresh file).
pub fn redirect_output(f: &std::fs::File) -> std::io::Result<()> {
    rustix::stdio::dup2_stdout(f)?;
    rustix::stdio::dup2_stderr(f)?;
    Ok(())
}

/// The page size the kernel reports.
pub fn real_page_size() -> usize {
    rustix::param::page_size()
}

/// Take the slot lock inherited as descriptor `fd` (checked by the caller: not a standard
/// stream, taken once).
pub fn take_inherited_lock(fd: i32) -> std::io::Result<std::fs::File> {
    // SAFETY: the reconciler opened this descriptor and handed it to this process for
    // exactly this (spawn_detached_with_lock); the caller takes it once and it is not a
    // standard stream, and a worker opens nothing by number, so nothing else owns it.
    unsafe { raw::take_inherited_fd(fd) }
}

/// Set `flag` when the process is asked to stop (SIGTERM, SIGINT).
pub fn on_stop(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::io::Result<()> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&flag))?;
    }
    Ok(())
}

/// Set `flag` when the process is asked to read its configuration again (SIGHUP, what
/// `systemctl reload` sends).
pub fn on_reload(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::io::Result<()> {
    signal_hook::flag::register(signal_hook::consts::SIGHUP, flag)?;
    Ok(())
}

/// Where root keeps the host claim: a tmpfs a reboot clears.
pub fn system_run_dir() -> std::path::PathBuf {
    std::path::PathBuf::from("/run/cro")
}

/// Windows' service control manager has no counterpart here: systemd runs the daemon as
/// it is (`cro reconcile`, the packaged cro.service).
pub fn run_as_service(_name: &str, _body: Box<dyn FnOnce() -> i32 + Send>) -> std::io::Result<i32> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "no service control manager on this platform",
    ))
}

/// (Windows': "not started by the service control manager".)
pub fn not_under_scm(_e: &std::io::Error) -> bool {
    false
}

/// No event log here: the journal has the daemon's lines (logging picks journald).
pub fn event_log(_level: tracing::Level, _text: &str) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "no Windows event log on this platform",
    ))
}

/// Start a worker (`cmd`: `cro worker --job ...`) in a session of its own, handing it the
/// slot lock we hold as its descriptor 3 (`--lock-fd 3`): the lock is never free between
/// us and the worker. Our copy of the descriptor is closed on return; the child's keeps
/// the lock held.
pub fn spawn_worker(
    cmd: &mut std::process::Command,
    lock: std::fs::File,
) -> std::io::Result<std::process::Child> {
    cmd.arg("--lock-fd").arg("3");
    raw::spawn_detached_with_lock(cmd, &lock)
}
