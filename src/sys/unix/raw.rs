//! The calls no safe crate offers, each made once, each with the reason it is sound.
//! Every other module reaches the kernel through rustix, memmap2 or std.
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Run this process at SCHED_IDLE: it gets a CPU only when nothing else wants it.
pub fn sched_idle() -> io::Result<()> {
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: `p` is a valid sched_param that outlives the call; pid 0 is this thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Put this process in the idle I/O class: its disk I/O waits for everyone else's.
pub fn ioprio_idle() -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3 << 13;
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            IOPRIO_CLASS_IDLE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// CPUs online now (sysconf: not bounded by affinity or cgroup, unlike
/// `available_parallelism`).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf takes an integer name and has no other preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 { n as usize } else { 1 }
}

/// Start `cmd` in a session of its own (it outlives a cron run and its terminal) with
/// `lock` as its descriptor 3: the locked slot it inherits.
pub fn spawn_detached_with_lock(cmd: &mut Command, lock: &File) -> io::Result<Child> {
    let fd = lock.as_raw_fd();
    // SAFETY: the closure runs between fork and exec, so it may only make
    // async-signal-safe calls: setsid, fcntl and dup2 are; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // dup2 clears close-on-exec on the copy; when the lock already is fd 3, clear it.
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
    cmd.spawn()
}

/// Take ownership of a descriptor this process inherited (the worker's slot lock, named
/// by `--lock-fd`), after checking it is open; it is made close-on-exec.
///
/// # Safety
/// `fd` must be a descriptor nothing else in this process owns or will close: the
/// returned `File` closes it when dropped. An open descriptor that something else owns
/// (std's stdin, a socket) would be closed under its owner.
pub unsafe fn take_inherited_fd(fd: i32) -> io::Result<File> {
    // F_GETFD fails with EBADF on a descriptor that is not open.
    // SAFETY: fcntl with F_GETFD/F_SETFD on an integer touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if fd < 0 || flags < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--lock-fd {fd} is not an open descriptor"),
        ));
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the caller promises nothing else owns `fd` (this function's contract).
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Drop the pages of `region` (which lies in a private anonymous mapping we own) now.
pub(super) fn discard(region: &mut [u8]) -> io::Result<()> {
    if region.is_empty() {
        return Ok(());
    }
    // SAFETY: the region is memory of a private anonymous mapping borrowed mutably, so no
    // other reference sees the pages turn to zeros; DONTNEED neither unmaps nor moves it.
    let r = unsafe {
        libc::madvise(
            region.as_mut_ptr().cast(),
            region.len(),
            libc::MADV_DONTNEED,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
