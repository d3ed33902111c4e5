//! UTC time for the history and the command line: RFC 3339 stamps and `YYYY-MM-DD`
//! day-file names, through the `time` crate (a real calendar: 2026-02-31 and NaN seconds
//! are refused, which the hand-written parser before it accepted).
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The UTC moment of whole second `unix` (clamped into the calendar's range).
fn utc(unix: f64) -> OffsetDateTime {
    let secs = if unix.is_finite() {
        unix.floor() as i64
    } else {
        0
    };
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-27T03:40:00Z` (whole seconds; the history does not need more).
pub fn rfc3339(unix: f64) -> String {
    let t = utc(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-11-27`, the name of the day file a record at `unix` goes to.
pub fn day(unix: f64) -> String {
    let t = utc(unix);
    format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day())
}

/// Parse an RFC 3339 time (`2026-11-27T03:40:00Z`, fractional seconds and offsets such as
/// `+08:00` too) to unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    Some(t.unix_timestamp() as f64 + t.nanosecond() as f64 / 1e9)
}

/// `30d`, `12h`, `90m`, `45s`, `1w` to seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.')?);
    let n: f64 = n.parse().ok()?;
    let mul = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return None,
    };
    Some(n * mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dates() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        let t = 1_795_750_800.0; // 2026-11-27T03:40:00Z
        assert_eq!(rfc3339(t), "2026-11-27T03:40:00Z");
        assert_eq!(day(t), "2026-11-27");
        assert_eq!(parse_rfc3339("2026-11-27T03:40:00Z"), Some(t));
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59Z")
                .map(rfc3339)
                .as_deref(),
            Some("2024-02-29T23:59:59Z")
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        // the calendar and the clock are checked, not only the shape
        assert_eq!(parse_rfc3339("2026-02-31T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2025-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-11-27T03:40:NaNZ"), None);
        assert_eq!(parse_rfc3339("2026-11-27T24:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-11-27T03:40:00.5Z"), Some(t + 0.5));
        assert_eq!(parse_rfc3339("2026-11-27T11:40:00+08:00"), Some(t));
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("7d"), Some(604_800.0));
        assert_eq!(parse_duration("90m"), Some(5400.0));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("7y"), None);
    }
}
