//! Reading the desired-state file: bounded (at most `MAX_BYTES` + 1 are read, so a huge
//! file is refused without being read whole), and absent meaning the built-in default.
//! Parsing and resolution are pure and live in `control::desired`.
use crate::control::desired::{DesiredState, MAX_BYTES, Source, from_contents};
use crate::error::{Error, Result};
use std::path::Path;

/// Load the desired file, or the built-in default when it does not exist.
pub fn load(path: &Path) -> Result<(DesiredState, Source)> {
    from_contents(path, read(path)?.as_deref())
}

/// Read the desired file, at most one byte past MAX_BYTES (so a huge file is refused
/// without being read whole). `None` when there is no file.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    let mut buf = vec![];
    f.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, "read", e))?;
    Ok(Some(buf))
}
