//! The memory worker: ballast in 64 MiB anonymous mappings filled with non-repeating data,
//! grown and shrunk to hold used memory at the level, and given back at once (munmap /
//! MADV_DONTNEED; MADV_FREE frees nothing visible until pressure) when MemAvailable nears
//! the floor or memory pressure (PSI) rises. `oom_score_adj` 1000: if the kernel must
//! kill something, it kills us first.
use super::{Ctx, End, Noise};
use crate::error::Result;
use crate::observe::{self, Memory};
use crate::state::jobs::JobSpec;
use crate::sys::mem::Mapping;
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

/// Commit accounting under `vm.overcommit_memory = 2`, where MAP_NORESERVE is ignored:
/// every byte of ballast mapping is charged against CommitLimit, and real programs'
/// malloc and fork fail once Committed_AS reaches it, however much MemAvailable shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Commit {
    pub limit_bytes: u64,
    pub committed_bytes: u64,
    /// What our own mappings are charged (whole chunks).
    pub own_mapped_bytes: u64,
}

/// Pure: how much ballast to hold. `own` is what we hold now; `commit` is Some under
/// strict overcommit (mode 2).
pub fn target(
    level: f64,
    min_available_percent: f64,
    mem: &Memory,
    own: u64,
    pressure: bool,
    commit: Option<Commit>,
) -> MemStep {
    let total = mem.total_bytes as f64;
    // used as the desired state's memory.metric measures it; the floor is MemAvailable
    let used = mem.used_bytes as f64;
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
    if let Some(c) = commit {
        // The same floor and guard, on the commit headroom (CommitLimit - Committed_AS);
        // a chunk is charged whole when mapped, so one chunk's worth is kept in hand.
        let headroom = c.limit_bytes as f64 - c.committed_bytes as f64;
        let by_commit =
            (c.own_mapped_bytes as f64 + headroom - floor - guard - CHUNK as f64).max(0.0);
        if by_commit < t {
            t = by_commit;
            limited_by = Some(format!(
                "commit limit (vm.overcommit_memory = 2): keeping min_available_percent \
                 {min_available_percent} of memory free in commit headroom"
            ));
        }
    }
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
    map: Mapping,
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

    /// What our mappings are charged under strict overcommit (whole chunks).
    pub fn mapped(&self) -> u64 {
        (self.chunks.len() * CHUNK) as u64
    }

    /// Grow by up to `add` bytes (at most one chunk's worth per call, so the caller can
    /// re-check the floor between steps).
    pub fn grow(&mut self, add: u64) -> std::io::Result<()> {
        let add = (add as usize).min(CHUNK);
        if self.chunks.last().is_none_or(|c| c.filled == CHUNK) {
            self.chunks.push(Chunk {
                map: Mapping::new(CHUNK)?,
                filled: 0,
            });
        }
        let c = self.chunks.last_mut().expect("a chunk");
        let n = add.min(CHUNK - c.filled);
        self.noise
            .fill(&mut c.map.bytes_mut()[c.filled..c.filled + n]);
        c.filled += n;
        Ok(())
    }

    /// Give back everything above `keep` bytes, at once.
    pub fn shrink_to(&mut self, keep: u64) {
        // The system's page size: 64 KiB on many aarch64 kernels (Kylin, openEuler),
        // where a 4 KiB-aligned DONTNEED would be refused and free nothing.
        let page = crate::sys::page_size();
        while self.bytes() > keep {
            let excess = (self.bytes() - keep) as usize;
            let c = self.chunks.last_mut().expect("a chunk");
            if excess >= c.filled {
                // Dropping the mapping unmaps it.
                self.chunks.pop();
            } else {
                let new_filled = kept_when_trimming(c.filled, excess, page);
                if new_filled < c.filled {
                    if let Err(e) = c.map.discard_from(new_filled) {
                        // Nothing was freed: say so, and count the chunk as still full.
                        tracing::warn!("cannot give back memory (madvise): {e}");
                        break;
                    }
                    c.filled = new_filled;
                }
                break;
            }
        }
    }
}

/// Where a chunk filled to `filled` is cut to give back `excess` bytes: rounded up to a
/// page boundary (madvise works on whole pages; keeping a little more is the safe side),
/// never past what is filled.
pub fn kept_when_trimming(filled: usize, excess: usize, page: usize) -> usize {
    (filled.saturating_sub(excess).div_ceil(page) * page).min(filled)
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

/// After a failed mapping, wait this long before trying again (doubling up to MAX).
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Commit figures when the kernel enforces them (vm.overcommit_memory = 2).
fn strict_commit(mapped: u64) -> Option<Commit> {
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").ok()?;
    if mode.trim() != "2" {
        return None;
    }
    let (limit, committed) =
        observe::parse_commit(&std::fs::read_to_string("/proc/meminfo").ok()?)?;
    Some(Commit {
        limit_bytes: limit,
        committed_bytes: committed,
        own_mapped_bytes: mapped,
    })
}

fn set_oom_score_adj() {
    if let Err(e) = crate::sys::process::first_to_go_on_oom() {
        tracing::warn!("cannot set oom_score_adj: {e}");
    }
}

/// What the worker carries from one poll to the next.
struct Holding {
    ballast: Ballast,
    /// After memory pressure (PSI): no growth until then.
    hold_until: Option<Instant>,
    /// A failed mapping (an address-space limit, the commit limit) is retried after a
    /// pause, not in a loop: before this the worker spun at 99.5 % of a CPU logging
    /// ~8,000 lines a second.
    backoff: Duration,
    no_growth_until: Option<Instant>,
}

/// Below this difference the ballast is left as it is.
const DEADBAND: u64 = 16 * MIB;

pub fn run(ctx: &mut Ctx) -> Result<End> {
    set_oom_score_adj();
    let mut h = Holding {
        ballast: Ballast::new(),
        hold_until: None,
        backoff: BACKOFF_MIN,
        no_growth_until: None,
    };
    let end = loop {
        if let Err(end) = ctx.poll() {
            break end;
        }
        let JobSpec::Memory {
            level_percent,
            min_available_percent,
            metric,
            ..
        } = ctx.spec
        else {
            break End::JobRemoved;
        };
        let cg = observe::read_cgroup_limits();
        let mem = match observe::read_memory_as(&cg, metric) {
            Ok(m) => m,
            Err(e) => {
                // Blind: hold nothing rather than guess.
                ctx.quiet.warn(
                    "meminfo",
                    format_args!("cannot read memory usage, releasing ballast: {e}"),
                );
                h.ballast.shrink_to(0);
                ctx.sleep(Duration::from_secs(1));
                continue;
            }
        };
        let mut step = h.decide(level_percent, min_available_percent, &mem);
        h.apply(ctx, &mut step);
        ctx.status.ballast_bytes = h.ballast.bytes();
        ctx.status.ballast_target_bytes = step.target_bytes;
        ctx.status.synthetic_percent =
            crate::format::round2(observe::pct(h.ballast.bytes(), mem.total_bytes));
        ctx.status.limited_by = step.limited_by;
        let growing = h.ballast.bytes() + DEADBAND < step.target_bytes;
        ctx.publish(false);
        if !growing {
            ctx.sleep(Duration::from_millis(200));
        }
    };
    h.ballast.shrink_to(0);
    ctx.status.ballast_bytes = 0;
    Ok(end)
}

impl Holding {
    /// The ballast to hold now: the level's, held back after pressure or a failed mapping.
    fn decide(&mut self, level_percent: f64, min_available_percent: f64, mem: &Memory) -> MemStep {
        let pressure = observe::read_memory_psi().is_some_and(|p| p > PSI_HIGH);
        if pressure {
            self.hold_until = Some(Instant::now() + PSI_HOLD);
        }
        let now = Instant::now();
        let own = self.ballast.bytes();
        let commit = strict_commit(self.ballast.mapped());
        let mut step = target(
            level_percent,
            min_available_percent,
            mem,
            own,
            pressure,
            commit,
        );
        if self.hold_until.is_some_and(|t| now < t) && step.target_bytes > own {
            step.target_bytes = own;
            step.limited_by = Some("recent memory pressure (PSI)".into());
        }
        if self.no_growth_until.is_some_and(|t| now < t) && step.target_bytes > own {
            step.target_bytes = own;
            step.limited_by = Some("the last mapping failed; retrying later".into());
        }
        step
    }

    /// Grow or trim toward the step's target; a mapping that fails backs off.
    fn apply(&mut self, ctx: &mut Ctx, step: &mut MemStep) {
        let own = self.ballast.bytes();
        if step.target_bytes + DEADBAND / 2 < own
            || step.target_bytes < own && step.limited_by.is_some()
        {
            self.ballast.shrink_to(step.target_bytes);
        } else if step.target_bytes > own + DEADBAND {
            match self.ballast.grow(step.target_bytes - own) {
                Ok(()) => self.backoff = BACKOFF_MIN,
                Err(e) => {
                    ctx.quiet.warn(
                        "mmap",
                        format_args!(
                            "cannot map more ballast ({e}); holding {} MiB, retrying in {} s",
                            own / MIB,
                            self.backoff.as_secs()
                        ),
                    );
                    self.no_growth_until = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    step.target_bytes = own;
                    step.limited_by = Some(format!("cannot map more: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_cuts_on_the_systems_page_boundary() {
        const K: usize = 1024;
        // 4 KiB pages (x86_64): 10 KiB of excess, the cut rounded up to a page boundary,
        // so 8 KiB is given back
        assert_eq!(
            kept_when_trimming(64 * K * K, 10 * K, 4 * K),
            64 * K * K - 8 * K
        );
        // 64 KiB pages (many aarch64 kernels): a 4 KiB-aligned cut would be refused
        let cut = kept_when_trimming(64 * K * K, 10 * K, 64 * K);
        assert_eq!(cut % (64 * K), 0);
        assert_eq!(
            cut,
            64 * K * K,
            "less than a page of excess: nothing to give back"
        );
        let cut = kept_when_trimming(64 * K * K, 200 * K, 64 * K);
        assert_eq!(cut, 64 * K * K - 192 * K);
        // never past what is filled, and all of it when asked
        assert_eq!(kept_when_trimming(100 * K, 0, 64 * K), 100 * K);
        assert_eq!(kept_when_trimming(100 * K, 100 * K, 64 * K), 0);
    }
    const GIB: u64 = 1 << 30;

    fn mem(total: u64, avail: u64) -> Memory {
        Memory {
            total_bytes: total,
            available_bytes: avail,
            used_bytes: total - avail,
            cgroup_bounded: false,
        }
    }

    #[test]
    fn strict_overcommit_keeps_the_floor_of_commit_headroom() {
        // 16 GiB, plenty available, but only 3 GiB of commit headroom: the ballast stops
        // at headroom - floor (10 % = 1.6 GiB) - guard (1 % = 0.16 GiB) - one chunk.
        let c = Commit {
            limit_bytes: 8 * GIB,
            committed_bytes: 5 * GIB,
            own_mapped_bytes: 0,
        };
        let s = target(40.0, 10.0, &mem(16 * GIB, 14 * GIB), 0, false, Some(c));
        let want = 3.0 - 1.6 - 0.16 - 1.0 / 16.0;
        assert!(
            (s.target_bytes as f64 / GIB as f64 - want).abs() < 0.01,
            "{s:?}"
        );
        assert!(s.limited_by.unwrap().contains("commit limit"));
        // what we already hold is ours to keep counting: held 1 GiB (mapped 1 GiB) with
        // the same headroom left allows 1 GiB more than from nothing
        let held = Commit {
            own_mapped_bytes: GIB,
            ..c
        };
        let s2 = target(40.0, 10.0, &mem(16 * GIB, 13 * GIB), GIB, false, Some(held));
        assert!(
            (s2.target_bytes as f64 / GIB as f64 - (want + 1.0)).abs() < 0.01,
            "{s2:?}"
        );
        // no headroom beyond the floor: give it all back
        let tight = Commit {
            limit_bytes: 5 * GIB + GIB / 2,
            ..held
        };
        assert_eq!(
            target(
                40.0,
                10.0,
                &mem(16 * GIB, 13 * GIB),
                GIB,
                false,
                Some(tight)
            )
            .target_bytes,
            0
        );
    }

    #[test]
    fn fills_gap_to_level() {
        // 16 GiB, 2 GiB organic, no ballast, level 40 % -> 6.4 - 2 = 4.4 GiB
        let s = target(40.0, 10.0, &mem(16 * GIB, 14 * GIB), 0, false, None);
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
            None,
        );
        assert!((s2.target_bytes as i64 - s.target_bytes as i64).abs() < (1 << 20));
    }

    #[test]
    fn floor_wins_over_level() {
        // organic uses 14 of 16 GiB: the floor (10 % = 1.6 GiB + guard) forbids more ballast
        let s = target(40.0, 10.0, &mem(16 * GIB, 2 * GIB), 0, false, None);
        assert_eq!(s.target_bytes, 0);
        // holding 1 GiB when organic rises to leave 1.7 GiB available: shrink below the floor+guard
        let s = target(
            95.0,
            5.0,
            &mem(16 * GIB, (1.7 * GIB as f64) as u64),
            GIB,
            false,
            None,
        );
        let after_avail = 1.7 * GIB as f64 + GIB as f64 - s.target_bytes as f64;
        assert!(
            after_avail >= 0.05 * 16.0 * GIB as f64 + 0.16 * GIB as f64 - 1.0,
            "{s:?} leaves {after_avail}"
        );
        assert!(s.limited_by.is_some());
        // organic grows past the floor: the whole ballast goes
        let s = target(40.0, 10.0, &mem(16 * GIB, GIB), GIB, false, None);
        assert_eq!(s.target_bytes, 0);
    }

    #[test]
    fn pressure_gives_back() {
        let s = target(40.0, 10.0, &mem(16 * GIB, 10 * GIB), 4 * GIB, true, None);
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
