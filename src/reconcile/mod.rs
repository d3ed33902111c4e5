//! The loop that applies decisions to the host: one tick (sense, decide, write jobs, start
//! workers, append history), the daemon that runs ticks on a timer and on changes of the
//! desired file, and recovery after a crash or on request.
pub mod daemon;
pub mod recover;
pub mod tick;
