//! opsi-backup: a drop-in replacement for opsi's `opsi-backup` built on a content-addressed,
//! deduplicating repository. The binary in `main.rs` is a thin shell around `cli`.
//!
//! Data flows as a stream of [`member::Member`]s from a source into a [`sink::MemberSink`]:
//! - `opsi`: knowledge of an opsi server (paths, backend configs, dispatch.conf, sysinfo);
//! - `source`: members from the server (configuration, file backend, dhcp);
//! - `mysql`: the MySQL backend (mysqldump out, mysql in);
//! - `archive`: the opsi-backup tar format, writer and reader;
//! - `store`: the deduplicating repository;
//! - `parent`: the parent snapshot, between a source and the repository (unchanged files);
//! - `restore`: safe writing of members back onto a server;
//! - `owners`, `durable`: ground shared by sources, archive and restore (user and group names
//!   by id, fsync of a directory after a rename).

pub(crate) mod archive;
pub mod cli;
pub(crate) mod diff;
pub(crate) mod durable;
pub mod error;
mod fail_points;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod layout;
pub mod leftovers;
pub(crate) mod logging;
pub mod member;
pub mod mysql;
pub(crate) mod opsi;
pub mod opsiconfd;
pub(crate) mod owners;
pub mod parent;
pub mod rename;
pub(crate) mod restore;
pub mod retention;
pub(crate) mod settings;
pub mod sink;
pub(crate) mod source;
pub mod store;

pub use error::{Error, Result};
