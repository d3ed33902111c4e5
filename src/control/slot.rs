//! A slot: one thing cro holds load in (the CPU, memory, or one disk mount), with the
//! names it goes by. One job, one worker, one lock and one status file per slot.
//!
//! - `id()`: `cpu`, `memory`, `disk-data` (file names under `jobs/`, log names);
//! - `label()`: `cpu`, `memory`, `disk:/data` (status, decisions, the window);
//! - `mount()`: `/data`.
use crate::control::desired::Resolved;
use std::fmt;
use std::path::{Path, PathBuf};

/// The separator of this platform's paths (`/`, or `\\` on Windows).
const SEP: char = std::path::MAIN_SEPARATOR;

/// The longest job id: its files (`<id>.status.json`, `<id>.log.1`) must fit a file
/// name's 255 bytes. A mount path whose id would be longer is refused at validation.
pub const MAX_ID_LEN: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    Cpu,
    Memory,
    Disk(PathBuf),
}

impl Slot {
    pub fn disk(mount: impl Into<PathBuf>) -> Slot {
        Slot::Disk(mount.into())
    }

    /// The job id: file names under `jobs/` and the worker's log.
    pub fn id(&self) -> String {
        match self {
            Slot::Cpu => "cpu".into(),
            Slot::Memory => "memory".into(),
            Slot::Disk(m) => disk_id(m),
        }
    }

    /// The name status, decisions and the window use.
    pub fn label(&self) -> String {
        match self {
            Slot::Cpu => "cpu".into(),
            Slot::Memory => "memory".into(),
            Slot::Disk(m) => format!("disk:{}", m.display()),
        }
    }

    /// `cpu`, `memory` or `disk` (the `resource` label of the metrics).
    pub fn resource(&self) -> &'static str {
        match self {
            Slot::Cpu => "cpu",
            Slot::Memory => "memory",
            Slot::Disk(_) => "disk",
        }
    }

    pub fn mount(&self) -> Option<&Path> {
        match self {
            Slot::Disk(m) => Some(m),
            _ => None,
        }
    }

    /// The slot a job id names (None: not an id cro makes). A disk job whose file is lost
    /// or corrupt still tells where its ballast is.
    pub fn from_id(id: &str) -> Option<Slot> {
        match id {
            "cpu" => Some(Slot::Cpu),
            "memory" => Some(Slot::Memory),
            _ => disk_mount(id).map(Slot::Disk),
        }
    }

    /// The slots a desired state asks for: cpu, memory, then each disk mount, in the
    /// desired file's order. Nothing while paused.
    pub fn wanted(d: &Resolved) -> Vec<Slot> {
        if d.paused {
            return vec![];
        }
        let mut out = vec![];
        if d.cpu.is_some() {
            out.push(Slot::Cpu);
        }
        if d.memory.is_some() {
            out.push(Slot::Memory);
        }
        if let Some(k) = &d.disk {
            out.extend(k.mounts.iter().cloned().map(Slot::Disk));
        }
        out
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Stable job id for a disk mount: `disk-` + the path with `/` as `-`, and anything but
/// `[A-Za-z0-9.]` (including `-` and `_`) as `_xx` hex, so two mounts never share an id
/// and the mount can be read back from the id (`disk_mount`). `/` itself is
/// `disk-_2f`.
///
/// The path's separator (`/`, or `\` on Windows) becomes `-`; a Windows volume `D:\` is
/// `disk-D_3a`, `D:\data` is `disk-D_3a-data`.
fn disk_id(mount: &Path) -> String {
    let s = mount.to_string_lossy();
    let trimmed = s.trim_matches(SEP);
    if trimmed.is_empty() {
        return "disk-_2f".into();
    }
    let mut out = String::from("disk-");
    for b in trimmed.bytes() {
        match b {
            b if b == SEP as u8 => out.push('-'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("_{b:02x}")),
        }
    }
    out
}

/// The mount a disk job id stands for (the inverse of `disk_id`), so a job whose
/// file is lost or corrupt still tells where its ballast is.
fn disk_mount(id: &str) -> Option<PathBuf> {
    let rest = id.strip_prefix("disk-")?;
    if rest == "_2f" {
        return Some(PathBuf::from("/"));
    }
    // A Unix path starts at the root; a Windows one at its volume (`D:`), whose root
    // directory ends it when nothing follows (`D:\`).
    let mut out = if SEP == '/' { vec![b'/'] } else { vec![] };
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' => out.push(SEP as u8),
            b'_' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c if c.is_ascii_alphanumeric() || c == b'.' => out.push(c),
            _ => return None,
        }
        i += 1;
    }
    if out.ends_with(b":") {
        out.push(SEP as u8);
    }
    let p = crate::sys::fs::path_from_bytes(out);
    (disk_id(&p) == id).then_some(p)
}

/// Job ids are what we generate: `cpu`, `memory`, `disk-...`; anything else is not ours.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !s.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_job_id(m: &Path) -> String {
        Slot::disk(m).id()
    }
    fn disk_job_mount(id: &str) -> Option<PathBuf> {
        Slot::from_id(id).and_then(|s| s.mount().map(Path::to_path_buf))
    }

    #[test]
    #[cfg(unix)] // Linux paths; Windows volumes below
    fn one_slot_three_names() {
        let s = Slot::disk("/data");
        assert_eq!(
            (s.id(), s.label(), s.resource()),
            ("disk-data".into(), "disk:/data".into(), "disk")
        );
        assert_eq!(Slot::from_id("disk-data"), Some(s));
        assert_eq!(Slot::from_id("cpu"), Some(Slot::Cpu));
        assert_eq!(Slot::Memory.label(), "memory");
        assert_eq!(Slot::from_id("nonsense"), None);
    }

    #[test]
    #[cfg(unix)] // Linux paths; Windows volumes below
    fn disk_ids_are_distinct_and_safe() {
        assert_eq!(disk_job_id(Path::new("/")), "disk-_2f");
        assert_ne!(disk_job_id(Path::new("/")), disk_job_id(Path::new("/root")));
        assert_eq!(disk_job_id(Path::new("/data")), "disk-data");
        assert_eq!(disk_job_id(Path::new("/var/lib/x")), "disk-var-lib-x");
        assert_ne!(
            disk_job_id(Path::new("/a-b")),
            disk_job_id(Path::new("/a/b"))
        );
        assert!(valid_id(&disk_job_id(Path::new("/mnt/my disk/ü"))));
    }

    #[test]
    #[cfg(unix)] // Linux paths; Windows volumes below
    fn disk_ids_read_back_as_their_mount() {
        for m in [
            "/",
            "/root",
            "/data",
            "/a-b",
            "/a/b",
            "/mnt/my disk/ü",
            "/x_y",
            "/v.1",
        ] {
            let id = disk_job_id(Path::new(m));
            assert_eq!(disk_job_mount(&id), Some(PathBuf::from(m)), "{id}");
        }
        for bad in [
            "cpu",
            "disk-",
            "disk-_zz",
            "disk-a_2",
            "disk-a b",
            "disk-_2fx",
        ] {
            assert_eq!(disk_job_mount(bad), None, "{bad}");
        }
    }

    #[test]
    #[cfg(windows)]
    fn volume_ids_read_back_as_their_volume() {
        assert_eq!(disk_job_id(Path::new("D:\\")), "disk-D_3a");
        assert_eq!(disk_job_id(Path::new("D:\\data")), "disk-D_3a-data");
        assert_ne!(
            disk_job_id(Path::new("D:\\a-b")),
            disk_job_id(Path::new("D:\\a\\b"))
        );
        for m in [
            "D:\\",
            "D:\\data",
            "E:\\a-b",
            "E:\\a\\b",
            "C:\\my disk\\x_y",
        ] {
            let id = disk_job_id(Path::new(m));
            assert!(valid_id(&id), "{id}");
            assert_eq!(disk_job_mount(&id), Some(PathBuf::from(m)), "{id}");
        }
    }
}
