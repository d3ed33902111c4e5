//! `cro serve`: a read-only HTTP view for people and Prometheus. `/` is a dashboard that
//! refreshes itself, `/api/status` is `status --json`, `/metrics` the Prometheus text.
//! Only GET and HEAD; loopback unless told otherwise.
//!
//! The HTTP layer is our own, about a hundred lines: one thread per connection, at most
//! `MAX_CONNECTIONS` at once (more get 503 at once), a 5 s budget to send the request
//! head (16 KiB at most), one response, then close. No keep-alive, no body, no async
//! runtime. It replaced tiny_http, under which 64 idle connections on a loaded 2-CPU VM
//! left a real request unanswered for over 10 s (tests/faults.rs).
use crate::error::{Error, Result};
use crate::report::{self, Status};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

const MAX_CONNECTIONS: usize = 128;
const HEAD_LIMIT: usize = 16 << 10;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(state_dir: &Path, desired_path: &Path, listen: &str) -> Result<()> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|e| {
        Error::Usage(format!(
            "--listen {listen:?}: {e}; give ADDR:PORT, e.g. 127.0.0.1:9477"
        ))
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving beyond loopback: anyone who can reach this address can read the host's status (read-only)");
    }
    let listener = TcpListener::bind(addr)
        .map_err(|e| Error::Runtime(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "serving / (dashboard), /api/status, /metrics");
    eprintln!("cro: serving http://{addr}/");
    let active = Arc::new(AtomicUsize::new(0));
    let state_dir = Arc::new(state_dir.to_path_buf());
    let desired_path = Arc::new(desired_path.to_path_buf());
    for conn in listener.incoming() {
        let mut stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: wait a moment instead of spinning.
                tracing::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = respond(
                &mut stream,
                false,
                &text(503, "too many connections\n", PLAIN),
            );
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (mine, state_dir, desired_path) =
            (active.clone(), state_dir.clone(), desired_path.clone());
        let spawned = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                serve_one(&mut stream, &state_dir, &desired_path);
                mine.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a connection thread: {e}");
            active.fetch_sub(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

const PLAIN: &str = "text/plain; charset=utf-8";

struct Response {
    code: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn text(code: u16, body: &str, ctype: &str) -> Response {
    Response {
        code,
        headers: vec![("Content-Type", ctype.to_string())],
        body: body.as_bytes().to_vec(),
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

fn respond(stream: &mut TcpStream, head_only: bool, r: &Response) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", r.code, reason(r.code));
    for (k, v) in &r.headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += &format!(
        "Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        r.body.len()
    );
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&r.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Read the request head: up to the blank line, within the size and time budget.
fn read_head(stream: &mut TcpStream) -> std::result::Result<String, u16> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = find_blank_line(&buf) {
            buf.truncate(end);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() > HEAD_LIMIT {
            return Err(431);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(408);
        }
        match stream.read(&mut chunk) {
            // The peer stopped sending: take what came if it is at least a request line.
            Ok(0) if buf.contains(&b'\n') => return Ok(String::from_utf8_lossy(&buf).into_owned()),
            Ok(0) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(408),
        }
    }
}

fn find_blank_line(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = b.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

fn serve_one(stream: &mut TcpStream, state_dir: &Path, desired_path: &Path) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let head = match read_head(stream) {
        Ok(h) => h,
        Err(code) => {
            let _ = respond(
                stream,
                false,
                &text(code, &format!("{}\n", reason(code)), PLAIN),
            );
            return;
        }
    };
    let line = head.lines().next().unwrap_or("").trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version), None) = (method, target, version, parts.next())
    else {
        let _ = respond(stream, false, &text(400, "Bad Request\n", PLAIN));
        return;
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        let _ = respond(
            stream,
            false,
            &text(505, "HTTP/1.0 or HTTP/1.1 only\n", PLAIN),
        );
        return;
    }
    let head_only = method == "HEAD";
    let r = if method != "GET" && !head_only {
        let mut r = text(405, "only GET and HEAD\n", PLAIN);
        r.headers.push(("Allow", "GET, HEAD".into()));
        r
    } else {
        page(
            target.split('?').next().unwrap_or("/"),
            state_dir,
            desired_path,
        )
    };
    if let Err(e) = respond(stream, head_only, &r) {
        tracing::debug!("client went away: {e}");
    }
}

fn page(path: &str, state_dir: &Path, desired_path: &Path) -> Response {
    if !matches!(path, "/" | "/api/status" | "/metrics") {
        return text(404, "not found: try /, /api/status or /metrics\n", PLAIN);
    }
    let s = match report::status(state_dir, desired_path) {
        Ok(s) => s,
        Err(e) => return text(500, &format!("{e}\n"), PLAIN),
    };
    match path {
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
    }
}
