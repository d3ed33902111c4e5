//! What cro reads of a file and of a filesystem, the same on every platform (each
//! platform's `fs` fills them in; on Windows uid, mode, device and inode read as cro's own,
//! closed and 0: see sys/windows/fs.rs).

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

/// A filesystem's (or a Windows volume's) size and free space, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    /// Free to root (f_bfree).
    pub free: u64,
    /// Free to an ordinary user (f_bavail; on Windows, to this user, quotas applied):
    /// what df and Explorer show as available.
    pub available: u64,
}
