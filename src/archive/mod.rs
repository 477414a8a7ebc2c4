//! The opsi-backup archive: a tar stream (bzip2, gzip or plain) of `CONTENT/...` members
//! followed by `CONTROL/checksums` and `CONTROL/sysinfo`.

pub mod archive_file;
pub mod codec;
pub mod compression;
pub mod control;
pub mod naming;
pub mod parallel;
pub mod rechecked;
pub mod scan;
pub mod segment_cache;
pub mod tar_header;
pub mod tar_reader;
pub mod tar_writer;
