//! `cro explain`: per resource, why the level in force is what it is. Built from the same
//! `Status` (and so the same `Pass` a tick makes), so it never disagrees with a pass.
use crate::control::policy::Decision;
use crate::output::status::{JobInfo, SlotState, Status, Usage};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One resource's reasoning.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The level the worker holds now (its job file), percent.
    pub level_percent: f64,
    /// The level the policy plans now (it differs while a small move is held).
    pub planned_level_percent: Option<f64>,
    pub target_percent: f64,
    pub statistic: String,
    /// The statistic over the window so far, and the share of the window recorded.
    pub window_value_percent: Option<f64>,
    pub coverage: Option<f64>,
    pub hours_left: Option<f64>,
    pub organic_now_percent: f64,
    pub organic_forecast_percent: Option<f64>,
    pub deficit_percent_hours: Option<f64>,
    /// One line: why this level.
    pub reason: String,
    /// First window: the longest host outage from now the window survives (hours), and
    /// whether that margin is thin ("at risk").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage_margin_hours: Option<f64>,
    pub at_risk: bool,
    /// What the worker says limits it now (a floor, memory pressure, a failed mapping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    pub resources: BTreeMap<String, Explanation>,
}

fn one(u: &Usage, job: Option<&JobInfo>) -> Explanation {
    let f: Option<&Decision> = u.forecast.as_ref();
    let held = job.and_then(|j| j.level_percent).unwrap_or(u.level_percent);
    let reason = match (u.state, f) {
        (SlotState::Running, Some(d)) if (d.level - held).abs() >= 0.01 => format!(
            "holding {held:.1} % while the policy plans {:.1} %: a move of less than 5 points \
             waits until the job file is 15 minutes old ({})",
            d.level, d.note
        ),
        (SlotState::Running, Some(d)) => d.note.clone(),
        (SlotState::Running, None) => "no policy decision yet".into(),
        (state, _) => format!(
            "{}: {}",
            state.name(),
            u.state_note
                .as_deref()
                .unwrap_or("nothing holds this resource")
        ),
    };
    // The warning first: it is what an operator must act on (plan the outage later).
    let reason = match f.and_then(Decision::risk_text) {
        Some(risk) => format!("{risk}; {reason}"),
        None => reason,
    };
    Explanation {
        level_percent: held,
        planned_level_percent: f.map(|d| d.level),
        target_percent: u.target_percent,
        statistic: u.statistic.name(),
        window_value_percent: u.window.as_ref().map(|w| w.value),
        coverage: u.window.as_ref().map(|w| w.coverage),
        hours_left: f.map(|d| d.horizon_hours),
        organic_now_percent: u.organic_percent,
        organic_forecast_percent: f.map(|d| d.organic_forecast_percent),
        deficit_percent_hours: f.map(|d| d.deficit_percent_hours),
        reason,
        outage_margin_hours: f.and_then(|d| d.outage_margin_hours),
        at_risk: f.is_some_and(|d| d.at_risk),
        limited_by: job.and_then(|j| j.limited_by.clone()),
    }
}

/// The explanation of a status.
pub fn explain(s: &Status) -> Explain {
    let job = |id: &str| s.jobs.iter().find(|j| j.id == id && j.alive);
    let resources = s
        .resources
        .each()
        .into_iter()
        .map(|(slot, u)| (slot.label(), one(u, job(&slot.id()))))
        .collect();
    Explain { resources }
}

/// The text form: a paragraph per resource, the reason first.
pub fn render(e: &Explain) -> String {
    let mut o = String::new();
    if e.resources.is_empty() {
        o.push_str("nothing to explain: every resource is disabled in the desired state\n");
    }
    for (name, x) in &e.resources {
        let _ = writeln!(o, "{name}: {:.1} % — {}", x.level_percent, x.reason);
        let _ = write!(o, "  target {:.1} % ({})", x.target_percent, x.statistic);
        if let (Some(v), Some(c)) = (x.window_value_percent, x.coverage) {
            let _ = write!(o, "; so far {v:.1} % over {:.0} % of the window", c * 100.0);
        }
        if let Some(h) = x.hours_left {
            let _ = write!(o, "; {h:.0} h left");
        }
        let _ = writeln!(o);
        let _ = write!(o, "  organic now {:.1} %", x.organic_now_percent);
        if let Some(f) = x.organic_forecast_percent {
            let _ = write!(o, ", expected {f:.1} % over the horizon");
        }
        match x.deficit_percent_hours {
            Some(d) if d > 0.0 => {
                let _ = write!(o, "; a deficit of {d:.0} %·h to make up");
            }
            Some(_) => {
                let _ = write!(o, "; no deficit");
            }
            None => {}
        }
        let _ = writeln!(o);
        if let Some(l) = &x.limited_by {
            let _ = writeln!(o, "  limited by {l}");
        }
    }
    o
}
