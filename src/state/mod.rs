//! What cro keeps on disk and how it is kept: the job queue and its locks, the append-only
//! history, the host claim, the owned-mount registry, and atomic publishing (temp file,
//! rename, directory sync) with the ownership checks root needs.
pub mod claim;
pub mod desired_file;
pub mod env_file;
pub mod fsutil;
pub mod history;
pub mod jobs;
pub mod owned;
pub mod window_cache;
