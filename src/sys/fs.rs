//! Filesystem calls relative to directory descriptors, never following a final symlink:
//! what the disk ballast needs on a mount where others may write.
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

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

/// What cro needs to know of a file: its kind, owner, mode, links, device and the bytes
/// it occupies on disk (st_blocks, which is what df counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub uid: u32,
    /// Permission bits only.
    pub mode: u32,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    pub allocated: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
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
pub fn meta(fd: impl AsFd) -> io::Result<Meta> {
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

/// Reserve `len` bytes at `offset` (blocks allocated, nothing written).
pub fn allocate(f: &File, offset: u64, len: u64) -> io::Result<()> {
    Ok(rustix::fs::fallocate(
        f,
        rustix::fs::FallocateFlags::empty(),
        offset,
        len,
    )?)
}

/// A filesystem's size and free space, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    /// Free to root (f_bfree).
    pub free: u64,
    /// Free to an ordinary user (f_bavail): what df shows as available.
    pub available: u64,
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
