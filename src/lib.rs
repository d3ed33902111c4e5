//! cro: keep a host's utilization at an operator-set floor with synthetic load that only
//! fills the gap real work leaves. See DESIGN.md for the vocabulary and the contract.
pub mod apply;
pub mod audit;
pub mod ballast;
pub mod cli;
pub mod daemon;
pub mod desired;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod history;
pub mod host;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod policy;
pub mod procs;
pub mod queue;
pub mod recover;
pub mod report;
pub mod run;
pub mod serve;
pub mod simulate;
pub mod timefmt;
pub mod window;
pub mod worker;
