//! Window statistics: what the history says about each resource over its window.
//!
//! Samples are aggregated into hourly buckets (time-weighted sums and 1-point histograms
//! of total and organic), so a window of 30 days is 720 buckets whatever the tick rate,
//! and the policy can ask "what is known of the window that will end at time X".
//! Time without records (downtime, gaps) counts as 0 %: a provider that sees a stopped
//! VM sees it idle, so gaps are never silently counted as compliant.
use crate::control::desired::{BeforeFirstRecord, Statistic};
use crate::control::record::{Record, Sample};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const BINS: usize = 101;
pub const BUCKET_S: f64 = 3600.0;

/// Time-weighted aggregate of samples of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agg {
    /// Seconds recorded.
    pub dt: f64,
    /// Σ total × dt (percent-seconds), likewise organic and synthetic.
    pub total: f64,
    pub organic: f64,
    pub synthetic: f64,
    /// Seconds per 1-point bin of total (bin i holds [i, i+1), bin 100 holds 100).
    #[serde(with = "sparse")]
    pub total_hist: Vec<f64>,
    #[serde(with = "sparse")]
    pub organic_hist: Vec<f64>,
}

impl Default for Agg {
    fn default() -> Self {
        Agg {
            dt: 0.0,
            total: 0.0,
            organic: 0.0,
            synthetic: 0.0,
            total_hist: vec![0.0; BINS],
            organic_hist: vec![0.0; BINS],
        }
    }
}

fn bin(x: f64) -> usize {
    (x.clamp(0.0, 100.0).floor() as usize).min(BINS - 1)
}

impl Agg {
    pub fn add(&mut self, s: &Sample, dt: f64) {
        let o = s.organic();
        self.dt += dt;
        self.total += s.total * dt;
        self.organic += o * dt;
        self.synthetic += s.synthetic * dt;
        self.total_hist[bin(s.total)] += dt;
        self.organic_hist[bin(o)] += dt;
    }
    pub fn merge(&mut self, o: &Agg) {
        self.dt += o.dt;
        self.total += o.total;
        self.organic += o.organic;
        self.synthetic += o.synthetic;
        for i in 0..BINS {
            self.total_hist[i] += o.total_hist[i];
            self.organic_hist[i] += o.organic_hist[i];
        }
    }
    /// Seconds with total at or above `target` (the bin holding `target` counts in
    /// proportion, assuming samples spread evenly within it).
    pub fn time_at_or_above(&self, target: f64) -> f64 {
        time_at_or_above(&self.total_hist, target)
    }
}

pub fn time_at_or_above(hist: &[f64], target: f64) -> f64 {
    let b = bin(target);
    let above: f64 = hist[b + 1..].iter().sum();
    let frac = if b == BINS - 1 {
        1.0
    } else {
        (b as f64 + 1.0 - target).clamp(0.0, 1.0)
    };
    above + hist[b] * frac
}

/// The lower edge of the highest bin such that that bin and those above it hold at least
/// `share` of the weight: everything at or above it is the top `share` (or a little more).
pub fn upper_bin(hist: &[f64], weight: f64, share: f64) -> f64 {
    let need = share * weight;
    let mut acc = 0.0;
    for i in (0..BINS).rev() {
        acc += hist[i];
        if acc >= need && hist[i] > 0.0 {
            return i as f64;
        }
    }
    0.0
}

/// The value v such that `share` of the weight is at or above v (interpolated in a bin).
pub fn upper_quantile(hist: &[f64], weight: f64, share: f64) -> f64 {
    let need = share * weight;
    let mut acc = 0.0;
    for i in (0..BINS).rev() {
        if acc + hist[i] >= need && hist[i] > 0.0 {
            let within = (need - acc) / hist[i];
            return (i as f64 + 1.0 - within).min(100.0).max(i as f64);
        }
        acc += hist[i];
    }
    0.0
}

/// Hourly buckets of one resource, keyed by bucket start (unix seconds / 3600).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub buckets: BTreeMap<i64, Agg>,
    /// Where the earliest record kept begins (end - interval), to the second; the buckets
    /// alone only say the hour it ended in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_start: Option<f64>,
}

impl Series {
    pub fn add(&mut self, end_unix: f64, dt: f64, s: &Sample) {
        // A record covers (end - dt, end]; it is filed under the hour it ends in.
        let key = (end_unix / BUCKET_S).floor() as i64;
        self.buckets.entry(key).or_default().add(s, dt);
        let start = end_unix - dt;
        self.first_start = Some(self.first_start.map_or(start, |f| f.min(start)));
    }
    /// Aggregate of the buckets that lie in [from, to) (unix seconds). A bucket only
    /// partly after `from` is left out: what the policy counts as already achieved must
    /// not include samples that have in fact left the window.
    pub fn range(&self, from: f64, to: f64) -> Agg {
        let mut a = Agg::default();
        let (f, t) = (
            (from / BUCKET_S).ceil() as i64,
            (to / BUCKET_S).ceil() as i64,
        );
        for (_, b) in self.buckets.range(f..t) {
            a.merge(b);
        }
        a
    }
    /// When the earliest record kept begins.
    pub fn first_time(&self) -> Option<f64> {
        let bucket = self.buckets.keys().next().map(|k| *k as f64 * BUCKET_S)?;
        // first_start is exact; a cache written before it existed has only the bucket
        Some(
            self.first_start
                .filter(|f| *f >= bucket - BUCKET_S)
                .unwrap_or(bucket),
        )
    }
    pub fn forget_before(&mut self, unix: f64) {
        let k = (unix / BUCKET_S).floor() as i64;
        self.buckets = self.buckets.split_off(&k);
        if self.first_start.is_some_and(|f| f < k as f64 * BUCKET_S) {
            // what began before the cut is gone: the first kept record starts after it
            self.first_start = Some(k as f64 * BUCKET_S);
        }
    }
}

/// The series of every resource, as read from the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    pub cpu: Series,
    pub memory: Series,
    pub disk: BTreeMap<String, Series>,
    /// History older than what was read exists (so the first record read is not the first
    /// record there is). Set by `load`, not cached.
    #[serde(default, skip)]
    pub older_history: bool,
}

impl Windows {
    /// When the history began, as far as judging the window goes: None when it began
    /// before the window (or never did).
    pub fn first_record(&self, series: &Series) -> Option<f64> {
        if self.older_history {
            None
        } else {
            series.first_time()
        }
    }
}

impl Windows {
    pub fn add(&mut self, r: &Record) {
        let Some(t) = crate::timefmt::parse_rfc3339(&r.ts) else {
            return;
        };
        let dt = r.interval_s.clamp(0.0, 86_400.0);
        if let Some(s) = &r.cpu {
            self.cpu.add(t, dt, s);
        }
        if let Some(s) = &r.memory {
            self.memory.add(t, dt, s);
        }
        for (m, s) in &r.disk {
            self.disk.entry(m.clone()).or_default().add(t, dt, s);
        }
    }
    pub fn forget_before(&mut self, unix: f64) {
        self.cpu.forget_before(unix);
        self.memory.forget_before(unix);
        for s in self.disk.values_mut() {
            s.forget_before(unix);
        }
    }
}

/// What status shows per resource: the statistic over the window so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowStat {
    pub statistic: String,
    /// The statistic over recorded time in the window.
    pub value: f64,
    /// Share of the judged window with records (the whole window, unless
    /// `before_first_record` is `ignore`).
    pub coverage: f64,
    /// Share of the window's time at or above the target.
    pub share_at_target: f64,
    /// Synthetic percent-hours spent in the window.
    pub synthetic_percent_hours: f64,
    /// Whether the statistic meets the target, counting gaps as 0 %.
    pub compliant: bool,
    /// The statistic as the verdict compares it with the target: gaps counted as 0 %
    /// (over the judged span). `compliant` is `judged >= target`; the simulator reports it
    /// as "achieved".
    #[serde(skip)]
    pub judged: f64,
}

/// The time the window ending at `now` is judged over: the whole window, unless the rule
/// is `ignore` and the first record is younger than the window (then from that record on).
/// status, the report, the metrics and the simulator all judge through this.
pub fn judged_span(
    first_record: Option<f64>,
    now: f64,
    window_s: f64,
    rule: BeforeFirstRecord,
) -> f64 {
    match (rule, first_record) {
        (BeforeFirstRecord::Ignore, Some(f)) if f > now - window_s => (now - f).max(1.0),
        _ => window_s,
    }
}

/// `first_record`: when the history began (`Windows::first_record`).
pub fn stat(
    series: &Series,
    first_record: Option<f64>,
    now: f64,
    window_s: f64,
    target: f64,
    statistic: Statistic,
    rule: BeforeFirstRecord,
) -> WindowStat {
    let from = now - window_s;
    let a = series.range(from, now + 1.0);
    let span = judged_span(first_record, now, window_s, rule);
    let coverage = (a.dt / span).clamp(0.0, 1.0);
    let gaps = (span - a.dt).max(0.0);
    let (value, judged) = match statistic {
        Statistic::Mean => {
            let v = if a.dt > 0.0 { a.total / a.dt } else { 0.0 };
            (v, if span > 0.0 { a.total / span } else { 0.0 })
        }
        Statistic::Percentile(p) => {
            let share = (100 - p as u32) as f64 / 100.0;
            let v = upper_quantile(&a.total_hist, a.dt, share);
            let mut with_gaps = a.total_hist.clone();
            with_gaps[0] += gaps;
            (v, upper_quantile(&with_gaps, a.dt + gaps, share))
        }
    };
    let compliant = judged >= target - 1e-9;
    WindowStat {
        statistic: statistic.name(),
        value: crate::format::round2(value),
        coverage: (coverage * 1000.0).round() / 1000.0,
        share_at_target: if span > 0.0 {
            ((a.time_at_or_above(target) / span).min(1.0) * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        synthetic_percent_hours: crate::format::round2(a.synthetic / 3600.0),
        compliant,
        judged,
    }
}

/// `serde` helper: a histogram as {bin: seconds} for the non-zero bins.
mod sparse {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;
    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<usize, f64> = v
            .iter()
            .enumerate()
            .filter(|(_, x)| **x != 0.0)
            .map(|(i, x)| (i, *x))
            .collect();
        m.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let m = BTreeMap::<usize, f64>::deserialize(d)?;
        let mut v = vec![0.0; super::BINS];
        for (i, x) in m {
            if i < super::BINS {
                v[i] = x;
            }
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_shares() {
        let mut h = vec![0.0; BINS];
        h[10] = 95.0; // 95 s at 10..11 %
        h[30] = 5.0; // 5 s at 30..31 %
        assert!((time_at_or_above(&h, 20.0) - 5.0).abs() < 1e-9);
        assert!((time_at_or_above(&h, 10.5) - (5.0 + 47.5)).abs() < 1e-9);
        let p95 = upper_quantile(&h, 100.0, 0.05);
        assert!((30.0..=31.0).contains(&p95), "{p95}");
        let p50 = upper_quantile(&h, 100.0, 0.5);
        assert!((10.0..=11.0).contains(&p50), "{p50}");
    }

    #[test]
    fn gaps_count_as_zero_for_compliance() {
        let mut s = Series::default();
        let day = 86_400.0;
        // 10 days at 30 % in a 30-day window, nothing else recorded
        for h in 0..240 {
            s.add(
                h as f64 * 3600.0 + 3600.0,
                3600.0,
                &Sample::new(30.0, 0.0, 0.0, 25.0),
            );
        }
        let zero = BeforeFirstRecord::Zero;
        let st = stat(
            &s,
            s.first_time(),
            30.0 * day,
            30.0 * day,
            25.0,
            Statistic::Mean,
            zero,
        );
        assert_eq!(st.value, 30.0);
        assert!((st.coverage - 1.0 / 3.0).abs() < 0.01);
        assert!(
            !st.compliant,
            "10 days at 30 % are not a 30-day mean of 25 %"
        );
    }

    /// The time before the first record: 0 % by default (coverage is the share of the
    /// whole window), not counted with `ignore`; at the window's edges both agree.
    #[test]
    fn time_before_the_first_record_follows_one_rule() {
        use BeforeFirstRecord::{Ignore, Zero};
        let day = 86_400.0;
        let mut s = Series::default();
        // 10 days at 30 %, from t=0
        for h in 0..240 {
            s.add(
                h as f64 * 3600.0 + 3600.0,
                3600.0,
                &Sample::new(30.0, 0.0, 0.0, 25.0),
            );
        }
        let w = 14.0 * day;
        // 10 days into a 14-day window
        let z = stat(
            &s,
            s.first_time(),
            10.0 * day,
            w,
            25.0,
            Statistic::Mean,
            Zero,
        );
        assert!((z.coverage - 10.0 / 14.0).abs() < 0.001, "{z:?}");
        assert!(!z.compliant, "4 unrecorded days at 0 %: mean 21.4 %");
        let i = stat(
            &s,
            s.first_time(),
            10.0 * day,
            w,
            25.0,
            Statistic::Mean,
            Ignore,
        );
        assert!(i.coverage > 0.999 && i.compliant, "{i:?}");
        // the same for a percentile: 10/14 of the window at 30 % is a p50 of 30, but not
        // a p20 (80 % of the time must reach 25)
        let p = Statistic::Percentile(20);
        assert!(!stat(&s, s.first_time(), 10.0 * day, w, 25.0, p, Zero).compliant);
        assert!(stat(&s, s.first_time(), 10.0 * day, w, 25.0, p, Ignore).compliant);
        assert!(
            stat(
                &s,
                s.first_time(),
                10.0 * day,
                w,
                25.0,
                Statistic::Percentile(50),
                Zero
            )
            .compliant
        );
        // history exactly as long as the window, and longer: the rule no longer matters
        for now in [10.0 * day, 12.0 * day] {
            let w = 10.0 * day;
            let (z, i) = (
                stat(&s, s.first_time(), now, w, 25.0, Statistic::Mean, Zero),
                stat(&s, s.first_time(), now, w, 25.0, Statistic::Mean, Ignore),
            );
            assert_eq!(z, i, "at {now}");
        }
        // 2 days after the last record in a 10-day window: 2 days without records are gaps
        // under both rules (they come after the first record)
        let z = stat(
            &s,
            s.first_time(),
            12.0 * day,
            10.0 * day,
            25.0,
            Statistic::Mean,
            Zero,
        );
        assert!((z.coverage - 0.8).abs() < 0.01 && !z.compliant, "{z:?}");
        assert_eq!(judged_span(None, 5.0, 10.0, Ignore), 10.0);
        assert_eq!(judged_span(Some(2.0), 5.0, 10.0, Ignore), 3.0);
        assert_eq!(judged_span(Some(2.0), 5.0, 10.0, Zero), 10.0);
    }

    #[test]
    fn sparse_round_trip() {
        let mut a = Agg::default();
        a.add(&Sample::new(41.2, 38.0, 40.0, 40.0), 60.0);
        let j = serde_json::to_string(&a).unwrap();
        assert!(j.contains("\"41\":60.0"), "{j}");
        assert_eq!(serde_json::from_str::<Agg>(&j).unwrap(), a);
    }
}
