//! Every call into the operating system that the standard library does not cover, made
//! safe here, behind the same functions on every platform: the platform seam.
//!
//! `unix/` (Linux: rustix for descriptors, *at() calls, statvfs, fallocate, pidfd, signals,
//! waitpid and clocks; memmap2 for the memory ballast; the few raw calls no safe crate
//! offers in `unix/raw.rs`) and `windows/` (windows-sys: GetSystemTimes,
//! GlobalMemoryStatusEx, GetDiskFreeSpaceExW, priority classes). The rest of cro calls
//! `crate::sys::...` and never names a platform; where a platform has no such thing (a
//! cgroup, PSI, a pidfd) its function says so in its result (None, an empty list, an
//! `Unsupported` error) rather than with a `cfg` at the caller. This is the only place in
//! cro with `unsafe`: the crate denies `unsafe_code` everywhere else (src/lib.rs).
mod meta;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

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
    take_inherited_lock(fd)
}

/// The system's page size: 4 KiB on x86_64, 64 KiB on many aarch64 kernels (Kylin,
/// openEuler), where a 4 KiB-aligned `madvise` is refused.
///
/// `CRO_PAGE_SIZE` stands in for a larger page size in tests (an emulator cannot change
/// the host's): it is taken only as a power-of-two multiple of the real page size, up to
/// 2 MiB, so every address aligned to it is aligned for the kernel too.
pub fn page_size() -> usize {
    let injected = std::env::var("CRO_PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    page_size_from(real_page_size(), injected)
}

fn page_size_from(real: usize, injected: Option<usize>) -> usize {
    match injected {
        Some(p) if p.is_power_of_two() && p >= real && p <= 2 << 20 => p,
        _ => real,
    }
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
    fn cpu_clocks_advance_with_work() {
        let (p0, t0) = (cpu_seconds(false), cpu_seconds(true));
        let mut x = 1u64;
        // 100 ms of this thread's CPU; the process's clock must show at least 50 ms of it
        // (Wine keeps the process's time in coarser steps than the thread's)
        while cpu_seconds(true) - t0 < 0.1 {
            x = std::hint::black_box(x.wrapping_mul(3));
        }
        let p = cpu_seconds(false) - p0;
        assert!(p >= 0.05, "process clock advanced {p} s");
    }

    #[test]
    #[cfg(windows)]
    fn windows_says_whether_memory_is_low() {
        // an idle test machine is not short of memory
        assert_eq!(low_memory(), Some(false));
    }
}
