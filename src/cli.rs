//! The command line as the user typed it (clap types only). `main` turns it into calls.
use clap::{Parser, Subcommand};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  cro init                                 write state/desired.json for this host
  cro validate /etc/cro/desired.json       check a file, print the resolved targets
  cro reconcile --once                     one pass (for cron / systemd timers)
  cro reconcile                            the daemon: watch the file, tick every interval
  cro status --json                        usage (organic/synthetic) vs target, jobs
  cro history --since 7d --csv             the record, for a spreadsheet or an auditor
  cro recover                              stop every worker, delete every ballast file and job
  cro simulate --trace examples/traces/diurnal-web.csv --policy fill-gap

Exit codes: 0 ok, 1 runtime failure, 2 usage, 75 another reconcile/recover holds the
state lock (cron: just try again next time), 78 the desired state is invalid.";

#[derive(Debug, Parser)]
#[command(name = "cro", version, about = "Keep a Linux host's CPU, memory and disk utilization at an operator-set floor, using only the gap real work leaves.", after_help = EXAMPLES)]
pub struct Cli {
    /// State directory (jobs, locks, history). Must be on a local filesystem (flock).
    #[arg(
        long,
        env = "CRO_STATE_DIR",
        default_value = "state",
        global = true,
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
    /// Desired-state file [default: <state-dir>/desired.json].
    #[arg(long, env = "CRO_DESIRED", global = true, value_name = "FILE")]
    pub desired: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace); RUST_LOG, when set, wins.
    #[arg(long, global = true, value_name = "LEVEL", default_value = "info")]
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
    Init {
        /// Replace an existing file (the old one is kept as <file>.bak-<time>).
        #[arg(long)]
        force: bool,
    },
    /// Check a desired-state file and print the resolved targets (exit 78 if invalid).
    Validate {
        /// The file to check [default: the --desired file].
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Do not require the disk mounts to exist here (validating a fleet's file on a
        /// build machine). The shape and every other rule are still checked.
        #[arg(long)]
        no_mount_check: bool,
    },
    /// Show what reconcile would change; changes nothing.
    Plan {
        #[arg(long)]
        json: bool,
    },
    /// Reconcile: one pass with --once, otherwise the daemon.
    Reconcile {
        /// One pass, then exit (workers it starts keep running).
        #[arg(long)]
        once: bool,
        /// Print what the pass did as JSON (with --once).
        #[arg(long, requires = "once")]
        json: bool,
        /// After each pass write DIR/cro.prom for node_exporter's textfile collector.
        #[arg(long, env = "CRO_TEXTFILE_DIR", value_name = "DIR")]
        textfile_dir: Option<PathBuf>,
    },
    /// Usage (organic / synthetic) against the targets, and the jobs.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The recorded history.
    History {
        /// How far back, e.g. 90m, 12h, 7d, 4w.
        #[arg(long, default_value = "1d", value_name = "DUR")]
        since: String,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// Compliance report over the window for an auditor: one self-contained HTML file.
    Report {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
    },
    /// Stop every worker, delete every ballast file and job; print before and after.
    Recover {
        /// Only show what is there.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
        /// Also delete `.cro-ballast` on every mount of the host, not only the mounts this
        /// state directory owns (after the state directory was lost; it takes another cro
        /// instance's ballast too).
        #[arg(long)]
        all_mounts: bool,
    },
    /// Print the desired-state JSON Schema.
    Schema,
    /// Serve a read-only dashboard (/), /api/status and /metrics.
    Serve {
        /// Address to listen on; loopback unless you say otherwise.
        #[arg(long, default_value = "127.0.0.1:9477", value_name = "ADDR")]
        listen: String,
    },
    /// Replay an organic-usage trace through the real policy; cost and compliance per resource.
    Simulate {
        /// CSV with header `t,cpu,memory,disk` (any resource column may be absent).
        #[arg(long, value_name = "CSV")]
        trace: PathBuf,
        #[arg(long, value_enum, default_value = "cro")]
        policy: crate::simulate::Policy,
        /// Host memory for the tiers [default: this host's].
        #[arg(long, value_name = "GIB")]
        memory_gib: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
    /// (internal) Run one job. Started by reconcile.
    #[command(hide = true)]
    Worker {
        #[arg(long, value_name = "FILE")]
        job: PathBuf,
    },
}
