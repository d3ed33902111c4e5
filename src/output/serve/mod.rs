//! `cro serve`: a read-only HTTP view for people and Prometheus. `/` is a dashboard that
//! refreshes itself, `/api/status` is `status --json`, `/metrics` the Prometheus text.
//! Only GET and HEAD; loopback unless told otherwise.
//!
//! hyper's HTTP/1 server on a current-thread tokio runtime: an open connection costs a
//! task and a small buffer, not a thread, so holding many open costs an attacker more than
//! it costs us. Each connection has 5 s to send its request head and 15 s in all, the
//! response included (a slow reader is cut off), one request, then close. The budget
//! (`budget.rs`, 4,096 connections) closes the oldest connection when full instead of
//! refusing the new one.
//! The pages are computed on a small blocking pool (`routes.rs`), once a second at most.
//! Measured: a scrape a second kept succeeding next to 1,000 idle connections and next to
//! 100 clients drip-feeding requests (tests/faults.rs).
mod budget;
pub mod routes;

use crate::error::{Error, Result};
use budget::Budget;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use routes::{Names, SECURITY_HEADERS, Site};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client has this long to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// And this long for the whole connection, the response included.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);
/// The largest request head read (hyper's smallest buffer limit is 8 KiB).
const HEAD_LIMIT: usize = 16 << 10;
/// Threads that compute pages; requests beyond wait their turn (each page is cached for a
/// second, so a queue drains fast).
const PAGE_THREADS: usize = 2;
/// Open files wanted: MAX_CONNECTIONS sockets and room to spare (the soft limit is often
/// 1,024; the hard limit under systemd 524,288).
const WANT_FDS: u64 = 8192;

/// Serve until killed. `allow_hosts`: extra names the Host header may carry.
pub fn run(
    state_dir: &Path,
    desired_path: &Path,
    listen: &str,
    allow_hosts: &[String],
) -> Result<()> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|e| {
        Error::Usage(format!(
            "--listen {listen:?}: {e}; give ADDR:PORT, e.g. 127.0.0.1:9477"
        ))
    })?;
    if !addr.ip().to_canonical().is_loopback() {
        tracing::warn!(%addr, "serving beyond loopback: anyone who can reach this address can read the host's status (read-only)");
    }
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| Error::os(format!("listen on {addr}"), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::os("set the listening socket non-blocking", e))?;
    let fds = crate::sys::process::raise_fd_limit(WANT_FDS);
    // the budget fits the descriptors we may open (with room for logs, the state files)
    let max = (fds as usize)
        .saturating_sub(64)
        .clamp(64, budget::MAX_CONNECTIONS);
    tracing::debug!(fds, max, "open-file limit and connection budget");
    let host = crate::observe::hostname().to_ascii_lowercase();
    let short = host.split('.').next().unwrap_or("").to_string();
    let names = Names {
        allowed: allow_hosts
            .iter()
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        own: [host, short]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect(),
    };
    let bound = listener.local_addr().unwrap_or(addr);
    let site = Arc::new(Site::new(
        state_dir.to_path_buf(),
        desired_path.to_path_buf(),
        bound,
        names,
    ));
    let rt = runtime()?;
    tracing::info!(%bound, "serving / (dashboard), /api/status, /metrics");
    eprintln!("cro: serving http://{bound}/");
    rt.block_on(accept_loop(listener, site, max))
}

/// One thread for every connection, a small pool for the pages.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(PAGE_THREADS)
        .build()
        .map_err(|e| Error::os("start the server's runtime", e))
}

async fn accept_loop(listener: std::net::TcpListener, site: Arc<Site>, max: usize) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::os("register the listening socket", e))?;
    let budget = Budget::new(max);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: wait a moment instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // The connection's place lives as long as its task: the task owns the cell, and
        // the place is put in before the task first runs (this loop does not yield
        // between the spawn and the admission; the runtime has one thread).
        let cell: Arc<Mutex<Option<budget::Place>>> = Arc::default();
        let held = cell.clone();
        let site = site.clone();
        let task = tokio::spawn(async move {
            let _place = held;
            let _ = stream.set_nodelay(true);
            connection(TokioIo::new(stream), site).await;
        });
        let (place, closed) = budget.admit(peer.ip(), Box::new(task.abort_handle()));
        *cell.lock().unwrap_or_else(|e| e.into_inner()) = Some(place);
        if closed > 0 {
            tracing::debug!(%peer, closed, open = budget.open(), "connection budget full: closed the oldest");
        }
    }
}

/// One connection: one request within the deadlines, then close.
pub async fn connection<I>(io: I, site: Arc<Site>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| answer(req, site.clone()));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .keep_alive(false)
        // a client may shut its side after the request (curl does not, scripts do)
        .half_close(true)
        .max_buf_size(HEAD_LIMIT)
        .serve_connection(io, svc);
    match tokio::time::timeout(CONNECTION_DEADLINE, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("connection: {e}"),
        Err(_) => tracing::debug!("connection cut off at its deadline"),
    }
}

async fn answer(
    req: Request<Incoming>,
    site: Arc<Site>,
) -> std::result::Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .map(|h| h.to_str().unwrap_or("").to_string());
    let reply = tokio::task::spawn_blocking(move || site.answer(&method, &path, host.as_deref()))
        .await
        .unwrap_or_else(|e| routes::text(500, &format!("{e}\n"), routes::PLAIN));
    let mut r = Response::builder().status(reply.code);
    for (k, v) in &reply.headers {
        r = r.header(*k, v.as_str());
    }
    for (k, v) in SECURITY_HEADERS {
        r = r.header(k, v);
    }
    let r = r
        .header("Cache-Control", "no-store")
        .body(Full::new(reply.body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"bad response\n"))));
    Ok(r)
}
