//! What the one-shot commands print on a terminal: `validate`'s summary of the resolved
//! state, `recover`'s before/done/after lines, `reconcile --once`'s actions.
use crate::control::desired::Resolved;
use crate::control::plan::Plan;
use crate::format::human_bytes;
use crate::reconcile::recover::{self, Recovery};
use std::fmt::Write;
use std::path::Path;

/// `validate`: the file is valid, and what it resolves to on this host.
pub fn validated(path: &Path, r: &Resolved) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}: valid", path.display());
    let _ = writeln!(
        o,
        "host memory tier: {} GiB; window {} days; interval {} s{}",
        r.memory_tier_gib,
        r.window_days,
        r.interval_seconds,
        if r.paused { "; PAUSED" } else { "" }
    );
    let _ = match &r.cpu {
        Some(c) => writeln!(
            o,
            "cpu:    target {} % ({}), at most {} % synthetic",
            c.target_percent,
            c.statistic.name(),
            c.max_synthetic_percent
        ),
        None => writeln!(o, "cpu:    disabled"),
    };
    let _ = match &r.memory {
        Some(m) => writeln!(
            o,
            "memory: target {} % ({}), keep at least {} % available",
            m.target_percent,
            m.statistic.name(),
            m.min_available_percent
        ),
        None => writeln!(o, "memory: disabled"),
    };
    let _ = match &r.disk {
        Some(d) if d.mounts.is_empty() => {
            writeln!(
                o,
                "disk:   enabled, but no mounts listed: nothing is padded"
            )
        }
        Some(d) => writeln!(
            o,
            "disk:   target {} % ({}) on {}; keep at least {} % and {} free; fill by {}",
            d.target_percent,
            d.statistic.name(),
            d.mounts
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            d.min_free_percent,
            human_bytes(d.min_free_bytes),
            d.fill.name()
        ),
        None => writeln!(o, "disk:   disabled"),
    };
    o
}

/// `recover`: what there was, what was done, what is left.
pub fn recovered(r: &Recovery, dry_run: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "before: {}", recover::describe(&r.before));
    if dry_run {
        let _ = writeln!(o, "(dry run: nothing changed)");
    } else {
        let _ = writeln!(
            o,
            "done:   stopped {} worker(s) ({} by SIGTERM, {} by SIGKILL), deleted {} of ballast and {} job file(s)",
            r.stopped_by_sigterm + r.stopped_by_sigkill,
            r.stopped_by_sigterm,
            r.stopped_by_sigkill,
            human_bytes(r.deleted_ballast_bytes),
            r.deleted_job_files
        );
        let _ = writeln!(o, "after:  {}", recover::describe(&r.after));
    }
    if let Some(l) = &r.legacy {
        let procs = |v: &[(i32, String)]| {
            v.iter()
                .map(|(pid, s)| format!("{s} (pid {pid})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if dry_run {
            let _ = writeln!(
                o,
                "legacy: {} process(es) of the original tool{}; {} temp_*.dat file(s), {}",
                l.left.len(),
                if l.left.is_empty() {
                    String::new()
                } else {
                    format!(": {}", procs(&l.left))
                },
                l.deleted.len(),
                human_bytes(l.deleted_bytes)
            );
        } else {
            let _ = writeln!(
                o,
                "legacy: stopped {} process(es) of the original tool ({} by SIGKILL){}; deleted {} temp_*.dat file(s), {}",
                l.stopped.len() + l.killed.len(),
                l.killed.len(),
                if l.stopped.is_empty() && l.killed.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        procs(&[l.stopped.clone(), l.killed.clone()].concat())
                    )
                },
                l.deleted.len(),
                human_bytes(l.deleted_bytes)
            );
        }
    }
    o
}

/// `reconcile --once`: one line per action carried out.
pub fn actions(p: &Plan) -> String {
    p.actions
        .iter()
        .map(|a| format!("{}\n", a.describe()))
        .collect()
}

/// Any value as the pretty JSON every `--json` prints.
pub fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("serializes") + "\n"
}
