//! The opsi-backup archive: a tar stream (bzip2, gzip or plain) of `CONTENT/...` members
//! followed by `CONTROL/checksums` and `CONTROL/sysinfo`.

pub(crate) mod archive_file;
pub(crate) mod codec;
pub(crate) mod compression;
pub(crate) mod control;
pub(crate) mod data_tars;
pub(crate) mod naming;
pub(crate) mod parallel;
pub(crate) mod pax_xattrs;
pub(crate) mod rechecked;
pub(crate) mod scan;
pub(crate) mod segment_cache;
pub(crate) mod tar_header;
pub(crate) mod tar_reader;
pub(crate) mod tar_writer;
