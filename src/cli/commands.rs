//! The commands: validated configuration in, effects out. Each returns an exit code.
use crate::cli::args::{Cli, Command};
use crate::control::desired::{self, Resolved, Source};
use crate::error::{Error, Result, exit};
use crate::observe;
use crate::output::status;
use crate::reconcile::{daemon, recover, tick};
use crate::state::queue::{Queue, StateLock};
use crate::state::{fsutil, history};
use crate::timefmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn memory_total() -> Result<u64> {
    let cg = observe::read_cgroup_limits();
    Ok(observe::read_memory(&cg)
        .map_err(|e| Error::io("/proc/meminfo", "read", e))?
        .total_bytes)
}

/// Load and resolve the desired state; say once when the built-in default is in force.
fn load_resolved(path: &Path) -> Result<(Resolved, Source)> {
    let (d, src) = desired::load(path)?;
    if let Source::BuiltIn(p) = &src {
        eprintln!(
            "cro: no desired state at {}; using the built-in default (write one with `cro init`)",
            p.display()
        );
    }
    Ok((d.resolve(path, memory_total()?, true)?, src))
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializes"));
}

/// A desired file named by --desired or CRO_DESIRED must exist: the built-in default is
/// only for a state directory without one (a typo in a cron line must not pad the host to
/// the tier targets).
fn require_named(named: bool, path: &Path) -> Result<()> {
    if named && !path.exists() {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            problems: vec![crate::error::Problem::new(
                "",
                "the file named by --desired (or CRO_DESIRED) does not exist; check the \
                 path, or write one with `cro --desired FILE init`",
            )],
        });
    }
    Ok(())
}

/// A --state-dir that exists but is not a directory, named as the option.
fn check_state_dir(state_dir: &Path) -> Result<()> {
    match std::fs::metadata(state_dir) {
        Ok(md) if !md.is_dir() => Err(Error::Usage(format!(
            "--state-dir {}: not a directory; give the directory cro keeps its jobs and \
             history in (default ./state; packaged: /var/lib/cro)",
            state_dir.display()
        ))),
        _ => Ok(()),
    }
}

pub fn run(cli: Cli) -> Result<i32> {
    let state_dir = cli.state_dir.clone();
    let named = cli.desired.is_some();
    let desired_path = cli
        .desired
        .clone()
        .unwrap_or_else(|| state_dir.join("desired.json"));
    if !matches!(
        cli.command,
        Command::Schema | Command::Completions { .. } | Command::Man | Command::Validate { .. }
    ) {
        check_state_dir(&state_dir)?;
    }
    if matches!(
        cli.command,
        Command::Plan { .. }
            | Command::Status { .. }
            | Command::Reconcile { .. }
            | Command::Serve { .. }
    ) {
        require_named(named, &desired_path)?;
    }
    match cli.command {
        Command::Init { force } => init(&desired_path, force),
        Command::Validate {
            file,
            json,
            no_mount_check,
        } => validate(
            file.as_deref().unwrap_or(&desired_path),
            json,
            !no_mount_check,
        ),
        Command::Plan { json } => {
            let (d, _) = load_resolved(&desired_path)?;
            let (p, obs) = status::plan_now(&state_dir, &d)?;
            if json {
                print_json(&p)
            } else {
                print!("{}", status::render_plan(&p, &obs))
            }
            Ok(exit::OK)
        }
        Command::Reconcile {
            once: true,
            json,
            textfile_dir,
        } => {
            let (d, _) = load_resolved(&desired_path)?;
            let q = Queue::new(&state_dir);
            q.ensure()?;
            let _lock = StateLock::acquire(&state_dir, Duration::ZERO)?;
            crate::state::claim::take(&state_dir)?;
            let r = tick::tick(&q, &d);
            after_tick(
                &state_dir,
                &desired_path,
                r.as_ref().map(|r| r.errors.is_empty()).unwrap_or(false),
                textfile_dir.as_deref(),
            );
            let r = r?;
            if json {
                print_json(&r);
            } else {
                for a in &r.plan.actions {
                    println!("{}", a.describe());
                }
            }
            if r.errors.is_empty() {
                Ok(exit::OK)
            } else {
                Err(Error::Runtime(r.errors.join("; ")))
            }
        }
        Command::Reconcile {
            once: false,
            textfile_dir,
            ..
        } => {
            daemon::run(
                &state_dir,
                &desired_path,
                named,
                memory_total()?,
                |_, r, _| {
                    after_tick(
                        &state_dir,
                        &desired_path,
                        r.map(|r| r.errors.is_empty()).unwrap_or(false),
                        textfile_dir.as_deref(),
                    );
                },
            )?;
            Ok(exit::OK)
        }
        Command::Status { json } => {
            let s = status::status(&state_dir, &desired_path)?;
            if json {
                print_json(&s)
            } else {
                print!("{}", status::render_status(&s))
            }
            Ok(exit::OK)
        }
        Command::History { since, json, csv } => {
            let secs = timefmt::parse_duration(&since).ok_or_else(|| {
                Error::Usage(format!(
                    "--since {since:?}: give a duration like 90m, 12h, 7d or 4w"
                ))
            })?;
            let (rs, warnings) = history::read_since(&state_dir, timefmt::now_unix() - secs)?;
            for w in warnings {
                eprintln!("cro: warning: {w}");
            }
            if json {
                print_json(&rs)
            } else if csv {
                print!("{}", status::history_csv(&rs))
            } else {
                print!("{}", status::history_text(&rs))
            }
            Ok(exit::OK)
        }
        Command::Recover {
            dry_run,
            json,
            all_mounts,
        } => {
            let mounts: Vec<PathBuf> = desired::load(&desired_path)
                .ok()
                .map(|(d, _)| d.disk.mounts)
                .unwrap_or_default();
            let _lock = if state_dir.exists() {
                // recover signals processes and deletes files named by what it finds
                // here: only in a tree no other user can write
                fsutil::check_trusted_dir(&state_dir, true)?;
                let jobs = state_dir.join("jobs");
                if jobs.exists() {
                    fsutil::check_trusted_dir(&jobs, false)?;
                }
                Some(StateLock::acquire(&state_dir, Duration::from_secs(10))?)
            } else {
                None
            };
            if let Ok(f) = fsutil::open_lock_file(&state_dir.join("daemon.lock"))
                .map(|f| f.try_lock().is_err())
                && f
            {
                eprintln!(
                    "cro: warning: a cro daemon is running for this state directory and will start workers again at its next tick; stop it first (systemctl stop cro) or set \"paused\": true"
                );
            }
            let r = recover::run(&state_dir, &mounts, dry_run, all_mounts, &mut |m| {
                eprintln!("cro: {m}")
            })?;
            // Nothing of this state directory runs any more: the host is free for another.
            if !dry_run
                && r.problems.is_empty()
                && let Err(e) = crate::state::claim::release(&state_dir)
            {
                eprintln!("cro: warning: {e}");
            }
            if json {
                print_json(&r);
            } else {
                println!("before: {}", recover::describe(&r.before));
                if dry_run {
                    println!("(dry run: nothing changed)");
                } else {
                    println!(
                        "done:   stopped {} worker(s) ({} by SIGTERM, {} by SIGKILL), deleted {} of ballast and {} job file(s)",
                        r.stopped_by_sigterm + r.stopped_by_sigkill,
                        r.stopped_by_sigterm,
                        r.stopped_by_sigkill,
                        recover::human_bytes(r.deleted_ballast_bytes),
                        r.deleted_job_files
                    );
                    println!("after:  {}", recover::describe(&r.after));
                }
                for p in &r.problems {
                    eprintln!("cro: problem: {p}");
                }
            }
            if r.problems.is_empty() || dry_run {
                Ok(exit::OK)
            } else {
                Ok(exit::FAILURE)
            }
        }
        Command::Simulate {
            trace,
            policy,
            memory_gib,
            json,
        } => {
            let (d, _) = desired::load(&desired_path)?;
            let mem = match memory_gib {
                Some(g) if g.is_finite() && g > 0.0 => (g * (1u64 << 30) as f64) as u64,
                Some(g) => {
                    return Err(Error::Usage(format!(
                        "--memory-gib {g}: give a positive size"
                    )));
                }
                None => memory_total()?,
            };
            let r = d.resolve(&desired_path, mem, false)?;
            let text = std::fs::read_to_string(&trace).map_err(|e| Error::io(&trace, "read", e))?;
            let t = crate::control::simulate::parse_trace(&text, &trace)?;
            let rep = crate::control::simulate::simulate(&t, &r, policy);
            if json {
                println!("{}", serde_json::to_string(&rep).expect("serializes"))
            } else {
                print!("{}", crate::control::simulate::render(&rep))
            }
            Ok(exit::OK)
        }
        Command::Report { html } => {
            let (d, _) = desired::load(&desired_path)?;
            let r = d.resolve(&desired_path, memory_total()?, false)?;
            let now = timefmt::now_unix();
            let (records, warnings) =
                history::read_since(&state_dir, now - r.window_days as f64 * 86_400.0)?;
            for w in warnings {
                eprintln!("cro: warning: {w}");
            }
            // When the history began (None: before the window), as status judges it.
            let (w, _) =
                crate::control::window::load(&state_dir, now, r.window_days as f64 * 86_400.0);
            let first = if w.older_history {
                None
            } else {
                [w.cpu.first_time(), w.memory.first_time()]
                    .into_iter()
                    .chain(w.disk.values().map(|s| s.first_time()))
                    .chain([records.first().and_then(|r| timefmt::parse_rfc3339(&r.ts))])
                    .flatten()
                    .reduce(f64::min)
            };
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "this host".into());
            fsutil::write_atomic(
                &html,
                crate::output::report::render(&host, &r, &records, first, now).as_bytes(),
                0o644,
                true,
            )?;
            eprintln!(
                "cro: wrote {} ({} records over {} days)",
                html.display(),
                records.len(),
                r.window_days
            );
            Ok(exit::OK)
        }
        Command::Serve { listen } => {
            crate::output::serve::run(&state_dir, &desired_path, &listen)?;
            Ok(exit::OK)
        }
        Command::Schema => {
            print!("{}", desired::schema_json());
            Ok(exit::OK)
        }
        Command::Completions { shell } => {
            let mut cmd = public_command();
            clap_complete::generate(shell, &mut cmd, "cro", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Man => {
            crate::cli::manpage::render(&mut std::io::stdout())
                .map_err(|e| Error::Runtime(format!("cannot write the man page: {e}")))?;
            Ok(exit::OK)
        }
        Command::Worker { job, lock_fd } => {
            crate::worker::run(&job, lock_fd)?;
            Ok(exit::OK)
        }
    }
}

/// The command line as people use it: without the hidden internal `worker` subcommand,
/// which clap_complete would otherwise offer in completions.
fn public_command() -> clap::Command {
    let full = <Cli as clap::CommandFactory>::command();
    // Rebuild from the visible parts: clap has no way to remove a subcommand.
    let mut cmd = clap::Command::new("cro")
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default())
        .after_help(full.get_after_help().cloned().unwrap_or_default());
    for a in full.get_arguments() {
        cmd = cmd.arg(a.clone());
    }
    for s in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmd = cmd.subcommand(s.clone());
    }
    cmd
}

/// Count the pass and, when asked, publish the metrics. Failures here are logged, never
/// fatal: metrics must not stop the load from being held.
fn after_tick(state_dir: &Path, desired_path: &Path, ok: bool, textfile_dir: Option<&Path>) {
    let counters = match crate::output::metrics::count(state_dir, ok, timefmt::now_unix()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot count the reconcile: {e}");
            crate::output::metrics::load_counters(state_dir)
        }
    };
    let Some(dir) = textfile_dir else { return };
    let r = status::status(state_dir, desired_path).and_then(|s| {
        crate::output::metrics::write_textfile(dir, &crate::output::metrics::render(&s, &counters))
    });
    if let Err(e) = r {
        tracing::warn!("cannot write metrics: {e}");
    }
}

fn init(path: &Path, force: bool) -> Result<i32> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsutil::ensure_dir(dir, 0o755)?;
    }
    let existing = fsutil::read_optional(path)?;
    if existing.is_some() && !force {
        return Err(Error::Usage(format!(
            "{} exists; keep it, or pass --force to replace it (the old one is kept as a .bak file)",
            path.display()
        )));
    }
    if let Some(old) = existing {
        let bak = PathBuf::from(format!(
            "{}.bak-{}",
            path.display(),
            timefmt::rfc3339(timefmt::now_unix()).replace(':', "")
        ));
        fsutil::write_atomic(&bak, &old, 0o644, true)?;
        eprintln!("cro: kept the old file as {}", bak.display());
    }
    // The schema beside the file, so editors validate it offline.
    let schema_path = path.with_file_name("desired-state.schema.json");
    fsutil::write_atomic(&schema_path, desired::schema_json().as_bytes(), 0o644, true)?;
    let doc = desired::init_document("desired-state.schema.json");
    // Check before writing: what init writes must be valid here.
    desired::parse(doc.as_bytes(), path)?.resolve(path, memory_total()?, true)?;
    fsutil::write_atomic(path, doc.as_bytes(), 0o644, true)?;
    let r = desired::parse(doc.as_bytes(), path)?.resolve(path, memory_total()?, true)?;
    eprintln!(
        "cro: wrote {} (host tier {} GiB: cpu {} %, memory {} %; no disk mounts padded until you list them in disk.mounts)",
        path.display(),
        r.memory_tier_gib,
        r.cpu.as_ref().map_or(0.0, |c| c.target_percent),
        r.memory.as_ref().map_or(0.0, |m| m.target_percent)
    );
    Ok(exit::OK)
}

fn validate(path: &Path, json: bool, check_mounts: bool) -> Result<i32> {
    let Some(bytes) = desired::read(path)? else {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            problems: vec![crate::error::Problem::new(
                "",
                "the file does not exist; run `cro init` to write one",
            )],
        });
    };
    let r = desired::parse(&bytes, path)?.resolve(path, memory_total()?, check_mounts)?;
    // Valid, but not padded until mounted: say so now rather than leave the operator to
    // wonder later (a runtime condition, not a config error: exit stays 0).
    if let Some(d) = r
        .disk
        .as_ref()
        .filter(|d| check_mounts && !d.allow_plain_directory)
    {
        for m in d
            .mounts
            .iter()
            .filter(|m| !crate::worker::ballast::is_mount_point(m))
        {
            eprintln!(
                "cro: warning: {}: {} is not a mount point now; it is padded only once a \
                 filesystem is mounted there (or set disk.allow_plain_directory)",
                path.display(),
                m.display()
            );
        }
    }
    if json {
        print_json(&r);
        return Ok(exit::OK);
    }
    println!("{}: valid", path.display());
    println!(
        "host memory tier: {} GiB; window {} days; interval {} s{}",
        r.memory_tier_gib,
        r.window_days,
        r.interval_seconds,
        if r.paused { "; PAUSED" } else { "" }
    );
    match &r.cpu {
        Some(c) => println!(
            "cpu:    target {} % ({}), at most {} % synthetic",
            c.target_percent,
            c.statistic.name(),
            c.max_synthetic_percent
        ),
        None => println!("cpu:    disabled"),
    }
    match &r.memory {
        Some(m) => println!(
            "memory: target {} % ({}), keep at least {} % available",
            m.target_percent,
            m.statistic.name(),
            m.min_available_percent
        ),
        None => println!("memory: disabled"),
    }
    match &r.disk {
        Some(d) if d.mounts.is_empty() => {
            println!("disk:   enabled, but no mounts listed: nothing is padded")
        }
        Some(d) => println!(
            "disk:   target {} % ({}) on {}; keep at least {} % and {} free; fill by {}",
            d.target_percent,
            d.statistic.name(),
            d.mounts
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            d.min_free_percent,
            recover::human_bytes(d.min_free_bytes),
            d.fill.name()
        ),
        None => println!("disk:   disabled"),
    }
    Ok(exit::OK)
}
