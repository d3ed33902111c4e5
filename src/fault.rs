//! Crash points for the crash-injection tests: `CRO_CRASH_AT=<point>[:<n>]` makes the
//! process kill itself with SIGKILL (no destructors, no flush: a real kill -9) the n-th
//! time (default the first) it passes `point`. Unset, a point costs one relaxed load.
//!
//! Compiled into every build on purpose: the tests drive the very binary operators run,
//! and an operator can reproduce a reported crash the same way. It only ever kills the
//! process that reads the variable. The points are listed in `POINTS` and exercised by
//! `tests/faults.rs` (a test checks that every point is).
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub const ENV: &str = "CRO_CRASH_AT";

/// Every crash point, in the order a tick passes them.
pub const POINTS: &[&str] = &[
    "tick-start",            // state lock held, nothing read yet
    "after-sense",           // counters.json written
    "before-rename",         // a durable file's temp is written and synced, not renamed
    "after-rename",          // renamed, directory not synced
    "after-write-job",       // a job file published
    "after-lock-slot",       // slot locked, worker not started
    "after-spawn",           // worker started, our copy of the lock not yet closed
    "remove-after-delete",   // job file deleted, worker maybe still running
    "remove-before-ballast", // worker gone, its ballast still on disk
    "history-torn",          // half a history line written, no newline
    "after-history",         // record appended, retention not run
    "recover-after-stop",    // recover: workers stopped, ballast not yet deleted
    "recover-after-ballast", // recover: ballast deleted, job files not yet
];

struct Armed {
    point: String,
    nth: u32,
    seen: AtomicU32,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var(ENV).ok()?;
            let (point, nth) = match v.split_once(':') {
                Some((p, n)) => (p.to_string(), n.parse().ok()?),
                None => (v, 1),
            };
            // Loud: an operator who finds this set on a production host must know at once.
            eprintln!(
                "cro: WARNING: {ENV}={point}:{nth} is set: this process will kill itself \
                 (SIGKILL) at that point. It is for crash tests only; unset it. Points: {}",
                POINTS.join(", ")
            );
            if !POINTS.contains(&point.as_str()) {
                eprintln!("cro: WARNING: {ENV}: {point:?} is not a crash point");
            }
            Some(Armed {
                point,
                nth,
                seen: AtomicU32::new(0),
            })
        })
        .as_ref()
}

/// True when this pass of `point` is the one to crash at (counts the pass).
pub fn hit(point: &str) -> bool {
    match armed() {
        Some(a) if a.point == point => a.seen.fetch_add(1, Ordering::Relaxed) + 1 == a.nth,
        _ => false,
    }
}

/// Die here, as `kill -9` would, when armed for this point.
pub fn point(point: &str) {
    if hit(point) {
        crash();
    }
}

pub fn crash() -> ! {
    crate::sys::process::kill_self()
}
