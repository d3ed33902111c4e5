//! `cro man`: one page, cro(1), with every command and its options (no cro-init(1) ...
//! subpages to go missing), ENVIRONMENT, FILES, EXIT STATUS, EXAMPLES and SEE ALSO.
//! clap_mangen renders the title, name, synopsis and global options from the same clap
//! definition as `--help`; the rest is written here in plain roff.
use std::io::Write;

/// Escape text for roff: backslashes, and a leading dot or quote.
fn esc(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn commands(cmd: &clap::Command) -> String {
    let mut o = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut usage = format!("\\fBcro {}\\fR", sub.get_name());
        for a in sub.get_arguments() {
            if a.is_positional() {
                usage += &format!(" [\\fI{}\\fR]", esc(&a.get_id().to_string().to_uppercase()));
            } else if let Some(l) = a.get_long() {
                let v = a
                    .get_value_names()
                    .filter(|_| a.get_action().takes_values())
                    .map(|v| format!(" \\fI{}\\fR", esc(&v.join(" "))))
                    .unwrap_or_default();
                usage += &format!(" [\\fB\\-\\-{}\\fR{v}]", esc(l));
            }
        }
        o += &format!(
            ".TP\n{usage}\n{}\n",
            esc(&sub.get_about().map(|a| a.to_string()).unwrap_or_default())
        );
        for a in sub.get_arguments() {
            let Some(help) = a.get_help() else { continue };
            let name = match a.get_long() {
                Some(l) => format!("\\fB\\-\\-{}\\fR", esc(l)),
                None => format!("\\fI{}\\fR", esc(&a.get_id().to_string().to_uppercase())),
            };
            o += &format!(".RS\n.TP\n{name}\n{}\n.RE\n", esc(&help.to_string()));
        }
    }
    o
}

const REST: &str = r#".SH ENVIRONMENT
.TP
\fBCRO_STATE_DIR\fR, \fBCRO_DESIRED\fR, \fBCRO_LOG_DIR\fR, \fBCRO_TEXTFILE_DIR\fR
The same as \-\-state\-dir, \-\-desired, \-\-log\-dir and \-\-textfile\-dir.
.TP
\fBCRO_RUN_DIR\fR
Where the host claim lives (default /run/cro for root; XDG_RUNTIME_DIR/cro or
/tmp/cro\-run\-<uid> for other users): one state directory per host reconciles;
a pass from another is refused (exit 1) and names the holder until it is recovered.
.TP
\fBCRO_CPU_PLACEMENT\fR
Set to \fBautogroup\fR to keep the CPU burners out of an idle cgroup (SCHED_IDLE with
autogroup nice 19 only).
.TP
\fBRUST_LOG\fR
Log filter (tracing EnvFilter syntax); wins over \-\-log\-level.
.TP
\fBNO_COLOR\fR, \fBJOURNAL_STREAM\fR
No colour in logs; logs go to journald natively when systemd started cro.
.TP
\fBCRO_CRASH_AT\fR
Fault injection for tests: kill this process at a named point. Never set it in production.
.SH FILES
.TP
\fI/etc/cro/desired.json\fR (packaged; else \fI<state\-dir>/desired.json\fR)
The desired state: targets, window, limits. Yours; cro never writes it except \fBcro init\fR.
.TP
\fI/var/lib/cro\fR (packaged; else \fI./state\fR)
The state directory, owned by root, 0700:
.RS
.nf
lock                       held by whoever reconciles or recovers
daemon.lock                held by the daemon
jobs/<id>.json             what the worker of slot <id> must hold (cpu, memory, disk\-...)
jobs/<id>.lock             held by the live worker; the only proof it lives
jobs/<id>.status.json      what the worker holds now
history/YYYY\-MM\-DD.jsonl   append\-only record, one JSON object per pass
logs/<id>.log              worker logs, rotated at 1 MiB, 3 kept
counters.json, window\-cache.json, metrics.json, ballast\-mounts.json   derived state
.fi
.RE
.TP
\fI<mount>/.cro\-ballast/\fR
Disk ballast files on each padded mount, nothing else. Deleted by \fBcro recover\fR.
.TP
\fI/run/cro/host.json\fR
The host claim (see CRO_RUN_DIR).
.SH EXIT STATUS
.TP
\fB0\fR
Success.
.TP
\fB1\fR
Runtime failure, including: another state directory holds this host.
.TP
\fB2\fR
Usage error (a bad option, a bad trace file, \-\-state\-dir not a directory).
.TP
\fB75\fR
Another reconcile or recover holds the state lock; from cron, just try again next time.
.TP
\fB78\fR
The desired state is invalid or a named desired file is missing; nothing was changed.
.SH EXAMPLES
First run on a host:
.PP
.nf
.RS
cro \-\-desired /etc/cro/desired.json init
cro \-\-desired /etc/cro/desired.json validate
cro \-\-state\-dir /var/lib/cro \-\-desired /etc/cro/desired.json plan
cro \-\-state\-dir /var/lib/cro \-\-desired /etc/cro/desired.json reconcile \-\-once
.RE
.fi
.PP
From cron, every five minutes:
.PP
.nf
.RS
*/5 * * * * root cro \-\-state\-dir /var/lib/cro \-\-desired /etc/cro/desired.json reconcile \-\-once
.RE
.fi
.PP
Look, then stop all synthetic load:
.PP
.nf
.RS
cro status
cro status \-\-json | jq .resources.cpu
cro recover
.RE
.fi
.SH SEE ALSO
\fBsystemctl\fR(1), \fBcrontab\fR(5), \fBnode_exporter\fR(1), \fBprometheus\fR(1);
the README and docs/OPERATIONS.md in the source or /usr/share/doc/cro.
"#;

/// Write the page.
pub fn render(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = <crate::cli::args::Cli as clap::CommandFactory>::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    out.write_all(commands(&cmd).as_bytes())?;
    out.write_all(REST.as_bytes())?;
    man.render_version_section(out)?;
    Ok(())
}
