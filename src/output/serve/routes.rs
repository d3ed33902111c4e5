//! What `cro serve` answers: the Host check (DNS rebinding), the methods, the three pages.
//! No sockets here: a request's method, target and Host in, a `Reply` out, so the rules
//! are tested without a server.
use crate::error::Result;
use crate::output::dashboard;
use crate::output::status::{self, Status};
use hyper::body::Bytes;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests within this long of each other share one status snapshot and one rendering
/// of each page: a page, the API and a scrape at once read the host once, and a flood of
/// requests costs no more than one a second.
const SNAPSHOT_FOR: Duration = Duration::from_secs(1);

/// What every response carries: no scripts, styles only inline, never framed, no type
/// sniffing, nothing sent onwards.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
];

pub const PLAIN: &str = "text/plain; charset=utf-8";

/// One answer: status code, extra headers, body.
#[derive(Clone)]
pub struct Reply {
    pub code: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

pub fn text(code: u16, body: &str, ctype: &str) -> Reply {
    Reply {
        code,
        headers: vec![("Content-Type", ctype.to_string())],
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

/// The names a request's Host may carry, besides IP literals.
pub struct Names {
    /// `--allow-host NAME` (repeatable), lowercase.
    pub allowed: Vec<String>,
    /// This host's own names (its hostname, and the hostname's first label), lowercase.
    pub own: Vec<String>,
}

/// What the server's request handlers share.
pub struct Site {
    pub state_dir: PathBuf,
    pub desired_path: PathBuf,
    pub bound: SocketAddr,
    pub names: Names,
    cache: Mutex<Option<Snapshot>>,
}

/// The last status and each page rendered from it, with when it was read.
struct Snapshot {
    at: Instant,
    status: Status,
    pages: HashMap<&'static str, Reply>,
}

impl Site {
    pub fn new(state_dir: PathBuf, desired_path: PathBuf, bound: SocketAddr, names: Names) -> Site {
        Site {
            state_dir,
            desired_path,
            bound,
            names,
            cache: Mutex::new(None),
        }
    }

    /// The answer to one request. Blocking (it may read the host): callers run it off the
    /// connection tasks.
    pub fn answer(&self, method: &str, target: &str, host: Option<&str>) -> Reply {
        if !self.host_allowed(host) {
            return text(
                421,
                "this server answers to its own addresses and names only (see --allow-host)\n",
                PLAIN,
            );
        }
        if method != "GET" && method != "HEAD" {
            let mut r = text(405, "only GET and HEAD\n", PLAIN);
            r.headers.push(("Allow", "GET, HEAD".into()));
            return r;
        }
        let path = target.split('?').next().unwrap_or("/");
        let Some(path) = ["/", "/api/status", "/metrics"]
            .into_iter()
            .find(|p| *p == path)
        else {
            return text(404, "not found: try /, /api/status or /metrics\n", PLAIN);
        };
        self.page(path)
    }

    /// A page from the snapshot, rendered at most once per SNAPSHOT_FOR.
    fn page(&self, path: &'static str) -> Reply {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = cache
            .as_ref()
            .is_some_and(|s| s.at.elapsed() < SNAPSHOT_FOR);
        if !fresh {
            match status::status(&self.state_dir, &self.desired_path) {
                Ok(status) => {
                    *cache = Some(Snapshot {
                        at: Instant::now(),
                        status,
                        pages: HashMap::new(),
                    })
                }
                Err(e) => return text(500, &format!("{e}\n"), PLAIN),
            }
        }
        let snap = cache.as_mut().expect("filled above");
        if let Some(r) = snap.pages.get(path) {
            return r.clone();
        }
        let r = match render(path, &self.state_dir, &snap.status) {
            Ok(r) => r,
            Err(e) => text(500, &format!("{e}\n"), PLAIN),
        };
        snap.pages.insert(path, r.clone());
        r
    }

    /// Is `host` (the Host header) a name this server answers to? A browser on this host
    /// can be led by DNS rebinding to send our address a request whose Host is the
    /// attacker's name: refusing names we do not know keeps /api/status from other
    /// origins. IP literals cannot be rebound, so they are answered when they are ours
    /// (on an all-address bind: any); names when they are localhost (loopback and
    /// all-address binds), this host's own names (other binds) or `--allow-host`.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true; // HTTP/1.0 without Host: no browser sends that
        };
        let h = host.trim().to_ascii_lowercase();
        let (name, port) = match h.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((a, rest)) => (a.to_string(), rest.strip_prefix(':')),
                None => return false,
            },
            None => match h.rsplit_once(':') {
                Some((n, p)) => (n.to_string(), Some(p)),
                None => (h.clone(), None),
            },
        };
        if port.is_some_and(|p| p != self.bound.port().to_string()) {
            return false;
        }
        let bound = self.bound.ip().to_canonical();
        if let Ok(ip) = name.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            return bound.is_unspecified()
                || ip == bound
                || (bound.is_loopback() && ip.is_loopback());
        }
        let name = name.trim_end_matches('.');
        if self.names.allowed.iter().any(|a| a == name) {
            return true;
        }
        if name == "localhost" {
            return bound.is_loopback() || bound.is_unspecified();
        }
        !bound.is_loopback() && self.names.own.iter().any(|o| o == name)
    }
}

fn render(path: &str, state_dir: &std::path::Path, s: &Status) -> Result<Reply> {
    Ok(match path {
        "/" => {
            let now = crate::timefmt::now_unix();
            let c = dashboard::charts(state_dir, s, now, s.desired.window_days);
            text(200, &dashboard::render(s, &c), "text/html; charset=utf-8")
        }
        "/api/status" => text(
            200,
            &(serde_json::to_string_pretty(s).expect("serializes") + "\n"),
            "application/json",
        ),
        _ => text(
            200,
            &crate::output::metrics::render(s, &crate::output::metrics::load_counters(state_dir)),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(bound: &str, allowed: &[&str]) -> Site {
        Site::new(
            "/nonexistent".into(),
            "/nonexistent/desired.json".into(),
            bound.parse().unwrap(),
            Names {
                allowed: allowed.iter().map(|s| s.to_string()).collect(),
                own: vec!["web1.example.net".into(), "web1".into()],
            },
        )
    }

    #[test]
    fn on_loopback_only_loopback_literals_localhost_and_allowed_names() {
        let s = site("127.0.0.1:9477", &["cro.internal"]);
        for ok in [
            None,
            Some("127.0.0.1:9477"),
            Some("127.0.0.2"),
            Some("localhost"),
            Some("LOCALHOST:9477"),
            Some("localhost."),
            Some("[::1]:9477"),
            Some("[::ffff:127.0.0.1]:9477"),
            Some("cro.internal:9477"),
        ] {
            assert!(s.host_allowed(ok), "{ok:?}");
        }
        for bad in [
            "evil.example",
            "evil.example:9477",
            "127.0.0.1:80",
            "localhost.evil.example",
            "web1",
            "192.0.2.7",
            "[::1",
        ] {
            assert!(!s.host_allowed(Some(bad)), "{bad}");
        }
    }

    #[test]
    fn on_all_addresses_ip_literals_own_names_and_allowed_names_only() {
        for bound in ["0.0.0.0:9477", "[::]:9477"] {
            let s = site(bound, &["prom-target.example"]);
            for ok in [
                "192.0.2.7:9477",
                "10.1.2.3",
                "[2001:db8::1]:9477",
                "[::ffff:127.0.0.1]:9477",
                "localhost:9477",
                "web1:9477",
                "WEB1.example.net",
                "prom-target.example:9477",
            ] {
                assert!(s.host_allowed(Some(ok)), "{bound}: {ok}");
            }
            for bad in ["evil.example:9477", "web1.evil.example", "192.0.2.7:80"] {
                assert!(!s.host_allowed(Some(bad)), "{bound}: {bad}");
            }
        }
    }

    #[test]
    fn on_one_address_that_address_and_own_names() {
        let s = site("192.0.2.7:9477", &[]);
        assert!(s.host_allowed(Some("192.0.2.7:9477")) && s.host_allowed(Some("web1:9477")));
        assert!(!s.host_allowed(Some("localhost")) && !s.host_allowed(Some("192.0.2.8")));
        assert!(!s.host_allowed(Some("evil.example")));
    }

    #[test]
    fn methods_and_paths_are_answered_before_the_host_is_read() {
        let s = site("127.0.0.1:9477", &[]);
        assert_eq!(s.answer("POST", "/", Some("localhost")).code, 405);
        assert_eq!(
            s.answer("GET", "/../etc/passwd", Some("localhost")).code,
            404
        );
        assert_eq!(s.answer("GET", "/", Some("evil.example")).code, 421);
    }
}
