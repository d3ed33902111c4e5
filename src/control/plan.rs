//! The planner: pure. From the desired state, the observation and the jobs as found on
//! disk it returns what should change. It never learns why it was called (timer, file
//! event, cron), so the same state always gives the same plan, and a second run right
//! after the first plans nothing.
use crate::control::desired::Resolved;
use crate::control::job::{JOB_VERSION, Job, JobSpec};
use crate::control::job::{JobFound, WorkerState};
use crate::control::slot::Slot;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create or rewrite a job file (its content differs or it is corrupt).
    Write {
        id: String,
        job: Job,
        reason: String,
    },
    /// Start a worker for a slot whose lock is free.
    Start { id: String, reason: String },
    /// Remove a job: delete its file, stop its worker, give its ballast back.
    Remove { id: String, reason: String },
}

impl Action {
    pub fn id(&self) -> &str {
        match self {
            Action::Write { id, .. } | Action::Start { id, .. } | Action::Remove { id, .. } => id,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Action::Write { id, reason, .. } => format!("write job {id}: {reason}"),
            Action::Start { id, reason } => format!("start worker {id}: {reason}"),
            Action::Remove { id, reason } => format!("remove job {id}: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The jobs that should exist, in id order.
    pub jobs: Vec<Job>,
    pub actions: Vec<Action>,
}

/// Levels by job id, decided by the policy (src/control/policy.rs). A job without one holds its
/// target (fill the gap up to the target).
pub type Levels = std::collections::BTreeMap<String, f64>;

/// The jobs the desired state asks for, at the levels given.
pub fn desired_jobs(d: &Resolved, levels: &Levels) -> Vec<Job> {
    let mut jobs: Vec<Job> = Slot::wanted(d)
        .into_iter()
        .filter_map(|slot| {
            let id = slot.id();
            let level = |target: f64| levels.get(&id).copied().unwrap_or(target);
            let spec = match &slot {
                Slot::Cpu => d.cpu.as_ref().map(|c| JobSpec::Cpu {
                    level_percent: level(c.target_percent).min(100.0),
                    target_percent: c.target_percent,
                    max_synthetic_percent: c.max_synthetic_percent,
                }),
                Slot::Memory => d.memory.as_ref().map(|m| JobSpec::Memory {
                    level_percent: level(m.target_percent),
                    target_percent: m.target_percent,
                    min_available_percent: m.min_available_percent,
                    metric: m.metric,
                }),
                Slot::Disk(mount) => d.disk.as_ref().map(|k| JobSpec::Disk {
                    mount: mount.clone(),
                    level_percent: level(k.target_percent),
                    target_percent: k.target_percent,
                    min_free_percent: k.min_free_percent,
                    min_free_bytes: k.min_free_bytes,
                    fill: k.fill,
                    allow_plain_directory: k.allow_plain_directory,
                }),
            }?;
            Some(Job {
                version: JOB_VERSION,
                id,
                spec,
            })
        })
        .collect();
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    jobs
}

/// A job keeps its level while the policy's new one is within this many points of it (or
/// both are 0): workers need no rewrite for a hundredth of a point, and the job file
/// changes only when what the worker must do changes.
pub const LEVEL_DEADBAND: f64 = 0.5;

pub fn plan(desired: &Resolved, levels: &Levels, found: &[JobFound]) -> Plan {
    let mut levels = levels.clone();
    for (id, level) in levels.iter_mut() {
        let old = found
            .iter()
            .find(|f| &f.id == id)
            .and_then(|f| f.job.as_ref())
            .map(|j| j.spec.level_percent());
        if let Some(old) = old
            && (old - *level).abs() < LEVEL_DEADBAND
            && (old == 0.0) == (*level == 0.0)
        {
            *level = old;
        }
    }
    let jobs = desired_jobs(desired, &levels);
    let mut actions = vec![];
    for job in &jobs {
        let f = found.iter().find(|f| f.id == job.id);
        let current = f.and_then(|f| f.job.as_ref());
        if current != Some(job) {
            let reason = match (f.and_then(|f| f.corrupt.as_ref()), current) {
                (Some(e), _) => format!("job file is corrupt ({e})"),
                (None, None) => "new".to_string(),
                (None, Some(old)) => change_summary(&old.spec, &job.spec),
            };
            actions.push(Action::Write {
                id: job.id.clone(),
                job: job.clone(),
                reason,
            });
        }
        if !f.is_some_and(|f| f.alive) {
            let reason = match f.and_then(|f| f.status.as_ref()) {
                Some(s) if s.state == WorkerState::Running => format!(
                    "worker {} died without saying why (crashed or killed)",
                    s.pid
                ),
                Some(s) => format!("worker {} ended ({})", s.pid, s.state.name()),
                None => "no worker".to_string(),
            };
            actions.push(Action::Start {
                id: job.id.clone(),
                reason,
            });
        }
    }
    for f in found {
        if jobs.iter().any(|j| j.id == f.id) {
            continue;
        }
        // Remove only what is still there: a slot with no job file, no worker and nothing
        // recorded is already gone.
        if f.job.is_some() || f.corrupt.is_some() || f.alive || f.status.is_some() {
            let reason = if desired.paused {
                "paused".to_string()
            } else {
                "not in the desired state".to_string()
            };
            actions.push(Action::Remove {
                id: f.id.clone(),
                reason,
            });
        }
    }
    Plan { jobs, actions }
}

fn change_summary(old: &JobSpec, new: &JobSpec) -> String {
    if old.resource() != new.resource() {
        return format!("kind {} -> {}", old.resource(), new.resource());
    }
    if old.level_percent() != new.level_percent() {
        return format!(
            "level {} % -> {} %",
            old.level_percent(),
            new.level_percent()
        );
    }
    "limits changed".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::desired::{Resolved, parse};
    use std::path::Path;

    fn resolved(json: &str) -> Resolved {
        parse(json.as_bytes(), Path::new("d"))
            .unwrap()
            .resolve(Path::new("d"), 8 << 30, None)
            .unwrap()
    }
    fn found_from(plan: &Plan, alive: bool) -> Vec<JobFound> {
        plan.jobs
            .iter()
            .map(|j| JobFound {
                id: j.id.clone(),
                job: Some(j.clone()),
                alive,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    #[cfg(unix)] // Linux mount paths; Windows volumes (D:\\) come with the disk step
    fn fresh_host_writes_and_starts_everything() {
        let d = resolved(r#"{"version":1,"disk":{"mounts":["/data"]}}"#);
        let p = plan(&d, &Levels::new(), &[]);
        let ids: Vec<_> = p.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["cpu", "disk-data", "memory"]);
        assert_eq!(p.actions.len(), 6);
        assert_eq!(
            p.jobs[0].spec,
            JobSpec::Cpu {
                level_percent: 25.0,
                target_percent: 25.0,
                max_synthetic_percent: 90.0
            }
        );
    }

    #[test]
    fn second_run_plans_nothing() {
        let d = resolved(r#"{"version":1}"#);
        let p = plan(&d, &Levels::new(), &[]);
        let again = plan(&d, &Levels::new(), &found_from(&p, true));
        assert!(again.actions.is_empty(), "{:?}", again.actions);
    }

    #[test]
    fn dead_worker_is_restarted_without_rewriting() {
        let d = resolved(r#"{"version":1,"memory":{"enabled":false}}"#);
        let p = plan(&d, &Levels::new(), &[]);
        let again = plan(&d, &Levels::new(), &found_from(&p, false));
        assert_eq!(
            again.actions,
            vec![Action::Start {
                id: "cpu".into(),
                reason: "no worker".into()
            }]
        );
    }

    #[test]
    fn changed_target_rewrites_but_keeps_worker() {
        let p = plan(&resolved(r#"{"version":1}"#), &Levels::new(), &[]);
        let again = plan(
            &resolved(r#"{"version":1,"cpu":{"target_percent":30}}"#),
            &Levels::new(),
            &found_from(&p, true),
        );
        assert_eq!(again.actions.len(), 1);
        assert!(
            matches!(&again.actions[0], Action::Write { id, reason, .. } if id == "cpu" && reason == "level 25 % -> 30 %")
        );
    }

    #[test]
    fn small_level_moves_keep_the_job() {
        let d = resolved(r#"{"version":1,"memory":{"enabled":false}}"#);
        let lv = |x: f64| Levels::from([("cpu".to_string(), x)]);
        let p = plan(&d, &lv(30.0), &[]);
        let found = found_from(&p, true);
        assert!(plan(&d, &lv(30.3), &found).actions.is_empty());
        assert_eq!(plan(&d, &lv(30.6), &found).actions.len(), 1);
        let p0 = plan(&d, &lv(0.0), &[]);
        assert_eq!(
            plan(&d, &lv(0.2), &found_from(&p0, true)).actions.len(),
            1,
            "leaving 0 is always a change"
        );
    }

    #[test]
    fn pause_and_disable_remove() {
        let p = plan(&resolved(r#"{"version":1}"#), &Levels::new(), &[]);
        let found = found_from(&p, true);
        let paused = plan(
            &resolved(r#"{"version":1,"paused":true}"#),
            &Levels::new(),
            &found,
        );
        assert_eq!(
            paused
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Remove { .. }))
                .count(),
            2
        );
        let no_cpu = plan(
            &resolved(r#"{"version":1,"cpu":{"enabled":false}}"#),
            &Levels::new(),
            &found,
        );
        assert_eq!(
            no_cpu.actions,
            vec![Action::Remove {
                id: "cpu".into(),
                reason: "not in the desired state".into()
            }]
        );
    }

    #[test]
    fn corrupt_job_is_rewritten_and_stray_removed() {
        let d = resolved(r#"{"version":1,"memory":{"enabled":false}}"#);
        let found = vec![
            JobFound {
                id: "cpu".into(),
                corrupt: Some("EOF".into()),
                alive: true,
                ..Default::default()
            },
            JobFound {
                id: "disk-old".into(),
                corrupt: Some("EOF".into()),
                ..Default::default()
            },
        ];
        let p = plan(&d, &Levels::new(), &found);
        assert!(
            matches!(&p.actions[0], Action::Write { reason, .. } if reason.contains("corrupt"))
        );
        assert!(matches!(&p.actions[1], Action::Remove { id, .. } if id == "disk-old"));
        assert_eq!(p.actions.len(), 2);
    }
}
