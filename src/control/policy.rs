//! The level policy: the total a worker should hold now so the target is met over the
//! window at close to the least synthetic cost. Pure and causal: it sees only the past
//! (the hourly series of the history) and the clock it is given.
//!
//! Both statistics plan for the window that ends at `now + H`:
//! - while the history is younger than the window, H runs to the end of the first window
//!   (pace the deficit over the time that is left);
//! - after that H is one hour (or one tick if longer): keep the rolling window compliant
//!   an hour ahead, which also catches up after gaps within that bounded horizon.
//!
//! The records of that future window that already exist are known (K); the rest (H) is
//! predicted from the distribution of organic load seen in the window so far.
//!
//! **mean**: every percent-second of synthetic load adds the same to the mean whenever it
//! is added, so the least cost is exactly the deficit `target × W − Σ organic`. Holding the
//! total at the target ("fill the gap") pays for every organic dip even when organic peaks
//! already paid for them; instead we solve for the level ℓ with
//! `K + H · E[max(o, ℓ)] = (target + margin) · W` (organic peaks above ℓ are credited),
//! so the window ends at the target plus a small margin.
//!
//! **pNN**: only a share s = (100 − NN) % of the window must reach the target. We pad
//! in bursts, only while organic load is at or above a threshold θ chosen so that
//! P(o ≥ θ) = q, the share of the remaining time that must still be "good": those are the
//! moments when organic is closest to the target, the cheapest ones to lift.
use crate::control::desired::{Resolved, Statistic};
use crate::control::window::{self, Agg, BINS, Series};
use crate::format::round2;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Highest total the worker may hold (e.g. 100 − min_available_percent for memory).
    pub max_level: f64,
    /// Most synthetic load it may add (cpu.max_synthetic_percent; 100 elsewhere).
    pub max_synthetic: f64,
}

/// What one resource is held to: target, statistic and limits, from the desired state.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub target: f64,
    pub statistic: Statistic,
    pub limits: Limits,
}

/// Rules for cpu, memory and disk, in that order (None when disabled).
pub fn rules(d: &Resolved) -> [Option<Rule>; 3] {
    [
        d.cpu.as_ref().map(|c| Rule {
            target: c.target_percent,
            statistic: c.statistic,
            limits: Limits {
                max_level: 100.0,
                max_synthetic: c.max_synthetic_percent,
            },
        }),
        d.memory.as_ref().map(|m| Rule {
            target: m.target_percent,
            statistic: m.statistic,
            limits: Limits {
                max_level: 100.0 - m.min_available_percent,
                max_synthetic: 100.0,
            },
        }),
        d.disk.as_ref().map(|k| Rule {
            target: k.target_percent,
            statistic: k.statistic,
            limits: Limits {
                max_level: 100.0 - k.min_free_percent,
                max_synthetic: 100.0,
            },
        }),
    ]
}

#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub now: f64,
    pub window_s: f64,
    /// Seconds until the policy is asked again.
    pub tick_s: f64,
    pub target: f64,
    pub statistic: Statistic,
    pub limits: Limits,
    pub series: &'a Series,
    pub prev_level: Option<f64>,
    /// Organic load over the last interval, if known.
    pub organic_now: Option<f64>,
    /// The time before the first record counts as 0 % (`before_first_record: zero`): in
    /// the first window only the window that closes at first record + W can be compliant,
    /// so a mean target may wait for organic load while a guarantee holds (`defer`).
    pub defer_in_first_window: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub level: f64,
    /// The level the policy would hold without the rate limit (what it is heading for).
    #[serde(skip)]
    pub wanted: f64,
    /// Whether the limits allow meeting the target at the pace the policy plans.
    pub on_track: bool,
    /// Hours of the planning horizon.
    pub horizon_hours: f64,
    /// For mean: hours still needed at the level to close the deficit; for pNN: hours of
    /// padding still needed.
    pub hours_needed: f64,
    /// The organic load the policy expects over the horizon, percent (its forecast).
    pub organic_forecast_percent: f64,
    /// For mean: what organic load is expected to leave short of the target, in
    /// percent-hours, to be made up over the horizon (0: organic alone meets it).
    pub deficit_percent_hours: f64,
    /// First window: padding waits for organic load while the rest can still be made up
    /// (`first_window: defer`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deferring: bool,
    /// First window: the longest host outage starting now after which the window could
    /// still be met by holding the limit for the rest of it (hours).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage_margin_hours: Option<f64>,
    /// That margin is thin: under a day and under half the time left (`risk_text`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub at_risk: bool,
    pub note: String,
}

/// Level changes are bounded so the loop cannot oscillate: 5 points per minute of tick.
fn rate_limit(level: f64, prev: Option<f64>, tick_s: f64) -> f64 {
    match prev {
        Some(p) => {
            let d = (5.0 * tick_s / 60.0).clamp(1.0, 50.0);
            p + (level - p).clamp(-d, d)
        }
        None => level,
    }
}

fn mid(i: usize) -> f64 {
    if i == BINS - 1 { 100.0 } else { i as f64 + 0.5 }
}

/// E[total] over the organic distribution `p` (weights summing to 1) when the worker
/// holds level ℓ: total = max(o, min(ℓ, o + max_synthetic)).
fn expected_total(p: &[f64], level: f64, lim: &Limits) -> f64 {
    p.iter()
        .enumerate()
        .map(|(i, w)| w * mid(i).max(level.min(mid(i) + lim.max_synthetic)))
        .sum()
}

/// The distribution of organic load to predict from: the known part of the window, or
/// the last reading while less than an hour is known.
fn organic_distribution(known: &Agg, organic_now: Option<f64>) -> Vec<f64> {
    // What was recorded, plus the reading now with the weight of a minute (all of the
    // weight before anything is recorded). A point mass at the reading alone made the
    // first hour's level flip with every busy or idle tick (the soak: a job rewrite every
    // tick while a workload came and went).
    const NOW_WEIGHT_S: f64 = 60.0;
    let mut p = known.organic_hist.clone();
    p.resize(BINS, 0.0);
    let now_bin = (organic_now.unwrap_or(0.0).clamp(0.0, 100.0).floor() as usize).min(BINS - 1);
    p[now_bin] += NOW_WEIGHT_S;
    let sum: f64 = p.iter().sum();
    p.iter().map(|w| w / sum).collect()
}

/// A seasonal-naive forecast of organic load over the next `h` seconds: each future hour
/// is predicted by the latest known bucket at the same hour of the week, else at the same
/// hour of the day. None until at least half the horizon has a prediction.
fn seasonal_distribution(series: &Series, now: f64, h: f64) -> Option<Vec<f64>> {
    let now_key = (now / window::BUCKET_S).floor() as i64;
    let hours = (h / window::BUCKET_S).ceil().clamp(1.0, 24.0 * 400.0) as i64;
    // How many future hours fall on each source bucket.
    let mut counts: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
    let mut predicted = 0i64;
    for j in 0..hours {
        let fut = now_key + j;
        let back = |period: i64| -> Option<i64> {
            let k = fut - ((fut - now_key) / period + 1) * period;
            series.buckets.get(&k).filter(|b| b.dt > 0.0).map(|_| k)
        };
        if let Some(k) = back(168).or_else(|| back(24)) {
            *counts.entry(k).or_default() += 1.0;
            predicted += 1;
        }
    }
    if predicted * 2 < hours {
        return None;
    }
    let mut p = vec![0.0; BINS];
    for (k, n) in counts {
        let b = &series.buckets[&k];
        for (i, w) in b.organic_hist.iter().enumerate() {
            p[i] += n * w / b.dt;
        }
    }
    let sum: f64 = p.iter().sum();
    Some(p.iter().map(|x| x / sum).collect())
}

/// Damped-trend (Holt) smoothing of daily organic means: (how much organic load to expect,
/// on average, over the next `h` seconds; the mean of the last seven full days). Their
/// difference is how much the seasonal copy of last week should move. None with fewer
/// than three full days recorded.
/// Used only for horizons of a day or more: it moves the forecast with a trend (a service
/// taking on users, a migration that landed) that a seasonal copy of last week misses.
/// Damped (φ = 0.9 per day): a trend is believed for about ten days, not forever.
fn trend(series: &Series, now: f64, h: f64) -> Option<(f64, f64)> {
    const ALPHA: f64 = 0.4;
    const BETA: f64 = 0.2;
    const PHI: f64 = 0.9;
    let today = (now / 86_400.0).floor() as i64;
    let mut days: std::collections::BTreeMap<i64, (f64, f64)> = Default::default();
    for (k, b) in &series.buckets {
        let day = (*k as f64 * window::BUCKET_S / 86_400.0).floor() as i64;
        if day < today {
            let d = days.entry(day).or_default();
            d.0 += b.organic;
            d.1 += b.dt;
        }
    }
    // full days only (20 h recorded or more); the last 14 of them
    let y: Vec<f64> = days
        .values()
        .filter(|(_, dt)| *dt >= 20.0 * 3600.0)
        .map(|(o, dt)| o / dt)
        .collect();
    let y = &y[y.len().saturating_sub(14)..];
    if y.len() < 3 {
        return None;
    }
    let (mut level, mut trend) = (y[0], y[1] - y[0]);
    for v in &y[1..] {
        let prev = level;
        level = ALPHA * v + (1.0 - ALPHA) * (level + PHI * trend);
        trend = BETA * (level - prev) + (1.0 - BETA) * PHI * trend;
    }
    // the mean of the forecasts for each day of the horizon
    let n = (h / 86_400.0).ceil().max(1.0) as i32;
    let (mut sum, mut damp, mut acc) = (0.0, 1.0, 0.0);
    for _ in 0..n {
        damp *= PHI;
        acc += damp;
        sum += level + acc * trend;
    }
    let week = &y[y.len().saturating_sub(7)..];
    let recent = week.iter().sum::<f64>() / week.len() as f64;
    Some(((sum / n as f64).clamp(0.0, 100.0), recent))
}

/// The distribution `p` moved by `by` points (whole bins, clamped to 0..100).
fn shifted(p: &[f64], by: f64) -> Vec<f64> {
    let by = by.round() as i64;
    let mut out = vec![0.0; BINS];
    for (i, w) in p.iter().enumerate() {
        let j = (i as i64 + by).clamp(0, BINS as i64 - 1) as usize;
        out[j] += w;
    }
    out
}

/// A trend smaller than this (points between the forecast and the last seven days) moves
/// nothing: day-to-day noise on a stationary load is about that large.
const TREND_MIN_POINTS: f64 = 2.0;

/// How long a mean target may wait: the average total still needed over the rest of the
/// first window may grow to `DEFER_SHARE` of the catch-up level before padding starts. The
/// quarter left over is the margin for downtime (and for organic load that falls).
const DEFER_SHARE: f64 = 0.75;

/// The catch-up level deferral plans on: twice the target, or target + 20 points if
/// more, within the limits. Waiting longer would mean holding more than that at the end.
fn catch_up_level(target: f64, lim: &Limits) -> f64 {
    (2.0 * target)
        .max(target + 20.0)
        .min(lim.max_level)
        .min(lim.max_synthetic)
}

fn horizon(inp: &Input) -> (f64, Agg) {
    let start = inp.series.first_time().unwrap_or(inp.now).min(inp.now);
    let min_h = inp.tick_s.max(3600.0).min(inp.window_s);
    let h = (start + inp.window_s - inp.now).max(min_h);
    let from = inp.now + h - inp.window_s;
    // In the first window the planned window begins at the first record: its hour's
    // bucket holds nothing older, so it counts whole. (`range` leaves out a bucket that
    // begins before `from`; with the exact first-record time that dropped the whole first
    // hour of history, and the forecast fell back to the reading of the moment.)
    let from = if from <= start + 1e-6 {
        (start / window::BUCKET_S).floor() * window::BUCKET_S
    } else {
        from
    };
    (h, inp.series.range(from, inp.now + 1.0))
}

/// What a decision is made from: the horizon, what the window holds so far, and the
/// organic load expected over the horizon.
struct Outlook {
    /// Seconds to the end of the planned window.
    h: f64,
    /// The planned window's records so far.
    known: Agg,
    /// The forecast distribution of organic load over the horizon.
    p: Vec<f64>,
    /// Its expected value (percent).
    e_organic: f64,
}

impl Decision {
    /// Hold nothing: the target is met (or there is none).
    fn nothing(o: &Outlook, note: &str) -> Decision {
        Decision {
            level: 0.0,
            wanted: 0.0,
            on_track: true,
            horizon_hours: round2(o.h / 3600.0),
            hours_needed: 0.0,
            organic_forecast_percent: round2(o.e_organic),
            deficit_percent_hours: 0.0,
            deferring: false,
            outage_margin_hours: None,
            at_risk: false,
            note: note.into(),
        }
    }

    /// The warning status and `explain` put first while the window is at risk.
    pub fn risk_text(&self) -> Option<String> {
        let m = self.outage_margin_hours.filter(|_| self.at_risk)?;
        Some(format!(
            "at risk: a host outage of more than {m:.0} h from now would leave this window below \
             the target even at the limit"
        ))
    }
}

/// First window (the horizon runs to its close, a day or more away): the longest outage
/// from now after which the rest can still be met, given the seconds it needs at the
/// limit; and whether that margin is thin. None in a rolling window (an hour ahead).
fn outage_margin(h: f64, needed_at_limit_s: f64, on_track: bool) -> (Option<f64>, bool) {
    let margin = (h >= 86_400.0 && needed_at_limit_s > 0.0 && on_track)
        .then(|| (h - needed_at_limit_s).max(0.0));
    (
        margin,
        margin.is_some_and(|m| m < RISK_OUTAGE_S.min(h / 2.0)),
    )
}

/// A first window's margin is thin when an outage shorter than this (or than half the
/// time left, nearer the end) would make it unrecoverable. A paced idle host keeps about
/// half the time left (its catch-up needs well under half the limit); deferral spends the
/// margin down to a third of it, and a day is an ordinary maintenance outage.
const RISK_OUTAGE_S: f64 = 86_400.0;

/// The level to hold now for one resource's target: the mean and the percentile rule
/// below, from one outlook.
pub fn decide(inp: &Input) -> Decision {
    let (h, known) = horizon(inp);
    if inp.target <= 0.0 {
        let none = Outlook {
            h,
            known,
            p: vec![],
            e_organic: 0.0,
        };
        return Decision::nothing(&none, "target 0: nothing to hold");
    }
    let p = forecast(inp, h, &known);
    let o = Outlook {
        h,
        known,
        e_organic: expected_total(&p, 0.0, &inp.limits),
        p,
    };
    match inp.statistic {
        Statistic::Mean => decide_mean(inp, &o),
        Statistic::Percentile(pc) => decide_percentile(inp, pc, &o),
    }
}

/// The organic load expected over the horizon: the seasonal distribution, else the
/// recorded one. Over the first window's long horizon (a day or more, mean targets), a
/// trend in the daily means moves the whole distribution (last week's shape, this week's
/// level) by how far the trend expects the horizon to differ from the last seven days;
/// under two points it is noise and moves nothing. (Tried for p95's one-hour rolling
/// horizon too: it made no trace compliant that was not, and cost 9 % more on
/// weekly-spikes.)
fn forecast(inp: &Input, h: f64, known: &Agg) -> Vec<f64> {
    let p = seasonal_distribution(inp.series, inp.now, h)
        .unwrap_or_else(|| organic_distribution(known, inp.organic_now));
    let p = match inp.statistic {
        Statistic::Percentile(_) => believable(inp, p),
        Statistic::Mean => p,
    };
    match trend(inp.series, inp.now, h) {
        Some((ahead, recent))
            if h >= 86_400.0
                && inp.statistic == Statistic::Mean
                && (ahead - recent).abs() >= TREND_MIN_POINTS =>
        {
            shifted(&p, ahead - recent)
        }
        _ => p,
    }
}

/// The most the seasonal copy over-forecast organic load in any hour of the last day
/// (points): each hour's mean against its source hour's (a week before, else a day
/// before). Random batch jobs make it large (a busy hour last week says little about this
/// one); a regular cycle keeps it near its noise. Found by `cro simulate --search`: a
/// 7-day mean of 25 % next to random batch jobs ended at 24.81 (case 10536724253299).
fn hourly_overforecast(series: &Series, now: f64) -> f64 {
    let now_key = (now / window::BUCKET_S).floor() as i64;
    let mean = |k: i64| {
        series
            .buckets
            .get(&k)
            .filter(|b| b.dt > 0.0)
            .map(|b| b.organic / b.dt)
    };
    (now_key - 24..now_key)
        .filter_map(|k| {
            let actual = mean(k)?;
            let source = mean(k - 168).or_else(|| mean(k - 24))?;
            Some((source - actual).max(0.0))
        })
        .fold(0.0, f64::max)
}

/// For a percentile target, the forecast a seasonal copy makes is not believed when the
/// copy failed over the last day: when the last day spent less than half the time at or
/// above the target that its source day (the same day a week before, else the day
/// before) did. A load that stepped down (a service moved away, a job that stopped) then
/// still "reaches the target" at the hours it did last week, the rule pads nothing, and the
/// window misses (found by `cro simulate --search`: case 136832792023524, p95 >= 20 over
/// 7 days after a step from 43 to 7 %, ended at 9.85). The last day's own distribution
/// stands in for the copy until the copy works again.
fn believable(inp: &Input, p: Vec<f64>) -> Vec<f64> {
    const DAY: f64 = 86_400.0;
    let share = |a: &Agg| {
        (a.dt >= DAY / 2.0).then(|| window::time_at_or_above(&a.organic_hist, inp.target) / a.dt)
    };
    let now = inp.now;
    let recent = inp.series.range(now - DAY, now + 1.0);
    let Some(actual) = share(&recent) else {
        return p;
    };
    let source = share(&inp.series.range(now - 8.0 * DAY, now - 7.0 * DAY + 1.0))
        .or_else(|| share(&inp.series.range(now - 2.0 * DAY, now - DAY + 1.0)));
    match source {
        Some(promised) if actual < 0.5 * promised => {
            let mut q = recent.organic_hist.clone();
            q.resize(BINS, 0.0);
            let sum: f64 = q.iter().sum();
            q.iter().map(|w| w / sum).collect()
        }
        _ => p,
    }
}

/// The lowest level whose expected total over the forecast reaches `avg`, and whether the
/// limits allow it (bisection: expected_total rises with the level).
fn level_for(p: &[f64], avg: f64, lim: &Limits) -> (f64, bool) {
    if expected_total(p, lim.max_level, lim) < avg {
        return (lim.max_level, false);
    }
    let (mut lo, mut hi) = (0.0, lim.max_level);
    for _ in 0..40 {
        let m = 0.5 * (lo + hi);
        if expected_total(p, m, lim) < avg {
            lo = m
        } else {
            hi = m
        }
    }
    (hi, true)
}

/// A mean target: the average total still needed over the horizon, held as a level.
fn decide_mean(inp: &Input, o: &Outlook) -> Decision {
    let (h, w, lim) = (o.h, inp.window_s, inp.limits);
    let organic_mean = if o.known.dt > 0.0 {
        o.known.organic / o.known.dt
    } else {
        o.e_organic
    };
    // A margin in proportion to the gap we fill (2 %), so the window ends just above the
    // target without paying much more than the deficit; and at least what one hour's
    // wrong forecast can take from the window, since every moment of a rolling window is
    // judged and the plan only corrects a shortfall in the next hour.
    let margin = (0.02 * (inp.target - organic_mean).max(0.0))
        .max(0.02)
        .max(hourly_overforecast(inp.series, inp.now) * 3600.0 / w);
    let need = (inp.target + margin) * w - o.known.total;
    let avg = need / h;
    // Deferral (first window, time before it counted as 0 %): every percent-hour counts
    // the same towards the window that closes at its end, so padding early only pays for
    // what organic load might still bring. Wait while the average still needed stays
    // within DEFER_SHARE of the catch-up level, which holds even if organic load stops: a
    // rising load or a step up then pays for itself.
    let catch_up = catch_up_level(inp.target, &lim);
    let defer = inp.defer_in_first_window
        && h >= 86_400.0
        && avg > o.e_organic
        && avg <= DEFER_SHARE * catch_up;
    let (raw, on_track) = if avg <= o.e_organic || defer {
        (0.0, true)
    } else {
        level_for(&o.p, avg, &lim)
    };
    let level = rate_limit(raw, inp.prev_level, inp.tick_s).clamp(0.0, lim.max_level);
    let gain = (expected_total(&o.p, raw, &lim) - o.e_organic).max(1e-9);
    let deficit = (need - h * o.e_organic).max(0.0);
    // At the limit the rest of the window gets `cap` every second, even if organic load
    // stops: it needs need / cap seconds of it.
    let cap = lim.max_level.min(lim.max_synthetic).max(1e-9);
    let (margin, at_risk) = outage_margin(h, need / cap, on_track);
    let note = if !on_track {
        format!(
            "cannot meet: even at the limit of {} % the window ends below the target",
            lim.max_level
        )
    } else if defer {
        format!(
            "deferring: the {:.0} %·h still needed fit in the {:.0} h left at {:.0} % even if organic load stops; padding starts when they need more than {:.0} % (\"first_window\": \"pace\" pads from now)",
            (need / 3600.0).max(0.0),
            h / 3600.0,
            avg,
            DEFER_SHARE * catch_up
        )
    } else if raw == 0.0 {
        "organic load alone meets the target".into()
    } else {
        format!(
            "a level of {raw:.1} % meets the target over the next {:.0} h",
            h / 3600.0
        )
    };
    Decision {
        level: round2(level),
        wanted: round2(raw.clamp(0.0, lim.max_level)),
        on_track,
        horizon_hours: round2(h / 3600.0),
        hours_needed: round2((deficit / gain / 3600.0).min(h / 3600.0)),
        organic_forecast_percent: round2(o.e_organic),
        deficit_percent_hours: round2(deficit / 3600.0),
        deferring: defer,
        outage_margin_hours: margin.map(|m| round2(m / 3600.0)),
        at_risk,
        note,
    }
}

/// A percentile target `pc`: the share of time still needed at or above the target,
/// padded when organic load is high enough that padding is cheap.
fn decide_percentile(inp: &Input, pc: u8, o: &Outlook) -> Decision {
    let (h, w, lim) = (o.h, inp.window_s, inp.limits);
    let s = (100 - pc as u32) as f64 / 100.0;
    // Share margin: 5 % of the share, at least 0.2 points, plus one sample's worth
    // (nearest-rank percentiles need one more than the share).
    let ms = (0.05 * s).max(0.002) + inp.tick_s / w;
    let good_known = o.known.time_at_or_above(inp.target);
    let need_good = (s + ms) * w - good_known;
    let q = (need_good / h).clamp(0.0, 1.0);
    let g0: f64 = window::time_at_or_above(&o.p, inp.target);
    if need_good <= 0.0 || q <= g0 {
        return Decision::nothing(o, "enough samples reach the target without padding");
    }
    // Pad to a point above the target: the worker holds the total within about a point
    // (tests/measure.rs), and a sample just under the target does not count.
    let pad = (inp.target + 1.0).min(lim.max_level);
    let feasible = lim.max_level >= inp.target;
    let theta = window::upper_bin(&o.p, 1.0, q);
    let organic = inp.organic_now.unwrap_or(0.0);
    let cheap = organic >= theta && pad - organic <= lim.max_synthetic;
    let level = if feasible && cheap { pad } else { 0.0 };
    // At the limit every second left is padded at or above the target.
    let (margin, at_risk) = outage_margin(h, need_good, feasible);
    let note = if !feasible {
        format!(
            "cannot meet: the limit of {} % is below the target",
            lim.max_level
        )
    } else {
        format!(
            "padding {:.1} % of the time, when organic load is at or above {theta:.1} %",
            q * 100.0
        )
    };
    Decision {
        level: round2(level),
        wanted: round2(level),
        on_track: feasible,
        horizon_hours: round2(h / 3600.0),
        hours_needed: round2((need_good.max(0.0) / 3600.0).min(h / 3600.0)),
        organic_forecast_percent: round2(o.e_organic),
        deficit_percent_hours: 0.0,
        deferring: false,
        outage_margin_hours: margin.map(|m| round2(m / 3600.0)),
        at_risk,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::record::Sample;

    const DAY: f64 = 86_400.0;
    const LIM: Limits = Limits {
        max_level: 100.0,
        max_synthetic: 100.0,
    };

    fn series(hours: usize, f: impl Fn(usize) -> (f64, f64)) -> Series {
        let mut s = Series::default();
        for i in 0..hours {
            let (total, syn) = f(i);
            s.add(
                (i + 1) as f64 * 3600.0,
                3600.0,
                &Sample::new(total, syn, 0.0, 25.0),
            );
        }
        s
    }
    fn input(s: &Series, now: f64, target: f64, stat: Statistic) -> Input<'_> {
        Input {
            now,
            window_s: 30.0 * DAY,
            tick_s: 60.0,
            target,
            statistic: stat,
            limits: LIM,
            series: s,
            prev_level: None,
            organic_now: Some(5.0),
            defer_in_first_window: false,
        }
    }

    /// The first hour: 30 minutes recorded, a workload busy a third of the time. The level
    /// must come from what was recorded, not flip with the reading of the moment (the soak:
    /// "organic load alone meets the target" on every busy tick, 30 % on every idle one).
    #[test]
    fn the_first_hour_plans_from_what_was_recorded() {
        let t0 = 1_800_000_000.0 + 600.0; // not on an hour boundary
        let mut s = Series::default();
        for i in 0..180 {
            let o = if i % 6 < 2 { 53.0 } else { 3.0 };
            s.add(
                t0 + (i + 1) as f64 * 10.0,
                10.0,
                &Sample::new(o, 0.0, 0.0, 30.0),
            );
        }
        let now = t0 + 1800.0;
        let at = |organic_now: f64| {
            let mut inp = input(&s, now, 30.0, Statistic::Mean);
            inp.window_s = DAY;
            inp.tick_s = 10.0;
            inp.organic_now = Some(organic_now);
            decide(&inp).wanted
        };
        let (busy, idle) = (at(56.0), at(5.0));
        assert!(busy > 10.0 && idle > 10.0, "busy {busy}, idle {idle}");
        assert!(
            (busy - idle).abs() < LEVEL_STEP_FOR_TEST,
            "busy {busy}, idle {idle}"
        );
    }
    const LEVEL_STEP_FOR_TEST: f64 = 5.0;

    #[test]
    fn idle_host_paces_the_deficit() {
        let s = series(24 * 10, |_| (5.0, 0.0));
        let d = decide(&input(&s, 10.0 * DAY, 25.0, Statistic::Mean));
        // 10 days at 5 %: the other 20 days must average (25.4·30 − 50)/20 ≈ 35.6
        assert!((d.level - 35.6).abs() < 0.5, "{d:?}");
        assert!(d.on_track);
    }

    /// First window, before_first_record zero: an idle host waits while the rest of the
    /// window can still be made up at 3/4 of the catch-up level (here 80 %: twice the
    /// target) even if organic load stops, then paces what is left.
    #[test]
    fn the_first_window_defers_while_the_rest_can_be_made_up() {
        let s = series(24, |_| (2.0, 0.0));
        let mut i = input(&s, DAY, 40.0, Statistic::Mean);
        i.defer_in_first_window = true;
        let d = decide(&i);
        assert_eq!(d.level, 0.0, "{d:?}");
        assert!(
            d.on_track && d.deferring && d.note.starts_with("deferring"),
            "{d:?}"
        );
        // without deferral the same host paces from the start
        i.defer_in_first_window = false;
        assert!(decide(&i).wanted > 40.0);
        // 12 days at 2 %: the other 18 days need (40.8·30 − 24)/18 ≈ 66.7 % > 60 %
        let s = series(24 * 12, |_| (2.0, 0.0));
        let mut i = input(&s, 12.0 * DAY, 40.0, Statistic::Mean);
        i.defer_in_first_window = true;
        let d = decide(&i);
        assert!((d.wanted - 66.7).abs() < 1.0, "{d:?}");
        // the guarantee: deferring never leaves more than 60 % on average to make up
        for day in 1..29 {
            let s = series(24 * day, |_| (2.0, 0.0));
            let mut i = input(&s, day as f64 * DAY, 40.0, Statistic::Mean);
            i.defer_in_first_window = true;
            let d = decide(&i);
            let left = (40.0 * 30.0 - 2.0 * day as f64) / (30 - day) as f64;
            assert!(d.wanted > 0.0 || left <= 61.0, "day {day}: {d:?}");
        }
    }

    /// The first window's outage margin: the time left less what the rest needs at the
    /// limit. A paced host keeps a wide one; two days before the close with 60 % still
    /// needed on average, a day's outage would make the window unrecoverable: at risk,
    /// said first by `risk_text`, while holding the limit can still meet it.
    #[test]
    fn a_thin_outage_margin_in_the_first_window_is_at_risk() {
        let cap = LIM.max_level.min(LIM.max_synthetic);
        // paced from day 10 of an idle host: about half the time left survives an outage
        let s = series(24 * 10, |_| (5.0, 0.0));
        let d = decide(&input(&s, 10.0 * DAY, 25.0, Statistic::Mean));
        let m = d.outage_margin_hours.expect("first window, mean: a margin");
        assert!(m > 0.4 * d.horizon_hours && m < d.horizon_hours, "{d:?}");
        assert!(!d.at_risk && d.risk_text().is_none(), "{d:?}");
        // 28 days at 38.6 % for a 40 % mean: the last 2 days need about 60 % on average
        let s = series(24 * 28, |_| (38.6, 0.0));
        let d = decide(&input(&s, 28.0 * DAY, 40.0, Statistic::Mean));
        assert!(d.on_track, "holding the limit still meets it: {d:?}");
        let m = d.outage_margin_hours.unwrap();
        let need_h = 48.0 - m;
        assert!(m > 0.0 && m < 24.0, "{d:?}");
        assert!((need_h * cap / 48.0 - 60.0).abs() < 3.0, "{d:?}");
        assert!(d.at_risk, "{d:?}");
        assert!(
            d.risk_text().unwrap().contains(&format!("{m:.0} h")),
            "{d:?}"
        );
        // the same two days with the window nearly met: not at risk
        let s = series(24 * 28, |_| (41.0, 0.0));
        let d = decide(&input(&s, 28.0 * DAY, 40.0, Statistic::Mean));
        assert!(!d.at_risk, "{d:?}");
        // p95 >= 20 over 30 days: an idle host must pad 5 % of the window and its margin
        // (37.8 h) before the close; from 4 days out an outage of 58 h is survivable,
        // from 2 days out only one of 10 h: at risk
        let s = series(24 * 26, |_| (5.0, 0.0));
        let d = decide(&input(&s, 26.0 * DAY, 20.0, Statistic::Percentile(95)));
        let m = d.outage_margin_hours.unwrap();
        assert!((m - (96.0 - 37.8)).abs() < 1.0 && !d.at_risk, "{d:?}");
        let s = series(24 * 28, |_| (5.0, 0.0));
        let d = decide(&input(&s, 28.0 * DAY, 20.0, Statistic::Percentile(95)));
        let m = d.outage_margin_hours.unwrap();
        assert!((m - (48.0 - 37.8)).abs() < 1.0 && d.at_risk, "{d:?}");
        // a rolling window (one hour ahead) has no close to miss by an outage: no margin
        let s = series(24 * 31, |_| (2.0, 0.0));
        let d = decide(&input(&s, 31.0 * DAY, 25.0, Statistic::Mean));
        assert_eq!((d.outage_margin_hours, d.at_risk), (None, false), "{d:?}");
    }

    /// After the first window (a rolling window, one hour ahead) nothing is deferred.
    #[test]
    fn the_rolling_window_never_defers() {
        let s = series(24 * 31, |_| (2.0, 0.0));
        let mut i = input(&s, 31.0 * DAY, 25.0, Statistic::Mean);
        i.defer_in_first_window = true;
        assert!(decide(&i).wanted > 25.0);
    }

    #[test]
    fn the_trend_forecast_follows_daily_means() {
        // rising 2 points a day for 10 days: the next days are expected higher, damped
        let s = series(24 * 10, |i| (5.0 + 2.0 * (i / 24) as f64, 0.0));
        let now = 10.0 * DAY + 1.0;
        let f = trend(&s, now, 5.0 * DAY).unwrap().0;
        assert!(f > 23.0 + 2.0 && f < 23.0 + 2.0 * 10.0, "{f}");
        // flat: the level
        let s = series(24 * 10, |_| (30.0, 0.0));
        assert!((trend(&s, now, 5.0 * DAY).unwrap().0 - 30.0).abs() < 1e-9);
        // fewer than three full days: no trend
        let s = series(24 * 2, |_| (30.0, 0.0));
        assert_eq!(trend(&s, 2.0 * DAY + 1.0, DAY), None);
    }

    #[test]
    fn surplus_lowers_the_level_below_target() {
        // 10 days at 40 %: organic surplus already pays for part of the rest
        let s = series(24 * 10, |_| (40.0, 0.0));
        let d = decide(&input(&s, 10.0 * DAY, 25.0, Statistic::Mean));
        assert_eq!(d.level, 0.0, "organic 40 % forever meets 25 %: {d:?}");
        let s = series(
            24 * 10,
            |i| if i % 2 == 0 { (45.0, 0.0) } else { (5.0, 0.0) },
        );
        let d = decide(&input(&s, 10.0 * DAY, 25.0, Statistic::Mean));
        assert!(d.level < 25.0, "peaks are credited: {d:?}");
    }

    #[test]
    fn behind_after_downtime_catches_up_above_target() {
        // 20 days of history at the target, then 5 days of downtime (no records)
        let s = series(24 * 20, |_| (25.5, 20.0));
        let d = decide(&input(&s, 25.0 * DAY, 25.0, Statistic::Mean));
        assert!(d.level > 25.0, "{d:?}");
    }

    #[test]
    fn limits_bind_and_say_so() {
        let s = series(24 * 29, |_| (1.0, 0.0));
        let mut i = input(&s, 29.0 * DAY, 25.0, Statistic::Mean);
        i.limits = Limits {
            max_level: 30.0,
            max_synthetic: 100.0,
        };
        let d = decide(&i);
        assert_eq!(d.level, 30.0);
        assert!(!d.on_track);
    }

    #[test]
    fn level_changes_are_bounded() {
        let s = series(24 * 29, |_| (1.0, 0.0));
        let mut i = input(&s, 29.0 * DAY, 25.0, Statistic::Mean);
        i.prev_level = Some(10.0);
        assert_eq!(decide(&i).level, 15.0);
    }

    #[test]
    fn percentile_met_needs_no_padding() {
        // 10 % of hours at 30 %: p95 ≥ 20 already
        let s = series(
            24 * 10,
            |i| if i % 10 == 0 { (30.0, 0.0) } else { (3.0, 0.0) },
        );
        let mut inp = input(&s, 10.0 * DAY, 20.0, Statistic::Percentile(95));
        inp.window_s = 7.0 * DAY;
        assert_eq!(decide(&inp).level, 0.0);
    }

    #[test]
    fn percentile_pads_only_at_cheap_moments() {
        // organic mostly 3 %, sometimes 15 %: pad when it is 15 %, not when 3 %
        let s = series(
            24 * 3,
            |i| if i % 5 == 0 { (15.0, 0.0) } else { (3.0, 0.0) },
        );
        let mut inp = input(&s, 3.0 * DAY, 20.0, Statistic::Percentile(95));
        inp.window_s = 7.0 * DAY;
        inp.organic_now = Some(15.2);
        assert_eq!(decide(&inp).level, 21.0);
        inp.organic_now = Some(3.0);
        assert_eq!(decide(&inp).level, 0.0);
    }

    #[test]
    fn level_always_within_limits_on_random_inputs() {
        // a small property test with a fixed-seed generator (no extra crate)
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 100.0
        };
        for _ in 0..300 {
            let base = rnd();
            let amp = rnd();
            let s = series(24 * 5, |i| {
                (((base + amp * ((i % 7) as f64 / 7.0)) % 100.0), 0.0)
            });
            let lim = Limits {
                max_level: rnd(),
                max_synthetic: rnd(),
            };
            for stat in [
                Statistic::Mean,
                Statistic::Percentile(95),
                Statistic::Percentile(50),
            ] {
                let mut inp = input(&s, 5.0 * DAY, rnd(), stat);
                inp.limits = lim;
                inp.prev_level = Some(rnd());
                inp.organic_now = Some(rnd());
                let d = decide(&inp);
                assert!(
                    d.level >= 0.0 && d.level <= lim.max_level + 1e-9,
                    "{d:?} {lim:?}"
                );
            }
        }
    }
}
