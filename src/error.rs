//! One error type for the whole program. Every variant carries what an operator needs to
//! act: the file, the field, the cause. `main` prints it once and maps it to an exit code.
use std::fmt;
use std::path::PathBuf;

/// Exit codes (docs/DESIGN.md "Command line"). sysexits names where one fits.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    /// EX_TEMPFAIL: another reconcile/recover holds the state lock; cron tries again.
    pub const LOCKED: i32 = 75;
    /// EX_CONFIG: the desired state is invalid.
    pub const CONFIG: i32 = 78;
}

#[derive(Debug)]
pub enum Error {
    /// An I/O operation on a path failed.
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// The desired-state file is not valid JSON / not the right shape / out of range.
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    /// A system resource failed us (a signal handler, a thread, a socket, a child
    /// process): what we were doing, and the OS error.
    Os {
        what: String,
        source: std::io::Error,
    },
    /// The state lock is held by another reconcile or recover.
    Locked { path: PathBuf },
    /// The command was used wrongly (a usage error that clap cannot see).
    Usage(String),
    /// Anything else at run time, already phrased for the operator.
    Runtime(String),
}

/// One thing wrong with a desired-state file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Field path such as `disk.mounts[0]`; empty for the whole document.
    pub field: String,
    /// Line and column for syntax errors.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl Problem {
    /// The field and message are made printable here, once for every output (terminal,
    /// status JSON, the dashboard): they may quote a piece of the file (a key, a value),
    /// which is shortened and has its control characters escaped, so a file cannot write
    /// escape sequences to a terminal or a megabyte into status.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            field: crate::format::printable(&field.into(), 120),
            position: None,
            message: crate::format::printable(&message.into(), 400),
        }
    }
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// `cannot {what}: {source}`.
    pub fn os(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Os {
            what: what.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Io { .. } | Error::Os { .. } | Error::Runtime(_) => exit::FAILURE,
            Error::Invalid { .. } => exit::CONFIG,
            Error::Locked { .. } => exit::LOCKED,
            Error::Usage(_) => exit::USAGE,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.position, self.field.is_empty()) {
            (Some((l, c)), true) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some((l, c)), false) => {
                write!(f, "{} (line {l}, column {c}): {}", self.field, self.message)
            }
            (None, true) => write!(f, "{}", self.message),
            (None, false) => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                path,
                action,
                source,
            } => {
                write!(f, "cannot {action} {}: {source}", path.display())
            }
            Error::Os { what, source } => write!(f, "cannot {what}: {source}"),
            Error::Invalid { path, problems } => {
                write!(f, "invalid desired state in {}:", path.display())?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
            Error::Locked { path } => write!(
                f,
                "another cro reconcile or recover holds {}; try again later (exit 75 is safe to ignore from cron)",
                path.display()
            ),
            Error::Usage(m) | Error::Runtime(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
