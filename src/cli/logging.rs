//! Logging: journald-native when systemd started us (JOURNAL_STREAM names our stderr),
//! human lines on stderr otherwise, and optionally daily files in --log-dir with a
//! retention count. RUST_LOG (EnvFilter syntax) wins over --log-level. The Windows service
//! also puts its warnings and errors in the Application event log.
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// True when stderr is the journal stream systemd gave us (JOURNAL_STREAM=dev:inode).
pub fn stderr_is_journal() -> bool {
    std::env::var("JOURNAL_STREAM").is_ok_and(|v| stream_is(&v, &std::io::stderr()))
}

/// Does a `JOURNAL_STREAM` value ("device:inode") name the file open as `fd`?
fn stream_is(value: &str, fd: &impl crate::sys::fs::Open) -> bool {
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    crate::sys::fs::meta(fd).is_ok_and(|m| m.dev == dev && m.ino == ino)
}

/// Keeps the file writer flushing until the program ends.
pub struct Guard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// Set up logging. `Err` when `log_dir` is not a directory cro may trust: root appends to
/// files there by name, so a directory others can write would let them point a log file
/// at any file of root's (the same rule as the state directory).
pub fn init(
    level: &str,
    log_dir: Option<&std::path::Path>,
    keep: usize,
    is_worker: bool,
    is_service: bool,
) -> crate::error::Result<Guard> {
    if let Some(dir) = log_dir {
        crate::state::fsutil::check_trusted_dir(dir, true)
            .map_err(|e| crate::error::Error::Runtime(format!("--log-dir: {e}")))?;
    }
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let mut guard = None;
    let file_layer = log_dir.and_then(|dir| {
        let appender = tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("cro.log")
            .max_log_files(keep.max(1))
            .build(dir)
            .map_err(|e| eprintln!("cro: warning: cannot log to {}: {e}", dir.display()))
            .ok()?;
        let (w, g) = tracing_appender::non_blocking(appender);
        guard = Some(g);
        Some(
            tracing_subscriber::fmt::layer()
                .with_writer(w)
                .with_ansi(false)
                .with_target(false)
                .with_filter(filter()),
        )
    });
    // Workers write to their own log file (stderr redirected by the reconciler), so they
    // never go to the journal directly even under systemd.
    let journal = (!is_worker && stderr_is_journal())
        .then(|| tracing_journald::layer().ok())
        .flatten();
    let event_log =
        is_service.then(|| EventLog.with_filter(tracing_subscriber::filter::LevelFilter::WARN));
    let registry = tracing_subscriber::registry()
        .with(file_layer)
        .with(event_log);
    match journal {
        Some(j) => {
            let _ = registry
                .with(j.with_syslog_identifier("cro".into()).with_filter(filter()))
                .try_init();
        }
        None => {
            // Colour only on a terminal, and never when NO_COLOR is set (no-color.org).
            let ansi = !is_worker
                && std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(ansi)
                        .with_target(false)
                        .with_filter(filter()),
                )
                .try_init();
        }
    }
    Ok(Guard(guard))
}

/// Each event as one line in the platform's event log (`sys::event_log`: Windows').
struct EventLog;

impl<S: tracing::Subscriber> Layer<S> for EventLog {
    fn on_event(&self, ev: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut line = Line(String::new());
        ev.record(&mut line);
        let _ = crate::sys::event_log(*ev.metadata().level(), &line.0);
    }
}

/// An event's message, then its other fields as `name=value`, as the log file has them.
struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let _ = if field.name() == "message" {
            write!(self.0, "{value:?}")
        } else {
            write!(self.0, "{}={value:?}", field.name())
        };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn journal_stream_must_match_the_descriptor() {
        let f = tempfile::tempfile().unwrap();
        let md = crate::sys::fs::meta(&f).unwrap();
        assert!(
            !super::stream_is("1:2", &f),
            "a stream that is not this file"
        );
        assert!(!super::stream_is("garbage", &f));
        assert!(super::stream_is(&format!("{}:{}", md.dev, md.ino), &f));
    }
}
