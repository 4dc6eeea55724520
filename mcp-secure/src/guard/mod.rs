//! The guards of the call pipeline, one per file, each small and testable alone. They are
//! composed, in order, in `server/pipeline.rs`.

pub mod approval;
pub mod authn;
pub mod authz;
pub mod concurrency;
pub mod output;
pub mod rate;
pub mod size;
pub mod timeout;
pub mod validate;
