//! `cro fleet` as people read it: a text table (worst hosts first) and one self-contained
//! HTML file in the style of `report --html` (no scripts, nothing loaded from elsewhere).
use crate::fleet::view::{Fleet, FleetHost, HostCost, Resource, State};
use crate::format::html_escape;
use std::fmt::Write;

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}{unit}"))
}

fn target(r: &Resource) -> String {
    match (r.statistic.as_deref(), r.target_percent) {
        (Some(s), Some(t)) => format!("{s} {t}%"),
        (None, Some(t)) => format!("{t}%"),
        _ => "-".into(),
    }
}

fn cost(c: &Option<HostCost>) -> String {
    match c {
        Some(c) if c.amount.is_finite() => {
            let share = c
                .share_percent
                .map_or(String::new(), |s| format!(" ({s:.1}%)"));
            format!("{:.1} {}{share}", c.amount, c.unit.short())
        }
        _ => "-".into(),
    }
}

fn last_pass(h: &FleetHost) -> String {
    h.last_pass_age_s.map_or("never".into(), |a| {
        format!("{} ago", crate::format::duration(a))
    })
}

fn counts_line(c: &crate::fleet::view::Counts) -> String {
    State::ALL
        .iter()
        .filter(|s| c.get(**s) > 0)
        .map(|s| format!("{} {}", c.get(*s), s.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table's rows: one per host and resource; host columns on its first row only.
fn rows(f: &Fleet, limit: usize) -> Vec<[String; 9]> {
    let mut out = vec![];
    for h in f.hosts.iter().take(limit) {
        let head = |first: bool, v: String| if first { v } else { String::new() };
        if h.resources.is_empty() {
            out.push([
                h.instance.clone(),
                h.state.name().into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                last_pass(h),
            ]);
        }
        for (i, r) in h.resources.iter().enumerate() {
            out.push([
                head(i == 0, h.instance.clone()),
                r.state.name().into(),
                r.label(),
                target(r),
                opt(r.window_percent, "%"),
                opt(r.coverage_percent, "%"),
                opt(r.organic_forecast_percent, "%"),
                cost(&r.cost),
                head(i == 0, last_pass(h)),
            ]);
        }
    }
    out
}

const HEADER: [&str; 9] = [
    "HOST",
    "STATE",
    "RESOURCE",
    "TARGET",
    "WINDOW",
    "COVERAGE",
    "ORGANIC",
    "COST",
    "LAST PASS",
];

/// The text view: the counts, then the `limit` worst hosts.
pub fn render_text(f: &Fleet, limit: usize) -> String {
    let mut o = String::new();
    let n = f.hosts_by_state.hosts;
    let _ = writeln!(
        o,
        "{n} host{} in {} at {}: {}",
        if n == 1 { "" } else { "s" },
        f.prometheus,
        f.evaluated_at,
        if n == 0 {
            "none exports cro metrics (is cro's /metrics or textfile scraped?)".into()
        } else {
            counts_line(&f.hosts_by_state)
        }
    );
    for (r, c) in &f.resources {
        let _ = writeln!(o, "  {r:<7} {}", counts_line(c));
    }
    if !f.cost.is_empty() {
        let _ = writeln!(
            o,
            "  synthetic load over the window: {}",
            f.cost
                .iter()
                .map(|c| format!("{:.1} {} ({})", c.amount, c.unit.name(), c.resource))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if n == 0 {
        return o;
    }
    o.push('\n');
    let rows = rows(f, limit);
    let mut w = HEADER.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(l, "{c:<width$}  ", width = w[i]);
        }
        l.trim_end().to_string() + "\n"
    };
    o.push_str(&line(&HEADER));
    let mut hosts = f.hosts.iter().take(limit);
    let mut current: Option<&FleetHost> = None;
    for r in &rows {
        if !r[0].is_empty() {
            current = hosts.next();
        }
        o.push_str(&line(&r.each_ref().map(|s| s.as_str())));
        if !r[0].is_empty()
            && let Some(h) = current
        {
            for p in &h.problems {
                let _ = writeln!(o, "    ! {p}");
            }
        }
    }
    if f.hosts.len() > limit {
        let _ = writeln!(
            o,
            "... and {} more host(s) (--limit, or --json for all)",
            f.hosts.len() - limit
        );
    }
    o
}

fn class(s: State) -> &'static str {
    match s {
        State::NotOnTrack => "miss",
        State::NotReconciling => "down",
        State::AtRisk => "risk",
        State::Compliant => "ok",
    }
}

/// The counts table (hosts, and each resource, by state) and the fleet's cost.
fn counts_html(f: &Fleet) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>{} hosts from <code>{}</code> at {}.</p><table class=\"counts\"><tr><th></th>",
        f.hosts_by_state.hosts,
        html_escape(&f.prometheus),
        html_escape(&f.evaluated_at)
    );
    for s in State::ALL {
        let _ = write!(body, "<th class=\"{}\">{}</th>", class(s), s.name());
    }
    body.push_str("</tr>");
    let mut count_row = |name: &str, c: &crate::fleet::view::Counts| {
        let _ = write!(body, "<tr><th>{}</th>", html_escape(name));
        for s in State::ALL {
            let _ = write!(body, "<td>{}</td>", c.get(s));
        }
        body.push_str("</tr>");
    };
    count_row("hosts", &f.hosts_by_state);
    for (r, c) in &f.resources {
        count_row(r, c);
    }
    body.push_str("</table>");
    if !f.cost.is_empty() {
        body.push_str("<p>The cost of compliance, synthetic load over the window so far: ");
        body.push_str(
            &f.cost
                .iter()
                .map(|c| {
                    format!(
                        "<b>{:.1}</b> {} ({})",
                        c.amount,
                        html_escape(c.unit.name()),
                        html_escape(&c.resource)
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        body.push_str(".</p>");
    }
    body
}

/// The hosts table, worst first: a row per resource, the host's name and problems
/// spanning them.
fn hosts_html(f: &Fleet) -> String {
    let mut body = String::from("<table id=\"hosts\"><tr>");
    for h in HEADER {
        let _ = write!(body, "<th>{}</th>", h.to_lowercase());
    }
    body.push_str("</tr>");
    for h in &f.hosts {
        let n = h.resources.len().max(1);
        let _ = write!(
            body,
            "<tr class=\"{}\"><td rowspan=\"{n}\">{}{}</td>",
            class(h.state),
            html_escape(&h.instance),
            h.problems
                .iter()
                .map(|p| format!("<div class=\"problem\">{}</div>", html_escape(p)))
                .collect::<String>()
        );
        if h.resources.is_empty() {
            let _ = write!(
                body,
                "<td class=\"state\">{}</td><td colspan=\"6\"></td><td rowspan=\"1\">{}</td></tr>",
                h.state.name(),
                last_pass(h)
            );
        }
        for (i, r) in h.resources.iter().enumerate() {
            if i > 0 {
                let _ = write!(body, "<tr class=\"{}\">", class(r.state));
            }
            let _ = write!(
                body,
                "<td class=\"state\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                r.state.name(),
                html_escape(&r.label()),
                html_escape(&target(r)),
                opt(r.window_percent, " %"),
                opt(r.coverage_percent, " %"),
                opt(r.organic_forecast_percent, " %"),
                html_escape(&cost(&r.cost)),
            );
            if i == 0 {
                let _ = write!(body, "<td rowspan=\"{n}\">{}</td>", last_pass(h));
            }
            body.push_str("</tr>");
        }
    }
    body.push_str("</table>");
    body
}

/// One self-contained HTML file: the counts per resource, the fleet's cost, and every
/// host worst first.
pub fn render_html(f: &Fleet) -> String {
    let mut body = counts_html(f);
    body.push_str(&hosts_html(f));
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>cro fleet report</title><style>body{{font:14px sans-serif;margin:2em;max-width:72em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}}td:first-child{{text-align:left}}.problem{{color:#a40;font-size:12px}}.miss .state,th.miss{{color:#c00}}.down .state,th.down{{color:#a40}}.risk .state,th.risk{{color:#b80}}.ok .state,th.ok{{color:#070}}</style></head><body>\
<h1>Utilization compliance: the fleet</h1>{body}\
<p>Generated by cro {} from Prometheus. <b>not on track</b>: the host's policy cannot meet the target within its limits; <b>not reconciling</b>: no recent pass, an invalid desired state, or its metrics are gone; <b>at risk</b>: on track, but below the target so far; <b>organic</b>: the organic load the host's policy expects; <b>cost</b>: synthetic load over the window so far (share of the resource).</p></body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `cro fleet --timings`: where the time went, the server's share apart from cro's own.
/// `process_cpu_s`: cro's CPU time for the whole run, start to print.
pub fn render_timings(
    f: &Fleet,
    t: &crate::fleet::Timings,
    print_s: f64,
    process_cpu_s: f64,
) -> String {
    let ms = |s: f64| format!("{:.0} ms", s * 1000.0);
    let mut o = format!(
        "cro fleet timings ({} hosts, {} series):\n",
        f.hosts.len(),
        match f.source {
            crate::fleet::view::Source::Recorded => "recorded",
            crate::fleet::view::Source::Raw => "raw",
        }
    );
    for q in &t.queries {
        o += &format!(
            "  query  server {:>8}  parse {:>8} CPU  {:>7} series  {:>5.1} MiB  {}\n",
            ms(q.server_s),
            ms(q.parse_cpu_s),
            q.series,
            q.bytes as f64 / 1048576.0,
            crate::format::printable(q.query, 64)
        );
    }
    let parse: f64 = t.queries.iter().map(|q| q.parse_cpu_s).sum();
    o += &format!(
        "  queries side by side {} wall (parsing the answers: {} CPU)\n  judge {}  sort {}  print {}\n  cro's own CPU, start to finish: {}\n",
        ms(t.queries_s),
        ms(parse),
        ms(t.judge_s),
        ms(t.sort_s),
        ms(print_s),
        ms(process_cpu_s),
    );
    o
}
