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
use crate::output::dashboard;
use crate::output::status::{self, Status};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_CONNECTIONS: usize = 128;
/// One remote client (an IP) may hold this many at once, so one host cannot take the
/// whole budget (loopback clients share an address and are not capped apart).
const MAX_PER_CLIENT: usize = 16;
/// Requests within this long of each other share one status snapshot: a page, the API
/// and a scrape at once read the host once, not three times.
const SNAPSHOT_FOR: Duration = Duration::from_secs(1);

/// What every response carries: no scripts, styles only inline, never framed, no type
/// sniffing, nothing sent onwards.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
];

/// The shared state of the server's threads.
struct Shared {
    state_dir: std::path::PathBuf,
    desired_path: std::path::PathBuf,
    bound: std::net::SocketAddr,
    active: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    snapshot: Mutex<Option<(Instant, Arc<Status>)>>,
}

/// Holds a connection's place in the budgets; gives it back however the thread ends.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.active.fetch_sub(1, Ordering::Relaxed);
        let mut m = self
            .shared
            .per_client
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl Shared {
    /// A place for a connection from `ip`, or None when either budget is spent.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut m = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let mine = m.entry(ip).or_default();
        // On loopback every local client (Prometheus, a browser, curl) has the same
        // address: a per-address cap there would let one stuck tab starve the scraper.
        // The global cap and the 5 s head budget protect it.
        let per_client_full = !ip.is_loopback() && *mine >= MAX_PER_CLIENT;
        if per_client_full || self.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            return None;
        }
        *mine += 1;
        self.active.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            shared: self.clone(),
            ip,
        })
    }

    /// The status, read at most once per SNAPSHOT_FOR.
    fn status(&self) -> Result<Arc<Status>> {
        let mut snap = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = snap.as_ref().filter(|(at, _)| at.elapsed() < SNAPSHOT_FOR) {
            return Ok(s.clone());
        }
        let s = Arc::new(status::status(&self.state_dir, &self.desired_path)?);
        *snap = Some((Instant::now(), s.clone()));
        Ok(s)
    }

    /// Is `host` (the Host header) a name this server answers to? A browser on this host
    /// can be led by DNS rebinding to send our loopback address a request whose Host is
    /// the attacker's name: refusing it keeps /api/status from other origins.
    fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true; // HTTP/1.0 without Host: no browser sends that
        };
        if self.bound.ip().is_unspecified() {
            return true; // bound to every address: the operator chose to be reachable
        }
        let h = host.trim().to_ascii_lowercase();
        let name = match h.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or("").to_string(),
            None => h.rsplit_once(':').map_or(h.clone(), |(n, _)| n.to_string()),
        };
        let port_ok = match h.rsplit_once(':') {
            Some((_, p)) if !h.ends_with(']') => p == self.bound.port().to_string(),
            _ => true,
        };
        let name_ok = name == self.bound.ip().to_string()
            || (self.bound.ip().is_loopback()
                && matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1"));
        name_ok && port_ok
    }
}
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
    let listener =
        TcpListener::bind(addr).map_err(|e| Error::os(format!("listen on {addr}"), e))?;
    tracing::info!(%addr, "serving / (dashboard), /api/status, /metrics");
    eprintln!("cro: serving http://{addr}/");
    let shared = Arc::new(Shared {
        state_dir: state_dir.to_path_buf(),
        desired_path: desired_path.to_path_buf(),
        bound: listener.local_addr().unwrap_or(addr),
        active: AtomicUsize::new(0),
        per_client: Mutex::new(HashMap::new()),
        snapshot: Mutex::new(None),
    });
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
        let ip = stream
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let Some(slot) = shared.admit(ip) else {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = respond(
                &mut stream,
                false,
                &text(503, "too many connections\n", PLAIN),
            );
            continue;
        };
        let spawned = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                serve_one(&mut stream, &slot.shared);
                drop(slot);
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a connection thread: {e}");
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
        421 => "Misdirected Request",
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
    for (k, v) in SECURITY_HEADERS {
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

fn serve_one(stream: &mut TcpStream, shared: &Shared) {
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
    let host = head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("host")
            .then(|| v.trim().to_string())
    });
    let r = if !shared.host_allowed(host.as_deref()) {
        text(
            421,
            "this server answers to its own address and localhost only\n",
            PLAIN,
        )
    } else if method != "GET" && !head_only {
        let mut r = text(405, "only GET and HEAD\n", PLAIN);
        r.headers.push(("Allow", "GET, HEAD".into()));
        r
    } else {
        page(target.split('?').next().unwrap_or("/"), shared)
    };
    if let Err(e) = respond(stream, head_only, &r) {
        tracing::debug!("client went away: {e}");
    }
}

fn page(path: &str, shared: &Shared) -> Response {
    if !matches!(path, "/" | "/api/status" | "/metrics") {
        return text(404, "not found: try /, /api/status or /metrics\n", PLAIN);
    }
    let state_dir = &shared.state_dir;
    let s = match shared.status() {
        Ok(s) => s,
        Err(e) => return text(500, &format!("{e}\n"), PLAIN),
    };
    match path {
        "/" => {
            let now = crate::timefmt::now_unix();
            let c = dashboard::charts(state_dir, &s, now, s.desired.window_days);
            text(200, &dashboard::render(&s, &c), "text/html; charset=utf-8")
        }
        "/api/status" => text(
            200,
            &(serde_json::to_string_pretty(&*s).expect("serializes") + "\n"),
            "application/json",
        ),
        _ => text(
            200,
            &crate::output::metrics::render(&s, &crate::output::metrics::load_counters(state_dir)),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(bound: &str) -> Arc<Shared> {
        Arc::new(Shared {
            state_dir: "/nonexistent".into(),
            desired_path: "/nonexistent/desired.json".into(),
            bound: bound.parse().unwrap(),
            active: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
            snapshot: Mutex::new(None),
        })
    }

    #[test]
    fn one_remote_client_cannot_take_every_connection() {
        let s = shared("0.0.0.0:9477");
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let held: Vec<Slot> = (0..MAX_PER_CLIENT).map(|_| s.admit(a).unwrap()).collect();
        assert!(s.admit(a).is_none(), "a's 17th");
        let other = s.admit(b).expect("another client is still served");
        drop(held);
        assert_eq!(
            s.active.load(Ordering::Relaxed),
            1,
            "slots are given back on drop"
        );
        assert!(s.admit(a).is_some());
        drop(other);
        // loopback clients are not capped apart
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let many: Vec<Slot> = (0..40).map(|_| s.admit(lo).unwrap()).collect();
        assert_eq!(many.len(), 40);
    }

    #[test]
    fn only_our_own_names_are_answered() {
        let s = shared("127.0.0.1:9477");
        for ok in [
            None,
            Some("127.0.0.1:9477"),
            Some("localhost"),
            Some("LOCALHOST:9477"),
            Some("[::1]:9477"),
        ] {
            assert!(s.host_allowed(ok), "{ok:?}");
        }
        for bad in [
            "evil.example",
            "evil.example:9477",
            "127.0.0.1:80",
            "localhost.evil.example",
        ] {
            assert!(!s.host_allowed(Some(bad)), "{bad}");
        }
        assert!(
            shared("0.0.0.0:9477").host_allowed(Some("anything")),
            "bound to all"
        );
        let v4 = shared("192.0.2.7:9477");
        assert!(v4.host_allowed(Some("192.0.2.7:9477")) && !v4.host_allowed(Some("localhost")));
    }
}
