//! `cro fleet` against a real Prometheus (Debian's prometheus package; CI installs it)
//! scraping several `cro serve` instances, each with its own recorded history and desired
//! state. No load: every host is paused, the window statistics come from the histories.
mod common;
use common::*;
use std::time::Duration;

fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// The scrape configuration both stores read: `targets` every second.
fn scrape_config(targets: &[&str]) -> String {
    format!(
        "global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: cro\n    static_configs:\n      - targets: [{}]\n",
        targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/prometheus-rules.yml");

fn installed(program: &str, version_flag: &str, package: &str) {
    let ok = std::process::Command::new(program)
        .arg(version_flag)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{program} not found: apt-get install {package} (CI does)"
    );
}

fn start(program: &str, args: &[String], addr: &str) -> Daemon {
    let d = Daemon(
        std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(
        Duration::from_secs(30),
        &format!("{program} to listen"),
        || std::net::TcpStream::connect(addr).ok(),
    );
    d
}

/// A store of metrics scraping `targets` every second with examples/prometheus-rules.yml
/// evaluated every second: its servers (stopped when dropped) and its query URL.
type Store = fn(&Env, &[&str]) -> (Vec<Daemon>, String);

/// Prometheus on a free loopback port (Debian's prometheus package).
fn prometheus(e: &Env, targets: &[&str]) -> (Vec<Daemon>, String) {
    installed("prometheus", "--version", "prometheus");
    let dir = e.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        scrape_config(targets)
            .replacen("1s }", "1s, evaluation_interval: 1s }", 1)
            .replacen(
                "scrape_configs:",
                &format!("rule_files: ['{RULES}']\nscrape_configs:"),
                1,
            ),
    )
    .unwrap();
    let addr = free_addr();
    let server = start(
        "prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={addr}"),
        ],
        &addr,
    );
    (vec![server], format!("http://{addr}"))
}

/// VictoriaMetrics (Debian's victoria-metrics package): the single-node server scraping,
/// vmalert evaluating the recording rules against it and writing the results back.
fn victoria_metrics(e: &Env, targets: &[&str]) -> (Vec<Daemon>, String) {
    installed("victoria-metrics", "-version", "victoria-metrics");
    let dir = e.path().join("victoria-metrics");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("scrape.yml");
    std::fs::write(&config, scrape_config(targets)).unwrap();
    let addr = free_addr();
    let url = format!("http://{addr}");
    let server = start(
        "victoria-metrics",
        &[
            format!("-httpListenAddr={addr}"),
            format!("-storageDataPath={}", dir.join("data").display()),
            format!("-promscrape.config={}", config.display()),
            // answer from the newest samples (the default looks 30 s back) and cache
            // nothing: the test reads what was scraped a second ago
            "-search.latencyOffset=0s".into(),
            "-search.disableCache".into(),
        ],
        &addr,
    );
    let alert_addr = free_addr();
    let rules = start(
        "vmalert",
        &[
            format!("-rule={RULES}"),
            format!("-datasource.url={url}"),
            format!("-remoteWrite.url={url}"),
            "-evaluationInterval=1s".into(),
            format!("-httpListenAddr={alert_addr}"),
        ],
        &alert_addr,
    );
    (vec![rules, server], url)
}

/// A host: its desired state and `days` of history at `cpu_total` % (of which
/// `cpu_synthetic` cro's), reconciled once, then served.
fn host(desired: &str, days: usize, cpu_total: f64, cpu_synthetic: f64) -> (Env, Daemon, String) {
    let e = Env::new();
    e.desired(desired);
    e.write_history(
        days * 288,
        300.0,
        &format!(
            r#""cpu":{{"total":{cpu_total},"synthetic":{cpu_synthetic},"level":{cpu_total},"target":25.0}}"#
        ),
    );
    let (server, addr) = serve_idle_as_is(&e);
    (e, server, addr)
}

const PAUSED: &str = r#"{"version":1,"paused":true,"window_days":3,"cpu":{"target_percent":25},"memory":{"enabled":false},"disk":{"enabled":false}}"#;

#[test]
fn fleet_view_from_a_real_prometheus_scraping_cro_serve() {
    fleet_view_from(prometheus);
}

#[test]
fn fleet_view_from_victoria_metrics_scraping_cro_serve_with_vmalert() {
    fleet_view_from(victoria_metrics);
}

/// Four hosts, one in each state, served by `cro serve` and scraped by `store`: the view
/// (text, JSON, HTML), the recording rules' counts, the view from the recorded series the
/// same as from the raw ones, and every Grafana panel's query.
fn fleet_view_from(store: Store) {
    // compliant: 30 % over the window, 20 points of it synthetic
    let (_a, _sa, a) = host(PAUSED, 3, 30.0, 20.0);
    // at risk: 22 % over the first two days, the policy can make it up on the third
    let (_b, _sb, b) = host(PAUSED, 2, 22.0, 0.0);
    // not on track: 60 % wanted, 1 % of synthetic CPU allowed
    let (_c, _sc, c) = host(
        &PAUSED.replace(
            r#""target_percent":25"#,
            r#""target_percent":60,"max_synthetic_percent":1"#,
        ),
        3,
        10.0,
        0.0,
    );
    // not reconciling: its desired state became invalid after the last pass
    let (d_env, _sd, d) = host(PAUSED, 3, 30.0, 0.0);
    std::fs::write(d_env.desired_path(), "{\"version\":1,").unwrap();
    let p_env = Env::new();
    let (_store, url) = store(&p_env, &[&a, &b, &c, &d]);

    // Prometheus needs a scrape or two of each
    let fleet = wait_for_or(
        Duration::from_secs(60),
        || {
            let r = p_env.run(&["fleet", "--prometheus", &url, "--json"]);
            (r.code == 0).then_some(())?;
            let f = r.json();
            let hosts = f["hosts"].as_array()?;
            // Every host's series in: its config state, and for a valid config each
            // resource's compliance (VictoriaMetrics shows vmalert's recorded series a
            // few seconds apart, and a view of half of them calls every host at risk).
            let complete = hosts.len() == 4
                && hosts.iter().all(|h| {
                    let valid = h["config_valid"].as_bool();
                    h["resources"].as_array().is_some_and(|r| {
                        !r.is_empty()
                            && (valid == Some(false)
                                || valid == Some(true)
                                    && r.iter().all(|x| !x["compliant"].is_null()))
                    })
                });
            complete.then_some(f)
        },
        || {
            let r = p_env.run(&["fleet", "--prometheus", &url, "--json"]);
            format!("4 hosts in the fleet view: {} {}", r.stdout, r.stderr)
        },
    );
    let hosts = fleet["hosts"].as_array().unwrap();
    let order: Vec<(&str, &str)> = hosts
        .iter()
        .map(|h| {
            (
                h["instance"].as_str().unwrap(),
                h["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (c.as_str(), "not on track"),
            (d.as_str(), "not reconciling"),
            (b.as_str(), "at risk"),
            (a.as_str(), "compliant"),
        ],
        "worst first: {fleet:#}"
    );
    let good = &hosts[3];
    assert_eq!(good["up"], true);
    assert_eq!(good["config_valid"], true);
    let cpu = &good["resources"][0];
    assert_eq!(cpu["resource"], "cpu");
    assert_eq!(cpu["target_percent"], 25.0);
    assert_eq!(cpu["statistic"], "mean");
    let w = cpu["window_percent"].as_f64().unwrap();
    assert!((29.0..=30.5).contains(&w), "window {w}: {cpu}");
    // 20 % of this machine's CPUs for 3 days
    let cpus = std::thread::available_parallelism().unwrap().get() as f64;
    let cost = cpu["cost"]["amount"].as_f64().unwrap();
    let want = 0.20 * cpus * 72.0;
    assert!(
        (cost - want).abs() < want * 0.05,
        "cost {cost} core-hours, want about {want}: {cpu}"
    );
    assert_eq!(cpu["cost"]["unit"], "cpu-core-hours");
    assert!(
        hosts[1]["problems"][0]
            .as_str()
            .unwrap()
            .contains("desired state is invalid"),
        "{}",
        hosts[1]
    );
    assert_eq!(fleet["hosts_by_state"]["hosts"], 4);
    assert_eq!(fleet["resources"]["cpu"]["at risk"], 1);
    // the text table and the HTML file say the same, worst first
    let text = p_env.ok(&["fleet", "--prometheus", &url]).stdout;
    let first = text.lines().find(|l| l.starts_with("127.0.0.1")).unwrap();
    assert!(
        first.starts_with(&c) && first.contains("not on track"),
        "{text}"
    );
    assert!(
        text.starts_with("4 hosts in http://")
            && text.contains("1 not on track, 1 not reconciling, 1 at risk, 1 compliant"),
        "{text}"
    );
    let limited = p_env
        .ok(&["fleet", "--prometheus", &url, "--limit", "1"])
        .stdout;
    assert!(limited.contains("... and 3 more host(s)"), "{limited}");
    let html = p_env.path().join("fleet.html");
    p_env.ok(&[
        "fleet",
        "--prometheus",
        &url,
        "--html",
        html.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(html).unwrap();
    let pos = |s: &str| {
        html.find(s)
            .unwrap_or_else(|| panic!("{s} not in the HTML"))
    };
    assert!(pos(&c) < pos(&d) && pos(&d) < pos(&b) && pos(&b) < pos(&a));
    for bad in ["<script", "<link", "<img", "src=", "href="] {
        assert!(!html.contains(bad), "the fleet report loads nothing: {bad}");
    }
    // the recording rules (examples/prometheus-rules.yml, loaded by this Prometheus)
    // count the hosts per state as the view does
    let client = cro::fleet::prometheus::Client::new(
        &url,
        Duration::from_secs(10),
        None,
        cro::fleet::prometheus::Roots::Mozilla,
    )
    .unwrap();
    let nonzero = fleet["resources"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|c| c.as_object().unwrap().iter())
        .filter(|(k, v)| *k != "hosts" && v.as_u64() != Some(0))
        .count();
    let recorded = wait_for_or(
        Duration::from_secs(30),
        || {
            let a = client.query("resource_state:cro_hosts:count").unwrap();
            (a.samples.len() == nonzero).then_some(a)
        },
        || {
            format!(
                "the recording rules: {:?}",
                client.query("{__name__=~\"resource_state.*|instance.*\"}")
            )
        },
    );
    for s in &recorded.samples {
        let state = s.label("state");
        assert_eq!(
            s.value,
            fleet["resources"][s.label("resource")][state]
                .as_f64()
                .unwrap(),
            "{state}: {recorded:?}"
        );
    }
    // the view from the series recorded for it (group cro-fleet-view) is the view from the
    // raw series: the same hosts, states, problems and figures. The two answers are a
    // moment apart (and a rule's result a round behind), so what changes from second to
    // second may differ a little: the age of the last pass, and the utilization now,
    // measured on this machine. examples/prometheus-rules.test.yml and bench/fleet.sh
    // (static data) compare those exactly.
    let view = |source: &str| {
        let r = p_env.run(&["fleet", "--prometheus", &url, "--json", "--source", source]);
        if r.code != 0 {
            return (serde_json::json!({"error": r.stderr}), vec![]);
        }
        let mut f = r.json();
        assert_eq!(f["source"], source, "{}", r.stdout);
        let o = f.as_object_mut().unwrap();
        o.remove("source");
        o.remove("evaluated_at");
        let mut moving = vec![];
        for h in o["hosts"].as_array_mut().unwrap() {
            moving.push(h["last_pass_age_s"].take().as_f64());
            for r in h["resources"].as_array_mut().unwrap() {
                moving.push(r["organic_percent"].take().as_f64());
                moving.push(r["synthetic_percent"].take().as_f64());
            }
        }
        (f, moving)
    };
    wait_for_or(
        Duration::from_secs(30),
        || {
            let (recorded, rec_moving) = view("recorded");
            let (raw, raw_moving) = view("raw");
            // seconds, or percentage points
            let close = rec_moving.len() == raw_moving.len()
                && rec_moving
                    .iter()
                    .zip(&raw_moving)
                    .all(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => (a - b).abs() <= 5.0,
                        (a, b) => a == b,
                    });
            (recorded == raw && close).then_some(())
        },
        || {
            let (recorded, _) = view("recorded");
            let (raw, _) = view("raw");
            let text = p_env.run(&["fleet", "--prometheus", &url]).stdout;
            format!("the recorded view\n{recorded:#}\nis not the raw view\n{raw:#}\n{text}")
        },
    );
    // auto reads the recorded series, and says where the time went when asked
    let r = p_env.ok(&["fleet", "--prometheus", &url, "--json", "--timings"]);
    assert_eq!(r.json()["source"], "recorded", "{}", r.stdout);
    assert!(
        r.stderr.contains("server") && r.stderr.contains("cro's own CPU"),
        "{}",
        r.stderr
    );
    // every query of the Grafana dashboard is valid PromQL on this Prometheus, and the
    // fleet row's (the recorded series above, the worst hosts) have data
    let dash = grafana_dashboard();
    let mut fleet_row = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap().replace("$instance", ".*");
            let a = client
                .query(&expr)
                .unwrap_or_else(|e| panic!("panel {:?}: {e}", panel["title"]));
            if (21..=23).contains(&panel["id"].as_i64().unwrap()) {
                assert!(!a.samples.is_empty(), "panel {:?}: no data", panel["title"]);
                fleet_row += 1;
            }
        }
    }
    assert_eq!(fleet_row, 4, "the fleet row's four queries");
}

#[test]
fn fleet_names_a_url_that_is_not_prometheus() {
    let e = Env::new();
    // nobody listens there: a loopback address no test binds (a free port on 127.0.0.1
    // can be taken by another test's server between our look and our call)
    let nobody = free_addr().replace("127.0.0.1:", "127.0.0.77:");
    let r = e.run(&["fleet", "--prometheus", &format!("http://{nobody}")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&nobody) && r.stderr.contains("cannot reach it"),
        "{}",
        r.stderr
    );
    // cro's own dashboard is not Prometheus
    let (_server, addr) = serve_idle(&e);
    let r = e.run(&["fleet", "--prometheus", &format!("http://{addr}")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&addr) && r.stderr.contains("is this the Prometheus server's URL?"),
        "{}",
        r.stderr
    );
    // a Prometheus that scrapes no cro: zero hosts, said plainly, at today's date
    let (_prom, url) = prometheus(&e, &[]);
    let r = e.ok(&["fleet", "--prometheus", &url]);
    assert!(
        r.stdout.starts_with(&format!("0 hosts in {url} at 20"))
            && r.stdout.contains("none exports cro metrics"),
        "{}",
        r.stdout
    );
    // a URL that is not http://
    let r = e.run(&["fleet", "--prometheus", "prometheus:9090"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("not an http:// or https:// URL"),
        "{}",
        r.stderr
    );
    // --at: a time the store can be asked about, or exit 2 naming it
    let r = e.run(&["fleet", "--prometheus", &url, "--at", "yesterday"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--at \"yesterday\""), "{}", r.stderr);
    let r = e.ok(&[
        "fleet",
        "--prometheus",
        &url,
        "--json",
        "--at",
        "2026-01-01T00:00:00Z",
    ]);
    assert_eq!(
        r.json()["evaluated_at"],
        "2026-01-01T00:00:00Z",
        "{}",
        r.stdout
    );
    // a timeout that does not fit is a usage error, not a panic
    let r = e.run(&[
        "fleet",
        "--prometheus",
        &url,
        "--timeout",
        "99999999999999999999s",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--timeout"), "{}", r.stderr);
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost, made with openssl.
fn test_ca(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let sh = |script: &str| {
        let o = std::process::Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cro-test-ca -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext
        openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out srv.pem 2>/dev/null");
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

/// nginx terminating TLS on a free loopback port in front of `upstream` (http://ADDR).
fn tls_proxy(
    e: &Env,
    upstream: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (Daemon, String) {
    let dir = e.path().join("nginx");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let addr = free_addr();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/logs/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};
  server {{ listen {addr} ssl; ssl_certificate {c}; ssl_certificate_key {k};
    location / {{ proxy_pass {upstream}; }} }} }}\n",
            d = dir.display(),
            c = cert.display(),
            k = key.display(),
        ),
    )
    .unwrap();
    let server = Daemon(
        std::process::Command::new("nginx")
            .args(["-c", conf.to_str().unwrap(), "-p", dir.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx (apt-get install nginx-light; tests/run.sh does)"),
    );
    wait_for(Duration::from_secs(10), "nginx to listen", || {
        std::net::TcpStream::connect(&addr).ok()
    });
    (server, addr)
}

/// Issue 24, 4: `cro fleet` reads a Prometheus behind TLS, checks the certificate (a CA it
/// was not told of is refused, naming the fix), and gives the same view as over plain HTTP.
#[test]
fn fleet_reads_prometheus_over_https_and_checks_its_certificate() {
    let (_h, _hs, target) = host(PAUSED, 1, 30.0, 0.0);
    let e = Env::new();
    let (_prom, url) = prometheus(&e, &[&target]);
    let certs = e.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (ca, cert, key) = test_ca(&certs);
    let (_nginx, tls_addr) = tls_proxy(&e, &url, &cert, &key);
    let https = format!("https://{tls_addr}");
    wait_for(
        Duration::from_secs(30),
        "prometheus to scrape the host",
        || {
            let r = e.run(&["fleet", "--prometheus", &url, "--json"]);
            (r.code == 0 && r.json()["hosts"].as_array().is_some_and(|h| h.len() == 1))
                .then_some(())
        },
    );
    // trusted through --ca-file: the same hosts and states as over plain HTTP
    let plain = e.ok(&["fleet", "--prometheus", &url, "--json"]).json();
    let tls = e
        .ok(&[
            "fleet",
            "--prometheus",
            &https,
            "--ca-file",
            ca.to_str().unwrap(),
            "--json",
        ])
        .json();
    let view = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["instance"].to_string(), h["state"].to_string()))
            .collect()
    };
    assert_eq!(view(&plain), view(&tls));
    assert_eq!(tls["prometheus"].as_str(), Some(https.as_str()));
    // not trusted (the system's bundle does not know this CA): refused, with the fix
    let r = e.run(&["fleet", "--prometheus", &https]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("certificate") && r.stderr.contains("--ca-file"),
        "{}",
        r.stderr
    );
    // a CA file with no certificate in it is a usage error
    let r = e.run(&[
        "fleet",
        "--prometheus",
        &https,
        "--ca-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
}

/// A one-shot HTTP server on a free port that answers every request with `answer(path)`;
/// the thread ends when the test drops the listener's address (it serves `n` requests).
fn fake_prometheus(n: usize, answer: fn(&str) -> Vec<u8>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for c in l.incoming().take(n) {
            let Ok(mut c) = c else { continue };
            let mut r = std::io::BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let path = line.split(' ').nth(1).unwrap_or("/").to_string();
            let _ = c.write_all(&answer(&path));
        }
    });
    format!("http://{addr}")
}

/// Issue 24, 4: a hostile or broken server in front of `cro fleet` (a man in the middle on
/// plain HTTP, a broken proxy): an answer over 64 MiB is refused without being read whole,
/// and label values and the server's error text reach the terminal with their control
/// characters escaped.
#[test]
fn fleet_caps_the_answer_and_escapes_what_the_server_says() {
    let e = Env::new();
    // 65 MiB of a JSON answer that never ends
    let big = fake_prometheus(8, |_| {
        let mut b = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 68157440\r\n\r\n{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[".to_vec();
        b.resize(65 << 20, b' ');
        b
    });
    let r = e.run(&["fleet", "--prometheus", &big]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("larger than 64 MiB"), "{}", r.stderr);
    // escape sequences in labels and in the error text
    let evil = fake_prometheus(10, |path| {
        let body = if path.contains("cro_") && !path.contains("max_over_time") {
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"cro_target_ratio","instance":"web1\u001b]0;pwned\u0007\u001b[2J","resource":"cpu","statistic":"mean"},"value":[1700000000,"0.25"]}]}}"#.to_string()
        } else {
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.to_string()
        };
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let r = e.ok(&["fleet", "--prometheus", &evil]);
    assert!(
        !r.stdout.contains('\u{1b}') && !r.stdout.contains('\u{7}'),
        "raw control characters: {:?}",
        r.stdout
    );
    assert!(r.stdout.contains("web1\\u{1b}]0;pwned"), "{}", r.stdout);
    let refusing = fake_prometheus(8, |_| {
        let body =
            r#"{"status":"error","errorType":"bad_data\u001b[31m","error":"no\u001b]0;x\u0007"}"#;
        format!("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    });
    let r = e.run(&["fleet", "--prometheus", &refusing]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        !r.stderr.contains('\u{1b}') && r.stderr.contains("bad_data\\u{1b}[31m"),
        "{:?}",
        r.stderr
    );
}
