//! The operator's desired state (version 1): serde + schemars types, semantic validation,
//! and resolution into the targets the planner works with.
use crate::error::{Error, Problem, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SCHEMA_REF: &str = "https://cro.invalid/schema/desired-state.schema.json";

/// Desired state of a host. Every field but `version` is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "cro desired state",
    description = "What utilization floor cro keeps on this host. Every field but `version` is optional."
)]
pub struct DesiredState {
    /// Editor hint; ignored by cro.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Format version; must be 1.
    pub version: u32,
    /// Stop all synthetic load and remove ballast, reversibly.
    #[serde(default)]
    pub paused: bool,
    /// Seconds between reconciles in daemon mode (1-3600).
    #[serde(default = "default_interval")]
    #[schemars(range(min = limits::INTERVAL_SECONDS.0, max = limits::INTERVAL_SECONDS.1))]
    pub interval_seconds: u64,
    /// Days a target is judged over (1-366).
    #[serde(default = "default_window")]
    #[schemars(range(min = limits::WINDOW_DAYS.0, max = limits::WINDOW_DAYS.1))]
    pub window_days: u32,
    /// Days of history kept beyond the window (older day files are deleted; the current
    /// window is never touched).
    #[serde(default = "default_history_grace")]
    #[schemars(range(min = limits::HISTORY_GRACE_DAYS.0, max = limits::HISTORY_GRACE_DAYS.1))]
    pub history_grace_days: u32,
    /// What the part of the window before the first history record counts as when the
    /// window is judged (status, report, metrics, simulate): `zero` (the default: an
    /// unmonitored host looks idle to a provider) or `ignore` (judge the recorded time
    /// only, for a provider whose measurement of the host began with cro).
    #[serde(default)]
    pub before_first_record: BeforeFirstRecord,
    /// How a mean target is paced in the first window after install (with
    /// `before_first_record: zero`): `pace` (the default: the floor is held from the first
    /// pass, evenly over the first window) or `defer` (opt-in least cost: pad only once the
    /// rest of the window needs more than 3/4 of the catch-up level, so organic load that
    /// rises pays for itself; the risk: an outage late in the first window can then miss,
    /// measured 36.1 % for a 40 % mean with 5 of the last 10 days down, where `pace` made
    /// it). docs/SIMULATION.md has both.
    #[serde(default)]
    pub first_window: FirstWindow,
    /// Target by nominal memory size; the last tier whose `min_memory_gib` the host reaches wins.
    #[serde(default = "default_tiers")]
    pub tiers: Vec<Tier>,
    #[serde(default)]
    pub cpu: CpuSpec,
    #[serde(default)]
    pub memory: MemorySpec,
    #[serde(default)]
    pub disk: DiskSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Nominal memory size in GiB from which this tier applies (a "16 GB" VM reporting 15.6 GiB counts as 16).
    #[schemars(range(min = limits::MIN_MEMORY_GIB.0, max = limits::MIN_MEMORY_GIB.1))]
    pub min_memory_gib: f64,
    /// Utilization target in percent for hosts in this tier.
    #[schemars(range(min = limits::PERCENT.0, max = limits::PERCENT.1))]
    pub target_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CpuSpec {
    pub enabled: bool,
    /// Overrides the tier target.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = limits::PERCENT.0, max = limits::PERCENT.1))]
    pub target_percent: Option<f64>,
    /// `mean` or a percentile `p1`..`p99`.
    #[schemars(regex(pattern = r"^(mean|p([1-9]|[1-9][0-9]))$"))]
    pub statistic: String,
    /// Never add more than this share of the host's CPU.
    #[schemars(range(min = limits::PERCENT.0, max = limits::PERCENT.1))]
    pub max_synthetic_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MemorySpec {
    pub enabled: bool,
    /// Overrides the tier target.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = limits::PERCENT.0, max = limits::PERCENT.1))]
    pub target_percent: Option<f64>,
    /// `mean` or a percentile `p1`..`p99`.
    #[schemars(regex(pattern = r"^(mean|p([1-9]|[1-9][0-9]))$"))]
    pub statistic: String,
    /// Ballast is given back before MemAvailable falls below this share of memory.
    #[schemars(range(min = limits::PERCENT.0, max = limits::PERCENT.1))]
    pub min_available_percent: f64,
    /// How used memory is measured: `available` (MemTotal - MemAvailable, the default),
    /// `used` (as `free` and psutil: without buffers and page cache) or `used_with_cache`
    /// (MemTotal - MemFree). Pick what your provider's agent reports.
    pub metric: MemoryMetric,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DiskSpec {
    pub enabled: bool,
    /// Overrides the tier target.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = limits::PERCENT.0, max = limits::PERCENT.1))]
    pub target_percent: Option<f64>,
    /// `mean` or a percentile `p1`..`p99`.
    #[schemars(regex(pattern = r"^(mean|p([1-9]|[1-9][0-9]))$"))]
    pub statistic: String,
    /// Absolute mount points to pad, each judged on its own. `/` is padded only when listed.
    pub mounts: Vec<PathBuf>,
    /// Ballast is trimmed before free space falls below this share of the filesystem...
    #[schemars(range(min = limits::PERCENT.0, max = limits::PERCENT.1))]
    pub min_free_percent: f64,
    /// ...or below this many GiB, whichever is larger.
    #[schemars(range(min = limits::MIN_FREE_GIB.0, max = limits::MIN_FREE_GIB.1))]
    pub min_free_gib: f64,
    /// `allocate` (fallocate, instant) or `write` (incompressible data, for compressing or deduplicating filesystems).
    pub fill: Fill,
    /// Pad the mounts even where they are plain directories, not mount points. Off by
    /// default: a filesystem that failed to mount leaves an empty directory on `/`, and
    /// cro must not fill the root filesystem in its place.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_plain_directory: bool,
}

/// What the window's time before the first history record counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BeforeFirstRecord {
    /// 0 %: a provider that measured the host before cro came saw it idle.
    #[default]
    Zero,
    /// Not counted: the window is judged over the time since the first record.
    Ignore,
}

/// How a mean target is paced in the first window (see `DesiredState::first_window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FirstWindow {
    /// Pad evenly over the first window from the first pass (the default: the floor is
    /// held from the start, so an outage late in the first window still leaves margin).
    #[default]
    Pace,
    /// Opt-in least cost: wait for organic load while the rest can still be made up if it
    /// stops. Risk: an outage late in the first window can then miss the target (measured:
    /// 5 of the last 10 days down ends a 40 % mean at 36.1 %).
    Defer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fill {
    #[default]
    Allocate,
    Write,
}

impl Fill {
    /// As the desired file spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Fill::Allocate => "allocate",
            Fill::Write => "write",
        }
    }
}

/// How memory utilization is measured: providers' agents differ, and cro should hold the
/// figure yours reads. The floor (`min_available_percent`) is always MemAvailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMetric {
    /// MemTotal - MemAvailable (the kernel's estimate of what new work could not get
    /// without swapping; node_exporter dashboards, most cloud agents).
    #[default]
    Available,
    /// MemTotal - MemFree - Buffers - Cached - SReclaimable (procps `free`'s "used",
    /// psutil's `used`: the page cache does not count).
    Used,
    /// MemTotal - MemFree (agents that count the page cache as used).
    UsedWithCache,
}

impl MemoryMetric {
    pub fn name(self) -> &'static str {
        match self {
            MemoryMetric::Available => "available",
            MemoryMetric::Used => "used",
            MemoryMetric::UsedWithCache => "used_with_cache",
        }
    }
    pub fn from_name(name: &str) -> Option<MemoryMetric> {
        [
            MemoryMetric::Available,
            MemoryMetric::Used,
            MemoryMetric::UsedWithCache,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
    /// The formula, for status and the report.
    pub fn formula(self) -> &'static str {
        match self {
            MemoryMetric::Available => "MemTotal - MemAvailable",
            MemoryMetric::Used => "MemTotal - MemFree - Buffers - Cached - SReclaimable",
            MemoryMetric::UsedWithCache => "MemTotal - MemFree",
        }
    }
}

/// Every default of the desired state, written once: serde fills a missing field from
/// these (through the `Default` impls below), `cro init` writes them, the schema shows them.
pub mod defaults {
    pub const INTERVAL_SECONDS: u64 = 60;
    pub const WINDOW_DAYS: u32 = 30;
    pub const HISTORY_GRACE_DAYS: u32 = 30;
    pub const STATISTIC: &str = "mean";
    pub const MAX_SYNTHETIC_PERCENT: f64 = 90.0;
    pub const MIN_AVAILABLE_PERCENT: f64 = 10.0;
    pub const MIN_FREE_PERCENT: f64 = 10.0;
    pub const MIN_FREE_GIB: f64 = 1.0;
}

fn default_interval() -> u64 {
    defaults::INTERVAL_SECONDS
}
fn default_window() -> u32 {
    defaults::WINDOW_DAYS
}
fn default_history_grace() -> u32 {
    defaults::HISTORY_GRACE_DAYS
}
pub fn default_tiers() -> Vec<Tier> {
    vec![
        Tier {
            min_memory_gib: 0.0,
            target_percent: 25.0,
        },
        Tier {
            min_memory_gib: 16.0,
            target_percent: 40.0,
        },
    ]
}

impl Default for CpuSpec {
    fn default() -> Self {
        CpuSpec {
            enabled: true,
            target_percent: None,
            statistic: defaults::STATISTIC.into(),
            max_synthetic_percent: defaults::MAX_SYNTHETIC_PERCENT,
        }
    }
}
impl Default for MemorySpec {
    fn default() -> Self {
        MemorySpec {
            enabled: true,
            target_percent: None,
            statistic: defaults::STATISTIC.into(),
            min_available_percent: defaults::MIN_AVAILABLE_PERCENT,
            metric: MemoryMetric::Available,
        }
    }
}
impl Default for DiskSpec {
    fn default() -> Self {
        DiskSpec {
            enabled: true,
            target_percent: None,
            statistic: defaults::STATISTIC.into(),
            mounts: vec![],
            min_free_percent: defaults::MIN_FREE_PERCENT,
            min_free_gib: defaults::MIN_FREE_GIB,
            fill: Fill::Allocate,
            allow_plain_directory: false,
        }
    }
}

impl Default for DesiredState {
    /// The built-in default: what `cro init` writes (tier targets, no disk mounts).
    fn default() -> Self {
        DesiredState {
            schema: None,
            version: 1,
            paused: false,
            interval_seconds: defaults::INTERVAL_SECONDS,
            window_days: defaults::WINDOW_DAYS,
            history_grace_days: defaults::HISTORY_GRACE_DAYS,
            before_first_record: BeforeFirstRecord::Zero,
            first_window: FirstWindow::Pace,
            tiers: default_tiers(),
            cpu: CpuSpec::default(),
            memory: MemorySpec::default(),
            disk: DiskSpec::default(),
        }
    }
}

/// How a window is judged. Written the way the desired file spells it (`mean`, `p95`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    Mean,
    /// Percentile 1..=99: the target must be reached by at least (100 - p) % of samples.
    Percentile(u8),
}

impl Serialize for Statistic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl Statistic {
    pub fn parse(s: &str) -> Option<Statistic> {
        if s == "mean" {
            return Some(Statistic::Mean);
        }
        let n = s.strip_prefix('p')?;
        if n.is_empty()
            || n.len() > 2
            || n.starts_with('0')
            || !n.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        n.parse()
            .ok()
            .filter(|p| (1..=99).contains(p))
            .map(Statistic::Percentile)
    }
    pub fn name(&self) -> String {
        match self {
            Statistic::Mean => "mean".into(),
            Statistic::Percentile(p) => format!("p{p}"),
        }
    }
}

impl std::fmt::Display for Statistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.name())
    }
}

/// Nominal memory size in GiB of a host that reports `total_bytes`. VMs report less than
/// their nominal size (kernel, firmware and crash-kernel reservations take 2-6 %), so a
/// reported size within 10 % below a common size counts as that size; anything else is
/// rounded to whole GiB.
pub fn nominal_gib(total_bytes: u64) -> f64 {
    const COMMON: [f64; 22] = [
        0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0, 192.0,
        256.0, 384.0, 512.0, 768.0, 1024.0, 2048.0,
    ];
    let gib = total_bytes as f64 / (1u64 << 30) as f64;
    match COMMON.iter().find(|&&s| s >= gib) {
        Some(&s) if gib >= 0.9 * s => s,
        _ => gib.round().max(1.0),
    }
}

/// A validated desired state with every target resolved for this host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    pub paused: bool,
    pub interval_seconds: u64,
    pub window_days: u32,
    pub history_grace_days: u32,
    pub before_first_record: BeforeFirstRecord,
    pub first_window: FirstWindow,
    pub memory_tier_gib: f64,
    pub cpu: Option<CpuTarget>,
    pub memory: Option<MemoryTarget>,
    pub disk: Option<DiskTarget>,
}

impl Resolved {
    /// Whether a mean target may wait for organic load in the first window: only when
    /// the time before the first record counts as 0 % (then only the window that closes
    /// at first record + W can be compliant) and the desired state says `defer`.
    pub fn defers_in_first_window(&self) -> bool {
        self.before_first_record == BeforeFirstRecord::Zero
            && self.first_window == FirstWindow::Defer
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuTarget {
    pub target_percent: f64,
    pub statistic: Statistic,
    pub max_synthetic_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryTarget {
    pub target_percent: f64,
    pub statistic: Statistic,
    pub min_available_percent: f64,
    pub metric: MemoryMetric,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskTarget {
    pub target_percent: f64,
    pub statistic: Statistic,
    pub mounts: Vec<PathBuf>,
    pub min_free_percent: f64,
    pub min_free_bytes: u64,
    pub fill: Fill,
    pub allow_plain_directory: bool,
}

/// Parse a desired-state document. Syntax and shape errors carry the field path and, for
/// syntax errors, the line and column.
pub fn parse(text: &[u8], path: &Path) -> Result<DesiredState> {
    let invalid = |p: Problem| Error::Invalid {
        path: path.to_path_buf(),
        problems: vec![p],
    };
    let text = match std::str::from_utf8(text) {
        Ok(t) => t,
        Err(e) => {
            return Err(invalid(Problem::new(
                "",
                format!(
                    "not UTF-8 text (bad byte at offset {}); a desired-state file is JSON",
                    e.valid_up_to()
                ),
            )));
        }
    };
    if text.starts_with('\u{feff}') {
        return Err(invalid(Problem::new(
            "",
            "the file starts with a byte-order mark (BOM); save it as UTF-8 without BOM",
        )));
    }
    if text.len() > MAX_BYTES {
        return Err(invalid(Problem::new(
            "",
            format!(
                "the file is {} bytes; a desired state is a few hundred bytes (at most {MAX_BYTES})",
                text.len()
            ),
        )));
    }
    if text.trim().is_empty() {
        return Err(invalid(Problem::new(
            "",
            "the file is empty; run `cro init` for a starting point, or write at least {\"version\": 1}",
        )));
    }
    // serde would read an array as a struct by position; operators write objects.
    if !text.trim_start().starts_with('{') {
        let found: String = text.trim_start().chars().take(12).collect();
        let mut p = Problem::new(
            "",
            format!(
                "the desired state must be a JSON object ({{\"version\": 1, ...}}); found {found:?}"
            ),
        );
        p.position = Some((1, 1));
        return Err(invalid(p));
    }
    // Duplicate keys are refused: serde_json keeps the last silently, which hides typos.
    if let Some((field, line, col)) = find_duplicate_key(text) {
        let mut p = Problem::new(field, "this key appears twice in the same object; keep one");
        p.position = Some((line, col));
        return Err(invalid(p));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, DesiredState>(de) {
        Ok(d) => Ok(d),
        Err(e) => {
            let field = e.path().to_string();
            let inner = e.into_inner();
            // Where serde could not tell the field (a syntax error: `cpu.?`), the line
            // and column locate it.
            let field = if field == "." || field == "?" || field.ends_with(".?") {
                String::new()
            } else {
                field
            };
            let message = explain_serde(&inner.to_string());
            let mut p = Problem::new(field, message);
            if inner.line() > 0 {
                p.position = Some((inner.line(), inner.column()));
            }
            Err(invalid(p))
        }
    }
}

/// serde's messages end with " at line L column C"; we report position separately.
fn explain_serde(msg: &str) -> String {
    let base = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if base.starts_with("missing field `version`") {
        return "missing field `version`; add \"version\": 1".into();
    }
    // "invalid type: string \"25%\", expected f64": say it in the file's terms.
    if let Some(rest) = base.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let want = match expected {
            "f64" | "f32" => "a number such as 25 (no quotes, no % sign)",
            "u64" | "u32" | "u8" | "usize" => "a whole number such as 60",
            "a boolean" => "true or false",
            "a string" => "a string in double quotes",
            "a sequence" => "a list in [brackets]",
            other => other,
        };
        return format!("expected {want}, found {found}");
    }
    base.to_string()
}

/// A desired state nests four levels deep; anything near this is not one.
const MAX_DEPTH: usize = 32;
/// A desired state is a few hundred bytes; a larger file is refused before it is parsed.
pub const MAX_BYTES: usize = 1 << 20;

/// Scan JSON text for a key repeated within one object. Returns (path, line, column) of
/// the second occurrence. Tolerant: on malformed text it returns None and lets serde report.
/// One function (about 95 lines) on purpose: it is a single-pass tokenizer whose state
/// (the object stack, the pending key, line and column) every branch updates; split, that
/// state would travel through every helper.
fn find_duplicate_key(text: &str) -> Option<(String, usize, usize)> {
    #[derive(Default)]
    struct Obj {
        keys: std::collections::HashSet<String>,
        path: String,
        expect_key: bool,
    }
    enum Frame {
        Obj(Obj),
        Arr(String, usize),
    }
    let mut stack: Vec<Frame> = vec![];
    let mut pending_key: Option<String> = None;
    let (mut line, mut col) = (1usize, 0usize);
    let mut chars = text.chars().peekable();
    let child_path = |stack: &Vec<Frame>, key: &Option<String>| -> String {
        match stack.last() {
            Some(Frame::Obj(o)) => match key {
                Some(k) if o.path.is_empty() => k.clone(),
                Some(k) => format!("{}.{k}", o.path),
                None => o.path.clone(),
            },
            Some(Frame::Arr(p, i)) => format!("{p}[{i}]"),
            None => String::new(),
        }
    };
    while let Some(c) = chars.next() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
        }
        match c {
            // Deeper than any desired state: stop scanning (each frame keeps its path, so a
            // file of nested brackets would cost memory quadratic in its size) and let
            // serde refuse it (its recursion limit) with a position.
            '{' | '[' if stack.len() >= MAX_DEPTH => return None,
            '{' => {
                let path = child_path(&stack, &pending_key);
                pending_key = None;
                stack.push(Frame::Obj(Obj {
                    path,
                    expect_key: true,
                    ..Default::default()
                }));
            }
            '[' => {
                let path = child_path(&stack, &pending_key);
                pending_key = None;
                stack.push(Frame::Arr(path, 0));
            }
            '}' | ']' => {
                stack.pop();
            }
            ',' => match stack.last_mut() {
                Some(Frame::Obj(o)) => o.expect_key = true,
                Some(Frame::Arr(_, i)) => *i += 1,
                None => {}
            },
            '"' => {
                let (start_line, start_col) = (line, col);
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    col += 1;
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                col += 1;
                                s.push(n);
                            }
                        }
                        '"' => break,
                        '\n' => return None,
                        c => s.push(c),
                    }
                }
                if let Some(Frame::Obj(o)) = stack.last_mut()
                    && o.expect_key
                {
                    o.expect_key = false;
                    if o.keys.contains(&s) {
                        let path = if o.path.is_empty() {
                            s.clone()
                        } else {
                            format!("{}.{s}", o.path)
                        };
                        return Some((path, start_line, start_col));
                    }
                    o.keys.insert(s.clone());
                    pending_key = Some(s);
                }
            }
            _ => {}
        }
    }
    None
}

/// Each bounded number's allowed range, inclusive: the one source of the schema's
/// `minimum`/`maximum` (the `#[schemars(range(...))]` attributes name these) and of the
/// checks `resolve` makes, so the two cannot drift apart.
pub mod limits {
    pub const INTERVAL_SECONDS: (u64, u64) = (1, 3600);
    pub const WINDOW_DAYS: (u32, u32) = (1, 366);
    pub const HISTORY_GRACE_DAYS: (u32, u32) = (0, 3660);
    pub const PERCENT: (f64, f64) = (0.0, 100.0);
    pub const MIN_MEMORY_GIB: (f64, f64) = (0.0, 1e6);
    pub const MIN_FREE_GIB: (f64, f64) = (0.0, 1e9);
}

/// The problems found while a document is checked, each naming its field.
#[derive(Default)]
struct Check {
    problems: Vec<Problem>,
}

impl Check {
    fn bad(&mut self, field: &str, msg: String) {
        self.problems.push(Problem::new(field, msg));
    }

    /// `v` within `range` (inclusive), with `unit` after the bounds in the message.
    fn within<T: PartialOrd + std::fmt::Display + Copy>(
        &mut self,
        field: &str,
        v: T,
        (lo, hi): (T, T),
        unit: &str,
    ) {
        // written so that NaN is out of range too
        if !(v >= lo && v <= hi) {
            self.bad(
                field,
                format!("{v} is out of range; allowed {lo} to {hi}{unit}"),
            );
        }
    }

    fn percent(&mut self, field: &str, v: f64) {
        let (lo, hi) = limits::PERCENT;
        if !(v >= lo && v <= hi) {
            self.bad(field, format!("{v} is not a percent; allowed {lo} to {hi}"));
        }
    }

    fn statistic(&mut self, field: &str, s: &str) -> Statistic {
        Statistic::parse(s).unwrap_or_else(|| {
            self.bad(field, format!("\"{s}\" is not a statistic; allowed \"mean\" or a percentile \"p1\" to \"p99\" (e.g. \"p95\")"));
            Statistic::Mean
        })
    }

    /// A resource's target: its own, else its tier's (`tier`, for a host of `nominal` GiB).
    fn target(&mut self, res: &str, own: Option<f64>, tier: Option<f64>, nominal: f64) -> f64 {
        let field = format!("{res}.target_percent");
        match own {
            Some(v) => {
                self.percent(&field, v);
                v
            }
            None => tier.unwrap_or_else(|| {
                self.bad(&field, format!("no target: set {res}.target_percent, or add a tier with min_memory_gib <= {nominal} (this host's nominal memory size)"));
                0.0
            }),
        }
    }
}

impl DesiredState {
    /// Check ranges and combinations, then resolve every target for a host with
    /// `memory_total_bytes` of memory. `mounts` says whether a listed mount can be padded
    /// on this host (`observe::mount_path_problem` looks); `None` where mounts need not
    /// exist here (the simulator, a document about another host). Every problem is found
    /// before any is reported, so one run of `cro validate` lists them all.
    pub fn resolve(
        &self,
        path: &Path,
        memory_total_bytes: u64,
        mounts: MountCheck,
    ) -> Result<Resolved> {
        let mut c = Check::default();
        self.check_schedule(&mut c);
        self.check_tiers(&mut c);
        let nominal = nominal_gib(memory_total_bytes);
        let tier = self
            .tiers
            .iter()
            .rev()
            .find(|t| t.min_memory_gib <= nominal)
            .map(|t| t.target_percent);
        let cpu = self.cpu.enabled.then(|| CpuTarget {
            target_percent: c.target("cpu", self.cpu.target_percent, tier, nominal),
            statistic: c.statistic("cpu.statistic", &self.cpu.statistic),
            max_synthetic_percent: {
                c.percent("cpu.max_synthetic_percent", self.cpu.max_synthetic_percent);
                self.cpu.max_synthetic_percent
            },
        });
        let memory = self
            .memory
            .enabled
            .then(|| self.memory.resolve(&mut c, tier, nominal));
        let disk = self
            .disk
            .enabled
            .then(|| self.disk.resolve(&mut c, tier, nominal, mounts));
        if !c.problems.is_empty() {
            return Err(Error::Invalid {
                path: path.to_path_buf(),
                problems: c.problems,
            });
        }
        Ok(Resolved {
            paused: self.paused,
            interval_seconds: self.interval_seconds,
            window_days: self.window_days,
            history_grace_days: self.history_grace_days,
            before_first_record: self.before_first_record,
            first_window: self.first_window,
            memory_tier_gib: nominal,
            cpu,
            memory,
            disk,
        })
    }

    /// The version, the pass interval and the window.
    fn check_schedule(&self, c: &mut Check) {
        if self.version != 1 {
            c.bad(
                "version",
                format!(
                    "version {} is not supported; this cro reads version 1",
                    self.version
                ),
            );
        }
        c.within(
            "interval_seconds",
            self.interval_seconds,
            limits::INTERVAL_SECONDS,
            "",
        );
        c.within(
            "history_grace_days",
            self.history_grace_days,
            limits::HISTORY_GRACE_DAYS,
            "",
        );
        c.within("window_days", self.window_days, limits::WINDOW_DAYS, "");
    }

    /// Each tier's target and size, and their order.
    fn check_tiers(&self, c: &mut Check) {
        for (i, t) in self.tiers.iter().enumerate() {
            c.percent(&format!("tiers[{i}].target_percent"), t.target_percent);
            let field = format!("tiers[{i}].min_memory_gib");
            c.within(&field, t.min_memory_gib, limits::MIN_MEMORY_GIB, " GiB");
            if i > 0 && t.min_memory_gib <= self.tiers[i - 1].min_memory_gib {
                c.bad(
                    &field,
                    format!(
                        "tiers must be in ascending order of min_memory_gib ({} follows {})",
                        t.min_memory_gib,
                        self.tiers[i - 1].min_memory_gib
                    ),
                );
            }
        }
    }
}

impl MemorySpec {
    fn resolve(&self, c: &mut Check, tier: Option<f64>, nominal: f64) -> MemoryTarget {
        let t = c.target("memory", self.target_percent, tier, nominal);
        c.percent("memory.min_available_percent", self.min_available_percent);
        if t + self.min_available_percent > 100.0 {
            c.bad("memory.min_available_percent", format!("target {t} % plus min_available_percent {} % exceeds 100 %: the target could never be reached without breaking the floor; lower one of them", self.min_available_percent));
        }
        MemoryTarget {
            target_percent: t,
            statistic: c.statistic("memory.statistic", &self.statistic),
            min_available_percent: self.min_available_percent,
            metric: self.metric,
        }
    }
}

impl DiskSpec {
    fn resolve(
        &self,
        c: &mut Check,
        tier: Option<f64>,
        nominal: f64,
        mounts: MountCheck,
    ) -> DiskTarget {
        let t = c.target("disk", self.target_percent, tier, nominal);
        c.percent("disk.min_free_percent", self.min_free_percent);
        c.within(
            "disk.min_free_gib",
            self.min_free_gib,
            limits::MIN_FREE_GIB,
            "",
        );
        if t + self.min_free_percent > 100.0 {
            c.bad(
                "disk.min_free_percent",
                format!(
                    "target {t} % plus min_free_percent {} % exceeds 100 %; lower one of them",
                    self.min_free_percent
                ),
            );
        }
        for (i, m) in self.mounts.iter().enumerate() {
            self.check_mount_entry(c, i, m, mounts);
        }
        DiskTarget {
            target_percent: t,
            statistic: c.statistic("disk.statistic", &self.statistic),
            mounts: self.mounts.clone(),
            min_free_percent: self.min_free_percent,
            min_free_bytes: (self
                .min_free_gib
                .clamp(limits::MIN_FREE_GIB.0, limits::MIN_FREE_GIB.1)
                * (1u64 << 30) as f64) as u64,
            fill: self.fill,
            allow_plain_directory: self.allow_plain_directory,
        }
    }

    /// `mounts[i]`: a usable path, listed once, short enough to name its job.
    fn check_mount_entry(&self, c: &mut Check, i: usize, m: &Path, mounts: MountCheck) {
        let field = format!("disk.mounts[{i}]");
        if let Err(msg) = check_mount(m, mounts) {
            c.bad(&field, msg);
        }
        if self.mounts[..i].iter().any(|x| x == m) {
            c.bad(&field, format!("{} is listed twice", m.display()));
        }
        let id = crate::control::slot::Slot::disk(m).id();
        if id.len() > crate::control::slot::MAX_ID_LEN {
            c.bad(
                &field,
                format!(
                    "the path is too long to name its job ({} characters once encoded \
                     as a file name, at most {}); mount the filesystem at a shorter \
                     path, or bind-mount it at one",
                    id.len(),
                    crate::control::slot::MAX_ID_LEN
                ),
            );
        }
    }
}

/// A mount to pad must be an absolute, normalized path of an existing directory that is
/// not reached through a symlink (the ballast must land where the operator said).
fn check_mount(m: &Path, exists_here: MountCheck) -> std::result::Result<(), String> {
    use std::path::Component;
    if !m.is_absolute() {
        return Err(format!(
            "\"{}\" is relative; give the absolute mount point, e.g. {}",
            m.display(),
            if cfg!(windows) {
                "\"D:\\\\\""
            } else {
                "\"/data\""
            }
        ));
    }
    if m.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || m.to_str().is_some_and(|s| s.contains("//"))
    {
        return Err(format!(
            "\"{}\" is not a normalized path (no \".\", \"..\" or \"//\"); give the mount point itself",
            m.display()
        ));
    }
    // whether it exists here is the host's to say
    exists_here.and_then(|f| f(m)).map_or(Ok(()), Err)
}

/// What the host says of a mount path (None: usable), or no look at all.
pub type MountCheck<'a> = Option<&'a dyn Fn(&Path) -> Option<String>>;

/// The JSON Schema for the desired state, as checked in at `schema/desired-state.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(DesiredState);
    serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n"
}

/// Where the desired state in force came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    File(PathBuf),
    /// No file at the path: the built-in default is in force.
    BuiltIn(PathBuf),
}

/// The desired state from what was read at `path` (`None`: no file there), so a caller
/// that compares contents (the daemon) parses exactly the bytes it compared.
pub fn from_contents(path: &Path, bytes: Option<&[u8]>) -> Result<(DesiredState, Source)> {
    match bytes {
        Some(bytes) => Ok((parse(bytes, path)?, Source::File(path.to_path_buf()))),
        None => Ok((DesiredState::default(), Source::BuiltIn(path.to_path_buf()))),
    }
}

/// The document `cro init` writes.
pub fn init_document(schema_ref: &str) -> String {
    let d = DesiredState {
        schema: Some(schema_ref.to_string()),
        ..DesiredState::default()
    };
    serde_json::to_string_pretty(&d).expect("serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    const GIB: u64 = 1 << 30;

    /// A host where every mount path exists except those named `/nonexistent...`.
    fn host_mounts(m: &Path) -> Option<String> {
        m.starts_with("/nonexistent-cro-mount")
            .then(|| format!("\"{}\" does not exist on this host", m.display()))
    }
    fn res(json: &str, mem: u64) -> Result<Resolved> {
        parse(json.as_bytes(), Path::new("d.json"))?.resolve(
            Path::new("d.json"),
            mem,
            Some(&host_mounts),
        )
    }
    fn problem(json: &str) -> Problem {
        match res(json, 8 * GIB) {
            Err(Error::Invalid { problems, .. }) => problems[0].clone(),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    /// Issue 24, 5: a mount whose job id would be too long for a file name is refused
    /// here (it used to be written, never listed, and its worker respawned every tick).
    #[test]
    #[cfg(unix)] // Linux mount paths; Windows volumes (D:\\) come with the disk step
    fn a_mount_path_too_long_for_its_job_id_is_refused() {
        let long = format!("/mnt/{}", "a b".repeat(40)); // each space is 3 characters encoded
        let doc = format!(r#"{{"version":1,"disk":{{"mounts":["/data","{long}"]}}}}"#);
        let r = parse(doc.as_bytes(), Path::new("d.json")).unwrap().resolve(
            Path::new("d.json"),
            8 * GIB,
            None,
        );
        let Err(Error::Invalid { problems, .. }) = r else {
            panic!("accepted: {r:?}")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "disk.mounts[1]");
        assert!(problems[0].message.contains("too long"), "{problems:?}");
        let ok = format!(
            r#"{{"version":1,"disk":{{"mounts":["/mnt/{}"]}}}}"#,
            "a".repeat(190)
        );
        assert!(
            parse(ok.as_bytes(), Path::new("d.json"))
                .unwrap()
                .resolve(Path::new("d.json"), 8 * GIB, None)
                .is_ok()
        );
    }

    #[test]
    fn tiers_by_nominal_size() {
        let t = |gib: f64| {
            res(r#"{"version":1}"#, (gib * GIB as f64) as u64)
                .unwrap()
                .cpu
                .unwrap()
                .target_percent
        };
        assert_eq!(t(8.0), 25.0);
        assert_eq!(t(7.7), 25.0);
        assert_eq!(
            t(15.6),
            40.0,
            "a 16 GB VM reporting 15.6 GiB is a 16 GiB host"
        );
        assert_eq!(t(16.0), 40.0);
        assert_eq!(t(64.0), 40.0);
        assert_eq!(nominal_gib((15.6 * GIB as f64) as u64), 16.0);
        assert_eq!(nominal_gib((23.4 * GIB as f64) as u64), 24.0);
        assert_eq!(nominal_gib(20 * GIB), 20.0);
        assert_eq!(nominal_gib(8 * GIB), 8.0);
    }

    #[test]
    fn defaults_fill_everything() {
        let r = res(r#"{"version":1}"#, 8 * GIB).unwrap();
        assert_eq!(r.interval_seconds, 60);
        assert_eq!(r.window_days, 30);
        assert_eq!(r.memory.unwrap().min_available_percent, 10.0);
        let d = r.disk.unwrap();
        assert!(d.mounts.is_empty());
        assert_eq!(d.min_free_bytes, GIB);
        assert_eq!(d.fill, Fill::Allocate);
    }

    #[test]
    fn explicit_target_overrides_tier() {
        let r = res(r#"{"version":1,"memory":{"target_percent":33}}"#, 64 * GIB).unwrap();
        assert_eq!(r.memory.unwrap().target_percent, 33.0);
        assert_eq!(r.cpu.unwrap().target_percent, 40.0);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let p = problem("{\n  \"version\": 1\n  \"paused\": true\n}");
        assert_eq!(p.position, Some((3, 3)));
    }

    #[test]
    fn unknown_field_names_path() {
        let p = problem(r#"{"version":1,"cpu":{"enabeld":true}}"#);
        assert_eq!(p.field, "cpu.enabeld");
        assert!(p.message.contains("enabeld"), "{}", p.message);
    }

    #[test]
    fn wrong_type_names_path() {
        let p = problem(r#"{"version":1,"disk":{"mounts":[3]}}"#);
        assert_eq!(p.field, "disk.mounts[0]");
    }

    #[test]
    fn missing_version() {
        assert!(problem(r#"{}"#).message.contains("version"));
    }

    #[test]
    fn out_of_range_values() {
        assert_eq!(
            problem(r#"{"version":1,"interval_seconds":0}"#).field,
            "interval_seconds"
        );
        assert_eq!(
            problem(r#"{"version":1,"window_days":400}"#).field,
            "window_days"
        );
        assert_eq!(
            problem(r#"{"version":1,"cpu":{"target_percent":101}}"#).field,
            "cpu.target_percent"
        );
        assert_eq!(
            problem(r#"{"version":1,"cpu":{"max_synthetic_percent":-1}}"#).field,
            "cpu.max_synthetic_percent"
        );
        assert_eq!(problem(r#"{"version":2}"#).field, "version");
    }

    #[test]
    fn bad_statistic() {
        for s in ["p0", "p100", "p05", "median", "P95", "p"] {
            let p = problem(&format!(r#"{{"version":1,"cpu":{{"statistic":"{s}"}}}}"#));
            assert_eq!(p.field, "cpu.statistic", "{s}");
        }
        assert_eq!(Statistic::parse("p95"), Some(Statistic::Percentile(95)));
        assert_eq!(Statistic::parse("p1"), Some(Statistic::Percentile(1)));
    }

    #[test]
    fn tiers_must_ascend() {
        let p = problem(
            r#"{"version":1,"tiers":[{"min_memory_gib":16,"target_percent":40},{"min_memory_gib":0,"target_percent":25}]}"#,
        );
        assert_eq!(p.field, "tiers[1].min_memory_gib");
    }

    #[test]
    fn no_resolvable_target() {
        let p = problem(r#"{"version":1,"tiers":[{"min_memory_gib":32,"target_percent":40}]}"#);
        assert_eq!(p.field, "cpu.target_percent");
        // ...but fine when every enabled resource has its own target
        res(r#"{"version":1,"tiers":[],"cpu":{"target_percent":20},"memory":{"enabled":false},"disk":{"enabled":false}}"#, 8 * GIB).unwrap();
    }

    #[test]
    fn contradictory_limits() {
        let p =
            problem(r#"{"version":1,"memory":{"target_percent":80,"min_available_percent":30}}"#);
        assert_eq!(p.field, "memory.min_available_percent");
        let p = problem(r#"{"version":1,"disk":{"target_percent":95,"min_free_percent":10}}"#);
        assert_eq!(p.field, "disk.min_free_percent");
    }

    #[test]
    #[cfg(unix)] // Linux mount paths; Windows volumes (D:\\) come with the disk step
    fn bad_mounts() {
        assert_eq!(
            problem(r#"{"version":1,"disk":{"mounts":["data"]}}"#).field,
            "disk.mounts[0]"
        );
        assert_eq!(
            problem(r#"{"version":1,"disk":{"mounts":["/nonexistent-cro-mount"]}}"#).field,
            "disk.mounts[0]"
        );
        assert_eq!(
            problem(r#"{"version":1,"disk":{"mounts":["/tmp/../etc"]}}"#).field,
            "disk.mounts[0]"
        );
        assert_eq!(
            problem(r#"{"version":1,"disk":{"mounts":["/tmp","/tmp"]}}"#).field,
            "disk.mounts[1]"
        );
        // what the host says of a path is the message (observe::mount_path_problem's
        // own test checks what it says of symlinks and missing paths)
        let p = problem(r#"{"version":1,"disk":{"mounts":["/nonexistent-cro-mount/x"]}}"#);
        assert!(
            p.message.contains("does not exist on this host"),
            "{}",
            p.message
        );
    }

    #[test]
    fn bad_bytes() {
        assert!(problem("").message.contains("empty"));
        assert!(
            problem("\u{feff}{\"version\":1}")
                .message
                .contains("byte-order mark")
        );
        let p = parse(&[0xff, 0xfe, 0], Path::new("x")).unwrap_err();
        assert!(p.to_string().contains("UTF-8"));
    }

    #[test]
    fn duplicate_keys() {
        let p = problem("{\"version\":1,\n\"cpu\":{\"enabled\":true,\"enabled\":false}}");
        assert_eq!(p.field, "cpu.enabled");
        assert_eq!(p.position, Some((2, 23)));
        // same key in different objects is fine
        res(
            r#"{"version":1,"cpu":{"enabled":true},"memory":{"enabled":true}}"#,
            8 * GIB,
        )
        .unwrap();
    }

    #[test]
    fn nan_and_huge_numbers() {
        assert_eq!(
            problem(r#"{"version":1,"cpu":{"target_percent":1e400}}"#).field,
            "cpu.target_percent"
        );
        assert_eq!(
            problem(r#"{"version":1,"interval_seconds":99999999999999999999}"#).field,
            "interval_seconds"
        );
    }

    #[test]
    fn schema_keyword_allowed() {
        res(r#"{"$schema":"x","version":1}"#, 8 * GIB).unwrap();
    }

    #[test]
    fn init_document_round_trips() {
        let doc = init_document("schema/desired-state.schema.json");
        let d = parse(doc.as_bytes(), Path::new("x")).unwrap();
        assert_eq!(DesiredState { schema: None, ..d }, DesiredState::default());
    }
}
