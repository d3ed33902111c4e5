//! Publishing files safely (Maildir style): write a temp file in the same directory, sync
//! it, rename it over the old one, sync the directory. A reader sees the old or the new
//! content, never half of one; a crash leaves at worst a stray `.tmp*` file.
use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Atomically replace `path` with `data`. `durable` also fsyncs file and directory; the
/// worker's once-a-second status file skips that (it is rewritten a second later anyway
/// and a crash loses nothing of value), everything the operator or auditor relies on
/// (jobs, history, counters, metrics) is durable.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32, durable: bool) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, "create a temporary file in", e))?;
    tmp.write_all(data)
        .map_err(|e| Error::io(tmp.path(), "write", e))?;
    crate::sys::fs::set_mode(tmp.as_file(), mode)
        .map_err(|e| Error::io(tmp.path(), "set permissions on", e))?;
    if durable {
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), "sync", e))?;
    }
    if durable {
        crate::fault::point(crate::fault::CrashPoint::BeforeRename);
    }
    tmp.persist(path)
        .map_err(|e| Error::io(path, "rename into place", e.error))?;
    if durable {
        crate::fault::point(crate::fault::CrashPoint::AfterRename);
        sync_dir(dir)?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    crate::sys::fs::sync_dir(dir).map_err(|e| Error::io(dir, "sync directory", e))
}

/// Create a directory (and parents) with the given mode for the last component.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    crate::sys::fs::dir_builder(mode)
        .recursive(true)
        .create(dir)
        .map_err(|e| Error::io(dir, "create directory", e))
}

/// A directory root may trust: owned by the effective user and writable by nobody else.
/// cro runs as root; a state tree (or run directory) that another user can write would let
/// that user plant job files, symlinks or FIFOs that root then acts on. `follow`: whether
/// `dir` itself may be a symlink (the top of the tree, e.g. /var/lib/cro -> /data/cro);
/// directories inside the tree may not.
pub fn check_trusted_dir(dir: &Path, follow: bool) -> Result<()> {
    let md = if follow {
        fs::metadata(dir)
    } else {
        fs::symlink_metadata(dir)
    }
    .map_err(|e| Error::io(dir, "inspect", e))?;
    let me = crate::sys::euid();
    let why = if md.file_type().is_symlink() {
        Some("is a symbolic link".to_string())
    } else if !md.is_dir() {
        Some("is not a directory".to_string())
    } else {
        let (uid, mode) = crate::sys::fs::owner_and_mode(&md);
        if uid != me {
            Some(format!(
                "is owned by uid {uid}, not by uid {me} that runs cro"
            ))
        } else {
            writable_by_others(mode)
        }
    };
    match why {
        Some(why) => Err(Error::Runtime(format!(
            "{} {why}; cro will not trust it. Make it owned by the user that runs cro and closed \
             to others (chown {me} {}; chmod 0700 {}), or use another directory",
            dir.display(),
            dir.display(),
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// Who besides the owner may write a file of this mode, said for an operator; None: nobody.
pub fn writable_by_others(mode: u32) -> Option<String> {
    (mode & 0o022 != 0).then(|| {
        format!(
            "is writable by {} (mode {:o})",
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            mode & 0o7777
        )
    })
}

/// Open (creating if needed) a file that is never replaced, for flock.
pub fn open_lock_file(path: &Path) -> Result<File> {
    crate::sys::fs::private(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
        0o600,
    )
    .open(path)
    .map_err(|e| Error::io(path, "open lock file", e))
}

/// Is `name` one of our temp files (`.tmp-` and tempfile's six random characters)?
pub fn is_our_temp(name: &str) -> bool {
    name.strip_prefix(".tmp-")
        .is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Delete the temp files a crash left in `dir`: regular files named like ours and not
/// modified for `min_age` (a reader such as `status` may be writing the window cache right
/// now without the state lock). What went is returned.
pub fn remove_stale_temps(dir: &Path, min_age: std::time::Duration) -> Vec<std::path::PathBuf> {
    let mut gone = vec![];
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let stale = e.metadata().is_ok_and(|m| {
            m.is_file()
                && m.modified()
                    .is_ok_and(|t| t.elapsed().is_ok_and(|a| a >= min_age))
        });
        if stale && name.to_str().is_some_and(is_our_temp) && fs::remove_file(e.path()).is_ok() {
            gone.push(e.path());
        }
    }
    gone
}

/// Read a small file that may be missing; `Ok(None)` when it is.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, "read", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        write_atomic(&p, b"one", 0o644, true).unwrap();
        write_atomic(&p, b"two", 0o644, false).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        #[cfg(unix)]
        assert_eq!(
            crate::sys::fs::owner_and_mode(&fs::metadata(&p).unwrap()).1,
            0o644
        );
    }
}
