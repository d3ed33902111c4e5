//! Files on Windows: the same calls as on Linux, by path (Windows has no *at() calls in
//! its documented API). A final reparse point (symlink, junction) is never followed:
//! files are opened with FILE_FLAG_OPEN_REPARSE_POINT and directories checked with
//! `symlink_metadata` before use.
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::windows::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT;

pub use crate::sys::meta::{Kind, Meta, Space};

/// An open directory: its path, checked to be a plain directory when it was opened.
#[derive(Debug)]
pub struct Dir {
    path: PathBuf,
}

/// Something whose metadata can be read: a file, a directory, a standard stream.
pub trait Open {
    fn meta(&self) -> io::Result<Meta>;
}
impl Open for File {
    fn meta(&self) -> io::Result<Meta> {
        Ok(Meta::from(&self.metadata()?))
    }
}
impl Open for Dir {
    fn meta(&self) -> io::Result<Meta> {
        Ok(Meta::from(&std::fs::symlink_metadata(&self.path)?))
    }
}
impl Open for std::io::Stderr {
    fn meta(&self) -> io::Result<Meta> {
        Err(super::not_yet("reading a standard stream's metadata"))
    }
}

/// Options for a file cro keeps: never through a final reparse point. (`mode` is a Unix
/// permission; the file inherits its directory's ACL.)
pub fn private(o: &mut OpenOptions, _mode: u32) -> &mut OpenOptions {
    o.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
}

/// Open for reading a file others may have placed; unless `follow`, a final reparse
/// point is opened as itself (and then refused as not a regular file).
pub fn open_untrusted(path: &Path, follow: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    if !follow {
        o.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    o.open(path)
}

/// Windows opens the link itself rather than refusing it (see `kind_name`).
pub fn is_refused_link(_e: &io::Error) -> bool {
    false
}

/// Windows files have ACLs, not an owner uid and mode bits; cro does not read ACLs yet,
/// so a file reads as owned by the user running cro and closed to others.
pub fn owner_and_mode(md: &Metadata) -> (u32, u32) {
    (super::euid(), if md.is_dir() { 0o700 } else { 0o600 })
}

/// What a non-regular file is, said for an operator.
pub fn kind_name(md: &Metadata) -> Option<&'static str> {
    let t = md.file_type();
    if t.is_symlink() {
        Some("a symbolic link (a reparse point), not a regular file")
    } else if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else {
        Some("not a regular file")
    }
}

pub fn dir_builder(_mode: u32) -> std::fs::DirBuilder {
    std::fs::DirBuilder::new()
}

pub fn set_mode(_f: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// NTFS makes a rename durable with the file; there is no directory to sync.
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Are these the same file? std has no stable file index on Windows: a file made again
/// at the path has a new creation time.
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.creation_time() == b.creation_time() && a.file_type() == b.file_type()
}

/// Windows volumes are told apart by path, not device number.
pub fn device(_md: &Metadata) -> u64 {
    0
}

pub fn write_all_at(f: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = f.seek_write(buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

pub fn names(dir: &Dir) -> io::Result<Vec<OsString>> {
    std::fs::read_dir(&dir.path)?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

pub fn path_from_bytes(b: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&b).into_owned())
}

/// Does a process hold a lock on the file at `path`? A try-lock is the only way to look
/// on Windows: it holds the lock for a moment and lets it go.
pub fn lock_held(path: &Path, _md: &Metadata) -> bool {
    let Ok(f) = OpenOptions::new().read(true).write(true).open(path) else {
        return false;
    };
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(_) => true,
    }
}

/// Open the directory `name` (relative to `base`), refusing a reparse point.
pub fn open_dir_at(base: Option<&Dir>, name: impl AsRef<Path>) -> io::Result<Dir> {
    let path = match base {
        Some(b) => b.path.join(name),
        None => name.as_ref().to_path_buf(),
    };
    let md = std::fs::symlink_metadata(&path)?;
    if md.file_type().is_symlink() || !md.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a plain directory", path.display()),
        ));
    }
    Ok(Dir { path })
}

pub fn create_at(dir: &Dir, name: &str, _mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(dir.path.join(name))
}

pub fn mkdir_at(dir: &Dir, name: &str, _mode: u32) -> io::Result<()> {
    match std::fs::create_dir(dir.path.join(name)) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// Remove a file, or a link as a link.
pub fn unlink_at(dir: &Dir, name: &str) -> io::Result<()> {
    let p = dir.path.join(name);
    match std::fs::symlink_metadata(&p) {
        // a directory symlink or junction is removed as a directory entry
        Ok(md) if md.file_type().is_symlink() && md.is_dir() => std::fs::remove_dir(p),
        _ => std::fs::remove_file(p),
    }
}

pub fn rmdir_at(dir: &Dir, name: &str) -> io::Result<()> {
    std::fs::remove_dir(dir.path.join(name))
}

impl Meta {
    fn from(md: &Metadata) -> Meta {
        let t = md.file_type();
        let kind = if t.is_symlink() {
            Kind::Symlink
        } else if t.is_file() {
            Kind::File
        } else if t.is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        };
        let (uid, mode) = owner_and_mode(md);
        Meta {
            kind,
            uid,
            mode,
            nlink: 1,
            dev: 0,
            ino: 0,
            allocated: md.len(),
        }
    }
}

pub fn meta(f: &impl Open) -> io::Result<Meta> {
    f.meta()
}

pub fn meta_at(dir: &Dir, name: impl AsRef<Path>) -> io::Result<Meta> {
    Ok(Meta::from(&std::fs::symlink_metadata(dir.path.join(name))?))
}

/// `allocate` writes (below).
pub const ALLOCATE_WRITES: bool = true;

/// Reserve `len` bytes at `offset`, by writing zeros: Windows has no fallocate, an
/// extension by SetEndOfFile is allocated by NTFS but sparse on other filesystems (and
/// under Wine), and SetFileValidData needs a privilege. Written space is space on every
/// filesystem, and what `meta` counts (the file's length) is then what it occupies.
pub fn allocate(f: &File, offset: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; (1 << 20).min(len as usize)];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        write_all_at(f, &zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// GetDiskFreeSpaceExW for the volume holding `path` (e.g. `D:\`).
pub fn space(path: &Path) -> io::Result<Space> {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Storage::FileSystem::GetDiskFreeSpaceExW;
    let wide: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
    let (mut avail, mut total, mut free) = (0u64, 0u64, 0u64);
    // SAFETY: `wide` is a NUL-terminated UTF-16 string that outlives the call; the three
    // out-pointers are valid, writable u64s.
    super::win!(unsafe { GetDiskFreeSpaceExW(wide.as_ptr(), &mut avail, &mut total, &mut free) })?;
    Ok(Space {
        total,
        free,
        available: avail,
    })
}
