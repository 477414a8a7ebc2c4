//! Restore: members written back onto a server, verified before anything is touched and
//! swapped in only when complete.

pub mod restorer;
pub mod safe_path;
pub mod staging;
