//! The window cache (`<state-dir>/window-cache.json`): the series of the window, folded
//! from the history day files and kept between passes so a tick reads only the lines
//! added since the last one. Derived data: losing it costs one full read.
use crate::control::window::Windows;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The window cache: the series folded from the history, and how far into each day file
/// it has read. Day files are append-only, so a tick reads only the lines added since the
/// last one; a file that shrank (replaced by hand) makes us rebuild from scratch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cache {
    version: u32,
    offsets: BTreeMap<String, u64>,
    windows: Windows,
}

const CACHE_VERSION: u32 = 1;

/// The series of the last `window_s` (plus a day) of history, read incrementally.
/// Warnings name skipped lines. The cache is derived data: failing to save it is harmless.
pub fn load(state_dir: &std::path::Path, now: f64, window_s: f64) -> (Windows, Vec<String>) {
    let dir = crate::state::history::history_dir(state_dir);
    let cache_path = state_dir.join("window-cache.json");
    let mut cache: Cache = std::fs::read(&cache_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &Cache| c.version == CACHE_VERSION)
        .unwrap_or_default();
    cache.version = CACHE_VERSION;
    let from = now - window_s - 86_400.0;
    let first_day = crate::timefmt::day(from);
    let mut older = false;
    let mut files: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    let day = n.strip_suffix(".jsonl")?;
                    if day < first_day.as_str() {
                        older = true;
                        return None;
                    }
                    Some((n.clone(), e.metadata().ok()?.len()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut warnings = vec![];
    let mut changed = false;
    // A shrunk file means the cache no longer matches: start over.
    if files
        .iter()
        .any(|(n, len)| cache.offsets.get(n).is_some_and(|o| o > len))
    {
        cache = Cache {
            version: CACHE_VERSION,
            ..Default::default()
        };
    }
    for (name, len) in &files {
        let off = cache.offsets.get(name).copied().unwrap_or(0);
        if off == *len {
            continue;
        }
        let path = dir.join(name);
        let Ok(bytes) = read_from(&path, off) else {
            continue;
        };
        // Only complete lines: a torn tail is left for later (or for the warning below).
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let text = String::from_utf8_lossy(&bytes[..end]);
        for r in crate::state::history::parse_lines(&text, &path, &mut warnings) {
            cache.windows.add(&r);
        }
        cache.offsets.insert(name.clone(), off + end as u64);
        changed = true;
    }
    let before = cache.offsets.len();
    cache
        .offsets
        .retain(|n, _| *n >= format!("{first_day}.jsonl"));
    if changed || before != cache.offsets.len() {
        cache.windows.forget_before(from);
        if let Ok(b) = serde_json::to_vec(&cache) {
            let _ = crate::state::fsutil::write_atomic(&cache_path, &b, 0o600, false);
        }
    }
    cache.windows.older_history = older;
    (cache.windows, warnings)
}

fn read_from(path: &std::path::Path, off: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(off))?;
    let mut v = vec![];
    f.read_to_end(&mut v)?;
    Ok(v)
}
