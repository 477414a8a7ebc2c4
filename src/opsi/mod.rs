//! Knowledge of an opsi server: where its files are ([`root::OpsiRoot`]), its backend configuration
//! files ([`backends`], evaluated by the `pyconf` crate), the dispatch configuration ([`dispatch`]) and the system
//! information recorded in an archive's `CONTROL/sysinfo` ([`sysinfo::SysInfo`]).

pub(crate) mod backends;
pub(crate) mod config_server;
pub(crate) mod confined;
pub(crate) mod data_dirs;
pub(crate) mod dispatch;
pub(crate) mod host_id;
pub(crate) mod root;
pub(crate) mod sysinfo;
