//! `cro serve`: a read-only HTTP view for people and Prometheus. `/` is a dashboard that
//! refreshes itself, `/api/status` is `status --json`, `/metrics` the Prometheus text.
//! Only GET and HEAD; loopback unless told otherwise. tiny_http: a blocking server is
//! all a read-only page on loopback needs, without an async runtime in the binary.
use crate::error::{Error, Result};
use crate::report::{self, Status};
use std::path::Path;

/// Dashboard HTML for a status view: one bar per resource (organic and synthetic stacked,
/// the target as a line), the window and the jobs. Self-contained: no scripts, no network.
pub fn dashboard(s: &Status) -> String {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut rows = String::new();
    let mut bar = |name: &str, u: &report::Usage| {
        let (o, y, t) = (
            u.organic_percent.clamp(0.0, 100.0),
            u.synthetic_percent.clamp(0.0, 100.0),
            u.target_percent.clamp(0.0, 100.0),
        );
        let w = u.window.as_ref();
        rows += &format!(
            "<tr><td>{}</td><td><svg class=\"bar\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" width=\"300\" height=\"18\" role=\"img\" aria-label=\"{name}\">\
<rect x=\"0\" y=\"0\" width=\"100\" height=\"10\" fill=\"#eee\"/>\
<rect class=\"organic\" x=\"0\" y=\"0\" width=\"{o:.2}\" height=\"10\" fill=\"#4a7bd0\"/>\
<rect class=\"synthetic\" x=\"{o:.2}\" y=\"0\" width=\"{y:.2}\" height=\"10\" fill=\"#e8a33c\"/>\
<line class=\"target\" x1=\"{t:.2}\" x2=\"{t:.2}\" y1=\"0\" y2=\"10\" stroke=\"#c00\" stroke-width=\"0.6\"/></svg></td>\
<td>{:.1} %</td><td>{:.1} %</td><td>{:.1} %</td><td>{:.1} %</td><td>{}</td><td>{}</td></tr>\n",
            esc(name),
            u.total_percent,
            u.synthetic_percent,
            u.level_percent,
            u.target_percent,
            w.map_or("-".into(), |w| format!(
                "{} {:.1} % ({:.0} % covered){}",
                w.statistic,
                w.value,
                w.coverage * 100.0,
                if w.compliant { ", compliant" } else { "" }
            )),
            esc(&u
                .forecast
                .as_ref()
                .map_or(String::new(), |f| f.note.clone())),
        );
    };
    if let Some(u) = &s.resources.cpu {
        bar("cpu", u);
    }
    if let Some(u) = &s.resources.memory {
        bar("memory", u);
    }
    for (m, u) in &s.resources.disk {
        bar(&format!("disk {m}"), u);
    }
    let jobs: String = s
        .jobs
        .iter()
        .map(|j| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&j.id),
                j.pid.map_or("-".into(), |p| p.to_string()),
                if j.alive { "running" } else { "stopped" },
                j.synthetic_percent
                    .map_or("-".into(), |p| format!("{p:.1} %"))
            )
        })
        .collect();
    let err = s.desired.error.as_ref().map_or(String::new(), |e| {
        format!("<p class=\"error\">Config error: {}</p>", esc(e))
    });
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\"><title>cro</title>\
<style>body{{font:14px sans-serif;margin:2em}}td,th{{padding:4px 10px;text-align:left}}.error{{color:#c00}}</style></head><body>\
<h1>cro on {}</h1><p>{} ({}), tier {} GiB, {} CPUs; last reconcile {}{}</p>{err}\
<table id=\"resources\"><tr><th>resource</th><th>organic / synthetic / target</th><th>total</th><th>synthetic</th><th>level</th><th>target</th><th>window</th><th>forecast</th></tr>\n{rows}</table>\
<h2>Jobs</h2><table id=\"jobs\"><tr><th>job</th><th>pid</th><th>state</th><th>holds</th></tr>\n{jobs}</table>\
<p><a href=\"/api/status\">/api/status</a> · <a href=\"/metrics\">/metrics</a></p></body></html>\n",
        esc(&hostname()),
        esc(s.host.os.as_deref().unwrap_or("Linux")),
        esc(&s.host.platform),
        s.host.memory_tier_gib,
        s.host.cpus,
        esc(s.last_reconcile.as_deref().unwrap_or("never")),
        if s.desired.paused { " — PAUSED" } else { "" },
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this host".into())
}

pub fn run(state_dir: &Path, desired_path: &Path, listen: &str) -> Result<()> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|e| {
        Error::Usage(format!(
            "--listen {listen:?}: {e}; give ADDR:PORT, e.g. 127.0.0.1:9477"
        ))
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving beyond loopback: anyone who can reach this address can read the host's status (read-only)");
    }
    let server = tiny_http::Server::http(addr)
        .map_err(|e| Error::Runtime(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "serving / (dashboard), /api/status, /metrics");
    eprintln!("cro: serving http://{addr}/");
    for req in server.incoming_requests() {
        let resp = if !matches!(
            req.method(),
            tiny_http::Method::Get | tiny_http::Method::Head
        ) {
            text(405, "only GET and HEAD\n", "text/plain; charset=utf-8")
                .with_header(header("Allow", "GET, HEAD"))
        } else {
            let path = req.url().split('?').next().unwrap_or("/").to_string();
            match path.as_str() {
                "/" | "/api/status" | "/metrics" => match report::status(state_dir, desired_path) {
                    Ok(s) => match path.as_str() {
                        "/" => text(200, &dashboard(&s), "text/html; charset=utf-8"),
                        "/api/status" => text(
                            200,
                            &(serde_json::to_string_pretty(&s).expect("serializes") + "\n"),
                            "application/json",
                        ),
                        _ => text(
                            200,
                            &crate::metrics::render(&s, &crate::metrics::load_counters(state_dir)),
                            "text/plain; version=0.0.4; charset=utf-8",
                        ),
                    },
                    Err(e) => text(500, &format!("{e}\n"), "text/plain; charset=utf-8"),
                },
                _ => text(
                    404,
                    "not found: try /, /api/status or /metrics\n",
                    "text/plain; charset=utf-8",
                ),
            }
        };
        // tiny_http sends no body for HEAD itself (headers, with Content-Length, only)
        if let Err(e) = req.respond(resp) {
            tracing::debug!("client went away: {e}");
        }
    }
    Ok(())
}

fn header(k: &str, v: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

fn text(code: u16, body: &str, ctype: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_data(body.as_bytes().to_vec())
        .with_status_code(code)
        .with_header(header("Content-Type", ctype))
        .with_header(header("Cache-Control", "no-store"))
}
