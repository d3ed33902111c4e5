//! The units the cost of compliance is counted in: CPU core-hours for CPU, GiB-hours for
//! memory and disk. One type for status, the report, the dashboard, the metrics' `unit`
//! label and the fleet view, which reads that label back (a unit it does not know is kept
//! as written).
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CostUnit {
    CpuCoreHours,
    GibHours,
    /// A unit label this version does not know (a newer cro's metrics).
    Other(String),
}

impl CostUnit {
    /// As the metrics' `unit` label and `--json` spell it.
    pub fn name(&self) -> &str {
        match self {
            CostUnit::CpuCoreHours => "cpu-core-hours",
            CostUnit::GibHours => "gib-hours",
            CostUnit::Other(s) => s,
        }
    }

    pub fn from_name(s: &str) -> CostUnit {
        match s {
            "cpu-core-hours" => CostUnit::CpuCoreHours,
            "gib-hours" => CostUnit::GibHours,
            other => CostUnit::Other(other.to_string()),
        }
    }

    /// In a sentence: `CPU core-hours`, `GiB-hours`.
    pub fn words(&self) -> &str {
        match self {
            CostUnit::CpuCoreHours => "CPU core-hours",
            CostUnit::GibHours => "GiB-hours",
            CostUnit::Other(s) => s,
        }
    }

    /// In a table column: `core-h`, `GiB-h`.
    pub fn short(&self) -> &str {
        match self {
            CostUnit::CpuCoreHours => "core-h",
            CostUnit::GibHours => "GiB-h",
            CostUnit::Other(s) => s,
        }
    }
}

impl Serialize for CostUnit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_unknown_units_are_kept() {
        for u in [CostUnit::CpuCoreHours, CostUnit::GibHours] {
            assert_eq!(CostUnit::from_name(u.name()), u);
        }
        assert_eq!(CostUnit::from_name("watt-hours").name(), "watt-hours");
        assert_eq!(
            serde_json::to_string(&CostUnit::CpuCoreHours).unwrap(),
            "\"cpu-core-hours\""
        );
    }
}
