//! Reading the desired-state file. Root acts on it, and status, `/api/status` and the
//! dashboard publish its errors to any local reader, so it is trusted like the state
//! directory (docs/DESIGN.md, "Desired state"): opened without blocking (a FIFO cannot hang the
//! daemon or serve) and without following a final symlink (a link to /etc/shadow cannot be
//! read and quoted); it must be a regular file owned by root or the user running cro, not
//! writable by group or others, in a directory with the same rule. Anything else is exit
//! 78 naming the path and the fix, and nothing of the file is read. The read is bounded (at
//! most `MAX_BYTES` + 1 bytes, so a huge file is refused without being read whole); no
//! file means the built-in default. Parsing and resolution are pure and live in
//! `control::desired`.
use crate::control::desired::{DesiredState, MAX_BYTES, Source, from_contents};
use crate::error::{Error, Problem, Result};
use std::fs::{File, Metadata};
use std::path::Path;

/// Load the desired file, or the built-in default when it does not exist.
pub fn load(path: &Path) -> Result<(DesiredState, Source)> {
    from_contents(path, read(path)?.as_deref())
}

/// Read the desired file after the trust checks. `None` when there is no file.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    let f = match open(path, false)? {
        Some(f) => f,
        None => return Ok(None),
    };
    let md = f.metadata().map_err(|e| Error::io(path, "inspect", e))?;
    if let Some(why) = file_problem(&md) {
        return Err(untrusted(path, &why));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dmd = std::fs::metadata(dir).map_err(|e| Error::io(dir, "inspect", e))?;
    if let Some(why) = owner_problem(&dmd) {
        return Err(untrusted(
            path,
            &format!("is in {} which {why}", dir.display()),
        ));
    }
    read_bounded(f, path).map(Some)
}

/// Read a file the person at the terminal named (`cro validate FILE`, a draft anywhere):
/// any owner and directory, a symlink followed, but never a FIFO, device or socket, and
/// never blocking. Its errors go to that person's terminal only.
pub fn read_named(path: &Path) -> Result<Option<Vec<u8>>> {
    let f = match open(path, true)? {
        Some(f) => f,
        None => return Ok(None),
    };
    let md = f.metadata().map_err(|e| Error::io(path, "inspect", e))?;
    if let Some(kind) = not_regular(&md) {
        return Err(untrusted(path, &format!("is {kind}, not a regular file")));
    }
    read_bounded(f, path).map(Some)
}

/// Open without blocking (O_NONBLOCK: a FIFO with no writer would block the open) and,
/// unless `follow`, without following a final symlink. `None` when there is no file.
fn open(path: &Path, follow: bool) -> Result<Option<File>> {
    match crate::sys::fs::open_untrusted(path, follow) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if crate::sys::fs::is_refused_link(&e) && !follow => {
            let to = std::fs::read_link(path)
                .map(|t| format!(" (to {})", t.display()))
                .unwrap_or_default();
            Err(untrusted(
                path,
                &format!(
                    "is a symbolic link{to}; cro does not follow a link at the desired path: \
                     name the file itself with --desired, or replace the link with the file"
                ),
            ))
        }
        Err(e) => Err(Error::io(path, "read", e)),
    }
}

fn read_bounded(f: File, path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![];
    f.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, "read", e))?;
    Ok(buf)
}

/// What is wrong with the desired file itself, if anything.
fn file_problem(md: &Metadata) -> Option<String> {
    if let Some(kind) = not_regular(md) {
        return Some(format!("is {kind}, not a regular file"));
    }
    owner_problem(md)
}

fn not_regular(md: &Metadata) -> Option<&'static str> {
    crate::sys::fs::kind_name(md)
}

/// The owner and write-bit rule shared by the file and its directory: owned by root or by
/// the user running cro, not writable by group or others.
fn owner_problem(md: &Metadata) -> Option<String> {
    let me = crate::sys::euid();
    let (uid, mode) = crate::sys::fs::owner_and_mode(md);
    if uid != 0 && uid != me {
        Some(format!(
            "is owned by uid {uid}, not by root or uid {me} that runs cro"
        ))
    } else {
        crate::state::fsutil::writable_by_others(mode)
    }
}

/// Exit 78, naming the path, what is wrong and the fix; nothing of the file is quoted.
fn untrusted(path: &Path, why: &str) -> Error {
    let fix = if why.contains("symbolic link") || why.contains("regular file") {
        String::new()
    } else {
        format!(
            "; cro will not act on a file others can change: make the file and its directory \
             owned by root (or the user running cro) and closed to writes by others (chmod \
             go-w {} and its directory), or keep it in a directory such as /etc/cro",
            path.display()
        )
    };
    Error::Invalid {
        path: path.to_path_buf(),
        problems: vec![Problem::new("", format!("{} {why}{fix}", path.display()))],
    }
}
