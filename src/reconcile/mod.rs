//! The loop that applies decisions to the host: one tick (`tick`: prepare a pass, carry
//! its plan out, append the history record) against a `World`; `ThisHost` (`host`) is
//! that world on a real host; the daemon runs ticks on a timer and on changes of the
//! desired file; `recover` undoes everything after a crash or on request.
pub mod daemon;
pub mod legacy_procs;
pub mod recover;
pub mod sense;
pub mod this_host;
pub mod tick;
