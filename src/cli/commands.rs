//! One documented function per subcommand: raw arguments (`args`) become a validated
//! `Paths`, the command does its work through the library, and what it shows is rendered
//! in `output/` and printed here. Each returns an exit code (see `error::exit`).
use crate::cli::args::{Cli, Command, FleetArgs, FleetSource};
use crate::control::desired::{self, Resolved, Source};
use crate::error::{Error, Result, exit};
use crate::observe;
use crate::output::{status, summary};
use crate::reconcile::{daemon, recover, tick};
use crate::state::jobs::{JobDir, StateLock};
use crate::state::{fsutil, history};
use crate::timefmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The host's memory (the cgroup's limit when that is lower), read once per process: it
/// picks the memory tier every resolve uses.
fn memory_total() -> Result<u64> {
    static TOTAL: OnceLock<u64> = OnceLock::new();
    if let Some(t) = TOTAL.get() {
        return Ok(*t);
    }
    let cg = observe::read_cgroup_limits();
    let t = observe::read_memory(&cg)
        .map_err(|e| Error::io("/proc/meminfo", "read", e))?
        .total_bytes;
    Ok(*TOTAL.get_or_init(|| t))
}

/// Where this invocation keeps its state and finds its desired file.
pub struct Paths {
    pub state_dir: PathBuf,
    pub desired: PathBuf,
    /// Named by --desired or CRO_DESIRED (then it must exist), rather than the default
    /// `<state-dir>/desired.json`.
    pub named: bool,
}

impl Paths {
    fn from(cli: &Cli) -> Paths {
        Paths {
            state_dir: cli.state_dir.clone(),
            desired: cli.desired.clone().unwrap_or_else(
                || match crate::cli::args::DEFAULT_DESIRED {
                    Some(d) if cli.state_dir == Path::new(crate::cli::args::DEFAULT_STATE_DIR) => {
                        PathBuf::from(d)
                    }
                    _ => cli.state_dir.join("desired.json"),
                },
            ),
            named: cli.desired.is_some(),
        }
    }

    /// Load and resolve the desired state; say once when the built-in default is in force.
    fn load_resolved(&self) -> Result<Resolved> {
        let (d, src) = crate::state::desired_file::load(&self.desired)?;
        if let Source::BuiltIn(p) = &src {
            eprintln!(
                "cro: no desired state at {}; using the built-in default (write one with `cro init`)",
                p.display()
            );
        }
        d.resolve(
            &self.desired,
            memory_total()?,
            Some(&crate::observe::mount_path_problem),
        )
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    print!("{}", summary::json(v));
}

/// A desired file named by --desired or CRO_DESIRED must exist: the built-in default is
/// only for a state directory without one (a typo in a cron line must not pad the host to
/// the tier targets).
fn require_named(paths: &Paths) -> Result<()> {
    if paths.named && !paths.desired.exists() {
        return Err(Error::Invalid {
            path: paths.desired.clone(),
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

/// The paths a command needs: a usable state directory (all but the commands that only
/// print or read elsewhere), and a named desired file that exists (the commands that act
/// on one).
fn check_paths(command: &Command, paths: &Paths) -> Result<()> {
    if !matches!(
        command,
        Command::Schema
            | Command::Completions { .. }
            | Command::Man
            | Command::Validate { .. }
            | Command::Fleet { .. }
    ) {
        check_state_dir(&paths.state_dir)?;
    }
    if matches!(
        command,
        Command::Plan { .. }
            | Command::Status { .. }
            | Command::Explain { .. }
            | Command::Reconcile { .. }
            | Command::Serve { .. }
    ) {
        require_named(paths)?;
    }
    Ok(())
}

/// Check the paths the command needs, then run it. One arm per command, each a call to
/// the function that does that mode: the match is the map of the CLI, kept whole.
pub fn run(cli: Cli) -> Result<i32> {
    let paths = Paths::from(&cli);
    check_paths(&cli.command, &paths)?;
    match cli.command {
        Command::Init { force, from_env } => init(&paths.desired, force, from_env.as_deref()),
        Command::Validate {
            file,
            json,
            no_mount_check,
        } => validate(
            file.as_deref().unwrap_or(&paths.desired),
            file.is_some(),
            json,
            !no_mount_check,
        ),
        Command::Plan { json } => plan(&paths, json),
        Command::Reconcile {
            once: true,
            json,
            textfile_dir,
            ..
        } => reconcile_once(&paths, json, textfile_dir.as_deref()),
        Command::Reconcile {
            once: false,
            service: true,
            textfile_dir,
            ..
        } => reconcile_service(paths, textfile_dir),
        Command::Reconcile {
            once: false,
            textfile_dir,
            ..
        } => reconcile_daemon(&paths, textfile_dir.as_deref()),
        Command::Status { json } => show_status(&paths, json),
        Command::Explain { json } => explain(&paths, json),
        Command::History { since, json, csv } => show_history(&paths, &since, json, csv),
        Command::Recover {
            dry_run,
            json,
            all_mounts,
            legacy,
            legacy_dir,
        } => recover(
            &paths,
            dry_run,
            json,
            all_mounts,
            legacy.then_some(legacy_dir.as_slice()),
        ),
        Command::Simulate {
            search: Some(n),
            seed,
            json,
            ..
        } => simulate_search(n, seed, json),
        Command::Simulate {
            case: Some(id),
            write_trace,
            policy,
            json,
            ..
        } => simulate_case(id, write_trace.as_deref(), policy, json),
        Command::Simulate {
            trace,
            from_history,
            policy,
            memory_gib,
            json,
            ..
        } => simulate(
            &paths,
            trace.as_deref().filter(|_| !from_history),
            policy,
            memory_gib,
            json,
        ),
        Command::Report { html } => report(&paths, &html),
        Command::Fleet(a) => fleet(a),
        Command::Serve { listen, allow_host } => {
            crate::output::serve::run(&paths.state_dir, &paths.desired, &listen, &allow_host)?;
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
                .map_err(|e| Error::os("write the man page", e))?;
            Ok(exit::OK)
        }
        Command::Worker { job, lock_fd } => {
            crate::worker::run(&job, lock_fd)?;
            Ok(exit::OK)
        }
    }
}

/// `cro plan`: what a reconcile would do now, and why; changes nothing.
fn plan(paths: &Paths, json: bool) -> Result<i32> {
    let d = paths.load_resolved()?;
    let (p, obs, decisions) = status::plan_now(&paths.state_dir, &d)?;
    if json {
        print_json(&p)
    } else {
        print!("{}", status::render_plan(&p, &obs, &decisions))
    }
    Ok(exit::OK)
}

/// `cro reconcile --once` (cron): claim the host, run one tick under the state lock,
/// count it, print its actions. Exit 1 when an action failed (the rest still ran).
fn reconcile_once(paths: &Paths, json: bool, textfile_dir: Option<&Path>) -> Result<i32> {
    check_existing_state_dir(paths)?;
    let d = paths.load_resolved()?;
    let q = JobDir::new(&paths.state_dir);
    q.ensure()?;
    let _lock = StateLock::acquire(&paths.state_dir, Duration::ZERO)?;
    crate::state::claim::take(&paths.state_dir)?;
    let r = tick::tick(&q, &d);
    after_tick(
        paths,
        r.as_ref().map(|r| r.errors.is_empty()).unwrap_or(false),
        textfile_dir,
    );
    let r = r?;
    if json {
        print_json(&r);
    } else {
        print!("{}", summary::actions(&r.plan));
    }
    if r.errors.is_empty() {
        Ok(exit::OK)
    } else {
        Err(Error::Runtime(r.errors.join("; ")))
    }
}

/// A state tree others can write is the first thing wrong (exit 1, naming it), before the
/// desired file that may live in it is judged.
fn check_existing_state_dir(paths: &Paths) -> Result<()> {
    if paths.state_dir.exists() {
        fsutil::check_trusted_dir(&paths.state_dir, true)?;
    }
    Ok(())
}

/// `cro reconcile` (systemd): the daemon, until SIGTERM.
fn reconcile_daemon(paths: &Paths, textfile_dir: Option<&Path>) -> Result<i32> {
    check_existing_state_dir(paths)?;
    daemon::run(
        &paths.state_dir,
        &paths.desired,
        paths.named,
        memory_total()?,
        |_, r, _| {
            after_tick(
                paths,
                r.map(|r| r.errors.is_empty()).unwrap_or(false),
                textfile_dir,
            )
        },
    )?;
    Ok(exit::OK)
}

/// `cro reconcile --service`: the daemon under Windows' service control manager, which
/// starts cro so (install.ps1 registers the service). Its outcome goes to the log file and
/// the event log: a service has no terminal to print an error on.
fn reconcile_service(paths: Paths, textfile_dir: Option<PathBuf>) -> Result<i32> {
    let body = move || {
        let _ = crate::sys::event_log(
            tracing::Level::INFO,
            &format!(
                "cro {} service started: desired {}, state {}",
                env!("CARGO_PKG_VERSION"),
                paths.desired.display(),
                paths.state_dir.display()
            ),
        );
        let code = match reconcile_daemon(&paths, textfile_dir.as_deref()) {
            Ok(code) => code,
            Err(e) => {
                tracing::error!("the service stops: {e}");
                e.exit_code()
            }
        };
        let _ = crate::sys::event_log(
            tracing::Level::INFO,
            &format!("cro service stopped (exit code {code})"),
        );
        code
    };
    crate::sys::run_as_service("cro", Box::new(body)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::Unsupported {
            Error::Usage(
                "--service runs cro under Windows' service control manager; on Linux \
                 systemd runs `cro reconcile` as it is (the packaged cro.service)"
                    .into(),
            )
        } else if crate::sys::not_under_scm(&e) {
            Error::Usage(
                "--service is for the service control manager, which starts the `cro` \
                 service so (install.ps1 registers it); in a terminal the daemon is \
                 `cro reconcile`"
                    .into(),
            )
        } else {
            Error::os("start the service dispatcher", e)
        }
    })
}

/// `cro status`: desired against observed, the window so far, the jobs.
fn show_status(paths: &Paths, json: bool) -> Result<i32> {
    let s = status::status(&paths.state_dir, &paths.desired)?;
    if json {
        print_json(&s)
    } else {
        print!("{}", status::render_status(&s))
    }
    Ok(exit::OK)
}

/// `cro explain`: the reasoning behind each level in force, from the same pass status makes.
fn explain(paths: &Paths, json: bool) -> Result<i32> {
    let s = status::status(&paths.state_dir, &paths.desired)?;
    let e = crate::output::explain::explain(&s);
    if json {
        print_json(&e)
    } else {
        print!("{}", crate::output::explain::render(&e))
    }
    Ok(exit::OK)
}

/// `cro fleet --prometheus URL`: every host's compliance from Prometheus, worst first.
fn fleet(a: FleetArgs) -> Result<i32> {
    let dur = |opt: &str, v: &str| {
        timefmt::parse_duration(v)
            .filter(|s| *s > 0.0)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--{opt} {v:?}: give a duration like 30s, 15m or 2h"
                ))
            })
    };
    let stale_after_s = dur("stale-after", &a.stale_after)?;
    // at most a day: a longer wait is a typo, and a huge one does not fit a Duration
    let timeout = std::time::Duration::try_from_secs_f64(dur("timeout", &a.timeout)?)
        .ok()
        .filter(|t| t.as_secs() <= 86_400)
        .ok_or_else(|| {
            Error::Usage(format!(
                "--timeout {:?}: at most a day (for example 30s or 5m)",
                a.timeout
            ))
        })?;
    let bearer = match &a.bearer_token_file {
        Some(p) => {
            Some(std::fs::read_to_string(p).map_err(|e| Error::io(p, "read the bearer token", e))?)
        }
        None => None,
    };
    let roots = crate::fleet::prometheus::Roots::load(a.ca_file.as_deref())?;
    let mut client = crate::fleet::prometheus::Client::new(&a.prometheus, timeout, bearer, roots)?;
    if let Some(at) = &a.at {
        let t = timefmt::parse_rfc3339(at)
            .or_else(|| at.parse::<f64>().ok().filter(|t| t.is_finite() && *t > 0.0))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--at {at:?}: give a time like 2026-11-30T23:59:00Z or Unix seconds"
                ))
            })?;
        client.evaluate_at(t);
    }
    let choice = match a.source {
        FleetSource::Auto => crate::fleet::Choice::Auto,
        FleetSource::Recorded => crate::fleet::Choice::Recorded,
        FleetSource::Raw => crate::fleet::Choice::Raw,
    };
    let (f, timings) =
        crate::fleet::fetch(&client, crate::fleet::view::Rules { stale_after_s }, choice)?;
    let printing = std::time::Instant::now();
    let code = print_fleet(&a, &f)?;
    if a.timings {
        eprint!(
            "{}",
            crate::output::fleet::render_timings(
                &f,
                &timings,
                printing.elapsed().as_secs_f64(),
                crate::sys::cpu_seconds(false)
            )
        );
    }
    Ok(code)
}

/// The fleet view as `cro fleet` was asked to print it.
fn print_fleet(a: &FleetArgs, f: &crate::fleet::view::Fleet) -> Result<i32> {
    if a.json {
        print_json(&f)
    } else if let Some(file) = &a.html {
        fsutil::write_atomic(
            file,
            crate::output::fleet::render_html(f).as_bytes(),
            0o644,
            true,
        )?;
        eprintln!(
            "cro: wrote {} ({} hosts from {})",
            file.display(),
            f.hosts.len(),
            f.prometheus
        );
    } else {
        print!(
            "{}",
            crate::output::fleet::render_text(f, a.limit.unwrap_or(usize::MAX))
        )
    }
    Ok(exit::OK)
}

/// `cro history --since 7d`: the recorded passes, as text, CSV or JSON.
fn show_history(paths: &Paths, since: &str, json: bool, csv: bool) -> Result<i32> {
    let secs = timefmt::parse_duration(since).ok_or_else(|| {
        Error::Usage(format!(
            "--since {since:?}: give a duration like 90m, 12h, 7d or 4w"
        ))
    })?;
    let (rs, warnings) = history::read_since(&paths.state_dir, timefmt::now_unix() - secs)?;
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

/// `cro recover`: stop every worker of this state directory, delete its ballast and jobs,
/// give the host claim up; with `legacy` (the --legacy-dir directories), stop the original
/// Python tool and delete its files too. Exit 1 when something could not be cleaned.
fn recover(
    paths: &Paths,
    dry_run: bool,
    json: bool,
    all_mounts: bool,
    legacy: Option<&[PathBuf]>,
) -> Result<i32> {
    let state_dir = &paths.state_dir;
    let mounts: Vec<PathBuf> = crate::state::desired_file::load(&paths.desired)
        .ok()
        .map(|(d, _)| d.disk.mounts)
        .unwrap_or_default();
    let _lock = if state_dir.exists() {
        // recover signals processes and deletes files named by what it finds
        // here: only in a tree no other user can write
        fsutil::check_trusted_dir(state_dir, true)?;
        let jobs = state_dir.join("jobs");
        if jobs.exists() {
            fsutil::check_trusted_dir(&jobs, false)?;
        }
        Some(StateLock::acquire(state_dir, Duration::from_secs(10))?)
    } else {
        None
    };
    if let Ok(f) =
        fsutil::open_lock_file(&state_dir.join("daemon.lock")).map(|f| f.try_lock().is_err())
        && f
    {
        eprintln!(
            "cro: warning: a cro daemon is running for this state directory and will start workers again at its next tick; stop it first (systemctl stop cro) or set \"paused\": true"
        );
    }
    let mut r = recover::run(state_dir, &mounts, dry_run, all_mounts, &mut |m| {
        eprintln!("cro: {m}")
    })?;
    if let Some(dirs) = legacy {
        if dirs.is_empty() {
            eprintln!(
                "cro: no --legacy-dir given: the original tool's temp_*.dat files (in its \
                 DISK_STRESS_PATH) are left in place"
            );
        }
        let l = crate::reconcile::legacy_procs::stop_and_clean(
            dirs,
            Duration::from_secs(10),
            dry_run,
            &mut |m| eprintln!("cro: {m}"),
        );
        r.problems.extend(l.problems.iter().cloned());
        r.problems.extend(
            l.left
                .iter()
                .filter(|_| !dry_run)
                .map(|(pid, s)| format!("the original tool's {s} (pid {pid}) did not stop")),
        );
        r.legacy = Some(l);
    }
    // Nothing of this state directory runs any more: the host is free for another.
    if !dry_run
        && r.problems.is_empty()
        && let Err(e) = crate::state::claim::release(state_dir)
    {
        eprintln!("cro: warning: {e}");
    }
    if json {
        print_json(&r);
    } else {
        print!("{}", summary::recovered(&r, dry_run));
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

/// `cro simulate --trace FILE` (or `--from-history`: this host's own recorded organic
/// load over the window): replay it through the policy under the desired state; what cro
/// would have added and how the window would have ended.
fn simulate(
    paths: &Paths,
    trace: Option<&Path>,
    policy: crate::control::simulate::Policy,
    memory_gib: Option<f64>,
    json: bool,
) -> Result<i32> {
    let (d, _) = crate::state::desired_file::load(&paths.desired)?;
    let mem = match memory_gib {
        Some(g) if g.is_finite() && g > 0.0 => (g * (1u64 << 30) as f64) as u64,
        Some(g) => {
            return Err(Error::Usage(format!(
                "--memory-gib {g}: give a positive size"
            )));
        }
        None => memory_total()?,
    };
    let r = d.resolve(&paths.desired, mem, None)?;
    let t = match trace {
        Some(trace) => {
            let text = std::fs::read_to_string(trace).map_err(|e| Error::io(trace, "read", e))?;
            crate::control::simulate::parse_trace(&text, trace)?
        }
        None => {
            let since = timefmt::now_unix() - r.window_days as f64 * 86_400.0;
            let (records, warnings) = history::read_since(&paths.state_dir, since)?;
            for w in warnings {
                eprintln!("cro: warning: {w}");
            }
            let disk = r
                .disk
                .as_ref()
                .and_then(|k| k.mounts.first())
                .map(|m| m.display().to_string());
            let t = crate::control::simulate::trace_from_history(&records, disk.as_deref())?;
            eprintln!(
                "cro: replaying {} records of {} ({} s apart) from the history",
                t.rows.len(),
                paths.state_dir.display(),
                t.interval
            );
            t
        }
    };
    let rep = crate::control::simulate::simulate(&t, &r, policy);
    if json {
        println!("{}", serde_json::to_string(&rep).expect("serializes"))
    } else {
        print!("{}", crate::control::simulate::render(&rep))
    }
    Ok(exit::OK)
}

/// `cro simulate --search N`: N generated cases through the real policy, on every CPU
/// (each case is independent and pure); the table per class, every miss of a feasible
/// case with the command that replays it. Exit 1 when there is such a miss.
fn simulate_search(n: usize, seed: u64, json: bool) -> Result<i32> {
    use crate::control::search;
    let ids = search::ids(seed, n);
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let started = std::time::Instant::now();
    let mut verdicts: Vec<(usize, search::Verdict)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let ids = &ids;
                s.spawn(move || {
                    (w..ids.len())
                        .step_by(threads)
                        .map(|i| (i, search::judge(&search::case(ids[i]))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().expect("a search thread panicked"))
            .collect()
    });
    // in the order of the ids, whatever thread judged them
    verdicts.sort_by_key(|(i, _)| *i);
    let verdicts: Vec<search::Verdict> = verdicts.into_iter().map(|(_, v)| v).collect();
    let result = search::summarize(seed, &verdicts);
    if json {
        println!("{}", serde_json::to_string(&result).expect("serializes"));
    } else {
        print!("{}", search::render(&result));
        println!(
            "{n} cases in {:.1} s on {threads} thread(s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if result.misses.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// `cro simulate --case ID`: one case of the search, how it was drawn, and the policy's
/// result on it (optionally its trace written as CSV).
fn simulate_case(
    id: u64,
    write_trace: Option<&Path>,
    policy: crate::control::simulate::Policy,
    json: bool,
) -> Result<i32> {
    use crate::control::search;
    let c = search::case(id);
    if let Some(f) = write_trace {
        std::fs::write(f, c.csv()).map_err(|e| Error::io(f, "write", e))?;
    }
    let d = search::resolved(&c);
    let rep = crate::control::simulate::simulate(&c.trace, &d, policy);
    let v = search::judge_simulation(&c, &d, &rep);
    if json {
        let out = serde_json::json!({
            "case": id,
            "class": c.class,
            "params": c.params,
            "desired": serde_json::from_str::<serde_json::Value>(&c.desired_json()).expect("json"),
            "days": c.days,
            "feasible": v.feasible,
            "simulation": rep,
        });
        println!("{out}");
    } else {
        println!(
            "case {id}: {} ({}), {} days
desired state: {}
feasible (holding the limit meets it): {}",
            c.class,
            c.params,
            c.days,
            c.desired_json(),
            if v.feasible { "yes" } else { "no" }
        );
        print!("{}", crate::control::simulate::render(&rep));
    }
    Ok(exit::OK)
}

/// `cro report --html FILE`: the window's history as one self-contained page for an
/// auditor.
fn report(paths: &Paths, html: &Path) -> Result<i32> {
    let (d, _) = crate::state::desired_file::load(&paths.desired)?;
    let r = d.resolve(&paths.desired, memory_total()?, None)?;
    let now = timefmt::now_unix();
    let window_s = r.window_days as f64 * 86_400.0;
    let (records, warnings) = history::read_since(&paths.state_dir, now - window_s)?;
    for w in warnings {
        eprintln!("cro: warning: {w}");
    }
    // When the history began (None: before the window), as status judges it.
    let (w, _) = crate::state::window_cache::load(&paths.state_dir, now, window_s);
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
    let host = crate::observe::hostname();
    const GIB: f64 = (1u64 << 30) as f64;
    let capacity = crate::output::report::Capacity {
        cpus: observe::host_cpus() as f64,
        memory_gib: memory_total()? as f64 / GIB,
        disk_gib: r
            .disk
            .iter()
            .flat_map(|k| k.mounts.iter())
            .map(|m| {
                let gib = observe::fs_usage(m).map_or(0.0, |u| u.capacity_bytes() as f64 / GIB);
                (m.display().to_string(), gib)
            })
            .collect(),
    };
    fsutil::write_atomic(
        html,
        crate::output::report::render(&host, &r, &capacity, &records, first, now).as_bytes(),
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
fn after_tick(paths: &Paths, ok: bool, textfile_dir: Option<&Path>) {
    let (state_dir, desired_path) = (&paths.state_dir, &paths.desired);
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

/// The original tool's .env as a desired-state document; what was and was not carried
/// over is printed. Invalid values refuse the conversion (nothing is written).
fn document_from_env(env_path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(env_path).map_err(|e| Error::io(env_path, "read", e))?;
    let (pairs, unread) = crate::state::env_file::parse(&text);
    let c = crate::control::legacy_env::convert(&pairs, unread);
    if !c.errors.is_empty() {
        return Err(Error::Invalid {
            path: env_path.to_path_buf(),
            problems: c
                .errors
                .iter()
                .map(|(k, why)| crate::error::Problem::new(k.as_str(), why.as_str()))
                .collect(),
        });
    }
    for (k, to) in &c.carried {
        eprintln!("cro: {}: {k} -> {to}", env_path.display());
    }
    for (k, why) in &c.dropped {
        eprintln!("cro: {}: {k} not carried over: {why}", env_path.display());
    }
    let d = desired::DesiredState {
        schema: Some("desired-state.schema.json".into()),
        ..c.desired
    };
    Ok(serde_json::to_string_pretty(&d).expect("serializes") + "\n")
}

/// `cro init`: write a desired state for this host (and its JSON schema beside it);
/// an existing file is kept unless --force, and then kept as a .bak. With --from-env, the
/// original tool's settings instead of the defaults.
fn init(path: &Path, force: bool, from_env: Option<&Path>) -> Result<i32> {
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
    // Check before writing anything: what init writes must be valid here.
    let doc = match from_env {
        Some(env) => document_from_env(env)?,
        None => desired::init_document("desired-state.schema.json"),
    };
    let r = desired::parse(doc.as_bytes(), path)?.resolve(
        path,
        memory_total()?,
        Some(&crate::observe::mount_path_problem),
    )?;
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
    fsutil::write_atomic(path, doc.as_bytes(), 0o644, true)?;
    eprintln!(
        "cro: wrote {} (host tier {} GiB: cpu {} %, memory {} %; no disk mounts padded until you list them in disk.mounts)",
        path.display(),
        r.memory_tier_gib,
        r.cpu.as_ref().map_or(0.0, |c| c.target_percent),
        r.memory.as_ref().map_or(0.0, |m| m.target_percent)
    );
    Ok(exit::OK)
}

/// `cro validate [FILE]`: check a desired state and show what it resolves to here; exit
/// 78 with every problem named (file, field, fix) when it is invalid. A FILE named on the
/// command line is a draft the person at the terminal chose (any owner or directory); the
/// desired path cro acts on gets the trust checks every reader applies.
fn validate(path: &Path, named_here: bool, json: bool, check_mounts: bool) -> Result<i32> {
    let read = if named_here {
        crate::state::desired_file::read_named(path)?
    } else {
        crate::state::desired_file::read(path)?
    };
    let Some(bytes) = read else {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            problems: vec![crate::error::Problem::new(
                "",
                "the file does not exist; run `cro init` to write one",
            )],
        });
    };
    let here: &dyn Fn(&Path) -> Option<String> = &crate::observe::mount_path_problem;
    let r = desired::parse(&bytes, path)?.resolve(
        path,
        memory_total()?,
        check_mounts.then_some(here),
    )?;
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
    } else {
        print!("{}", summary::validated(path, &r));
    }
    Ok(exit::OK)
}
