//! The memory worker: ballast in 64 MiB anonymous mappings filled with non-repeating data,
//! grown and shrunk to hold used memory at the level, and given back at once (munmap /
//! MADV_DONTNEED; MADV_FREE frees nothing visible until pressure) when MemAvailable nears
//! the floor or memory pressure (PSI) rises. `oom_score_adj` 1000: if the kernel must
//! kill something, it kills us first.
use super::{Ctx, End, Noise};
use crate::error::Result;
use crate::observe::{self, Memory};
use crate::queue::JobSpec;
use std::time::{Duration, Instant};

pub const CHUNK: usize = 64 << 20;
const MIB: u64 = 1 << 20;
/// PSI `some avg10` above this (percent of time stalled) means real work waits on memory.
const PSI_HIGH: f64 = 5.0;
/// After pressure, do not grow again for this long.
const PSI_HOLD: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct MemStep {
    pub target_bytes: u64,
    pub limited_by: Option<String>,
}

/// Pure: how much ballast to hold. `own` is what we hold now.
pub fn target(
    level: f64,
    min_available_percent: f64,
    mem: &Memory,
    own: u64,
    pressure: bool,
) -> MemStep {
    let total = mem.total_bytes as f64;
    let used = total - mem.available_bytes as f64;
    let organic = (used - own as f64).max(0.0);
    let want = (level / 100.0 * total - organic).max(0.0);
    // Keep a guard band above the floor so a real allocation between two of our
    // readings (200 ms) does not push MemAvailable below it.
    let guard = (0.01 * total).max(64.0 * MIB as f64);
    let floor = min_available_percent / 100.0 * total;
    let allowed = (own as f64 + mem.available_bytes as f64 - floor - guard).max(0.0);
    let mut t = want.min(allowed);
    let mut limited_by =
        (allowed < want).then(|| format!("min_available_percent {min_available_percent}"));
    if pressure {
        t = t.min(own as f64 * 0.75);
        limited_by = Some("memory pressure (PSI)".into());
    }
    MemStep {
        target_bytes: t as u64,
        limited_by,
    }
}

/// A mapping of CHUNK bytes of which the first `filled` are touched.
struct Chunk {
    ptr: *mut u8,
    filled: usize,
}

pub struct Ballast {
    chunks: Vec<Chunk>,
    noise: Noise,
}

impl Ballast {
    pub fn new() -> Ballast {
        Ballast {
            chunks: vec![],
            noise: Noise::new(),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.filled as u64).sum()
    }

    /// Grow by up to `add` bytes (at most one chunk's worth per call, so the caller can
    /// re-check the floor between steps).
    pub fn grow(&mut self, add: u64) -> std::io::Result<()> {
        let add = (add as usize).min(CHUNK);
        if self.chunks.last().is_none_or(|c| c.filled == CHUNK) {
            // SAFETY: anonymous private mapping; checked for MAP_FAILED below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    CHUNK,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            self.chunks.push(Chunk {
                ptr: p as *mut u8,
                filled: 0,
            });
        }
        let c = self.chunks.last_mut().expect("a chunk");
        let n = add.min(CHUNK - c.filled);
        // SAFETY: [filled, filled+n) lies inside the CHUNK-long mapping we own.
        let region = unsafe { std::slice::from_raw_parts_mut(c.ptr.add(c.filled), n) };
        self.noise.fill(region);
        c.filled += n;
        Ok(())
    }

    /// Give back everything above `keep` bytes, at once.
    pub fn shrink_to(&mut self, keep: u64) {
        let page = 4096usize;
        while self.bytes() > keep {
            let excess = (self.bytes() - keep) as usize;
            let c = self.chunks.last_mut().expect("a chunk");
            if excess >= c.filled {
                // SAFETY: unmapping a whole mapping we created and no longer reference.
                unsafe { libc::munmap(c.ptr as *mut libc::c_void, CHUNK) };
                self.chunks.pop();
            } else {
                // Drop the tail of this chunk, page-aligned (keep is a little generous).
                let new_filled = (c.filled - excess).div_ceil(page) * page;
                if new_filled < c.filled {
                    // SAFETY: the range is inside our mapping; DONTNEED frees the pages now.
                    unsafe {
                        libc::madvise(
                            c.ptr.add(new_filled) as *mut libc::c_void,
                            c.filled - new_filled,
                            libc::MADV_DONTNEED,
                        )
                    };
                }
                c.filled = new_filled;
                break;
            }
        }
    }
}

impl Default for Ballast {
    fn default() -> Self {
        Ballast::new()
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

fn set_oom_score_adj() {
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", "1000") {
        tracing::warn!("cannot set oom_score_adj: {e}");
    }
}

pub fn run(ctx: &mut Ctx) -> Result<End> {
    set_oom_score_adj();
    let mut ballast = Ballast::new();
    let mut hold_until: Option<Instant> = None;
    let end = loop {
        if let Err(end) = ctx.poll() {
            break end;
        }
        let JobSpec::Memory {
            level_percent,
            min_available_percent,
            ..
        } = ctx.spec
        else {
            break End::JobRemoved;
        };
        let cg = observe::read_cgroup_limits();
        let mem = match observe::read_memory(&cg) {
            Ok(m) => m,
            Err(e) => {
                // Blind: hold nothing rather than guess.
                ctx.quiet.warn(
                    "meminfo",
                    format_args!("cannot read memory usage, releasing ballast: {e}"),
                );
                ballast.shrink_to(0);
                ctx.sleep(Duration::from_secs(1));
                continue;
            }
        };
        let psi = observe::read_memory_psi();
        let pressure = psi.is_some_and(|p| p > PSI_HIGH);
        if pressure {
            hold_until = Some(Instant::now() + PSI_HOLD);
        }
        let held_back = hold_until.is_some_and(|t| Instant::now() < t);
        let own = ballast.bytes();
        let mut step = target(level_percent, min_available_percent, &mem, own, pressure);
        if held_back && step.target_bytes > own {
            step.target_bytes = own;
            step.limited_by = Some("recent memory pressure (PSI)".into());
        }
        let deadband = 16 * MIB;
        if step.target_bytes + deadband / 2 < own
            || step.target_bytes < own && step.limited_by.is_some()
        {
            ballast.shrink_to(step.target_bytes);
        } else if step.target_bytes > own + deadband {
            if let Err(e) = ballast.grow(step.target_bytes - own) {
                tracing::warn!("cannot map more ballast: {e}");
            }
        }
        ctx.status.ballast_bytes = ballast.bytes();
        ctx.status.ballast_target_bytes = step.target_bytes;
        ctx.status.synthetic_percent =
            (observe::pct(ballast.bytes(), mem.total_bytes) * 100.0).round() / 100.0;
        ctx.status.limited_by = step.limited_by;
        let growing = ballast.bytes() + deadband < step.target_bytes;
        ctx.publish(false);
        if !growing {
            ctx.sleep(Duration::from_millis(200));
        }
    };
    ballast.shrink_to(0);
    ctx.status.ballast_bytes = 0;
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    const GIB: u64 = 1 << 30;

    fn mem(total: u64, avail: u64) -> Memory {
        Memory {
            total_bytes: total,
            available_bytes: avail,
            cgroup_bounded: false,
        }
    }

    #[test]
    fn fills_gap_to_level() {
        // 16 GiB, 2 GiB organic, no ballast, level 40 % -> 6.4 - 2 = 4.4 GiB
        let s = target(40.0, 10.0, &mem(16 * GIB, 14 * GIB), 0, false);
        assert!(
            (s.target_bytes as f64 / GIB as f64 - 4.4).abs() < 0.01,
            "{s:?}"
        );
        assert_eq!(s.limited_by, None);
        // the same with 4.4 GiB already held: stable
        let s2 = target(
            40.0,
            10.0,
            &mem(16 * GIB, 14 * GIB - 4_724_464_025),
            4_724_464_025,
            false,
        );
        assert!((s2.target_bytes as i64 - s.target_bytes as i64).abs() < (1 << 20));
    }

    #[test]
    fn floor_wins_over_level() {
        // organic uses 14 of 16 GiB: the floor (10 % = 1.6 GiB + guard) forbids more ballast
        let s = target(40.0, 10.0, &mem(16 * GIB, 2 * GIB), 0, false);
        assert_eq!(s.target_bytes, 0);
        // holding 1 GiB when organic rises to leave 1.7 GiB available: shrink below the floor+guard
        let s = target(
            95.0,
            5.0,
            &mem(16 * GIB, (1.7 * GIB as f64) as u64),
            GIB,
            false,
        );
        let after_avail = 1.7 * GIB as f64 + GIB as f64 - s.target_bytes as f64;
        assert!(
            after_avail >= 0.05 * 16.0 * GIB as f64 + 0.16 * GIB as f64 - 1.0,
            "{s:?} leaves {after_avail}"
        );
        assert!(s.limited_by.is_some());
        // organic grows past the floor: the whole ballast goes
        let s = target(40.0, 10.0, &mem(16 * GIB, GIB), GIB, false);
        assert_eq!(s.target_bytes, 0);
    }

    #[test]
    fn pressure_gives_back() {
        let s = target(40.0, 10.0, &mem(16 * GIB, 10 * GIB), 4 * GIB, true);
        assert_eq!(s.target_bytes, 3 * GIB);
    }

    #[test]
    fn ballast_grows_and_shrinks() {
        let mut b = Ballast::new();
        b.grow(10 << 20).unwrap();
        b.grow(CHUNK as u64).unwrap();
        assert_eq!(b.bytes(), (10 << 20) + (CHUNK as u64 - (10 << 20)));
        b.grow(5 << 20).unwrap();
        assert_eq!(b.bytes(), CHUNK as u64 + (5 << 20));
        b.shrink_to(3 << 20);
        assert_eq!(b.bytes(), 3 << 20);
        b.shrink_to(0);
        assert_eq!(b.bytes(), 0);
    }
}
