//! cro: keep a host's utilization at an operator-set floor with synthetic load that only
//! fills the gap real work leaves. See docs/DESIGN.md for the vocabulary and the contract, and
//! ARCHITECTURE.md for where each stage lives.
// Unsafe code lives in `sys` only (its one raw module says why each call is sound).
#![deny(unsafe_code)]
pub mod cli;
pub mod control;
pub mod error;
pub mod fault;
pub mod fleet;
pub mod format;
pub mod fuzzing;
pub mod observe;
pub mod output;
pub mod reconcile;
pub mod state;
#[allow(unsafe_code)]
pub mod sys;
pub mod timefmt;
pub mod worker;
