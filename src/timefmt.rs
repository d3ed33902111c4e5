//! UTC calendar formatting without a date crate: the history needs only RFC 3339 stamps
//! and `YYYY-MM-DD` day-file names, and parsing them back.
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01, Hinnant's `days_from_civil`.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-27T03:40:00Z` (whole seconds; the history does not need more).
pub fn rfc3339(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2026-11-27`, the name of the day file a record at `unix` goes to.
pub fn day(unix: f64) -> String {
    let (y, mo, d) = civil_from_days((unix.floor() as i64).div_euclid(86_400));
    format!("{y:04}-{mo:02}-{d:02}")
}

/// Parse `YYYY-MM-DDTHH:MM:SSZ` (also with fractional seconds) back to unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi) = (num(11..13)?, num(14..16)?);
    let sec: f64 = s.get(17..s.len() - 1)?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 {
        return None;
    }
    Some((days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60) as f64 + sec)
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
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("7d"), Some(604_800.0));
        assert_eq!(parse_duration("90m"), Some(5400.0));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("7y"), None);
    }
}
