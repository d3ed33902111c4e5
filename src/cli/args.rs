//! The command line as the user typed it (clap types only). `main` turns it into calls.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  cro init                                 write state/desired.json for this host
  cro validate /etc/cro/desired.json       check a file, print the resolved targets
  cro reconcile --once                     one pass (for cron / systemd timers)
  cro reconcile                            the daemon: watch the file, tick every interval
  cro status --json                        usage (organic/synthetic) vs target, jobs
  cro explain                              why each level is what it is, in one line
  cro history --since 7d --csv             the record, for a spreadsheet or an auditor
  cro recover                              stop every worker, delete every ballast file and job
  cro simulate --trace examples/traces/diurnal-web.csv --policy fill-gap

Exit codes: 0 ok, 1 runtime failure, 2 usage, 75 another reconcile/recover holds the
state lock (cron: just try again next time), 78 the desired state is invalid.";

/// The state directory when --state-dir is not given: `state` in a build from source,
/// /var/lib/cro in the packages (packaging/build.sh sets CRO_DEFAULT_STATE_DIR when it
/// builds), so a packaged `cro status` typed in any directory shows the service's state.
pub const DEFAULT_STATE_DIR: &str = match option_env!("CRO_DEFAULT_STATE_DIR") {
    Some(d) => d,
    None => "state",
};

/// The desired file when --desired is not given and the state directory is the default:
/// /etc/cro/desired.json in the packages (CRO_DEFAULT_DESIRED at build time); otherwise
/// `<state-dir>/desired.json`.
pub const DEFAULT_DESIRED: Option<&str> = option_env!("CRO_DEFAULT_DESIRED");

#[derive(Debug, Parser)]
#[command(name = "cro", version, about = "Keep a host's CPU, memory and disk utilization at an operator-set floor, using only the gap real work leaves.", after_help = EXAMPLES)]
pub struct Cli {
    /// State directory (jobs, locks, history). Must be on a local filesystem (flock).
    #[arg(
        long,
        env = "CRO_STATE_DIR",
        default_value = DEFAULT_STATE_DIR,
        global = true,
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
    /// Desired-state file [default: <state-dir>/desired.json; packaged: /etc/cro/desired.json].
    #[arg(long, env = "CRO_DESIRED", global = true, value_name = "FILE")]
    pub desired: Option<PathBuf>,
    /// Log level; RUST_LOG, when set, wins.
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        default_value = "info",
        value_parser = ["error", "warn", "info", "debug", "trace"]
    )]
    pub log_level: String,
    /// Also write logs to daily files in DIR (cro.log.YYYY-MM-DD).
    #[arg(long, env = "CRO_LOG_DIR", global = true, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// With --log-dir: how many daily files to keep.
    #[arg(long, global = true, value_name = "N", default_value_t = 14)]
    pub log_keep: usize,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a desired-state file for this host (targets from the tiers).
    #[command(
        after_help = "Examples:\n  cro init                    write state/desired.json (and its JSON Schema)\n  cro --desired /etc/cro/desired.json init\n  cro init --force            replace it, keeping the old one as .bak-<time>\n  cro init --force --from-env /opt/cro-old/config/.env\n                              the original tool's settings instead"
    )]
    Init {
        /// Replace an existing file (the old one is kept as <file>.bak-<time>).
        #[arg(long)]
        force: bool,
        /// Convert the original Python tool's config/.env (tiers, window, interval, disk
        /// path) instead of writing the defaults; every key not carried over is named.
        #[arg(long, value_name = "FILE")]
        from_env: Option<PathBuf>,
    },
    /// Check a desired-state file and print the resolved targets (exit 78 if invalid).
    #[command(
        after_help = "Examples:\n  cro validate /etc/cro/desired.json     check it, print the resolved targets\n  cro validate --json | jq .cpu.target_percent\n  cro validate --no-mount-check f.json   on a machine without the mounts"
    )]
    Validate {
        /// The file to check [default: the --desired file].
        file: Option<PathBuf>,
        /// Print the resolved targets as JSON (the file's own words: "mean", "allocate").
        #[arg(long)]
        json: bool,
        /// Do not require the disk mounts to exist here (validating a fleet's file on a
        /// build machine). The shape and every other rule are still checked.
        #[arg(long)]
        no_mount_check: bool,
    },
    /// Show what reconcile would change; changes nothing.
    #[command(
        after_help = "Examples:\n  cro plan          each job, the level it would hold and what that means here\n  cro plan --json   the same, for scripts"
    )]
    Plan {
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reconcile: one pass with --once, otherwise the daemon.
    #[command(
        after_help = "Examples:\n  cro reconcile --once    one pass (cron: */5 * * * * root cro reconcile --once)\n  cro reconcile           the daemon: a pass every interval_seconds\n  cro reconcile --textfile-dir /var/lib/node_exporter/textfile_collector\n  cro reconcile --service (Windows) the daemon as the service `cro`"
    )]
    Reconcile {
        /// One pass, then exit (workers it starts keep running).
        #[arg(long)]
        once: bool,
        /// Windows: the daemon as a service, started by the service control manager (a
        /// service stop ends it as Ctrl+C does; warnings and errors also go to the
        /// Application event log). Not for a terminal.
        #[arg(long, conflicts_with = "once")]
        service: bool,
        /// Print what the pass did as JSON (with --once).
        #[arg(long, requires = "once")]
        json: bool,
        /// After each pass write DIR/cro.prom for node_exporter's textfile collector.
        #[arg(long, env = "CRO_TEXTFILE_DIR", value_name = "DIR")]
        textfile_dir: Option<PathBuf>,
    },
    /// Usage (organic / synthetic) against the targets, and the jobs.
    #[command(
        after_help = "Examples:\n  cro status                             usage vs target, window, forecast, jobs\n  cro status --json | jq .resources.cpu  one resource, for scripts"
    )]
    Status {
        /// Print the status as JSON (documented in the README; stable).
        #[arg(long)]
        json: bool,
    },
    /// Why each resource's level is what it is: target, window so far, forecast, deficit.
    #[command(
        after_help = "Examples:\n  cro explain                  one paragraph per resource, the reason first\n  cro explain --json | jq '.resources.cpu.reason'"
    )]
    Explain {
        /// Print the explanation as JSON (`resources.<name>.{level_percent, reason, ...}`).
        #[arg(long)]
        json: bool,
    },
    /// The recorded history.
    #[command(
        after_help = "Examples:\n  cro history --since 12h                 one line per record\n  cro history --since 30d --csv > h.csv   for a spreadsheet or an auditor"
    )]
    History {
        /// How far back, e.g. 90m, 12h, 7d, 4w.
        #[arg(long, default_value = "1d", value_name = "DUR")]
        since: String,
        /// Print the records as a JSON array, as stored.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV: one row per record and resource (ts, interval_s, resource, total,
        /// organic, synthetic, level, target).
        #[arg(long)]
        csv: bool,
    },
    /// Compliance report over the window for an auditor: one self-contained HTML file.
    #[command(after_help = "Example:\n  cro report --html /tmp/cro-report.html")]
    Report {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
    },
    /// Stop every worker, delete every ballast file and job; print before and after.
    #[command(
        after_help = "Examples:\n  cro recover --dry-run   what is there, changing nothing\n  cro recover             stop all synthetic load now"
    )]
    Recover {
        /// Only show what is there.
        #[arg(long)]
        dry_run: bool,
        /// Print what was there and what was done as JSON.
        #[arg(long)]
        json: bool,
        /// Also delete `.cro-ballast` on every mount of the host, not only the mounts this
        /// state directory owns (after the state directory was lost; it takes another cro
        /// instance's ballast too).
        #[arg(long)]
        all_mounts: bool,
        /// Also stop the original Python tool (python running dynamic_redundancy.py or one
        /// of its stressers) and delete its temp_*.dat files in the --legacy-dir directories.
        #[arg(long)]
        legacy: bool,
        /// With --legacy: a directory with the original tool's temp_*.dat files (its
        /// DISK_STRESS_PATH); repeat for several.
        #[arg(long, value_name = "DIR", requires = "legacy")]
        legacy_dir: Vec<PathBuf>,
    },
    /// Print the desired-state JSON Schema.
    #[command(
        after_help = "Example:\n  cro schema > /etc/cro/desired-state.schema.json   for editors, offline"
    )]
    Schema,
    /// Serve a read-only dashboard (/), /api/status and /metrics.
    #[command(
        after_help = "Examples:\n  cro serve                        http://127.0.0.1:9477/ (loopback only)\n  curl -s 127.0.0.1:9477/metrics   what Prometheus scrapes\n  cro serve --listen 0.0.0.0:9477 --allow-host cro-web1.example.net\n                                   for a Prometheus elsewhere"
    )]
    Serve {
        /// Address to listen on; loopback unless you say otherwise.
        #[arg(long, default_value = "127.0.0.1:9477", value_name = "ADDR")]
        listen: String,
        /// Another name the Host header may carry (repeatable), e.g. the name Prometheus
        /// scrapes this host by. IP literals, localhost and this host's own names are
        /// always answered; other names are refused (421) against DNS rebinding.
        #[arg(long = "allow-host", value_name = "NAME")]
        allow_host: Vec<String>,
    },
    /// Every host's compliance from the Prometheus that scrapes cro, worst first.
    #[command(
        after_help = "Examples:\n  cro fleet --prometheus http://prom:9090            worst hosts first\n  cro fleet --prometheus http://prom:9090 --limit 20\n  cro fleet --prometheus http://prom:9090 --json | jq '.hosts[0]'\n  cro fleet --prometheus http://prom:9090 --html /tmp/fleet.html\n  cro fleet --prometheus http://prom:9090 --at 2026-11-30T23:59:00Z  then\n\nHosts are Prometheus's `instance` labels; a few queries however many hosts;\nwith examples/prometheus-rules.yml loaded, 13 series a host instead of 38.\nStates: not on track (cannot meet the target within its limits), not\nreconciling (no recent pass, invalid desired state, metrics gone), at risk\n(on track, below the target so far), compliant."
    )]
    Fleet(FleetArgs),
    /// Replay an organic-usage trace through the real policy; cost and compliance per resource.
    #[command(
        after_help = "Examples:\n  cro simulate --trace examples/traces/diurnal-web.csv\n  cro simulate --trace my.csv --policy fill-gap   the naive policy\n  cro --desired p95.json simulate --from-history\n                 another target, priced on this host's own recorded load\n  cro simulate --search 500 --seed 1    look for windows the policy misses\n  cro simulate --case 123456789         replay one case the search names"
    )]
    Simulate {
        /// CSV with header `t,cpu,memory,disk` (any resource column may be absent).
        #[arg(
            long,
            value_name = "CSV",
            required_unless_present_any = ["from_history", "case", "search"],
            conflicts_with_all = ["from_history", "case", "search"]
        )]
        trace: Option<PathBuf>,
        /// Replay one case of the search: its id is all it takes (the shape of organic
        /// load, the rule it is judged by and the trace are drawn from it). Ignores the
        /// desired file: the case carries its own rule.
        #[arg(long, value_name = "ID", conflicts_with_all = ["from_history", "search"])]
        case: Option<u64>,
        /// Search N generated cases (stationary, cyclic, rising, falling, steps, bursts,
        /// idle, outages, reboots, lost records, a neighbour's load; mean and percentile
        /// rules, 7- and 30-day windows, both first_window settings, cpu and memory) for
        /// windows the policy misses although they could be met. Exit 1 if it finds one.
        #[arg(long, value_name = "N", conflicts_with = "from_history")]
        search: Option<usize>,
        /// The search's seed: the same seed, the same cases.
        #[arg(long, default_value_t = 1, value_name = "SEED")]
        seed: u64,
        /// With --case: also write the case's trace as CSV to FILE (a miss kept as a
        /// regression trace).
        #[arg(long, value_name = "FILE", requires = "case")]
        write_trace: Option<PathBuf>,
        /// Replay this host's own recorded organic load (the state directory's history
        /// over the window) instead of a trace: what another target would have cost here.
        #[arg(long)]
        from_history: bool,
        /// The policy to replay: cro's own, or a naive one to compare with.
        #[arg(long, value_enum, default_value = "cro")]
        policy: crate::control::simulate::Policy,
        /// Host memory for the tiers [default: this host's].
        #[arg(long, value_name = "GIB")]
        memory_gib: Option<f64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example:\n  cro completions bash > /etc/bash_completion.d/cro")]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  cro man > /usr/local/share/man/man1/cro.1 && man cro")]
    Man,
    /// (internal) Run one job. Started by reconcile.
    #[command(hide = true)]
    Worker {
        /// The job file, <state-dir>/jobs/<id>.json.
        #[arg(long, value_name = "FILE")]
        job: PathBuf,
        /// The slot lock the reconciler already took and handed over as this descriptor
        /// (without it the worker takes the lock itself).
        #[arg(long, value_name = "FD")]
        lock_fd: Option<i32>,
    },
}

/// `cro fleet`'s options.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The Prometheus (or Thanos, VictoriaMetrics) server's base URL: http:// or https://.
    #[arg(long, env = "CRO_PROMETHEUS", value_name = "URL")]
    pub prometheus: String,
    /// For https://: the PEM file of the CA that signed the server's certificate
    /// [default: the system's CA bundle, else Mozilla's roots].
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Print the fleet as JSON (`hosts[].{instance, state, problems, resources[]}`).
    #[arg(long, conflicts_with = "html")]
    pub json: bool,
    /// Write the fleet report to FILE: one self-contained HTML page.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Show only the N worst hosts in the text table [default: all].
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// A host whose last pass is older than this is "not reconciling".
    #[arg(long, default_value = "15m", value_name = "DUR")]
    pub stale_after: String,
    /// Give up on Prometheus after this long.
    #[arg(long, default_value = "30s", value_name = "DUR")]
    pub timeout: String,
    /// Send the token in this file as `Authorization: Bearer` (a proxy in front of
    /// Prometheus).
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// The series to read: `recorded` (the 13 a host with one disk that
    /// examples/prometheus-rules.yml's group cro-fleet-view records), `raw` (every cro
    /// series, 38 a host), or `auto`: the recorded ones where they cover every host, else
    /// the raw ones. The view is the same (the recorded figures as of the rules' last
    /// evaluation).
    #[arg(long, value_enum, default_value_t = FleetSource::Auto)]
    pub source: FleetSource,
    /// The fleet as it stood at this time (RFC 3339, e.g. 2026-11-30T23:59:00Z, or Unix
    /// seconds) instead of now: the end of last month's windows, for an audit.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Say on stderr where the time went: each query's server time and parse time (CPU),
    /// judging, sorting, printing, and cro's own CPU time.
    #[arg(long)]
    pub timings: bool,
}

/// `cro fleet --source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FleetSource {
    Auto,
    Recorded,
    Raw,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every command a person can see has examples, and no option is left undescribed.
    #[test]
    fn every_subcommand_has_examples_and_every_option_a_description() {
        let cmd = Cli::command();
        for a in cmd.get_arguments() {
            assert!(
                a.get_help().is_some(),
                "--{} has no description",
                a.get_id()
            );
        }
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let after = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                after.contains("Example"),
                "`cro {}` has no example",
                sub.get_name()
            );
            for line in after.lines() {
                assert!(
                    line.len() <= 80,
                    "`cro {}` example too wide: {line}",
                    sub.get_name()
                );
            }
            for a in sub
                .get_arguments()
                .filter(|a| !a.is_positional() || a.get_id() != "shell")
            {
                assert!(
                    a.get_help().is_some(),
                    "`cro {} --{}` has no description",
                    sub.get_name(),
                    a.get_id()
                );
            }
        }
    }
}
