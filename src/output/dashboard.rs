//! The page `cro serve` shows at `/`: per resource the reason for its level in one
//! sentence, a chart of the last 24 hours (organic and synthetic stacked, the level and the
//! target) and one of the window so far (daily bars, the running mean, the target), then
//! the jobs. Self-contained (no scripts, nothing loaded from elsewhere: the server's CSP
//! forbids it anyway), and laid out to be read on a phone. Rendering is pure; `charts`
//! reads what they show (the last day's history, the window cache).
use crate::control::slot::Slot;
use crate::format::html_escape as esc;
use crate::output::report::{self, Day};
use crate::output::status::{Status, Usage};
use crate::state::history::{Record, Sample};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// What the charts show, per slot label (`cpu`, `memory`, `disk:/data`).
#[derive(Debug, Default, Clone)]
pub struct Charts {
    pub now: f64,
    /// The last 24 hours' records: (end time, sample).
    pub recent: BTreeMap<String, Vec<(f64, Sample)>>,
    /// The window so far, per day.
    pub(crate) days: BTreeMap<String, BTreeMap<String, Day>>,
}

const DAY_S: f64 = 86_400.0;
/// The 24-hour chart's resolution: 5-minute bars.
const STEP_S: f64 = 300.0;

/// Read what the charts show: the last day of history and the window's hourly buckets
/// (the window cache a reconcile keeps; reading it refreshes it, as `report` does).
pub fn charts(state_dir: &Path, s: &Status, now: f64, window_days: u32) -> Charts {
    let mut c = Charts {
        now,
        ..Charts::default()
    };
    if let Ok((records, _)) = crate::state::history::read_since(state_dir, now - DAY_S) {
        for r in &records {
            let Some(t) = crate::timefmt::parse_rfc3339(&r.ts) else {
                continue;
            };
            for (label, sample) in samples(r) {
                c.recent.entry(label).or_default().push((t, sample));
            }
        }
    }
    let (w, _) = crate::state::window_cache::load(state_dir, now, window_days as f64 * DAY_S);
    for (slot, u) in s.resources.each() {
        let series = match &slot {
            Slot::Cpu => Some(&w.cpu),
            Slot::Memory => Some(&w.memory),
            Slot::Disk(m) => w.disk.get(&m.display().to_string()),
        };
        let Some(series) = series else { continue };
        let target = u.target_percent;
        let mut days: BTreeMap<String, Day> = BTreeMap::new();
        for (k, b) in &series.buckets {
            let d = days
                .entry(crate::timefmt::day(
                    *k as f64 * crate::control::window::BUCKET_S,
                ))
                .or_default();
            d.dt += b.dt;
            d.total += b.total;
            d.organic += b.organic;
            d.synthetic += b.synthetic;
            d.at_target += b.time_at_or_above(target);
            d.target = target;
        }
        c.days.insert(slot.label(), days);
    }
    c
}

/// A record's samples by slot label (as `Resources::each` names them).
fn samples(r: &Record) -> Vec<(String, Sample)> {
    let mut v = vec![];
    if let Some(s) = r.cpu {
        v.push((Slot::Cpu.label(), s));
    }
    if let Some(s) = r.memory {
        v.push((Slot::Memory.label(), s));
    }
    for (m, s) in &r.disk {
        v.push((Slot::disk(m).label(), *s));
    }
    v
}

/// The last 24 hours in 5-minute bars: organic (blue) and synthetic (orange) stacked, the
/// level the worker held (dark line) and the target (red, dashed). Gaps stay empty.
pub(crate) fn timeline(points: &[(f64, Sample)], now: f64) -> String {
    let (w, h, pad) = report::CHART;
    let from = now - DAY_S;
    let n = (DAY_S / STEP_S) as usize;
    // per 5-minute bin: Σdt, Σorganic·dt, Σsynthetic·dt, Σlevel·dt, last target
    let mut bins = vec![(0.0, 0.0, 0.0, 0.0, 0.0); n];
    for (t, s) in points {
        if *t <= from || *t > now {
            continue;
        }
        // a record covers the time before its end: one ending on a boundary is the bar before
        let i = ((((t - from) / STEP_S).ceil() as usize).max(1) - 1).min(n - 1);
        let b = &mut bins[i];
        b.0 += 1.0;
        b.1 += s.organic();
        b.2 += s.synthetic;
        b.3 += s.level;
        b.4 = s.target;
    }
    let bw = (w - 2.0 * pad) / n as f64;
    let y = report::chart_y;
    let mut svg = report::chart_open("chart day24", "the last 24 hours");
    for (hours, label) in [(24.0, "−24 h"), (12.0, "−12 h"), (0.0, "now")] {
        let x = pad + (DAY_S - hours * 3600.0) / DAY_S * (w - 2.0 * pad);
        let anchor = if hours == 0.0 { "end" } else { "start" };
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"{anchor}\">{label}</text>",
            h - 8.0
        );
    }
    let (mut level, mut target) = (String::new(), String::new());
    let mut joined = false;
    for (i, b) in bins.iter().enumerate() {
        let x = pad + i as f64 * bw;
        if b.0 == 0.0 {
            joined = false;
            continue;
        }
        let (o, s, l) = (b.1 / b.0, b.2 / b.0, b.3 / b.0);
        let _ = write!(
            svg,
            "<rect class=\"organic\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"#4a7bd0\"/>",
            y(o),
            bw,
            y(0.0) - y(o)
        );
        if s > 0.0 {
            let _ = write!(
                svg,
                "<rect class=\"synthetic\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"#e8a33c\"/>",
                y(o + s),
                bw,
                y(o) - y(o + s)
            );
        }
        let op = if joined { " L" } else { " M" };
        let _ = write!(level, "{op}{:.1},{:.1} L{:.1},{:.1}", x, y(l), x + bw, y(l));
        let _ = write!(
            target,
            "{op}{:.1},{:.1} L{:.1},{:.1}",
            x,
            y(b.4),
            x + bw,
            y(b.4)
        );
        joined = true;
    }
    let _ = write!(
        svg,
        "<path class=\"level\" d=\"{}\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.2\"/><path class=\"target\" d=\"{}\" fill=\"none\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>",
        level.trim(),
        target.trim()
    );
    svg + "</svg>"
}

/// The sentence under a resource's name: where it stands and why its level is what it is.
fn sentence(u: &Usage, reason: &str) -> String {
    let mut o = format!(
        "{:.1} % now ({:.1} % organic, {:.1} % synthetic) against a target of {} % ({}). ",
        u.total_percent,
        u.organic_percent,
        u.synthetic_percent,
        u.target_percent,
        u.statistic.name()
    );
    if let Some(w) = &u.window {
        let _ = write!(
            o,
            "The window so far: {:.1} % over {:.0} % of it, {}. ",
            w.value,
            w.coverage * 100.0,
            if w.compliant {
                "compliant"
            } else {
                "not compliant yet"
            }
        );
    }
    if let Some(f) = &u.forecast {
        let _ = write!(
            o,
            "Organic load expected over the next {:.0} h: {:.1} %. ",
            f.horizon_hours, f.organic_forecast_percent
        );
    }
    let _ = write!(o, "Level {:.1} %: {reason}.", u.level_percent);
    if let Some(c) = &u.cost {
        let _ = write!(
            o,
            " Cost so far: {} {} ({} % of the resource).",
            c.amount,
            if c.unit == crate::control::cost::CostUnit::CpuCoreHours {
                "CPU core-hours"
            } else {
                "GiB-hours"
            },
            c.share_percent
        );
    }
    o
}

/// Each resource's section: its sentence (with the reason `explain` gives) and charts.
fn resource_sections(s: &Status, c: &Charts) -> String {
    let why = crate::output::explain::explain(s);
    let mut sections = String::new();
    let empty = BTreeMap::new();
    for (slot, u) in s.resources.each() {
        let label = slot.label();
        let reason = why
            .resources
            .get(&label)
            .map_or(String::new(), |x| x.reason.clone());
        let recent = c.recent.get(&label).map_or(&[][..], |v| v.as_slice());
        let days = c.days.get(&label).unwrap_or(&empty);
        let _ = write!(
            sections,
            "<section class=\"resource\" id=\"r-{}\"><h2>{}</h2><p class=\"sentence\">{}</p><div class=\"charts\"><figure><figcaption>Last 24 hours</figcaption>{}</figure><figure><figcaption>The window so far, per day (line: running mean)</figcaption>{}</figure></div></section>",
            esc(&label.replace([':', '/'], "-")),
            esc(&label),
            esc(&sentence(u, &reason)),
            timeline(recent, c.now),
            report::chart(days, u.target_percent)
        );
    }
    sections
}

/// The "Now" table's rows: a resource each.
fn resource_rows(s: &Status) -> String {
    let mut table = String::new();
    for (slot, u) in s.resources.each() {
        let w = u.window.as_ref();
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{:.1} %</td><td>{:.1} %</td><td>{:.1} %</td><td>{} {} %</td><td>{}</td></tr>",
            esc(&slot.label()),
            u.total_percent,
            u.synthetic_percent,
            u.level_percent,
            u.statistic.name(),
            u.target_percent,
            w.map_or("-".into(), |w| format!(
                "{:.1} % ({:.0} % covered){}",
                w.value,
                w.coverage * 100.0,
                if w.compliant { ", compliant" } else { "" }
            )),
        );
    }
    table
}

/// The jobs table's rows.
fn job_rows(s: &Status) -> String {
    s.jobs
        .iter()
        .map(|j| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&j.id),
                j.pid.map_or("-".into(), |p| p.to_string()),
                if j.alive { "running" } else { "stopped" },
                j.synthetic_percent
                    .map_or("-".into(), |p| format!("{p:.1} %")),
                esc(j.limited_by.as_deref().unwrap_or(""))
            )
        })
        .collect()
}

/// The page.
pub fn render(s: &Status, c: &Charts) -> String {
    let sections = resource_sections(s, c);
    let table = resource_rows(s);
    let jobs = job_rows(s);
    let err = s.desired.error.as_ref().map_or(String::new(), |e| {
        format!("<p class=\"error\">Config error: {}</p>", esc(e))
    });
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta http-equiv=\"refresh\" content=\"30\"><title>cro on {host}</title>\
<style>body{{font:15px/1.4 sans-serif;margin:1em auto;max-width:76em;padding:0 1em;color:#222}}\
h1{{font-size:1.4em}}h2{{font-size:1.15em;margin:1.2em 0 .3em}}.error{{color:#c00}}\
.charts{{display:flex;flex-wrap:wrap;gap:1em}}figure{{margin:0;flex:1 1 22em;min-width:0}}figcaption{{font-size:.85em;color:#555}}\
svg.chart{{width:100%;height:auto;display:block;shape-rendering:crispEdges}}svg.chart text{{font-size:17px;fill:#444}}.scroll{{overflow-x:auto}}\
table{{border-collapse:collapse}}td,th{{padding:3px 8px;text-align:left;border-bottom:1px solid #eee;white-space:nowrap}}\
.legend span{{margin-right:1em}}</style></head><body>\
<h1>cro on {host}</h1><p>{} ({}), tier {} GiB, {} CPUs; last reconcile {}{}</p>{err}\
<p class=\"legend\"><span style=\"color:#4a7bd0\">■ organic</span><span style=\"color:#e8a33c\">■ synthetic (cro)</span><span>— level held</span><span style=\"color:#c00\">- - target</span></p>\
{sections}\
<h2>Now</h2><div class=\"scroll\"><table id=\"resources\"><tr><th>resource</th><th>total</th><th>synthetic</th><th>level</th><th>target</th><th>window</th></tr>{table}</table></div>\
<h2>Jobs</h2><div class=\"scroll\"><table id=\"jobs\"><tr><th>job</th><th>pid</th><th>state</th><th>holds</th><th>limited by</th></tr>{jobs}</table></div>\
<p><a href=\"/api/status\">/api/status</a> · <a href=\"/metrics\">/metrics</a></p></body></html>\n",
        esc(s.host.os.as_deref().unwrap_or("Linux")),
        esc(&s.host.platform),
        s.host.memory_tier_gib,
        s.host.cpus,
        esc(s.last_reconcile.as_deref().unwrap_or("never")),
        if s.desired.paused { " — PAUSED" } else { "" },
        host = esc(&s.host.hostname),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every resource, a disk too, gets its sentence with the reason `explain` gives.
    #[test]
    #[cfg(unix)] // Linux mount paths; Windows volumes (D:\\) come with the disk step
    fn each_resource_has_its_sentence_and_charts() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let desired = d.path().join("desired.json");
        std::fs::write(
            &desired,
            format!(
                r#"{{"version":1,"cpu":{{"target_percent":0}},"memory":{{"enabled":false}},"disk":{{"target_percent":0,"allow_plain_directory":true,"mounts":["{}"]}}}}"#,
                data.display()
            ),
        )
        .unwrap();
        let s = crate::output::status::status(d.path(), &desired).unwrap();
        let page = render(&s, &Charts::default());
        let disk = Slot::disk(&data).label();
        let section = page
            .split(&format!("<h2>{disk}</h2>"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {disk}"));
        let section = &section[..section.find("</section>").unwrap()];
        assert!(
            section.contains("no pass has run yet"),
            "the disk's reason: {section}"
        );
        assert_eq!(section.matches("<svg").count(), 2);
        assert_eq!(page.matches("<section class=\"resource\"").count(), 2);
    }

    #[test]
    fn the_timeline_has_a_bar_per_recorded_five_minutes_and_leaves_gaps() {
        let now = 1_800_000_000.0;
        // 12 hours every minute, then nothing (the host was down)
        let points: Vec<(f64, Sample)> = (0..720)
            .map(|i| {
                (
                    now - DAY_S + 60.0 * (i + 1) as f64,
                    Sample::new(40.0, 25.0, 40.0, 40.0),
                )
            })
            .collect();
        let svg = timeline(&points, now);
        assert_eq!(svg.matches("class=\"organic\"").count(), 144);
        assert_eq!(svg.matches("class=\"synthetic\"").count(), 144);
        // the level line: one segment per bar, one unbroken run
        let level = svg.split("class=\"level\" d=\"").nth(1).unwrap();
        let level = &level[..level.find('"').unwrap()];
        assert_eq!(level.matches('M').count(), 1);
        assert!(svg.contains("−24 h") && svg.contains(">now<"));
    }
}
