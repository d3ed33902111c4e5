//! Level decisions: for each slot the desired state asks for, the policy's level from the
//! window and the observation, held steady against small moves. Pure: the caller passes
//! the observation, the window and the job slots as found.
use crate::control::desired::Resolved;
use crate::control::job::JobFound;
use crate::control::observation::{self as observe, Observation};
use crate::control::plan;
use crate::control::policy::{self, Decision};
use crate::control::slot::Slot;
use crate::control::window::Windows;
use std::collections::BTreeMap;

/// A job whose level the policy wants moved by less than LEVEL_STEP points keeps it until
/// its file is LEVEL_HOLD_S old. A mean over a window of days gains nothing from following
/// organic load's every dip, and each rewrite is churn: the soak saw a level flip
/// 0 <-> 1 every few ticks. A large move (a percentile burst) applies at once, and so does
/// an operator's new target (`prev` is None then). With three jobs, at most 12 small
/// rewrites an hour in all.
pub const LEVEL_HOLD_S: f64 = 900.0;
pub const LEVEL_STEP: f64 = 5.0;

pub fn hold_small_change(prev: f64, wanted: f64, written_at: Option<f64>, now: f64) -> bool {
    (wanted - prev).abs() < LEVEL_STEP
        && written_at.is_some_and(|w| now >= w && now - w < LEVEL_HOLD_S)
}

/// The level for a small move (under LEVEL_STEP points from `prev`, the job's level for
/// the same target): kept while the job is fresh, else the wanted level at once (a step
/// that small is within a minute of the rate limit anyway, and a ramp's last points would
/// otherwise wait a hold each). None: not a small move; the policy's rate-limited level.
pub fn small_change(
    prev: Option<f64>,
    wanted: f64,
    written_at: Option<f64>,
    now: f64,
) -> Option<f64> {
    let p = prev?;
    if (wanted - p).abs() >= LEVEL_STEP {
        return None;
    }
    Some(if hold_small_change(p, wanted, written_at, now) {
        p
    } else {
        wanted
    })
}

/// Levels for every job from the policy, with each resource's decision (for status).
pub fn decide_levels(
    desired: &Resolved,
    windows: &Windows,
    obs: &Observation,
    found: &[JobFound],
) -> (plan::Levels, BTreeMap<String, Decision>) {
    let [cpu, memory, disk] = policy::rules(desired);
    let window_s = desired.window_days as f64 * 86_400.0;
    // The policy is asked again at the next tick; from cron that may be later than
    // interval_seconds, as the observed interval tells.
    let tick_s = (desired.interval_seconds as f64).max(obs.interval_s);
    // The level moves gently from the job's level only while the target is the one it
    // was planned for: an operator's change of target takes effect at once.
    let prev = |id: &str, target: f64| {
        found
            .iter()
            .find(|f| f.id == id)
            .and_then(|f| f.job.as_ref())
            .filter(|j| j.spec.target_percent() == target)
            .map(|j| j.spec.level_percent())
    };
    let mut levels = plan::Levels::new();
    let mut decisions = BTreeMap::new();
    let mut decide = |slot: Slot,
                      rule: &policy::Rule,
                      series: Option<&crate::control::window::Series>,
                      organic_now: f64| {
        let id = slot.id();
        let empty = crate::control::window::Series::default();
        let prev_level = prev(&id, rule.target);
        let d = policy::decide(&policy::Input {
            now: obs.at,
            window_s,
            tick_s,
            target: rule.target,
            statistic: rule.statistic,
            limits: rule.limits,
            series: series.unwrap_or(&empty),
            prev_level,
            organic_now: Some(organic_now),
            defer_in_first_window: desired.defers_in_first_window(),
        });
        let written_at = found.iter().find(|f| f.id == id).and_then(|f| f.written_at);
        let level = small_change(prev_level, d.wanted, written_at, obs.at).unwrap_or(d.level);
        levels.insert(id, level);
        decisions.insert(slot.label(), d);
    };
    if let Some(r) = &cpu {
        decide(
            Slot::Cpu,
            r,
            Some(&windows.cpu),
            observe::organic(obs.cpu_total_percent, obs.cpu_synthetic_percent),
        );
    }
    if let Some(r) = &memory {
        decide(
            Slot::Memory,
            r,
            Some(&windows.memory),
            observe::organic(obs.memory.used_percent(), obs.memory_synthetic_percent()),
        );
    }
    if let Some(r) = &disk {
        for (m, o) in &obs.disks {
            let organic = observe::organic(
                o.usage.used_percent(),
                observe::pct(o.synthetic_bytes, o.usage.capacity_bytes()),
            );
            let series = windows.disk.get(&m.display().to_string());
            decide(Slot::disk(m), r, series, organic);
        }
    }
    (levels, decisions)
}

#[cfg(test)]
mod hold_tests {
    use super::*;

    #[test]
    fn small_changes_wait_for_the_hold_large_ones_do_not() {
        // 1 -> 0 or 1 -> 4 five minutes after the write: held
        assert!(hold_small_change(1.0, 0.0, Some(1000.0), 1300.0));
        assert!(hold_small_change(1.0, 4.0, Some(1000.0), 1300.0));
        // once the job file is old enough, or for a large move (a burst), not held
        assert!(!hold_small_change(
            1.0,
            0.0,
            Some(1000.0),
            1000.0 + LEVEL_HOLD_S
        ));
        assert!(!hold_small_change(1.0, 31.0, Some(1000.0), 1001.0));
        // unknown write time or a clock that went backwards: never frozen
        assert!(!hold_small_change(1.0, 0.0, None, 1001.0));
        assert!(!hold_small_change(1.0, 0.0, Some(1000.0), 500.0));
        // after the hold a small move lands on the wanted level at once (a ramp's tail);
        // a large one is left to the rate-limited level
        assert_eq!(
            small_change(Some(25.0), 29.9, Some(1000.0), 1300.0),
            Some(25.0)
        );
        assert_eq!(small_change(Some(25.0), 30.1, Some(1000.0), 1300.0), None);
        assert_eq!(
            small_change(Some(26.0), 30.0, Some(1000.0), 2000.0),
            Some(30.0)
        );
        assert_eq!(small_change(None, 30.0, Some(1000.0), 1300.0), None);
    }
}
