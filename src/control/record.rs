//! The history record: one line of `history/YYYY-MM-DD.jsonl`, what the window statistics
//! are computed from. A data type (written and read by `state::history`).
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub ts: String,
    /// Seconds this record's figures average over (since the previous record).
    pub interval_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Sample>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Sample>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disk: BTreeMap<String, Sample>,
    /// How memory was measured when not MemTotal - MemAvailable (`used`,
    /// `used_with_cache`: the desired state's memory.metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_metric: Option<String>,
}

/// Percent of capacity. `organic = total - synthetic`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub total: f64,
    pub synthetic: f64,
    /// The total the worker was told to hold (0 when none runs).
    pub level: f64,
    pub target: f64,
}

impl Sample {
    pub fn new(total: f64, synthetic: f64, level: f64, target: f64) -> Sample {
        let r = crate::format::round2;
        Sample {
            total: r(total),
            synthetic: r(synthetic.min(total)),
            level: r(level),
            target: r(target),
        }
    }
    pub fn organic(&self) -> f64 {
        (self.total - self.synthetic).max(0.0)
    }
}
