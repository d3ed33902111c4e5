//! What people and scrapers read: `status` (text and JSON), the audit report (HTML),
//! Prometheus metrics, and the read-only HTTP server.
pub mod dashboard;
pub mod explain;
pub mod fleet;
pub mod metrics;
pub mod report;
pub mod serve;
pub mod status;
pub mod summary;
