//! Disk ballast lives only in `<mount>/.cro-ballast/`. Everything here works relative to
//! directory descriptors opened with O_NOFOLLOW, so a symlink planted as `.cro-ballast`
//! or inside it is never followed: links are removed as links, their targets untouched.
use crate::sys::fs::{self as sysfs, Dir, Kind};
use std::path::{Path, PathBuf};

pub const DIR: &str = ".cro-ballast";

/// Open `<mount>/.cro-ballast`, creating it (0700) when asked. `Ok(None)` when it does not
/// exist and `create` is false. An error when it is a symlink or not a directory.
pub fn open(mount: &Path, create: bool) -> std::io::Result<Option<Dir>> {
    let m = sysfs::open_dir_at(None, mount)?;
    if create {
        sysfs::mkdir_at(&m, DIR, 0o700)?;
    }
    match sysfs::open_dir_at(Some(&m), DIR) {
        Ok(d) => {
            check_ours(&d, 0o077).map_err(|why| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{}/{DIR} {why}; cro will not use it (anyone who can write the \
                         mount's root could have planted it): remove it, or make it owned by \
                         the user that runs cro with mode 0700",
                        mount.display()
                    ),
                )
            })?;
            Ok(Some(d))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => Ok(None),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!(
                "{}/{DIR} is not a plain directory ({e}); cro will not use it",
                mount.display()
            ),
        )),
    }
}

/// Is this open file ours: owned by the effective user, with none of `forbidden` mode
/// bits (0o077 for a directory: 0700 or tighter), and, for a regular file, one link only
/// (a hard link planted next to ballast would let root write someone else's file)?
pub fn check_ours(fd: &impl sysfs::Open, forbidden: u32) -> std::result::Result<(), String> {
    let st = sysfs::meta(fd).map_err(|e| format!("cannot be inspected: {e}"))?;
    let me = crate::sys::euid();
    if st.uid != me {
        return Err(format!("is owned by uid {}, not {me}", st.uid));
    }
    if st.mode & forbidden != 0 {
        return Err(format!("has mode {:o}", st.mode));
    }
    if st.kind == Kind::File && st.nlink != 1 {
        return Err(format!("has {} hard links", st.nlink));
    }
    if st.kind != Kind::File && st.kind != Kind::Dir {
        return Err("is neither a regular file nor a directory".into());
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    /// Bytes the file occupies on disk (st_blocks), which is what df counts.
    pub allocated: u64,
    pub is_file: bool,
    pub is_symlink: bool,
    pub is_dir: bool,
}

/// Entries of an open ballast directory, by name.
pub fn list(dir: &Dir) -> std::io::Result<Vec<Entry>> {
    let mut out = vec![];
    for name in sysfs::names(dir)? {
        let Ok(st) = sysfs::meta_at(dir, &name) else {
            continue;
        };
        out.push(Entry {
            name: name.to_string_lossy().to_string(),
            allocated: st.allocated,
            is_file: st.kind == Kind::File,
            is_symlink: st.kind == Kind::Symlink,
            is_dir: st.kind == Kind::Dir,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Remove `name` from an open ballast directory (a link as a link: unlinkat opens nothing).
pub fn unlink_at(dir: &Dir, name: &str) -> std::io::Result<()> {
    sysfs::unlink_at(dir, name)
}

/// Bytes of ballast under a mount (0 when there is none).
pub fn bytes(mount: &Path) -> u64 {
    match open(mount, false) {
        Ok(Some(d)) => held(&d),
        _ => 0,
    }
}

/// Bytes of the ballast files in an open ballast directory.
pub fn held(dir: &Dir) -> u64 {
    list(dir)
        .map(|es| es.iter().filter(|e| e.is_file).map(|e| e.allocated).sum())
        .unwrap_or(0)
}

/// What `remove_all` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Removed {
    pub files: usize,
    pub bytes: u64,
    /// Symlinks and other non-files (FIFOs, sockets) removed as links.
    pub links: usize,
    /// Entries left in place (directories: cro never creates one there).
    pub left: Vec<String>,
}

/// Delete every file and symlink in `<mount>/.cro-ballast/` and the directory itself when
/// it ends up empty. Never follows links, never descends into subdirectories.
pub fn remove_all(mount: &Path) -> std::io::Result<Removed> {
    let mut r = Removed::default();
    let Some(dir) = open(mount, false)? else {
        return Ok(r);
    };
    for e in list(&dir)? {
        // Anything but a directory is unlinked: unlinkat opens nothing, so a planted FIFO
        // cannot block it and a link's target is untouched.
        if !e.is_dir {
            unlink_at(&dir, &e.name)?;
            if e.is_file {
                r.files += 1;
                r.bytes += e.allocated;
            } else {
                r.links += 1;
            }
        } else {
            r.left.push(e.name);
        }
    }
    drop(dir);
    if r.left.is_empty() {
        let m = sysfs::open_dir_at(None, mount)?;
        // Fails harmlessly if something was added meanwhile.
        let _ = sysfs::rmdir_at(&m, DIR);
    }
    Ok(r)
}

/// Is `path` a mount point? Its device differs from its parent's (stable, even while other
/// mounts come and go: a read of mountinfo during mount churn can miss lines), or, for a
/// bind mount of the same filesystem, mountinfo lists it.
pub fn is_mount_point(path: &Path) -> bool {
    // the root, or a Windows volume's root (`D:\`)
    if path.parent().is_none() {
        return true;
    }
    match (std::fs::metadata(path), std::fs::metadata(path.join(".."))) {
        (Ok(p), Ok(parent)) if sysfs::device(&p) != sysfs::device(&parent) => true,
        (Ok(_), Ok(_)) => mount_points().iter().any(|m| m == path),
        _ => false,
    }
}

/// Mount points from /proc/self/mountinfo (octal escapes decoded).
pub fn mount_points() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| sysfs::path_from_bytes(unescape(m)))
        .collect();
    v.sort();
    v.dedup();
    v
}

pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Filesystems a host-wide sweep does not touch: a hung NFS server or FUSE daemon would
/// block it forever, and cro pads only local filesystems (flock, statfs, fallocate). An
/// autofs mount point is skipped too: looking inside it mounts what it stands for (often
/// a network share, which may hang), and whatever it mounts is listed on its own.
pub fn is_remote_or_fuse(fstype: &str) -> bool {
    fstype.starts_with("fuse")
        || matches!(
            fstype,
            "nfs"
                | "nfs4"
                | "cifs"
                | "smb3"
                | "smbfs"
                | "ceph"
                | "glusterfs"
                | "lustre"
                | "afs"
                | "9p"
                | "sshfs"
                | "gpfs"
                | "ocfs2"
                | "beegfs"
                | "autofs"
        )
}

/// Local mount points with their filesystem types, from mountinfo text.
pub fn local_mounts(mountinfo: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mp = left.split(' ').nth(4)?;
            (!is_remote_or_fuse(fstype)).then(|| sysfs::path_from_bytes(unescape(mp)))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Every local mount that has a `.cro-ballast` directory now (a real directory, not a
/// link). Network and FUSE filesystems are skipped (`is_remote_or_fuse`).
pub fn mounts_with_ballast() -> Vec<PathBuf> {
    local_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
        .into_iter()
        .filter(|m| std::fs::symlink_metadata(m.join(DIR)).is_ok_and(|md| md.is_dir()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_wide_sweep_skips_network_and_fuse_filesystems() {
        let mi = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                  30 22 0:50 / /mnt/nfs rw - nfs4 srv:/x rw\n\
                  31 22 0:51 / /mnt/fuse rw - fuse.sshfs u@h: rw\n\
                  33 22 0:52 / /net rw - autofs /etc/auto.net rw,fd=7\n\
                  32 22 8:2 / /data\\040disk rw - xfs /dev/sda2 rw\n";
        let m = local_mounts(mi);
        assert_eq!(m, vec![PathBuf::from("/"), PathBuf::from("/data disk")]);
    }

    #[test]
    #[cfg(unix)] // symlinks: a Windows reparse point is tested on its own
    fn symlinks_are_removed_not_followed() {
        let m = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("precious");
        std::fs::write(&victim, b"keep me").unwrap();
        let d = open(m.path(), true).unwrap().unwrap();
        drop(d);
        std::fs::write(
            m.path().join(DIR).join("ballast-000000.bin"),
            vec![1u8; 8192],
        )
        .unwrap();
        std::os::unix::fs::symlink(&victim, m.path().join(DIR).join("evil")).unwrap();
        std::fs::create_dir(m.path().join(DIR).join("subdir")).unwrap();
        let r = remove_all(m.path()).unwrap();
        assert_eq!((r.files, r.links), (1, 1));
        assert_eq!(r.left, vec!["subdir".to_string()]);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    }

    #[test]
    #[cfg(unix)] // symlinks: a Windows reparse point is tested on its own
    fn ballast_dir_that_is_a_symlink_is_refused() {
        let m = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), m.path().join(DIR)).unwrap();
        assert!(open(m.path(), true).is_err());
        assert!(remove_all(m.path()).is_err());
        assert!(outside.path().join("precious").exists());
    }

    #[test]
    #[cfg(target_os = "linux")] // /proc/self/mountinfo; Windows volumes come with the disk step
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/mnt/my\040disk"), b"/mnt/my disk");
        assert!(mount_points().contains(&PathBuf::from("/")));
    }
}
