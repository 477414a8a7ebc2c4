//! Knowledge of an opsi server: where its files are ([`OpsiRoot`]), its backend configuration
//! files ([`backends`], evaluated by the `pyconf` crate), the dispatch configuration ([`dispatch`]) and the system
//! information recorded in an archive's `CONTROL/sysinfo` ([`SysInfo`]).

pub mod backends;
pub mod dispatch;
pub mod root;
pub mod sysinfo;

pub use backends::{
    load_backends, BackendConfig, BackendKind, BackendSet, MysqlSettings, Selection,
};
pub use dispatch::DispatchConfig;
pub use root::OpsiRoot;
pub use sysinfo::{Difference, SysInfo};
