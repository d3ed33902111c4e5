//! `cro fleet`: every host's compliance, read from the Prometheus that already scrapes
//! cro's metrics (textfile or `cro serve`). cro grows no fleet server of its own:
//! Prometheus, federated or remote-written where fleets are large, is the store.
//!
//! Three instant queries however many hosts there are (`view::*_QUERY`); `prometheus`
//! speaks the HTTP API, `view` turns the answers into hosts sorted worst first, and
//! `output::fleet` prints them (text, JSON, one HTML file).
pub mod prometheus;
pub mod view;

use crate::error::Result;

/// Ask Prometheus and build the view.
pub fn fetch(client: &prometheus::Client, rules: view::Rules) -> Result<view::Fleet> {
    let mut metrics = client.query(view::METRICS_QUERY)?;
    let seen = client.query(view::SEEN_QUERY)?;
    let up = client.query(view::UP_QUERY)?;
    // An empty vector carries no evaluation time: with no series at all, say when by
    // our own clock (not 1970).
    if [metrics.at, seen.at, up.at].iter().all(|t| *t == 0.0) {
        metrics.at = crate::timefmt::now_unix();
    }
    Ok(view::build(client.base(), &metrics, &seen, &up, rules))
}
