//! The append-only history: one JSON object per line in `history/YYYY-MM-DD.jsonl` (UTC
//! day of the record). Lines are only ever appended; a torn last line (crash mid-write)
//! is skipped by readers with a warning.
use crate::error::{Error, Result};
use crate::timefmt;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use crate::control::record::{Record, Sample};

pub fn history_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("history")
}

/// Append one record to its day file, synced.
pub fn append(state_dir: &Path, at_unix: f64, rec: &Record) -> Result<PathBuf> {
    let dir = history_dir(state_dir);
    crate::state::fsutil::ensure_dir(&dir, 0o700)?;
    let path = dir.join(format!("{}.jsonl", timefmt::day(at_unix)));
    let mut f =
        crate::sys::fs::private(std::fs::OpenOptions::new().append(true).create(true), 0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, "open history file", e))?;
    let mut line = serde_json::to_string(rec).expect("record serializes");
    line.push('\n');
    // A previous crash may have left a torn line without its newline: start on a fresh line
    // so this record stays readable (the torn fragment stays, and readers skip it).
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > 0 && !ends_with_newline(&path) {
        line.insert(0, '\n');
    }
    if crate::fault::hit(crate::fault::CrashPoint::HistoryTorn) {
        // A crash in the middle of the write: half the line, no newline, then kill -9.
        let _ = f.write_all(&line.as_bytes()[..line.len() / 2]);
        let _ = f.sync_data();
        crate::fault::crash();
    }
    f.write_all(line.as_bytes())
        .map_err(|e| Error::io(&path, "append to", e))?;
    f.sync_data().map_err(|e| Error::io(&path, "sync", e))?;
    Ok(path)
}

fn ends_with_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return true;
    };
    let mut b = [0u8; 1];
    f.seek(SeekFrom::End(-1)).is_err() || (f.read_exact(&mut b).is_ok() && b[0] == b'\n')
}

/// Parse the lines of one day file. Unparsable lines are skipped and reported.
pub fn parse_lines(text: &str, path: &Path, warnings: &mut Vec<String>) -> Vec<Record> {
    let mut out = vec![];
    let lines: Vec<&str> = text.split('\n').collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(l) {
            Ok(r) => out.push(r),
            Err(e) => {
                let torn = i + 1 == lines.len();
                warnings.push(format!(
                    "{}:{}: skipped {} line ({e})",
                    path.display(),
                    i + 1,
                    if torn { "a torn last" } else { "an unreadable" }
                ));
            }
        }
    }
    out
}

/// Every record at or after `since_unix`, oldest first, with warnings for skipped lines.
pub fn read_since(state_dir: &Path, since_unix: f64) -> Result<(Vec<Record>, Vec<String>)> {
    let dir = history_dir(state_dir);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(Error::io(dir, "list", e)),
    };
    files.sort();
    let first_day = timefmt::day(since_unix);
    let mut out = vec![];
    let mut warnings = vec![];
    for p in files {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if stem < first_day {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read", e))?;
        for r in parse_lines(&text, &p, &mut warnings) {
            if timefmt::parse_rfc3339(&r.ts).is_some_and(|t| t >= since_unix) {
                out.push(r);
            }
        }
    }
    Ok((out, warnings))
}

/// Delete day files older than `keep_days` before `now` (by the date in their name). The
/// caller passes at least the window plus one day, so the current window is never touched.
/// Returns the files deleted.
pub fn prune(state_dir: &Path, now: f64, keep_days: u32) -> Result<Vec<PathBuf>> {
    let dir = history_dir(state_dir);
    let oldest_kept = timefmt::day(now - keep_days as f64 * 86_400.0);
    let mut gone = vec![];
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(gone),
        Err(e) => return Err(Error::io(dir, "list", e)),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(day) = name.strip_suffix(".jsonl") else {
            continue;
        };
        // only our own day files: YYYY-MM-DD
        if day.len() != 10 || timefmt::parse_rfc3339(&format!("{day}T00:00:00Z")).is_none() {
            continue;
        }
        if *day < *oldest_kept && e.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(e.path())
                .map_err(|err| Error::io(e.path(), "delete old history", err))?;
            gone.push(e.path());
        }
    }
    gone.sort();
    Ok(gone)
}

/// The last record, if any (looks back two days).
pub fn last(state_dir: &Path, now: f64) -> Option<Record> {
    read_since(state_dir, now - 2.0 * 86_400.0).ok()?.0.pop()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rec(ts: &str) -> Record {
        Record {
            memory_metric: None,
            ts: ts.into(),
            interval_s: 60.0,
            cpu: Some(Sample::new(41.2, 38.0, 40.0, 40.0)),
            memory: None,
            disk: BTreeMap::new(),
        }
    }

    #[test]
    fn append_and_read_back_skipping_torn_line() {
        let d = tempfile::tempdir().unwrap();
        let t = timefmt::parse_rfc3339("2026-11-27T03:40:00Z").unwrap();
        let p = append(d.path(), t, &rec("2026-11-27T03:40:00Z")).unwrap();
        assert!(p.ends_with("history/2026-11-27.jsonl"));
        // simulate a crash mid-write
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"ts\":\"2026-11-27T03:41").unwrap();
        let (rs, w) = read_since(d.path(), t - 1.0).unwrap();
        assert_eq!(rs.len(), 1);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("torn"), "{w:?}");
        // the next append starts on a fresh line, and both good records are read
        append(d.path(), t + 120.0, &rec("2026-11-27T03:42:00Z")).unwrap();
        let (rs, w) = read_since(d.path(), t - 1.0).unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(!w[0].contains("torn"));
    }

    #[test]
    fn prune_keeps_the_window() {
        let d = tempfile::tempdir().unwrap();
        let now = timefmt::parse_rfc3339("2026-11-27T03:40:00Z").unwrap();
        for back in [0, 1, 30, 31, 59, 60, 61, 400] {
            let t = now - back as f64 * 86_400.0;
            append(d.path(), t, &rec(&timefmt::rfc3339(t))).unwrap();
        }
        std::fs::write(history_dir(d.path()).join("notes.jsonl"), "keep").unwrap();
        let gone = prune(d.path(), now, 60).unwrap();
        let names: Vec<String> = gone
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["2025-10-23.jsonl", "2026-09-27.jsonl"]);
        assert!(history_dir(d.path()).join("notes.jsonl").exists());
        assert_eq!(std::fs::read_dir(history_dir(d.path())).unwrap().count(), 7);
    }

    #[test]
    fn record_format_matches_design() {
        let line = serde_json::to_string(&rec("2026-11-27T03:40:00Z")).unwrap();
        assert_eq!(
            line,
            r#"{"ts":"2026-11-27T03:40:00Z","interval_s":60.0,"cpu":{"total":41.2,"synthetic":38.0,"level":40.0,"target":40.0}}"#
        );
    }
}
