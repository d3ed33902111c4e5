//! Logging: journald-native when systemd started us (JOURNAL_STREAM names our stderr),
//! human lines on stderr otherwise, and optionally daily files in --log-dir with a
//! retention count. RUST_LOG (EnvFilter syntax) wins over --log-level.
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// True when stderr is the journal stream systemd gave us (JOURNAL_STREAM=dev:inode).
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat on fd 2 into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstat(2, &mut st) };
    r == 0 && st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// Keeps the file writer flushing until the program ends.
pub struct Guard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

pub fn init(level: &str, log_dir: Option<&std::path::Path>, keep: usize, is_worker: bool) -> Guard {
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
    let registry = tracing_subscriber::registry().with(file_layer);
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
    Guard(guard)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn journal_stream_must_match_stderr() {
        // SAFETY: test-only environment changes; this test alone touches JOURNAL_STREAM.
        unsafe { std::env::set_var("JOURNAL_STREAM", "1:2") };
        assert!(
            !super::stderr_is_journal(),
            "a stream that is not our stderr"
        );
        let md = std::fs::metadata("/proc/self/fd/2").unwrap();
        unsafe { std::env::set_var("JOURNAL_STREAM", format!("{}:{}", md.dev(), md.ino())) };
        assert!(super::stderr_is_journal(), "our own stderr");
        unsafe { std::env::remove_var("JOURNAL_STREAM") };
    }
}
