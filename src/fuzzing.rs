//! The checks behind the fuzz targets (`fuzz/`, cargo-fuzz on nightly) and the property
//! tests (proptest, stable, in CI). Each takes arbitrary bytes and panics only when an
//! invariant breaks; a panic is a bug. The checked-in fuzz corpus is replayed through
//! these on stable by `tests/cli.rs` too.
use crate::control::desired;
use crate::error::Error;
use crate::state::history;
use std::path::Path;

const MEM: u64 = 16 << 30;

/// The desired-state parser: any input gives Ok or a named `Invalid` error, never a panic
/// or another kind of error; what it accepts resolves without panicking to values in
/// range, and reads back the same after being written out.
pub fn desired(data: &[u8]) {
    let path = Path::new("fuzz/desired.json");
    let doc = match desired::parse(data, path) {
        Ok(d) => d,
        Err(e) => return check_invalid(&e, path),
    };
    let r = match doc.resolve(path, MEM, None) {
        Ok(r) => r,
        Err(e) => return check_invalid(&e, path),
    };
    let pct = |x: f64| (0.0..=100.0).contains(&x);
    if let Some(c) = &r.cpu {
        assert!(
            pct(c.target_percent) && pct(c.max_synthetic_percent),
            "{r:?}"
        );
    }
    if let Some(m) = &r.memory {
        assert!(
            pct(m.target_percent) && pct(m.min_available_percent),
            "{r:?}"
        );
    }
    if let Some(d) = &r.disk {
        assert!(pct(d.target_percent) && pct(d.min_free_percent), "{r:?}");
        assert!(d.mounts.iter().all(|m| m.is_absolute()), "{r:?}");
    }
    assert!(r.window_days >= 1 && r.interval_seconds >= 1, "{r:?}");
    let again = serde_json::to_vec(&doc).expect("an accepted document serializes");
    let doc2 = desired::parse(&again, path).expect("a written document reads back");
    assert_eq!(doc, doc2, "round trip changed the document");
}

fn check_invalid(e: &Error, path: &Path) {
    match e {
        Error::Invalid { path: p, problems } => {
            assert_eq!(p, path, "the error names another file");
            assert!(!problems.is_empty(), "an Invalid error without a problem");
            for pr in problems {
                assert!(!pr.message.trim().is_empty(), "a problem without a message");
            }
            // The operator's message renders (and names the file).
            assert!(e.to_string().contains("fuzz/desired.json"), "{e}");
        }
        other => panic!("the parser returned {other:?}, not Invalid"),
    }
}

/// The history reader: any bytes give records and warnings, never a panic; no line yields
/// more than one of them; every record it returns writes out and reads back equal, and
/// feeds the window aggregates without panicking.
pub fn history_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut warnings = vec![];
    let records = history::parse_lines(&text, Path::new("h.jsonl"), &mut warnings);
    let lines = text.split('\n').filter(|l| !l.trim().is_empty()).count();
    assert!(
        records.len() + warnings.len() <= lines,
        "{} records + {} warnings from {lines} lines",
        records.len(),
        warnings.len()
    );
    let mut w = crate::control::window::Windows::default();
    for r in &records {
        let line = serde_json::to_string(r).expect("a record serializes");
        let mut warn2 = vec![];
        let back = history::parse_lines(&line, Path::new("h.jsonl"), &mut warn2);
        assert_eq!(back.len(), 1, "{line} did not read back: {warn2:?}");
        assert!(same_json(&back[0], r), "{line} read back as {:?}", back[0]);
        w.add(r);
    }
}

/// The HTTP server's request handling (hyper's parser, our routes) on arbitrary bytes:
/// sent whole on one connection, then the client's side shut, the server answers or
/// closes, well within its deadline, never panics, and what it sends is one HTTP/1.x
/// response with a status code. The state directory does not exist, so no page reads
/// the host; a valid GET is answered from the routes (404, 405, 421, or the page).
pub fn http_request(data: &[u8]) {
    use crate::output::serve::{self, routes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = serve::runtime().expect("a runtime");
    let site = std::sync::Arc::new(routes::Site::new(
        "/nonexistent/cro-fuzz".into(),
        "/nonexistent/cro-fuzz/desired.json".into(),
        "127.0.0.1:9477".parse().expect("an address"),
        routes::Names {
            allowed: vec![],
            own: vec![],
        },
    ));
    let out = rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let conn = tokio::spawn(serve::connection(
            hyper_util::rt::TokioIo::new(server),
            site,
        ));
        let mut out = vec![];
        let talk = async {
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let _ = client.read_to_end(&mut out).await;
        };
        let done = tokio::time::timeout(serve::CONNECTION_DEADLINE, talk).await;
        let _ = conn.await;
        assert!(done.is_ok(), "no answer and no close for {data:?}");
        out
    });
    if out.is_empty() {
        return;
    }
    let head = String::from_utf8_lossy(&out[..out.len().min(64)]).into_owned();
    let code = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse::<u16>().ok());
    assert!(
        code.is_some_and(|c| (200..600).contains(&c)),
        "not an HTTP response: {head:?} for {data:?}"
    );
}

fn same_json(a: &history::Record, b: &history::Record) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[a-z_/.]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("target_percent".to_string()),
                        Just("enabled".to_string()),
                        Just("statistic".to_string()),
                        Just("mounts".to_string()),
                        Just("min_free_gib".to_string()),
                        "[a-z_]{1,8}"
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The checked-in fuzz corpus (fuzz/corpus/<target>/), replayed on stable.
    #[test]
    fn fuzz_corpus_replays_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (target, check) in [
            ("desired", desired as fn(&[u8])),
            ("history", history_text),
            ("http", http_request),
        ] {
            let dir = root.join(target);
            let mut n = 0;
            for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let p = e.unwrap().path();
                let data = std::fs::read(&p).unwrap();
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    panic!("{} fails its check (message above)", p.display());
                }
                n += 1;
            }
            assert!(n >= 8, "only {n} corpus files in {}", dir.display());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn desired_parser_takes_any_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
            desired(&data);
        }

        #[test]
        fn desired_parser_takes_any_shape(
            version in prop_oneof![Just(serde_json::json!(1)), json_value()],
            cpu in json_value(), memory in json_value(), disk in json_value(),
            top in prop::sample::select(vec!["paused", "window_days", "interval_seconds", "tiers", "bogus"]),
            top_value in json_value(),
        ) {
            let doc = serde_json::json!({
                "version": version, "cpu": cpu, "memory": memory, "disk": disk, top: top_value
            });
            desired(doc.to_string().as_bytes());
        }

        #[test]
        fn valid_documents_are_accepted_as_written(
            cpu in 0u32..=100, mem in 0u32..=90, disk in 0u32..=90,
            stat in prop::sample::select(vec!["mean", "p95", "p50", "p99"]),
            window in 1u32..=90, paused in any::<bool>(),
        ) {
            // an absolute mount on this platform, as JSON text
            let mount = if cfg!(windows) { r"D:\\" } else { "/data" };
            let text = format!(
                r#"{{"version":1,"paused":{paused},"window_days":{window},
                    "cpu":{{"target_percent":{cpu},"statistic":"{stat}"}},
                    "memory":{{"target_percent":{mem}}},
                    "disk":{{"target_percent":{disk},"min_free_percent":5,"mounts":["{mount}"]}}}}"#
            );
            desired(text.as_bytes());
            let r = desired::parse(text.as_bytes(), Path::new("d.json"))
                .and_then(|d| d.resolve(Path::new("d.json"), MEM, None))
                .unwrap();
            prop_assert_eq!(r.cpu.unwrap().target_percent, cpu as f64);
            prop_assert_eq!(r.window_days, window);
            prop_assert_eq!(r.paused, paused);
        }

        #[test]
        fn http_server_takes_any_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
            http_request(&data);
        }

        #[test]
        fn http_server_takes_any_request_shape(
            method in prop::sample::select(vec!["GET", "HEAD", "POST", "get", "BREW", "", "CONNECT"]),
            target in prop::sample::select(vec!["/", "/metrics", "/api/status", "*", "/../x", "http://e/metrics", "", "/%00"]),
            version in prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", ""]),
            headers in prop::collection::vec(("[A-Za-z-]{0,12}", "[ -~]{0,40}"), 0..6),
            host in prop::option::of(prop::sample::select(vec!["localhost", "evil.example", "127.0.0.1:9477", "[::1", ""])),
            body in "[ -~]{0,40}",
            crlf in any::<bool>(),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut req = format!("{method} {target} {version}{nl}");
            if let Some(h) = host {
                req += &format!("Host: {h}{nl}");
            }
            for (k, v) in headers {
                req += &format!("{k}: {v}{nl}");
            }
            req += nl;
            req += &body;
            http_request(req.as_bytes());
        }

        #[test]
        fn history_reader_takes_any_bytes(data in prop::collection::vec(any::<u8>(), 0..400)) {
            history_text(&data);
        }

        /// Whole records, then the last one cut anywhere (a crash mid-append): every whole
        /// record reads back, the torn one is skipped with one warning, never misread.
        #[test]
        fn a_torn_last_line_costs_only_itself(
            samples in prop::collection::vec((0.0f64..100.0, 0.0f64..100.0, 0.1f64..3600.0), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut text = String::new();
            let mut recs = vec![];
            for (i, (total, syn, dt)) in samples.iter().enumerate() {
                let r = history::Record {
                    memory_metric: None,
                    ts: crate::timefmt::rfc3339(1_790_000_000.0 + i as f64 * 60.0),
                    interval_s: *dt,
                    cpu: Some(history::Sample::new(*total, syn.min(*total), 40.0, 40.0)),
                    memory: None,
                    disk: Default::default(),
                };
                text.push_str(&serde_json::to_string(&r).unwrap());
                text.push('\n');
                recs.push(r);
            }
            let last_start = text[..text.len() - 1].rfind('\n').map_or(0, |i| i + 1);
            let last_len = text.len() - 1 - last_start;
            let keep = last_start + cut.index(last_len.max(1)).min(last_len.saturating_sub(1));
            let torn = &text[..keep];
            let mut warnings = vec![];
            let back = history::parse_lines(torn, Path::new("h.jsonl"), &mut warnings);
            prop_assert_eq!(back.len(), recs.len() - 1);
            for (a, b) in back.iter().zip(&recs) {
                prop_assert!(same_json(a, b));
            }
            prop_assert!(warnings.len() <= 1, "{:?}", warnings);
            history_text(torn.as_bytes());
        }
    }
}
