//! The mounts this state directory has put ballast on (`state/ballast-mounts.json`).
//!
//! Ballast is found by this list, never by scanning every mount of the host: a second cro
//! with another state directory (a test, a migration) owns its own ballast, and a sweep or a
//! `recover` here must not delete it. A mount is added before its first disk job is
//! written and dropped once its ballast is known to be gone, so a job removed while its
//! filesystem was unmounted is still cleaned when the filesystem comes back.
use crate::error::Result;
use crate::state::fsutil;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("ballast-mounts.json")
}

/// The owned mounts; an unreadable file counts as empty (the job files and the desired
/// state still name the current mounts, and `recover --all-mounts` finds the rest).
pub fn load(state_dir: &Path) -> BTreeSet<PathBuf> {
    fsutil::read_optional(&path(state_dir))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save(state_dir: &Path, set: &BTreeSet<PathBuf>) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(set).expect("paths serialize");
    fsutil::write_atomic(&path(state_dir), &bytes, 0o600, true)
}

/// Record `mount` as ours (written only when it is new).
pub fn add(state_dir: &Path, mount: &Path) -> Result<()> {
    let mut set = load(state_dir);
    if set.insert(mount.to_path_buf()) {
        save(state_dir, &set)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_is_idempotent_and_survives_garbage() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(d.path()).is_empty());
        add(d.path(), Path::new("/data")).unwrap();
        add(d.path(), Path::new("/data")).unwrap();
        add(d.path(), Path::new("/var")).unwrap();
        assert_eq!(load(d.path()).len(), 2);
        std::fs::write(path(d.path()), b"{garbage").unwrap();
        assert!(load(d.path()).is_empty());
    }
}
