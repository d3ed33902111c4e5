//! The CPU worker: one SCHED_IDLE burner thread per usable CPU, duty-cycled over 100 ms
//! periods, and a ~1 s closed loop that holds the host's *total* CPU at the level:
//! synthetic = level - organic, never level on top of organic.
use super::{Ctx, End, placement};
use crate::error::Result;
use crate::observe;
use crate::state::jobs::JobSpec;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

const PERIOD: Duration = Duration::from_millis(100);

/// The pure part of the inner loop. Feed-forward from the gap, plus an integral term on
/// our own measured share: SCHED_IDLE threads get less than their duty when real work
/// wants the CPU, and the integral raises the duty only as far as idle CPU lets it.
#[derive(Debug, Clone, Default)]
pub struct CpuControl {
    bias: f64,
    prev_duty: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuStep {
    /// Busy fraction of each burner thread, 0..=1.
    pub duty: f64,
    /// The synthetic share we aim at, percent of the host.
    pub want_percent: f64,
}

impl CpuControl {
    /// `total` and `own` are percent of the whole host over the last interval.
    pub fn step(
        &mut self,
        level: f64,
        max_synthetic: f64,
        total: f64,
        own: f64,
        host_cpus: f64,
        threads: f64,
    ) -> CpuStep {
        let organic = observe::organic(total, own);
        let want = (level - organic).clamp(0.0, max_synthetic.min(100.0));
        // percent of host -> busy fraction per thread
        let scale = host_cpus / threads / 100.0;
        let ff = want * scale;
        let err = (want - own) * scale;
        // Integrate only when the burners had a duty last interval (otherwise `own` says
        // nothing about how they fare), and not while the output is pinned in the error's
        // direction (anti-windup).
        // The integral is what the burners lose to real work; it is kept while there is
        // nothing to add (so the next ramp starts from it) but not applied then. Gain 0.8
        // per second: stable while a duty step moves our share by less than 2.5x its
        // nominal effect, and about 3 s to settle when real work halves it.
        if want <= 0.0 {
            self.prev_duty = 0.0;
            return CpuStep {
                duty: 0.0,
                want_percent: 0.0,
            };
        }
        let pinned = (self.prev_duty >= 1.0 && err > 0.0) || (self.prev_duty <= 0.0 && err < 0.0);
        if self.prev_duty > 0.0 && !pinned {
            self.bias = (self.bias + 0.8 * err).clamp(-1.0, 1.0);
        }
        let duty = (ff + self.bias).clamp(0.0, 1.0);
        self.prev_duty = duty;
        CpuStep {
            duty,
            want_percent: want,
        }
    }
}

struct Shared {
    duty_ppm: AtomicU32,
    stop: AtomicBool,
    /// Where burner threads go (v1: each thread moves itself in).
    target: placement::Target,
    /// A burner could not join the idle group (it runs in autogroup mode).
    join_failed: AtomicBool,
}

fn burner(shared: Arc<Shared>) {
    if crate::sys::sched_idle().is_err() {
        tracing::error!(
            "cannot enter SCHED_IDLE; this burner will not run (it must never compete with real work)"
        );
        return;
    }
    if let Err(e) = placement::enter(&shared.target, false) {
        tracing::warn!("cannot move a burner into its idle cgroup: {e}");
        shared.join_failed.store(true, Ordering::Relaxed);
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while !shared.stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let duty = shared.duty_ppm.load(Ordering::Relaxed) as f64 / 1e6;
        if duty > 0.0 {
            // Spin until this thread has had duty x PERIOD of CPU (or the period is over:
            // a SCHED_IDLE thread gets nothing while real work runs, by design).
            let budget = duty * PERIOD.as_secs_f64();
            let t0 = crate::sys::cpu_seconds(true);
            'spin: loop {
                for _ in 0..2000 {
                    x = x.rotate_left(5) ^ x.wrapping_mul(0x2545_F491_4F6C_DD1D);
                }
                std::hint::black_box(x);
                if crate::sys::cpu_seconds(true) - t0 >= budget || start.elapsed() >= PERIOD {
                    break 'spin;
                }
            }
        }
        let left = PERIOD.saturating_sub(start.elapsed());
        if !left.is_zero() {
            std::thread::sleep(left);
        }
    }
}

/// Make the idle cgroup and, for v2, move this process into it; on any failure the
/// autogroup mode, with the reason.
fn place(state_dir: &std::path::Path) -> placement::Target {
    let t = placement::plan_here(state_dir);
    let placed = placement::prepare(&t).and_then(|()| {
        placement::enter(&t, true).map_err(|e| format!("cannot join the idle cgroup: {e}"))
    });
    match placed {
        Ok(()) => t,
        Err(why) => placement::Target::Fallback(why),
    }
}

/// The host's CPU and this worker's own, measured between two looks.
struct Meter {
    host_cpus: f64,
    prev_host: Option<observe::CpuTimes>,
    prev_own: f64,
    prev_at: Instant,
}

impl Meter {
    fn new(host_cpus: f64) -> Meter {
        Meter {
            host_cpus,
            prev_host: observe::read_cpu_times().ok(),
            prev_own: crate::sys::cpu_seconds(false),
            prev_at: Instant::now(),
        }
    }

    /// Since the last look: the host's total CPU and our own share (percent of the host),
    /// and our CPU clock now (seconds).
    fn look(&mut self) -> (f64, f64, f64) {
        let host = observe::read_cpu_times().ok();
        let own_now = crate::sys::cpu_seconds(false);
        let dt = self.prev_at.elapsed().as_secs_f64();
        let own = ((own_now - self.prev_own) / (dt * self.host_cpus) * 100.0).clamp(0.0, 100.0);
        let total = match (host, self.prev_host) {
            (Some(h), Some(p)) => h.percent_since(&p).unwrap_or(own),
            _ => own,
        };
        (self.prev_host, self.prev_own, self.prev_at) = (host, own_now, Instant::now());
        (total, own, own_now)
    }
}

/// One burner thread per usable CPU, each joining the idle group (v1) itself.
fn start_burners(shared: &Arc<Shared>, threads: usize) -> Result<Vec<std::thread::JoinHandle<()>>> {
    (0..threads)
        .map(|i| {
            let s = Arc::clone(shared);
            std::thread::Builder::new()
                .name(format!("cro-burn-{i}"))
                .spawn(move || burner(s))
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e| crate::error::Error::os("start burner threads", e))
}

pub fn run(ctx: &mut Ctx) -> Result<End> {
    // Autogroup nice 19 in any case: it is what holds where no idle cgroup can be had,
    // and harmless where one can (a task in a non-root cgroup has no autogroup).
    super::lower_autogroup();
    let target = place(&ctx.jobs.state_dir);
    let cg = observe::read_cgroup_limits();
    let usable = observe::usable_cpus(&cg);
    let host_cpus = observe::host_cpus() as f64;
    let threads = usable.ceil().max(1.0) as usize;
    let shared = Arc::new(Shared {
        duty_ppm: AtomicU32::new(0),
        stop: AtomicBool::new(false),
        target: target.clone(),
        join_failed: AtomicBool::new(false),
    });
    ctx.status.placement = Some(target.describe());
    let handles = start_burners(&shared, threads)?;
    tracing::info!(
        threads,
        usable_cpus = usable,
        host_cpus,
        "cpu worker running"
    );
    let mut ctl = CpuControl::default();
    let mut meter = Meter::new(host_cpus);
    let end = loop {
        if let Err(end) = ctx.poll() {
            break end;
        }
        ctx.sleep(Duration::from_secs(1));
        if ctx.stopping() {
            continue;
        }
        let (total, own, own_now) = meter.look();
        let JobSpec::Cpu {
            level_percent,
            max_synthetic_percent,
            ..
        } = ctx.spec
        else {
            break End::JobRemoved;
        };
        let step = ctl.step(
            level_percent,
            max_synthetic_percent,
            total,
            own,
            host_cpus,
            threads as f64,
        );
        shared
            .duty_ppm
            .store((step.duty * 1e6) as u32, Ordering::Relaxed);
        if shared.join_failed.swap(false, Ordering::Relaxed) {
            ctx.status.placement = Some(placement::fallback(
                "a burner thread could not join the idle cgroup (see the worker log)",
            ));
        }
        // Our share over the last second as measured (already an interval average; the
        // reconciler's history uses the cumulative CPU clock, not this figure).
        ctx.status.synthetic_percent = crate::format::round2(own);
        ctx.status.cpu_seconds_total = own_now;
        ctx.status.limited_by = (step.want_percent >= max_synthetic_percent
            && level_percent - observe::organic(total, own) > max_synthetic_percent)
            .then(|| format!("max_synthetic_percent {max_synthetic_percent}"));
        ctx.publish(false);
    };
    shared.stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    // v1: the burners have left the group with their exit; an empty group goes.
    if let placement::Target::V1 { dir } = &target {
        let _ = std::fs::remove_dir(dir);
    }
    ctx.status.cpu_seconds_total = crate::sys::cpu_seconds(false);
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_only_the_gap() {
        let mut c = CpuControl::default();
        // idle 2-CPU host, level 40: aim at 40 % of the host = 0.4 per thread
        let s = c.step(40.0, 90.0, 0.0, 0.0, 2.0, 2.0);
        assert_eq!(s.want_percent, 40.0);
        // organic 30 %: only 10 % synthetic
        let mut c = CpuControl::default();
        assert_eq!(c.step(40.0, 90.0, 30.0, 0.0, 2.0, 2.0).want_percent, 10.0);
        // organic above the level: nothing
        let mut c = CpuControl::default();
        let s = c.step(40.0, 90.0, 60.0, 0.0, 2.0, 2.0);
        assert_eq!((s.want_percent, s.duty), (0.0, 0.0));
    }

    #[test]
    fn converges_when_threads_get_less_than_duty() {
        // A model where real work takes one of two CPUs at 50 % of the host, and our
        // threads get only 60 % of their duty: the integral term must make up the rest.
        let mut c = CpuControl::default();
        let mut own = 0.0;
        for _ in 0..30 {
            let s = c.step(70.0, 90.0, 50.0 + own, own, 2.0, 2.0);
            own = s.duty * 2.0 / 2.0 * 100.0 * 0.6;
        }
        assert!((own - 20.0).abs() < 0.5, "own {own}");
    }

    #[test]
    fn respects_max_synthetic() {
        let mut c = CpuControl::default();
        let s = c.step(100.0, 30.0, 0.0, 0.0, 4.0, 4.0);
        assert_eq!(s.want_percent, 30.0);
        assert!((s.duty - 0.3).abs() < 1e-9);
    }
}
