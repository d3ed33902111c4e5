//! Filesystem calls relative to directory descriptors, never following a final symlink:
//! what the disk ballast needs on a mount where others may write.
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{
    DirBuilderExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Path, PathBuf};

pub use crate::sys::meta::{Kind, Meta, Space};

/// An open directory that calls below stay inside, whatever happens to its path.
pub type Dir = OwnedFd;

/// Something open whose metadata can be read: a file, a directory, a standard stream.
pub trait Open: AsFd {}
impl<T: AsFd> Open for T {}

/// Options for a file cro keeps (state, history, locks, logs): created with `mode`,
/// never through a final symlink (O_NOFOLLOW), closed on exec.
pub fn private(o: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    o.mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
}

/// Open for reading a file others may have placed (the desired file): a FIFO without a
/// writer does not block the open (O_NONBLOCK), a terminal does not become ours
/// (O_NOCTTY), and unless `follow` a final symlink is refused (see `is_refused_link`).
pub fn open_untrusted(path: &Path, follow: bool) -> io::Result<File> {
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC | nofollow)
        .open(path)
}

/// Did an open fail because its final component is a symlink it would not follow?
pub fn is_refused_link(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// The owner's uid and the permission bits of a file.
pub fn owner_and_mode(md: &Metadata) -> (u32, u32) {
    (md.uid(), md.mode() & 0o7777)
}

/// What a non-regular file is, said for an operator ("a FIFO", "a directory", ...).
pub fn kind_name(md: &Metadata) -> Option<&'static str> {
    let t = md.file_type();
    Some(if t.is_file() {
        return None;
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    })
}

/// A directory builder that creates with `mode`.
pub fn dir_builder(mode: u32) -> std::fs::DirBuilder {
    let mut b = std::fs::DirBuilder::new();
    b.mode(mode);
    b
}

/// Set a file's permission bits to exactly `mode`.
pub fn set_mode(f: &File, mode: u32) -> io::Result<()> {
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Make a directory's entries (a rename into it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Are these the same file (device and inode)?
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// The device a file is on (a mount point's differs from its parent's).
pub fn device(md: &Metadata) -> u64 {
    md.dev()
}

/// Write all of `buf` at `offset`.
pub fn write_all_at(f: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    f.write_all_at(buf, offset)
}

/// The names in an open directory. /proc/self/fd/N names exactly the directory we
/// opened, whatever happens to its path.
pub fn names(dir: &Dir) -> io::Result<Vec<OsString>> {
    std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

/// A path from raw bytes (a decoded mountinfo field, a job id's mount).
pub fn path_from_bytes(b: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(b))
}

/// Does a live process hold a lock on the file at `path`? Read from /proc/locks: looking
/// takes no lock (a try-lock would hold it for a moment, and another process could see
/// it taken) and creates no file.
pub fn lock_held(_path: &Path, md: &Metadata) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    flock_held(&locks, md.dev(), md.ino())
}

/// Is there a FLOCK on (dev, ino) in /proc/locks text? Lines look like
/// `3: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF` (device major:minor in hex);
/// `->` lines are waiters, not holders.
pub fn flock_held(locks: &str, dev: u64, ino: u64) -> bool {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        libc::major(dev as libc::dev_t),
        libc::minor(dev as libc::dev_t)
    );
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str())
    })
}

/// Open the directory `name` (relative to `base`, or to the working directory), refusing a
/// symlink.
pub fn open_dir_at(base: Option<&OwnedFd>, name: impl AsRef<Path>) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match base {
        Some(b) => rustix::fs::openat(b, name.as_ref(), flags, Mode::empty()),
        None => rustix::fs::openat(rustix::fs::CWD, name.as_ref(), flags, Mode::empty()),
    }?;
    Ok(fd)
}

/// Open (creating with `mode`) a file for writing in `dir`; O_NOFOLLOW refuses a planted
/// symlink, O_NONBLOCK a FIFO without a reader (which would block the open forever).
pub fn create_at(dir: &OwnedFd, name: &str, mode: u32) -> io::Result<File> {
    let flags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// Make a directory `name` in `dir`; one that exists already is fine.
pub fn mkdir_at(dir: &OwnedFd, name: &str, mode: u32) -> io::Result<()> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode)) {
        Err(rustix::io::Errno::EXIST) => Ok(()),
        r => Ok(r?),
    }
}

/// Remove the file (or link, as a link) `name` from `dir`.
pub fn unlink_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Remove the empty directory `name` from `dir`.
pub fn rmdir_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

impl Meta {
    // st_nlink is u64 on x86_64 and u32 on aarch64: the cast is needed on one of them.
    #[allow(clippy::unnecessary_cast)]
    fn from(st: rustix::fs::Stat) -> Meta {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        Meta {
            kind,
            uid: st.st_uid,
            mode: st.st_mode & 0o7777,
            nlink: st.st_nlink as u64,
            dev: st.st_dev,
            ino: st.st_ino,
            allocated: st.st_blocks as u64 * 512,
        }
    }
}

/// The metadata of an open descriptor.
pub fn meta(fd: &impl Open) -> io::Result<Meta> {
    Ok(Meta::from(rustix::fs::fstat(fd)?))
}

/// The metadata of `name` in `dir`, not following a symlink.
pub fn meta_at(dir: &OwnedFd, name: impl AsRef<Path>) -> io::Result<Meta> {
    Ok(Meta::from(rustix::fs::statat(
        dir,
        name.as_ref(),
        AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

/// fallocate reserves blocks without writing them.
pub const ALLOCATE_WRITES: bool = false;

/// Reserve `len` bytes at `offset` (blocks allocated, nothing written).
pub fn allocate(f: &File, offset: u64, len: u64) -> io::Result<()> {
    Ok(rustix::fs::fallocate(
        f,
        rustix::fs::FallocateFlags::empty(),
        offset,
        len,
    )?)
}

pub fn space(path: &Path) -> io::Result<Space> {
    let s = rustix::fs::statvfs(path)?;
    let unit = if s.f_frsize > 0 {
        s.f_frsize
    } else {
        s.f_bsize
    };
    Ok(Space {
        total: s.f_blocks * unit,
        free: s.f_bfree * unit,
        available: s.f_bavail * unit,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn proc_locks_lines_name_the_holder() {
        let dev = libc::makedev(0xfd, 0x01);
        let text = "1: POSIX  ADVISORY  WRITE 99 fd:01:5678 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF\n\
                    3: -> FLOCK  ADVISORY  WRITE 77 fd:01:999 0 EOF\n";
        assert!(super::flock_held(text, dev as u64, 5678));
        assert!(
            !super::flock_held(text, dev as u64, 999),
            "a waiter holds nothing"
        );
        assert!(
            !super::flock_held(text, libc::makedev(8, 1) as u64, 5678),
            "another device"
        );
    }

    #[test]
    fn a_symlinked_directory_is_refused_and_at_calls_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("link")).unwrap();
        let base = super::open_dir_at(None, t.path()).unwrap();
        assert!(super::open_dir_at(Some(&base), "link").is_err());
        let real = super::open_dir_at(Some(&base), "real").unwrap();
        super::mkdir_at(&real, "d", 0o700).unwrap();
        super::mkdir_at(&real, "d", 0o700).unwrap(); // exists: fine
        let f = super::create_at(&real, "f", 0o600).unwrap();
        super::allocate(&f, 0, 1 << 20).unwrap();
        let m = super::meta_at(&real, "f").unwrap();
        assert_eq!(
            (m.kind, m.mode, m.uid),
            (super::Kind::File, 0o600, crate::sys::euid())
        );
        assert!(m.allocated >= 1 << 20, "{m:?}");
        assert_eq!(
            super::meta_at(&base, "link").unwrap().kind,
            super::Kind::Symlink
        );
        super::unlink_at(&real, "f").unwrap();
        super::rmdir_at(&real, "d").unwrap();
        assert_eq!(std::fs::read_dir(t.path().join("real")).unwrap().count(), 0);
    }
}
