//! Every call into the kernel that the standard library does not cover, made safe here.
//!
//! Most go through rustix (checked results, owned descriptors, `io::Error` on failure) and
//! memmap2 (mappings that unmap themselves). The few calls no safe crate offers
//! (sched_setscheduler, ioprio_set, sysconf, the fork-to-exec hand-over, MADV_DONTNEED on
//! a mapping we own) are made raw, each once, in `raw.rs`, with a SAFETY comment. This is
//! the only place in cro with `unsafe`: the crate denies `unsafe_code` everywhere else
//! (src/lib.rs).
pub mod fs;
pub mod mem;
pub mod process;
mod raw;

pub use raw::{ioprio_idle, online_cpus, sched_idle, spawn_detached_with_lock};

/// The slot lock the reconciler handed this worker as descriptor `fd` (`--lock-fd 3`),
/// taken once per process; a standard stream (0-2) or a second call is refused.
pub fn take_slot_lock_fd(fd: i32) -> std::io::Result<std::fs::File> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if fd <= 2 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--lock-fd {fd} is standard input, output or error"),
        ));
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the slot lock was already taken",
        ));
    }
    // SAFETY: the reconciler opened this descriptor and handed it to this process for
    // exactly this (spawn_detached_with_lock); it is taken once (TAKEN) and is not a
    // standard stream, and a worker opens nothing by number, so nothing else owns it.
    unsafe { raw::take_inherited_fd(fd) }
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The system's page size: 4 KiB on x86_64, 64 KiB on many aarch64 kernels (Kylin,
/// openEuler), where a 4 KiB-aligned `madvise` is refused.
///
/// `CRO_PAGE_SIZE` stands in for a larger page size in tests (an emulator cannot change
/// the host's): it is taken only as a power-of-two multiple of the real page size, up to
/// 2 MiB, so every address aligned to it is aligned for the kernel too.
pub fn page_size() -> usize {
    let real = rustix::param::page_size();
    let injected = std::env::var("CRO_PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    page_size_from(real, injected)
}

fn page_size_from(real: usize, injected: Option<usize>) -> usize {
    match injected {
        Some(p) if p.is_power_of_two() && p >= real && p <= 2 << 20 => p,
        _ => real,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_injected_page_size_is_taken_only_as_a_larger_power_of_two() {
        let f = page_size_from;
        assert_eq!(f(4096, None), 4096);
        assert_eq!(f(4096, Some(65536)), 65536);
        assert_eq!(
            f(65536, Some(4096)),
            65536,
            "never smaller than the real one"
        );
        assert_eq!(f(4096, Some(65535)), 4096);
        assert_eq!(f(4096, Some(1 << 30)), 4096);
    }

    #[test]
    fn a_discarded_tail_reads_as_zeros_and_the_head_is_kept() {
        let page = page_size();
        let mut m = mem::Mapping::new(4 * page).unwrap();
        m.bytes_mut().fill(7);
        m.discard_from(2 * page).unwrap();
        assert!(m.bytes_mut()[..2 * page].iter().all(|&b| b == 7));
        assert!(m.bytes_mut()[2 * page..].iter().all(|&b| b == 0));
        // not page-aligned: refused, and nothing changes
        assert!(m.discard_from(page + 1).is_err());
        assert_eq!(m.bytes_mut()[page + 1], 7);
    }

    #[test]
    fn a_symlinked_directory_is_refused_and_at_calls_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("link")).unwrap();
        let base = fs::open_dir_at(None, t.path()).unwrap();
        assert!(fs::open_dir_at(Some(&base), "link").is_err());
        let real = fs::open_dir_at(Some(&base), "real").unwrap();
        fs::mkdir_at(&real, "d", 0o700).unwrap();
        fs::mkdir_at(&real, "d", 0o700).unwrap(); // exists: fine
        let f = fs::create_at(&real, "f", 0o600).unwrap();
        fs::allocate(&f, 0, 1 << 20).unwrap();
        let m = fs::meta_at(&real, "f").unwrap();
        assert_eq!((m.kind, m.mode, m.uid), (fs::Kind::File, 0o600, euid()));
        assert!(m.allocated >= 1 << 20, "{m:?}");
        assert_eq!(fs::meta_at(&base, "link").unwrap().kind, fs::Kind::Symlink);
        fs::unlink_at(&real, "f").unwrap();
        fs::rmdir_at(&real, "d").unwrap();
        assert_eq!(std::fs::read_dir(t.path().join("real")).unwrap().count(), 0);
    }

    #[test]
    fn cpu_clocks_advance_with_work() {
        let (p0, t0) = (cpu_seconds(false), cpu_seconds(true));
        let mut x = 1u64;
        while cpu_seconds(true) - t0 < 0.02 {
            x = std::hint::black_box(x.wrapping_mul(3));
        }
        assert!(cpu_seconds(false) - p0 >= 0.02);
    }
}
