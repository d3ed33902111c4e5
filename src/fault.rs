//! Crash points for the crash-injection tests: `CRO_CRASH_AT=<point>[:<n>]` makes the
//! process kill itself with SIGKILL (no destructors, no flush: a real kill -9) the n-th
//! time (default the first) it passes `point`. Unset, a point costs one relaxed load.
//!
//! Compiled into every build on purpose: the tests drive the very binary operators run,
//! and an operator can reproduce a reported crash the same way. It only ever kills the
//! process that reads the variable. The points are the `CrashPoint`s; `tests/faults.rs`
//! runs each (its exhaustive match on the enum will not compile past a new point it does
//! not run).
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub const ENV: &str = "CRO_CRASH_AT";

/// Every crash point, in the order a tick (then recover) passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// state lock held, nothing read yet
    TickStart,
    /// counters.json written
    AfterSense,
    /// a durable file's temp is written and synced, not renamed
    BeforeRename,
    /// renamed, directory not synced
    AfterRename,
    /// a job file published
    AfterWriteJob,
    /// slot locked, worker not started
    AfterLockSlot,
    /// worker started, our copy of the lock not yet closed
    AfterSpawn,
    /// job file deleted, worker maybe still running
    RemoveAfterDelete,
    /// worker gone, its ballast still on disk
    RemoveBeforeBallast,
    /// half a history line written, no newline
    HistoryTorn,
    /// record appended, retention not run
    AfterHistory,
    /// recover: workers stopped, ballast not yet deleted
    RecoverAfterStop,
    /// recover: ballast deleted, job files not yet
    RecoverAfterBallast,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 13] = [
        CrashPoint::TickStart,
        CrashPoint::AfterSense,
        CrashPoint::BeforeRename,
        CrashPoint::AfterRename,
        CrashPoint::AfterWriteJob,
        CrashPoint::AfterLockSlot,
        CrashPoint::AfterSpawn,
        CrashPoint::RemoveAfterDelete,
        CrashPoint::RemoveBeforeBallast,
        CrashPoint::HistoryTorn,
        CrashPoint::AfterHistory,
        CrashPoint::RecoverAfterStop,
        CrashPoint::RecoverAfterBallast,
    ];

    /// As `CRO_CRASH_AT` names it.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::TickStart => "tick-start",
            CrashPoint::AfterSense => "after-sense",
            CrashPoint::BeforeRename => "before-rename",
            CrashPoint::AfterRename => "after-rename",
            CrashPoint::AfterWriteJob => "after-write-job",
            CrashPoint::AfterLockSlot => "after-lock-slot",
            CrashPoint::AfterSpawn => "after-spawn",
            CrashPoint::RemoveAfterDelete => "remove-after-delete",
            CrashPoint::RemoveBeforeBallast => "remove-before-ballast",
            CrashPoint::HistoryTorn => "history-torn",
            CrashPoint::AfterHistory => "after-history",
            CrashPoint::RecoverAfterStop => "recover-after-stop",
            CrashPoint::RecoverAfterBallast => "recover-after-ballast",
        }
    }
}

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
                CrashPoint::ALL.map(CrashPoint::name).join(", ")
            );
            if !CrashPoint::ALL.iter().any(|p| p.name() == point) {
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
pub fn hit(point: CrashPoint) -> bool {
    match armed() {
        Some(a) if a.point == point.name() => a.seen.fetch_add(1, Ordering::Relaxed) + 1 == a.nth,
        _ => false,
    }
}

/// Die here, as `kill -9` would, when armed for this point.
pub fn point(point: CrashPoint) {
    if hit(point) {
        crash();
    }
}

pub fn crash() -> ! {
    crate::sys::process::kill_self()
}
