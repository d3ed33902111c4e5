//! `cro fleet`: every host's compliance, read from the Prometheus that already scrapes
//! cro's metrics (textfile or `cro serve`). cro grows no fleet server of its own:
//! Prometheus (federated or remote-written where fleets are large) or VictoriaMetrics is the
//! store.
//!
//! A handful of instant queries however many hosts there are, asked at once: the series
//! the recording rules keep for the view (`view::RECORDED_QUERIES`, 13 a host with one
//! disk, beside the raw last pass) where they cover every host, else every raw cro series
//! (`view::RAW_QUERIES`, 38 a host). `prometheus` speaks the HTTP API, `view` turns the
//! answers into hosts sorted worst first, and `output::fleet` prints them (text, JSON, one
//! HTML file).
pub mod prometheus;
pub mod view;

use crate::error::Result;
use std::time::Instant;

/// Which series `cro fleet` reads (`--source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The recorded series where they cover every live host, else the raw ones.
    Auto,
    /// Only the recorded series (an error where there are none).
    Recorded,
    /// Only the raw series.
    Raw,
}

/// How one query's time was spent.
#[derive(Debug, Clone)]
pub struct QueryTime {
    pub query: &'static str,
    /// From the request to the answer's last byte: the server's share (and the wire's).
    pub server_s: f64,
    /// Reading the answer into samples: cro's share, in CPU seconds of its thread (the
    /// wall time would count the moments the server held the CPU).
    pub parse_cpu_s: f64,
    pub bytes: usize,
    pub series: usize,
}

/// Where `cro fleet`'s time went (`--timings`).
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Every query, in the order asked; those of one round run side by side.
    pub queries: Vec<QueryTime>,
    /// Wall time of the query rounds.
    pub queries_s: f64,
    /// Reading the samples into hosts and judging them.
    pub judge_s: f64,
    /// Worst first.
    pub sort_s: f64,
}

/// The answers the view is built from: which series, the metrics, the gone hosts
/// (SEEN_QUERY) and the scrapes (UP_QUERY; empty with the recorded series, which carry it).
struct Answers {
    source: view::Source,
    metrics: Vec<prometheus::Answer>,
    seen: prometheus::Answer,
    up: prometheus::Answer,
}

/// Ask the server and build the view.
pub fn fetch(
    client: &prometheus::Client,
    rules: view::Rules,
    choice: Choice,
) -> Result<(view::Fleet, Timings)> {
    let mut t = Timings::default();
    let start = Instant::now();
    let a = match choice {
        Choice::Raw => ask_raw(client, None, &mut t)?,
        Choice::Auto | Choice::Recorded => ask_recorded(client, choice, &mut t)?,
    };
    t.queries_s = start.elapsed().as_secs_f64();
    let mut now = view::evaluated_at(&a.metrics, &a.seen, &a.up);
    // An empty vector carries no evaluation time: with no series at all, say when by our
    // own clock (not 1970).
    if now == 0.0 {
        now = client.at().unwrap_or_else(crate::timefmt::now_unix);
    }
    let start = Instant::now();
    let mut hosts = view::read(a.source, &a.metrics, &a.seen, &a.up, now);
    view::judge_all(&mut hosts, rules);
    t.judge_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    view::rank(&mut hosts);
    t.sort_s = start.elapsed().as_secs_f64();
    Ok((view::total(client.base(), a.source, now, hosts), t))
}

/// Every raw cro series and the scrapes, and the gone hosts unless `seen` has them.
fn ask_raw(
    client: &prometheus::Client,
    seen: Option<prometheus::Answer>,
    t: &mut Timings,
) -> Result<Answers> {
    let also: &[&'static str] = if seen.is_some() {
        &[view::UP_QUERY]
    } else {
        &[view::UP_QUERY, view::SEEN_QUERY]
    };
    let mut metrics = ask_all(client, &[&view::RAW_QUERIES[..], also].concat(), t)?;
    let seen = match seen {
        Some(s) => s,
        None => metrics.pop().expect("SEEN_QUERY's answer"),
    };
    let up = metrics.pop().expect("UP_QUERY's answer");
    Ok(Answers {
        source: view::Source::Raw,
        metrics,
        seen,
        up,
    })
}

/// The recorded series with the raw last pass, if they cover every host with cro metrics;
/// else (`Auto`) the raw series, or (`Recorded`) an error saying where the rules are
/// missing.
fn ask_recorded(client: &prometheus::Client, choice: Choice, t: &mut Timings) -> Result<Answers> {
    let mut metrics = ask_all(
        client,
        &[
            &view::RECORDED_QUERIES[..],
            &[view::SEEN_QUERY, view::LAST_PASS_QUERY],
        ]
        .concat(),
        t,
    )?;
    let last_pass = metrics.pop().expect("LAST_PASS_QUERY's answer");
    let seen = metrics.pop().expect("SEEN_QUERY's answer");
    match uncovered(&metrics, &last_pass) {
        0 => {
            metrics.push(last_pass);
            Ok(Answers {
                source: view::Source::Recorded,
                metrics,
                seen,
                up: prometheus::Answer::default(),
            })
        }
        n if choice == Choice::Recorded => Err(crate::error::Error::Runtime(format!(
            "Prometheus at {}: {n} host(s) with cro metrics have no recorded series for the \
             view: load examples/prometheus-rules.yml (group cro-fleet-view) where they are \
             scraped, or use --source raw",
            client.base()
        ))),
        n => {
            if !metrics.iter().all(|x| x.samples.is_empty()) {
                eprintln!(
                    "cro: {n} host(s) have no recorded series for the view (a server without \
                     examples/prometheus-rules.yml?); reading the raw series"
                );
            }
            ask_raw(client, Some(seen), t)
        }
    }
}

/// Hosts of `live` (LAST_PASS_QUERY) that no recorded answer names.
fn uncovered(recorded: &[prometheus::Answer], live: &prometheus::Answer) -> usize {
    let named: std::collections::HashSet<&str> = recorded
        .iter()
        .flat_map(|a| &a.samples)
        .map(|s| s.label("instance"))
        .collect();
    live.samples
        .iter()
        .filter(|s| !named.contains(s.label("instance")))
        .count()
}

/// The queries asked side by side (a server with several cores answers them at once, and
/// each answer is read as it arrives), their answers in the order asked.
fn ask_all(
    client: &prometheus::Client,
    queries: &[&'static str],
    t: &mut Timings,
) -> Result<Vec<prometheus::Answer>> {
    let results: Vec<Result<(prometheus::Answer, QueryTime)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .iter()
            .map(|&q| {
                scope.spawn(move || {
                    let start = Instant::now();
                    let body = client.ask(q)?;
                    let server_s = start.elapsed().as_secs_f64();
                    let cpu = crate::sys::cpu_seconds(true);
                    let answer = client.read(q, &body)?;
                    let time = QueryTime {
                        query: q,
                        server_s,
                        parse_cpu_s: crate::sys::cpu_seconds(true) - cpu,
                        bytes: body.len(),
                        series: answer.samples.len(),
                    };
                    Ok((answer, time))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a query thread panicked"))
            .collect()
    });
    let mut answers = Vec::with_capacity(results.len());
    for r in results {
        let (a, time) = r?;
        answers.push(a);
        t.queries.push(time);
    }
    Ok(answers)
}
