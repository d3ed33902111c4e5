//! A worker's log (`state/logs/<id>.log`, its stdout and stderr) stays small: it is
//! rotated at `CAP` bytes with `KEEP` older generations (`<id>.log.1` newest), and a
//! warning that repeats (a disk step failing every poll) is said at most once a minute,
//! with how many were held back. Before this, a worker with a persistent error appended
//! a line every 200 ms, forever.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const CAP: u64 = 1 << 20;
pub const KEEP: usize = 3;
pub const QUIET_FOR: Duration = Duration::from_secs(60);

/// Open a log for appending: never through a symlink, closed to others.
pub fn open(path: &Path) -> std::io::Result<std::fs::File> {
    crate::sys::fs::private(std::fs::OpenOptions::new().create(true).append(true), 0o600).open(path)
}

fn generation(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Shift `path` to `path.1` (and `.1` to `.2` ..., dropping the oldest) when it is at
/// least `cap` bytes. Whether it rotated.
pub fn rotate(path: &Path, cap: u64, keep: usize) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.len() >= cap => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    for n in (1..keep).rev() {
        let from = generation(path, n);
        if from.exists() {
            std::fs::rename(&from, generation(path, n + 1))?;
        }
    }
    std::fs::rename(path, generation(path, 1))?;
    Ok(true)
}

/// Rotate this worker's own log when it is full: our stdout and stderr then point at a
/// fresh file at the same path.
pub fn rotate_own(path: &Path) {
    let Ok(true) = rotate(path, CAP, KEEP) else {
        return;
    };
    match open(path) {
        Ok(f) => {
            if let Err(e) = crate::sys::redirect_output(&f) {
                tracing::warn!("cannot switch to the new log: {e}");
            }
            tracing::info!("log rotated (kept {KEEP} older files of up to {CAP} bytes)");
        }
        Err(e) => tracing::warn!("cannot open a new log at {}: {e}", path.display()),
    }
}

/// Repeated warnings, at most once per `QUIET_FOR` for each kind.
#[derive(Default)]
pub struct Quiet {
    last: HashMap<&'static str, (Instant, u64)>,
}

impl Quiet {
    /// Whether to say a warning of this kind now; `Some(n)`: yes, and n like it were held
    /// back since it was last said.
    pub fn allow(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(kind) {
            Some((at, held)) if now.duration_since(*at) < QUIET_FOR => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held;
                *at = now;
                *held = 0;
                Some(n)
            }
            None => {
                self.last.insert(kind, (now, 0));
                Some(0)
            }
        }
    }

    pub fn warn(&mut self, kind: &'static str, msg: std::fmt::Arguments) {
        match self.allow(kind, Instant::now()) {
            Some(0) => tracing::warn!("{msg}"),
            Some(n) => tracing::warn!("{msg} ({n} more like it in the last minute)"),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_a_bounded_number_of_generations() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("w.log");
        for round in 0..6 {
            std::fs::write(&log, vec![b'x'; 100 + round]).unwrap();
            assert!(rotate(&log, 100, 3).unwrap());
            assert!(!log.exists());
        }
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["w.log.1", "w.log.2", "w.log.3"]);
        // newest first
        assert_eq!(
            std::fs::metadata(d.path().join("w.log.1")).unwrap().len(),
            105
        );
        assert_eq!(
            std::fs::metadata(d.path().join("w.log.3")).unwrap().len(),
            103
        );
        std::fs::write(&log, b"small").unwrap();
        assert!(!rotate(&log, 100, 3).unwrap(), "below the cap");
    }

    #[test]
    fn a_repeated_warning_is_said_once_a_minute_with_a_count() {
        let mut q = Quiet::default();
        let t = Instant::now();
        assert_eq!(q.allow("disk", t), Some(0));
        for i in 1..=299 {
            // every 200 ms for a minute
            assert_eq!(q.allow("disk", t + Duration::from_millis(200 * i)), None);
        }
        assert_eq!(q.allow("other", t), Some(0), "kinds are counted apart");
        assert_eq!(q.allow("disk", t + Duration::from_secs(61)), Some(299));
    }

    #[test]
    #[cfg(unix)] // symlinks: a Windows reparse point is tested on its own
    fn logs_are_never_opened_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("precious");
        std::fs::write(&target, b"keep").unwrap();
        let log = d.path().join("w.log");
        std::os::unix::fs::symlink(&target, &log).unwrap();
        assert!(open(&log).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
