//! Decisions, with no I/O: the desired state and its validation, the window statistics,
//! the policy that turns a window into a level, the plan that turns levels into jobs, and
//! the simulator's model of a host. Nothing here reads a file, a clock or /proc; callers
//! pass observations and the time in.
pub mod cost;
pub mod desired;
pub mod job;
pub mod legacy_env;
pub mod levels;
pub mod observation;
pub mod plan;
pub mod policy;
pub mod record;
pub mod search;
pub mod simulate;
pub mod slot;
pub mod window;
