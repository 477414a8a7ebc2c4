//! Knowledge of an opsi server: where its files are ([`root::OpsiRoot`]), its backend configuration
//! files ([`backends`], evaluated by the `pyconf` crate), the dispatch configuration ([`dispatch`]) and the system
//! information recorded in an archive's `CONTROL/sysinfo` ([`sysinfo::SysInfo`]).

pub mod backends;
pub mod dispatch;
pub mod root;
pub mod sysinfo;
