//! `cro reconcile` without `--once`: watch the desired file and tick every
//! `interval_seconds`. Editors and config management replace files by rename, so the
//! watch is on the parent directory and events are filtered by file name. A bad edit is
//! logged and the last good state stays in force.
use crate::control::desired::{self, Resolved, Source};
use crate::error::{Error, Result};
use crate::observe::procs;
use crate::reconcile::tick;
use crate::state::jobs::{JobDir, StateLock};
use notify::{RecursiveMode, Watcher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What `on_tick` is told after each pass: the job directory, the pass's report (or why
/// it failed) and whether the desired file in force is the one on disk.
pub type OnTick<'a> = dyn FnMut(&JobDir, std::result::Result<&tick::TickReport, &Error>, bool) + 'a;

/// The daemon: a pass every `interval_seconds` (and at once after a change of the desired
/// file or a SIGHUP), until SIGTERM or SIGINT. Workers keep their jobs when it stops.
pub fn run(
    state_dir: &Path,
    desired_path: &Path,
    named: bool,
    memory_total: u64,
    mut on_tick: impl FnMut(&JobDir, std::result::Result<&tick::TickReport, &Error>, bool),
) -> Result<()> {
    let q = JobDir::new(state_dir);
    q.ensure()?;
    // One daemon per state directory (held until we return).
    let daemon_lock = crate::state::fsutil::open_lock_file(&state_dir.join("daemon.lock"))?;
    if daemon_lock.try_lock().is_err() {
        return Err(Error::Runtime(format!(
            "another cro daemon is running for {}",
            state_dir.display()
        )));
    }
    // One cro per host: refuse to start beside another state directory's (exit 1).
    crate::state::claim::take(state_dir)?;
    let signals = Signals::install()?;
    // What the file held when last loaded: only a change of content is a change. Reading
    // the file (status, serve, metrics, a person's `cat`, our own reload) produces inotify
    // events too; before this, each reload's own read caused the next reload.
    let read = || crate::state::desired_file::read(desired_path);
    let load = |bytes: Option<&[u8]>| load(desired_path, named, memory_total, bytes);
    // An invalid file at start is fatal (exit 78): there is no last good state to keep.
    let mut seen = read()?;
    let (mut good, src) = load(seen.as_deref())?;
    if let Source::BuiltIn(p) = &src {
        tracing::warn!(
            "no desired state at {}; using the built-in default (write one with `cro init`)",
            p.display()
        );
    }
    let watch = DesiredWatch::start(desired_path)?;
    tracing::info!(desired = %desired_path.display(), state = %state_dir.display(), interval = good.interval_seconds, "daemon started");
    let mut config_ok = true;
    let mut next = Instant::now();
    while !signals.stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            let started = Instant::now();
            pass(&q, &good, config_ok, &mut on_tick);
            procs::reap_children();
            // Fixed rate: the next tick is an interval after this one began, so a tick's own
            // duration does not stretch the cadence (one record per interval).
            next = (started + Duration::from_secs(good.interval_seconds)).max(Instant::now());
        }
        // Wait for the next tick, a change of the desired file, or a signal.
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        let changed_file = watch.wait(wait)?;
        let reload_asked = signals.hup.swap(false, Ordering::Relaxed);
        if reload_asked {
            tracing::info!("SIGHUP: reading the desired file again");
        }
        if (changed_file || reload_asked)
            && reconsider(&read, &load, &mut seen, &mut good, &mut config_ok)
        {
            // One extra tick for the change, then the interval again.
            next = Instant::now();
        }
        procs::reap_children();
    }
    tracing::info!(
        "daemon stopping as asked (a signal, or a service stop on Windows); workers keep their jobs (use `cro recover` or `paused: true` to stop load)"
    );
    drop(daemon_lock);
    Ok(())
}

/// Desired-state bytes (None: no file, the built-in default) resolved for this host. A
/// named file that went away is an error, never the built-in default.
fn load(
    desired_path: &Path,
    named: bool,
    memory_total: u64,
    bytes: Option<&[u8]>,
) -> Result<(Resolved, Source)> {
    if named && bytes.is_none() {
        return Err(Error::Invalid {
            path: desired_path.to_path_buf(),
            problems: vec![crate::error::Problem::new(
                "",
                "the file named by --desired (or CRO_DESIRED) is gone",
            )],
        });
    }
    let (d, src) = desired::from_contents(desired_path, bytes)?;
    let resolved = d.resolve(
        desired_path,
        memory_total,
        Some(&crate::observe::mount_path_problem),
    )?;
    Ok((resolved, src))
}

/// One pass under the state lock (another command holding it for 10 s skips this tick).
fn pass(q: &JobDir, good: &Resolved, config_ok: bool, on_tick: &mut OnTick) {
    let state_dir = &q.state_dir;
    match StateLock::acquire(state_dir, Duration::from_secs(10)) {
        // Claimed again each tick: a `recover` of this state directory releases it.
        Ok(_lock) => match crate::state::claim::take(state_dir) {
            Err(e) => tracing::error!("{e}; skipping this tick"),
            Ok(()) => {
                let r = tick::tick(q, good);
                match &r {
                    Ok(r) => {
                        for a in &r.plan.actions {
                            tracing::info!("{}", a.describe());
                        }
                        for e in &r.errors {
                            tracing::error!("{e}");
                        }
                    }
                    Err(e) => tracing::error!("reconcile failed: {e}"),
                }
                on_tick(q, r.as_ref(), config_ok);
            }
        },
        Err(e) => tracing::warn!("{e}; skipping this tick"),
    }
}

/// SIGTERM/SIGINT ask the daemon to stop; SIGHUP (systemctl reload) to read the desired
/// file now, as for a change event.
struct Signals {
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> Result<Signals> {
        let s = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            hup: Arc::new(AtomicBool::new(false)),
        };
        crate::sys::on_stop(Arc::clone(&s.stop))
            .and_then(|()| crate::sys::on_reload(Arc::clone(&s.hup)))
            .map_err(|e| Error::os("install signal handler", e))?;
        Ok(s)
    }
}

/// The watch on the desired file's directory (editors and config management replace files
/// by rename), its events filtered by the file's name.
struct DesiredWatch {
    _watcher: notify::RecommendedWatcher,
    rx: mpsc::Receiver<notify::Result<notify::Event>>,
    name: Option<std::ffi::OsString>,
}

impl DesiredWatch {
    fn start(desired_path: &Path) -> Result<DesiredWatch> {
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let _ = tx.send(ev);
        })
        .map_err(|e| Error::os("watch files", std::io::Error::other(e)))?;
        let dir = desired_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| Error::io(dir, "watch", std::io::Error::other(e)))?;
        Ok(DesiredWatch {
            _watcher: watcher,
            rx,
            name: desired_path.file_name().map(|n| n.to_os_string()),
        })
    }

    /// Wait up to `wait` for an event about the desired file: whether one came.
    fn wait(&self, wait: Duration) -> Result<bool> {
        match self.rx.recv_timeout(wait) {
            Ok(Ok(ev)) if touches(&ev, self.name.as_deref()) => {
                // Let a burst of events (an editor's write, then rename) settle.
                std::thread::sleep(Duration::from_millis(200));
                while self.rx.try_recv().is_ok() {}
                Ok(true)
            }
            Ok(Ok(_)) | Err(mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Ok(Err(e)) => {
                tracing::warn!("file watch error: {e}");
                Ok(false)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::Runtime("file watcher stopped".into()))
            }
        }
    }
}

/// Loads desired-state bytes (None: the built-in default) into a resolved state.
type Loader<'a> = &'a dyn Fn(Option<&[u8]>) -> Result<(Resolved, Source)>;

/// Read the desired file again; when its content changed, load it (or, if it is invalid,
/// keep the last good state and say so). Whether it changed. A touch or a rewrite with the
/// same bytes is not a change.
fn reconsider(
    read: &dyn Fn() -> Result<Option<Vec<u8>>>,
    load: Loader,
    seen: &mut Option<Vec<u8>>,
    good: &mut Resolved,
    config_ok: &mut bool,
) -> bool {
    let now = match read() {
        Ok(b) => b,
        // An untrusted file (a FIFO, a link, writable by others): nothing of it is acted
        // on, and the config counts as invalid until it is fixed.
        Err(e @ Error::Invalid { .. }) => {
            let was_ok = std::mem::replace(config_ok, false);
            if was_ok {
                tracing::error!("{e}\nkeeping the last good desired state");
            }
            return was_ok;
        }
        Err(e) => {
            tracing::warn!("{e}");
            return false;
        }
    };
    // The same bytes are no change, unless the last read was refused (then the same
    // content, trusted again, is loaded again).
    if now == *seen && *config_ok {
        return false;
    }
    *seen = now;
    match load(seen.as_deref()) {
        Ok((r, _)) => {
            tracing::info!("desired state changed; reconciling");
            *good = r;
            *config_ok = true;
        }
        Err(e) => {
            tracing::error!("{e}\nkeeping the last good desired state");
            *config_ok = false;
        }
    }
    true
}

/// Whether a watch event may have changed the file named `name`: anything but a read
/// (open, access, close without writing). A write's close or a rename or a create may;
/// the caller then compares contents before calling it a change.
pub fn touches(ev: &notify::Event, name: Option<&std::ffi::OsStr>) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    let mutating = match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    mutating && ev.paths.iter().any(|p| p.file_name() == name)
}

#[cfg(test)]
mod tests {
    use super::touches;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RenameMode};
    use notify::{Event, EventKind};
    use std::ffi::OsStr;

    fn ev(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(path.into())
    }

    #[test]
    fn reads_are_not_changes() {
        let n = Some(OsStr::new("desired.json"));
        for k in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ] {
            assert!(!touches(&ev(k, "/s/desired.json"), n), "{k:?}");
        }
        for k in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(notify::event::RemoveKind::File),
        ] {
            assert!(touches(&ev(k, "/s/desired.json"), n), "{k:?}");
            // another file in the directory is never ours
            assert!(!touches(&ev(k, "/s/desired.json.tmp"), n), "{k:?}");
        }
    }
}
