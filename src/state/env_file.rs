//! Reading the original Python tool's `config/.env` (for `cro init --from-env`):
//! python-dotenv's format through dotenvy, which reads what a hand-written reader got
//! wrong: quoted values with escapes, values over several lines, `export`, comments after a
//! value. `${VAR}` references are expanded from keys above and from the environment, as the
//! original tool's python-dotenv did. What the keys mean is `control::legacy_env`'s.
//!
//! One difference is bridged first: python-dotenv keeps a backslash in an unquoted value
//! as written (a Windows host's `WORKSPACE_DIR=C:\CloudResourceOptimizer`), and one
//! before a letter it does not decode in double quotes (`"D:\data"`); dotenvy takes every
//! backslash as an escape and refuses both lines. `python_backslashes` doubles those.
use crate::control::legacy_env::Pairs;

/// The .env's keys and values in file order, and (where, what is wrong) for each part it
/// could not read.
pub fn parse(text: &str) -> (Pairs, Pairs) {
    let mut pairs = vec![];
    let mut errors = vec![];
    let text = python_backslashes(text);
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(kv) => pairs.push(kv),
            Err(dotenvy::Error::LineParse(line, at)) => errors.push((
                format!("line {:?}", crate::format::printable(line.trim_end(), 80)),
                format!("cannot be read as KEY=VALUE (at character {at})"),
            )),
            Err(e) => errors.push((".env".to_string(), e.to_string())),
        }
    }
    (pairs, errors)
}

/// The .env with each backslash python-dotenv keeps as written doubled, so that dotenvy
/// reads it as one backslash: every one in an unquoted value, and in double quotes each
/// one that starts no escape either reader decodes. Single quotes keep them in both.
fn python_backslashes(text: &str) -> String {
    #[derive(PartialEq)]
    enum In {
        LineStart,
        Key,
        Unquoted,
        Double,
        Single,
        Rest,
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut state = In::LineStart;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            In::LineStart | In::Key | In::Rest | In::Unquoted if c == '\n' => {
                state = In::LineStart;
            }
            In::LineStart if c == '#' => state = In::Rest,
            In::LineStart if !c.is_whitespace() => state = In::Key,
            In::Key if c == '=' => {
                out.push(c);
                while let Some(&w) = chars.peek().filter(|w| **w == ' ' || **w == '\t') {
                    out.push(w);
                    chars.next();
                }
                state = match chars.peek() {
                    Some('"') => In::Double,
                    Some('\'') => In::Single,
                    _ => In::Unquoted,
                };
                if state != In::Unquoted {
                    out.push(chars.next().unwrap_or_default());
                }
                continue;
            }
            In::Unquoted if c == '#' && out.ends_with([' ', '\t']) => state = In::Rest,
            In::Unquoted if c == '\\' => out.push('\\'),
            In::Double if c == '"' => state = In::Rest,
            In::Double if c == '\\' => match chars.peek() {
                // Decoded by dotenvy (and python-dotenv): left for dotenvy.
                Some(&e @ ('\\' | '\'' | '"' | '$' | 'n')) => {
                    out.push(c);
                    out.push(e);
                    chars.next();
                    continue;
                }
                // A control character to python-dotenv: dotenvy names the line.
                Some('a' | 'b' | 'f' | 'r' | 't' | 'v') => {}
                _ => out.push('\\'),
            },
            In::Single if c == '\'' => state = In::Rest,
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::legacy_env::convert;
    use std::collections::BTreeMap;

    /// The original tool's shipped .env, as its operators have it.
    const ORIGINAL: &str = r#"
# 内存规格定义
SMALL_MEMORY_MAX=8          # 小规格内存上限(GB)
LARGE_MEMORY_MIN=16         # 大规格内存下限(GB)
TARGET_UTILIZATION_SMALL=25 # 小规格平均利用率目标(%)
TARGET_UTILIZATION_LARGE=40
MONITOR_PERIOD_DAYS=15
CHECK_INTERVAL_SECONDS=120
WORKSPACE_DIR=/opt/cro-old
SCRIPT_DIR=${WORKSPACE_DIR}/scripts
DATA_ROOT="/data"
DISK_STRESS_PATH=${DATA_ROOT}/   # 数据盘
DATA_DISK_ONLY=true
PLATFORM=auto
GLANCES_ENABLED=true
GLANCES_REFRESH_INTERVAL=2
HIGH_UTIL_THRESHOLD=80
"#;

    #[test]
    #[cfg(unix)] // its disk is a Linux path; a Windows host's .env is the next test's
    fn the_shipped_env_reads_and_converts() {
        let (pairs, errors) = parse(ORIGINAL);
        assert!(errors.is_empty(), "{errors:?}");
        let m: BTreeMap<_, _> = pairs.iter().cloned().collect();
        assert_eq!(m["SMALL_MEMORY_MAX"], "8");
        assert_eq!(m["SCRIPT_DIR"], "/opt/cro-old/scripts");
        assert_eq!(m["DISK_STRESS_PATH"], "/data/");
        let c = convert(&pairs, errors);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(
            (c.desired.window_days, c.desired.interval_seconds),
            (15, 120)
        );
        assert_eq!(
            c.desired.disk.mounts,
            vec![std::path::PathBuf::from("/data")]
        );
    }

    /// The same .env as a Windows host has it: backslashes in unquoted and single-quoted
    /// values are kept as written (python-dotenv kept them), and the drive becomes the
    /// mount to pad.
    const WINDOWS: &str = r#"
SMALL_MEMORY_MAX=8
TARGET_UTILIZATION_SMALL=25
WORKSPACE_DIR=C:\CloudResourceOptimizer
SCRIPT_DIR=${WORKSPACE_DIR}\scripts
LOG_DIR='C:\CloudResourceOptimizer\logs'
DISK_STRESS_PATH=D:\   # the data disk
PLATFORM=windows
DATA="D:\data dir"
QUOTED="a \"b\" c\\d"
"#;

    #[test]
    fn a_windows_env_keeps_its_backslashes() {
        let (pairs, errors) = parse(WINDOWS);
        assert!(errors.is_empty(), "{errors:?}");
        let m: BTreeMap<_, _> = pairs.iter().cloned().collect();
        assert_eq!(m["WORKSPACE_DIR"], "C:\\CloudResourceOptimizer");
        assert_eq!(m["SCRIPT_DIR"], "C:\\CloudResourceOptimizer\\scripts");
        assert_eq!(m["LOG_DIR"], "C:\\CloudResourceOptimizer\\logs");
        assert_eq!(m["DISK_STRESS_PATH"], "D:\\");
        assert_eq!(m["PLATFORM"], "windows");
        assert_eq!(m["DATA"], "D:\\data dir");
        assert_eq!(m["QUOTED"], "a \"b\" c\\d");
        let c = convert(&pairs, errors);
        if cfg!(windows) {
            assert!(c.errors.is_empty(), "{:?}", c.errors);
            assert_eq!(
                c.desired.disk.mounts,
                vec![std::path::PathBuf::from("D:\\")]
            );
        } else {
            // On Linux a drive is no absolute path: refused, naming the key.
            assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
            assert_eq!(c.errors[0].0, "DISK_STRESS_PATH");
        }
    }

    /// What the hand-written reader dropped: escapes in double quotes, a value over
    /// several lines, a single-quoted value kept as written, `export`.
    #[test]
    fn quoted_escaped_and_multi_line_values_are_read() {
        let (pairs, errors) = parse(
            "A=\"line one\\nline two\"\nB='keep ${A} as written'\nC=\"first\nsecond\"\nexport D=5\nE=\"x # not a comment\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let m: BTreeMap<_, _> = pairs.into_iter().collect();
        assert_eq!(m["A"], "line one\nline two");
        assert_eq!(m["B"], "keep ${A} as written");
        assert_eq!(m["C"], "first\nsecond");
        assert_eq!(m["D"], "5");
        assert_eq!(m["E"], "x # not a comment");
    }

    #[test]
    fn a_line_that_is_not_key_value_is_named() {
        let (pairs, errors) = parse("A=1\nthis is not a pair\nB=2\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].0.contains("this is not a pair"), "{errors:?}");
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"A"), "{keys:?}");
    }
}
