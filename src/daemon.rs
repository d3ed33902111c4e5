//! `cro reconcile` without `--once`: watch the desired file and tick every
//! `interval_seconds`. Editors and config management replace files by rename, so the
//! watch is on the parent directory and events are filtered by file name. A bad edit is
//! logged and the last good state stays in force.
use crate::apply;
use crate::desired::{self, Resolved, Source};
use crate::error::{Error, Result};
use crate::procs;
use crate::queue::{Queue, StateLock};
use notify::{RecursiveMode, Watcher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn run(
    state_dir: &Path,
    desired_path: &Path,
    memory_total: u64,
    mut on_tick: impl FnMut(&Queue, std::result::Result<&apply::TickReport, &Error>, bool),
) -> Result<()> {
    let q = Queue::new(state_dir);
    q.ensure()?;
    // One daemon per state directory.
    let daemon_lock = crate::fsutil::open_lock_file(&state_dir.join("daemon.lock"))?;
    if daemon_lock.try_lock().is_err() {
        return Err(Error::Runtime(format!(
            "another cro daemon is running for {}",
            state_dir.display()
        )));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Error::Runtime(format!("cannot install signal handler: {e}")))?;
    }
    let load = || -> Result<(Resolved, Source)> {
        let (d, src) = desired::load(desired_path)?;
        Ok((d.resolve(desired_path, memory_total, true)?, src))
    };
    // An invalid file at start is fatal (exit 78): there is no last good state to keep.
    let (mut good, src) = load()?;
    if let Source::BuiltIn(p) = &src {
        tracing::warn!(
            "no desired state at {}; using the built-in default (write one with `cro init`)",
            p.display()
        );
    }
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let _ = tx.send(ev);
    })
    .map_err(|e| Error::Runtime(format!("cannot watch files: {e}")))?;
    let dir = desired_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| Error::Runtime(format!("cannot watch {}: {e}", dir.display())))?;
    let name = desired_path.file_name().map(|n| n.to_os_string());
    tracing::info!(desired = %desired_path.display(), state = %state_dir.display(), interval = good.interval_seconds, "daemon started");

    let mut config_ok = true;
    let mut next = Instant::now();
    let mut reload = false;
    while !stop.load(Ordering::Relaxed) {
        if reload {
            reload = false;
            match load() {
                Ok((r, _)) => {
                    if r != good {
                        tracing::info!("desired state changed; reconciling");
                    }
                    good = r;
                    config_ok = true;
                }
                Err(e) => {
                    tracing::error!("{e}\nkeeping the last good desired state");
                    config_ok = false;
                }
            }
        }
        if Instant::now() >= next {
            match StateLock::acquire(state_dir, Duration::from_secs(10)) {
                Ok(_lock) => {
                    let r = apply::tick(&q, &good);
                    on_tick(&q, r.as_ref(), config_ok);
                    if let Err(e) = r {
                        tracing::error!("reconcile failed: {e}");
                    }
                }
                Err(e) => tracing::warn!("{e}; skipping this tick"),
            }
            procs::reap_children();
            next = Instant::now() + Duration::from_secs(good.interval_seconds);
        }
        // Wait for the next tick, a change of the desired file, or a signal.
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Ok(ev))
                if ev
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == name) =>
            {
                // Let a burst of events (write, then rename) settle.
                std::thread::sleep(Duration::from_millis(200));
                while rx.try_recv().is_ok() {}
                reload = true;
                next = Instant::now();
            }
            Ok(Ok(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(Err(e)) => tracing::warn!("file watch error: {e}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Runtime("file watcher stopped".into()));
            }
        }
        procs::reap_children();
    }
    tracing::info!(
        "daemon stopping on signal; workers keep their jobs (use `cro recover` or `paused: true` to stop load)"
    );
    Ok(())
}
