//! The Prometheus HTTP API, as `cro fleet` needs it: instant queries
//! (`GET <url>/api/v1/query?query=...`), answers parsed into samples. The effect (HTTP) is
//! `Client::query`; reading an answer (`parse_answer`) is pure and unit-tested on the API's
//! documented shapes.
use crate::error::{Error, Result};
use crate::format::printable;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One series of an instant vector: its labels (`__name__` included when the query kept
/// it) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Series {
    pub fn label(&self, k: &str) -> &str {
        self.labels.get(k).map_or("", |v| v.as_str())
    }
}

/// An instant query's answer: the evaluation time (Prometheus's clock, Unix seconds) and
/// the series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub at: f64,
    pub samples: Vec<Series>,
}

/// The API's envelope (https://prometheus.io/docs/prometheus/latest/querying/api/).
/// `data` is kept as raw text and read once by its type: an answer of 10,000 hosts is tens
/// of MiB, and a `serde_json::Value` tree of it would cost more than the samples.
#[derive(Deserialize)]
struct Envelope<'a> {
    status: &'a str,
    #[serde(default, borrow)]
    data: Option<&'a serde_json::value::RawValue>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "resultType")]
    result_type: &'a str,
    #[serde(borrow)]
    result: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
struct VectorItem<'a> {
    metric: BTreeMap<String, String>,
    /// `[unix_time, "value"]`
    #[serde(borrow)]
    value: (f64, std::borrow::Cow<'a, str>),
}

/// The largest answer read: a fleet of 100,000 hosts' compact answer is a few tens of MiB;
/// a larger one (a broken proxy, a man in the middle on plain HTTP) is refused before it
/// is parsed.
pub const MAX_ANSWER_BYTES: u64 = 64 << 20;
/// A label value longer than this is cut (with `…`).
const MAX_LABEL_CHARS: usize = 256;

/// Label names and values as they may be printed: control characters escaped (no escape
/// sequence reaches a terminal), long values cut. Most labels need neither and are only
/// copied.
fn printable_labels(m: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let clean = |t: &str| t.len() <= MAX_LABEL_CHARS && !t.chars().any(char::is_control);
    if m.iter().all(|(k, v)| clean(k) && clean(v)) {
        return m;
    }
    m.into_iter()
        .map(|(k, v)| {
            (
                printable(&k, MAX_LABEL_CHARS),
                printable(&v, MAX_LABEL_CHARS),
            )
        })
        .collect()
}

/// Read an instant query's JSON answer. `Err` says what was wrong in the operator's terms.
pub fn parse_answer(body: &[u8]) -> std::result::Result<Answer, String> {
    let env: Envelope = serde_json::from_slice(body).map_err(|_| {
        let head = String::from_utf8_lossy(&body[..body.len().min(60)]).replace('\n', " ");
        format!("the answer is not the Prometheus API's JSON (it begins {head:?})")
    })?;
    if env.status != "success" {
        return Err(format!(
            "Prometheus refused the query: {}: {}",
            printable(&env.error_type.unwrap_or_default(), 100),
            printable(&env.error.unwrap_or_default(), 400)
        ));
    }
    let data: Data = serde_json::from_str(
        env.data
            .ok_or("the answer has status success but no data")?
            .get(),
    )
    .map_err(|e| format!("unexpected data in the answer: {e}"))?;
    match data.result_type {
        "vector" => {
            let items: Vec<VectorItem> = serde_json::from_str(data.result.get())
                .map_err(|e| format!("unexpected vector in the answer: {e}"))?;
            let mut at = 0.0;
            let samples = items
                .into_iter()
                .map(|i| {
                    at = i.value.0;
                    Series {
                        labels: printable_labels(i.metric),
                        // Prometheus writes NaN, +Inf, -Inf as such; Rust parses all three
                        value: i.value.1.parse().unwrap_or(f64::NAN),
                    }
                })
                .collect();
            Ok(Answer { at, samples })
        }
        "scalar" => {
            let (t, v): (f64, String) = serde_json::from_str(data.result.get())
                .map_err(|e| format!("unexpected scalar in the answer: {e}"))?;
            Ok(Answer {
                at: t,
                samples: vec![Series {
                    labels: BTreeMap::new(),
                    value: v.parse().unwrap_or(f64::NAN),
                }],
            })
        }
        other => Err(format!(
            "the answer is a {}, where an instant vector was asked for",
            printable(other, 40)
        )),
    }
}

/// What an https:// server's certificate must chain to.
pub enum Roots {
    /// Mozilla's root certificates, built in (for a host without a CA bundle).
    Mozilla,
    /// The certificates of a PEM bundle: the system's (`/etc/ssl/certs/...`, where the
    /// operator's own CA is added with update-ca-certificates or update-ca-trust) or one
    /// named with `--ca-file`.
    Pem(Vec<ureq::tls::Certificate<'static>>),
}

/// Where the distributions keep the system's CA bundle: Debian, Ubuntu, Kylin (deb);
/// RHEL, CentOS, openEuler, Kylin (rpm); SUSE.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

impl Roots {
    /// The roots in force: `--ca-file` if given (it must hold at least one certificate),
    /// else the system's bundle, else Mozilla's.
    pub fn load(ca_file: Option<&std::path::Path>) -> Result<Roots> {
        if let Some(p) = ca_file {
            let pem = std::fs::read(p).map_err(|e| Error::io(p, "read the CA file", e))?;
            let certs = Self::certificates(&pem);
            if certs.is_empty() {
                return Err(Error::Usage(format!(
                    "--ca-file {}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
                    p.display()
                )));
            }
            return Ok(Roots::Pem(certs));
        }
        for b in SYSTEM_BUNDLES {
            if let Ok(pem) = std::fs::read(b) {
                let certs = Self::certificates(&pem);
                if !certs.is_empty() {
                    return Ok(Roots::Pem(certs));
                }
            }
        }
        Ok(Roots::Mozilla)
    }

    fn certificates(pem: &[u8]) -> Vec<ureq::tls::Certificate<'static>> {
        ureq::tls::parse_pem(pem)
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect()
    }
}

/// A Prometheus server's query API.
pub struct Client {
    base: String,
    /// Evaluate at this Unix time instead of the server's now.
    at: Option<f64>,
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl Client {
    /// `url`: the server's base URL as its users open it (`http://prom:9090`,
    /// `https://thanos.example:10902`, or with a path prefix behind a proxy:
    /// `https://proxy/prometheus`). `bearer`: a token sent as `Authorization: Bearer`, for a
    /// server behind an authenticating proxy. `roots`: the certificates an https:// server's
    /// certificate must chain to (see `Roots`).
    pub fn new(
        url: &str,
        timeout: Duration,
        bearer: Option<String>,
        roots: Roots,
    ) -> Result<Client> {
        let base = url.trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"));
        if rest.is_none_or(str::is_empty) {
            return Err(Error::Usage(format!(
                "--prometheus {url}: not an http:// or https:// URL (for example \
                 http://prometheus:9090)"
            )));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(match roots {
                Roots::Mozilla => ureq::tls::RootCerts::WebPki,
                Roots::Pem(certs) => ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)),
            })
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .https_only(base.starts_with("https://"))
            .tls_config(tls)
            .user_agent(format!("cro/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client {
            base,
            at: None,
            agent,
            authorization: bearer.map(|t| format!("Bearer {}", t.trim())),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The time queries are asked as of, if not the server's now.
    pub fn at(&self) -> Option<f64> {
        self.at
    }

    /// Ask every query as of Unix time `t` (the API's `time` parameter).
    pub fn evaluate_at(&mut self, t: f64) {
        self.at = Some(t);
    }

    /// One instant query, evaluated at the server's now (or `evaluate_at`'s time).
    pub fn query(&self, promql: &str) -> Result<Answer> {
        let body = self.ask(promql)?;
        self.read(promql, &body)
    }

    /// An answer's body read into samples (cro's own share of a query's time).
    pub fn read(&self, promql: &str, body: &[u8]) -> Result<Answer> {
        parse_answer(body).map_err(|why| {
            Error::Runtime(format!(
                "Prometheus at {}: query {promql:?}: {why}",
                self.base
            ))
        })
    }

    /// One instant query's answer as the server sent it, checked for status and size (the
    /// server's share of a query's time, the transfer included).
    pub fn ask(&self, promql: &str) -> Result<Vec<u8>> {
        let url = format!("{}/api/v1/query", self.base);
        let fail = |why: String| Error::Runtime(format!("Prometheus at {}: {why}", self.base));
        let mut req = self.agent.get(&url).query("query", promql);
        if let Some(t) = self.at {
            req = req.query("time", format!("{t:.3}"));
        }
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().map_err(|e| {
            let why = printable(&e.to_string(), 400);
            // rustls's verdict arrives as an I/O error during the handshake
            if matches!(e, ureq::Error::Tls(_) | ureq::Error::Rustls(_))
                || why.contains("certificate")
            {
                fail(format!(
                    "its TLS certificate is not trusted or not for this name ({why}); name \
                     the CA that signed it with --ca-file, or add it to the system's CA bundle"
                ))
            } else {
                fail(format!("cannot reach it: {why}"))
            }
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => fail(format!(
                    "the answer to {promql:?} is larger than {} MiB; cro reads no more \
                     (a proxy in between, or a server that is not Prometheus?)",
                    MAX_ANSWER_BYTES >> 20
                )),
                e => fail(format!("the answer broke off: {e}")),
            })?;
        // 400 and 422 carry the API's own error JSON; anything else not 200 is not the API
        match status {
            200 | 400 | 422 | 503 => {}
            401 | 403 => {
                return Err(fail(format!(
                    "GET {url} answered {status}: it wants credentials (--bearer-token-file)"
                )));
            }
            _ => {
                return Err(fail(format!(
                    "GET {url} answered HTTP {status}: is this the Prometheus server's URL?"
                )));
            }
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_vector() {
        let a = parse_answer(
            br#"{"status":"success","data":{"resultType":"vector","result":[
              {"metric":{"__name__":"cro_target_ratio","instance":"a:9","resource":"cpu"},"value":[1700000000.5,"0.25"]},
              {"metric":{"instance":"b:9"},"value":[1700000000.5,"NaN"]}]}}"#,
        )
        .unwrap();
        assert_eq!(a.at, 1700000000.5);
        assert_eq!(a.samples.len(), 2);
        assert_eq!(a.samples[0].label("resource"), "cpu");
        assert_eq!(a.samples[0].value, 0.25);
        assert!(a.samples[1].value.is_nan());
        assert_eq!(a.samples[1].label("resource"), "");
    }

    #[test]
    fn reads_an_empty_vector_and_a_scalar() {
        let a = parse_answer(br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#)
            .unwrap();
        assert!(a.samples.is_empty());
        let a = parse_answer(
            br#"{"status":"success","data":{"resultType":"scalar","result":[12.0,"+Inf"]}}"#,
        )
        .unwrap();
        assert_eq!(a.samples[0].value, f64::INFINITY);
    }

    #[test]
    fn says_what_is_wrong() {
        let e = parse_answer(
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
        )
        .unwrap_err();
        assert!(e.contains("bad_data: parse error at char 3"), "{e}");
        let e = parse_answer(b"<html><body>Grafana</body></html>").unwrap_err();
        assert!(
            e.contains("not the Prometheus API") && e.contains("<html>"),
            "{e}"
        );
        let e = parse_answer(br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#)
            .unwrap_err();
        assert!(e.contains("matrix"), "{e}");
    }

    #[test]
    fn urls_are_checked() {
        let t = Duration::from_secs(1);
        let c = |u: &str| Client::new(u, t, None, Roots::Mozilla);
        assert!(c("http://127.0.0.1:9090/").is_ok());
        assert!(c("https://thanos.example:10902").is_ok());
        assert_eq!(c("http://p/prom/").unwrap().base(), "http://p/prom");
        for bad in ["prometheus:9090", "http://", "https://", "ftp://x"] {
            let e = c(bad).err().unwrap().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
