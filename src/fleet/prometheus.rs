//! The Prometheus HTTP API, as `cro fleet` needs it: instant queries
//! (`GET <url>/api/v1/query?query=...`), answers parsed into samples. The effect (HTTP) is
//! `Client::query`; reading an answer (`parse_answer`) is pure and unit-tested on the API's
//! documented shapes.
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One series of an instant vector: its labels (`__name__` included when the query kept
/// it) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, k: &str) -> &str {
        self.labels.get(k).map_or("", |v| v.as_str())
    }
}

/// An instant query's answer: the evaluation time (Prometheus's clock, Unix seconds) and
/// the series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub at: f64,
    pub samples: Vec<Sample>,
}

/// The API's envelope (https://prometheus.io/docs/prometheus/latest/querying/api/).
#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    /// `[unix_time, "value"]`
    value: (f64, String),
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
            env.error_type.unwrap_or_default(),
            env.error.unwrap_or_default()
        ));
    }
    let data = env
        .data
        .ok_or("the answer has status success but no data")?;
    match data.result_type.as_str() {
        "vector" => {
            let items: Vec<VectorItem> = serde_json::from_value(data.result)
                .map_err(|e| format!("unexpected vector in the answer: {e}"))?;
            let mut at = 0.0;
            let samples = items
                .into_iter()
                .map(|i| {
                    at = i.value.0;
                    Sample {
                        labels: i.metric,
                        // Prometheus writes NaN, +Inf, -Inf as such; Rust parses all three
                        value: i.value.1.parse().unwrap_or(f64::NAN),
                    }
                })
                .collect();
            Ok(Answer { at, samples })
        }
        "scalar" => {
            let (t, v): (f64, String) = serde_json::from_value(data.result)
                .map_err(|e| format!("unexpected scalar in the answer: {e}"))?;
            Ok(Answer {
                at: t,
                samples: vec![Sample {
                    labels: BTreeMap::new(),
                    value: v.parse().unwrap_or(f64::NAN),
                }],
            })
        }
        other => Err(format!(
            "the answer is a {other}, where an instant vector was asked for"
        )),
    }
}

/// A Prometheus server's query API.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl Client {
    /// `url`: the server's base URL as its users open it (`http://prom:9090`, or with a
    /// path prefix behind a proxy: `http://proxy/prometheus`). `bearer`: a token sent as
    /// `Authorization: Bearer`, for a server behind an authenticating proxy.
    pub fn new(url: &str, timeout: Duration, bearer: Option<String>) -> Result<Client> {
        let base = url.trim_end_matches('/').to_string();
        if base.starts_with("https://") {
            return Err(Error::Usage(format!(
                "--prometheus {url}: this build of cro speaks plain HTTP only; point it at \
                 Prometheus's own http:// listener or a local TLS-terminating proxy"
            )));
        }
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            return Err(Error::Usage(format!(
                "--prometheus {url}: not an http:// URL (for example http://prometheus:9090)"
            )));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(format!("cro/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client {
            base,
            agent,
            authorization: bearer.map(|t| format!("Bearer {}", t.trim())),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// One instant query, evaluated at the server's now.
    pub fn query(&self, promql: &str) -> Result<Answer> {
        let url = format!("{}/api/v1/query", self.base);
        let fail = |why: String| Error::Runtime(format!("Prometheus at {}: {why}", self.base));
        let mut req = self.agent.get(&url).query("query", promql);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req
            .call()
            .map_err(|e| fail(format!("cannot reach it: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .map_err(|e| fail(format!("the answer broke off: {e}")))?;
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
        parse_answer(&body).map_err(|why| fail(format!("query {promql:?}: {why}")))
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
        assert!(Client::new("http://127.0.0.1:9090/", t, None).is_ok());
        assert_eq!(
            Client::new("http://p/prom/", t, None).unwrap().base(),
            "http://p/prom"
        );
        for bad in ["prometheus:9090", "https://p:9090", "http://", "ftp://x"] {
            let e = Client::new(bad, t, None).err().unwrap().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
