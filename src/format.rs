//! Formatting shared by every output: one rounding rule, one byte formatter, one HTML
//! escaper. Pure; used by the policy (rounded figures in decisions), status, the report,
//! the dashboard and recover's summary.

/// Two decimals, the precision of every percentage cro shows or records.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A duration as people say it: `45 s`, `12 min`, `3 h`, `2 d` (rounded down).
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", (s / 60.0).floor())
    } else if s < 2.0 * 86_400.0 {
        format!("{:.0} h", (s / 3600.0).floor())
    } else {
        format!("{:.0} d", (s / 86_400.0).floor())
    }
}

/// Text safe inside HTML elements and double-quoted attributes.
pub fn html_escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Text safe to print to a terminal and to quote in JSON a person reads: control
/// characters escaped (`\u{1b}`), at most `max` characters (then `…`).
pub fn printable(t: &str, max: usize) -> String {
    let mut o = String::new();
    for (n, c) in t.chars().enumerate() {
        if n == max {
            o.push('…');
            break;
        }
        if c.is_control() {
            o.extend(c.escape_default());
        } else {
            o.push(c);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_and_caps_the_length() {
        assert_eq!(printable("a\u{1b}[31mb\rc", 100), "a\\u{1b}[31mb\\rc");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("tab\tline\nnext", 100), "tab\\tline\\nnext");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(45.4), "45 s");
        assert_eq!(duration(5000.0), "83 min");
        assert_eq!(duration(4.0 * 3600.0 + 5.0), "4 h");
        assert_eq!(duration(3.5 * 86_400.0), "3 d");
    }

    #[test]
    fn formats() {
        assert_eq!(round2(12.345_6), 12.35);
        assert_eq!(round2(-0.004), -0.0);
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
