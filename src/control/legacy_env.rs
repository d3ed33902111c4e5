//! Moving over from the original Python tool: its `config/.env` as a desired state.
//!
//! What the .env configured maps onto the desired state; what has no counterpart is named
//! with the reason, so the operator sees every key accounted for. Reading the file
//! (python-dotenv's format, through dotenvy) is `state::env_file`'s; this is pure.
use crate::control::desired::{DesiredState, Tier, limits};
use std::path::PathBuf;

/// The .env converted: the desired state, and every key with what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub desired: DesiredState,
    /// (key, where it went) for the keys carried over.
    pub carried: Vec<(String, String)>,
    /// (key, why not) for the keys that were not.
    pub dropped: Vec<(String, String)>,
    /// Problems with values (not a number, out of range): the key is dropped, and the
    /// caller refuses to write the file.
    pub errors: Vec<(String, String)>,
}

/// (key, value) pairs in file order, or (where, what is wrong).
pub type Pairs = Vec<(String, String)>;

/// Why a key of the original tool has no counterpart, or None if it is one we carry.
fn not_carried(key: &str) -> Option<&'static str> {
    Some(match key {
        "PLATFORM" => "cro detects the distribution itself (status shows it)",
        k if k.starts_with("GLANCES_") => {
            "cro does not start glances; see the README's section on glances (cro serve, or \
             glances' AMP running `cro status`)"
        }
        k if k.starts_with("LOW_UTIL_")
            || k.starts_with("MED_UTIL_")
            || k.starts_with("HIGH_UTIL_") =>
        {
            "replaced by the window policy: cro plans the level from the recorded window, not \
             from fixed utilization bands"
        }
        "WORKSPACE_DIR" | "SCRIPT_DIR" | "LOG_DIR" | "CONFIG_DIR" => {
            "not needed: cro keeps its state in --state-dir (/var/lib/cro) and logs to the journal"
        }
        "SMALL_MEMORY_MAX"
        | "LARGE_MEMORY_MIN"
        | "TARGET_UTILIZATION_SMALL"
        | "TARGET_UTILIZATION_LARGE"
        | "MONITOR_PERIOD_DAYS"
        | "CHECK_INTERVAL_SECONDS"
        | "DISK_STRESS_PATH"
        | "DATA_DISK_ONLY" => return None,
        _ => "not a setting cro knows; ignored",
    })
}

/// The .env as read, and the problems found with its values.
struct Env<'a> {
    pairs: &'a [(String, String)],
    errors: Pairs,
}

impl Env<'_> {
    /// A key's value: the last line that sets it wins, as in python-dotenv.
    fn get(&self, k: &str) -> Option<String> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    }

    /// A number within `lo..=hi`, or None (and an error when set but not such a number).
    fn num(&mut self, k: &str, (lo, hi): (f64, f64)) -> Option<f64> {
        let v = self.get(k)?;
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() && (lo..=hi).contains(&x) => Some(x),
            _ => {
                self.errors.push((
                    k.to_string(),
                    format!("{v:?} is not a number from {lo} to {hi}"),
                ));
                None
            }
        }
    }
}

/// Convert the original tool's .env, read into `pairs` (in file order, `${VAR}` already
/// expanded; `state::env_file` reads it) with the lines it could not read as `errors`.
pub fn convert(pairs: &[(String, String)], errors: Pairs) -> Converted {
    let mut env = Env { pairs, errors };
    let mut c = Converted {
        desired: DesiredState::default(),
        carried: vec![],
        dropped: vec![],
        errors: vec![],
    };
    tiers(&mut env, &mut c);
    schedule(&mut env, &mut c);
    disk_path(&mut env, &mut c);
    data_disk_only(&mut env, &mut c);
    for (k, _) in pairs {
        if let Some(why) = not_carried(k)
            && !c.dropped.iter().any(|(d, _)| d == k)
        {
            c.dropped.push((k.clone(), why.to_string()));
        }
    }
    c.errors = env.errors;
    c
}

/// The tiers: the small target from 0 GiB, the large one from LARGE_MEMORY_MIN. Hosts
/// between SMALL_MEMORY_MAX and LARGE_MEMORY_MIN had no target in the original; here they
/// get the small one (the lower floor).
fn tiers(env: &mut Env, c: &mut Converted) {
    let small_target = env.num("TARGET_UTILIZATION_SMALL", limits::PERCENT);
    let large_target = env.num("TARGET_UTILIZATION_LARGE", limits::PERCENT);
    let small_max = env.num("SMALL_MEMORY_MAX", limits::MIN_MEMORY_GIB);
    let large_min = env.num("LARGE_MEMORY_MIN", limits::MIN_MEMORY_GIB);
    let defaults = crate::control::desired::default_tiers();
    let small = small_target.unwrap_or(defaults[0].target_percent);
    let large = large_target.unwrap_or(defaults[1].target_percent);
    let from = large_min.unwrap_or(defaults[1].min_memory_gib);
    c.desired.tiers = vec![
        Tier {
            min_memory_gib: 0.0,
            target_percent: small,
        },
        Tier {
            min_memory_gib: from,
            target_percent: large,
        },
    ];
    if let Some(t) = small_target {
        c.carried.push((
            "TARGET_UTILIZATION_SMALL".into(),
            format!("tiers[0]: {t} % from 0 GiB"),
        ));
    }
    if let Some(t) = large_target {
        c.carried.push((
            "TARGET_UTILIZATION_LARGE".into(),
            format!("tiers[1]: {t} % from {from} GiB"),
        ));
    }
    if let Some(m) = large_min {
        c.carried.push((
            "LARGE_MEMORY_MIN".into(),
            format!("tiers[1].min_memory_gib = {m}"),
        ));
    }
    if let Some(m) = small_max {
        c.carried.push((
            "SMALL_MEMORY_MAX".into(),
            format!(
                "tiers[0] covers hosts below {from} GiB, so hosts from {m} to {from} GiB (no \
                 target in the original) get the small target"
            ),
        ));
    }
}

/// The monitoring period and the check interval: the window and the pass interval.
fn schedule(env: &mut Env, c: &mut Converted) {
    let days = limits::WINDOW_DAYS;
    if let Some(p) = env.num("MONITOR_PERIOD_DAYS", (days.0 as f64, days.1 as f64)) {
        c.desired.window_days = p.round() as u32;
        c.carried.push((
            "MONITOR_PERIOD_DAYS".into(),
            format!("window_days = {}", c.desired.window_days),
        ));
    }
    let secs = limits::INTERVAL_SECONDS;
    if let Some(i) = env.num("CHECK_INTERVAL_SECONDS", (secs.0 as f64, secs.1 as f64)) {
        c.desired.interval_seconds = i.round() as u64;
        c.carried.push((
            "CHECK_INTERVAL_SECONDS".into(),
            format!("interval_seconds = {}", c.desired.interval_seconds),
        ));
    }
}

/// DISK_STRESS_PATH: the one mount to pad. An absolute path as the platform writes one
/// (`/data/` on Linux; `D:\`, `D:/data` or a bare `D:` on Windows, where the original
/// tool passed it to psutil as a drive), its trailing separators gone but a root's kept.
fn disk_path(env: &mut Env, c: &mut Converted) {
    let Some(p) = env.get("DISK_STRESS_PATH") else {
        return;
    };
    if p.is_empty() {
        c.dropped.push((
            "DISK_STRESS_PATH".into(),
            "empty: no disk is padded until you list a mount in disk.mounts".into(),
        ));
        return;
    }
    match mount_path(&p) {
        Some(m) => {
            c.carried.push((
                "DISK_STRESS_PATH".into(),
                format!("disk.mounts = [{:?}]", m.display().to_string()),
            ));
            c.desired.disk.mounts = vec![m];
        }
        None => env.errors.push((
            "DISK_STRESS_PATH".into(),
            format!("{p:?} is not an absolute path; cro pads mount points given as absolute paths"),
        )),
    }
}

/// The original tool's disk path as cro's `disk.mounts` entry: None unless absolute here.
fn mount_path(p: &str) -> Option<PathBuf> {
    // A bare drive letter ("D:") meant the drive's root to psutil. (On Linux "D:\" is no
    // absolute path either: refused the same, with no platform test here.)
    let b = p.as_bytes();
    let p = if b.len() == 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        format!("{p}\\")
    } else {
        p.to_string()
    };
    let path = std::path::Path::new(&p);
    // Rebuilt from its parts: "/data/" is "/data", `D:/data/` is `D:\data`, `D:\` stays.
    path.is_absolute().then(|| path.components().collect())
}

/// DATA_DISK_ONLY: whether a path that is not a mount point may be padded.
fn data_disk_only(env: &mut Env, c: &mut Converted) {
    let Some(v) = env.get("DATA_DISK_ONLY") else {
        return;
    };
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => c.carried.push((
            "DATA_DISK_ONLY".into(),
            "kept: cro pads only mount points (disk.allow_plain_directory false), never \
             the root filesystem in a data disk's place"
                .into(),
        )),
        "false" | "0" | "no" => {
            c.desired.disk.allow_plain_directory = true;
            c.carried.push((
                "DATA_DISK_ONLY".into(),
                "false: disk.allow_plain_directory = true (the path is padded even when it \
                 is not a mount point of its own)"
                    .into(),
            ));
        }
        _ => env.errors.push((
            "DATA_DISK_ONLY".into(),
            format!("{v:?} is not true or false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original tool's shipped .env as `state::env_file` reads it (its test reads the
    /// text itself): plain pairs, references expanded, comments gone.
    #[cfg(unix)]
    const ORIGINAL: &[(&str, &str)] = &[
        ("SMALL_MEMORY_MAX", "8"),
        ("LARGE_MEMORY_MIN", "16"),
        ("TARGET_UTILIZATION_SMALL", "25"),
        ("TARGET_UTILIZATION_LARGE", "40"),
        ("MONITOR_PERIOD_DAYS", "15"),
        ("CHECK_INTERVAL_SECONDS", "120"),
        ("WORKSPACE_DIR", "/opt/cro-old"),
        ("SCRIPT_DIR", "/opt/cro-old/scripts"),
        ("DATA_ROOT", "/data"),
        ("DISK_STRESS_PATH", "/data/"),
        ("DATA_DISK_ONLY", "true"),
        ("PLATFORM", "auto"),
        ("GLANCES_ENABLED", "true"),
        ("GLANCES_REFRESH_INTERVAL", "2"),
        ("HIGH_UTIL_THRESHOLD", "80"),
    ];

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    #[cfg(unix)] // Linux mount paths; Windows' are the next test's
    fn the_original_env_becomes_a_desired_state_and_every_key_is_accounted_for() {
        let c = convert(&pairs(ORIGINAL), vec![]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let d = &c.desired;
        assert_eq!(d.tiers.len(), 2);
        assert_eq!(
            (d.tiers[0].min_memory_gib, d.tiers[0].target_percent),
            (0.0, 25.0)
        );
        assert_eq!(
            (d.tiers[1].min_memory_gib, d.tiers[1].target_percent),
            (16.0, 40.0)
        );
        assert_eq!((d.window_days, d.interval_seconds), (15, 120));
        assert_eq!(d.disk.mounts, vec![PathBuf::from("/data")]);
        assert!(!d.disk.allow_plain_directory);
        let dropped: Vec<&str> = c.dropped.iter().map(|(k, _)| k.as_str()).collect();
        for k in [
            "PLATFORM",
            "GLANCES_ENABLED",
            "GLANCES_REFRESH_INTERVAL",
            "HIGH_UTIL_THRESHOLD",
            "WORKSPACE_DIR",
            "SCRIPT_DIR",
            "DATA_ROOT",
        ] {
            assert!(dropped.contains(&k), "{k} not reported: {dropped:?}");
        }
        let why = |k: &str| c.dropped.iter().find(|(d, _)| d == k).unwrap().1.clone();
        assert!(why("PLATFORM").contains("detects"));
        assert!(why("GLANCES_ENABLED").contains("glances"));
        assert!(why("HIGH_UTIL_THRESHOLD").contains("window policy"));
        // the result is a valid desired state
        let text = serde_json::to_string(d).unwrap();
        crate::control::desired::parse(text.as_bytes(), std::path::Path::new("d.json"))
            .unwrap()
            .resolve(std::path::Path::new("d.json"), 8 << 30, None)
            .unwrap();
    }

    /// A Windows host's .env names a drive as psutil took it: every form of it becomes
    /// that volume's root or directory, and a relative one is an error.
    #[test]
    #[cfg(windows)]
    fn a_windows_env_names_its_volume() {
        for (given, want) in [
            ("D:\\", "D:\\"),
            ("D:", "D:\\"),
            ("D:/", "D:\\"),
            ("D:\\data\\", "D:\\data"),
            ("E:/cro/", "E:\\cro"),
        ] {
            let c = convert(&pairs(&[("DISK_STRESS_PATH", given)]), vec![]);
            assert!(c.errors.is_empty(), "{given}: {:?}", c.errors);
            assert_eq!(c.desired.disk.mounts, vec![PathBuf::from(want)], "{given}");
        }
        let c = convert(&pairs(&[("DISK_STRESS_PATH", "data\\")]), vec![]);
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    }

    #[test]
    fn bad_values_are_errors_not_guesses() {
        let c = convert(
            &pairs(&[
                ("TARGET_UTILIZATION_SMALL", "25%"),
                ("DISK_STRESS_PATH", "data"),
                ("DATA_DISK_ONLY", "maybe"),
            ]),
            vec![],
        );
        let keys: Vec<&str> = c.errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "TARGET_UTILIZATION_SMALL",
                "DISK_STRESS_PATH",
                "DATA_DISK_ONLY"
            ]
        );
        let c = convert(
            &pairs(&[
                ("DATA_DISK_ONLY", "false"),
                (
                    "DISK_STRESS_PATH",
                    if cfg!(windows) { "D:\\srv" } else { "/srv" },
                ),
            ]),
            vec![],
        );
        assert!(c.desired.disk.allow_plain_directory);
        assert!(c.errors.is_empty());
    }
}
