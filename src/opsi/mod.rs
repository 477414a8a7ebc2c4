//! Knowledge of an opsi server: where its files are ([`OpsiRoot`]), its backend configuration
//! files ([`pyconf`], [`backends`]), the dispatch configuration ([`dispatch`]) and the system
//! information recorded in an archive's `CONTROL/sysinfo` ([`SysInfo`]).

pub mod pyconf;
pub mod root;

pub use pyconf::{parse_conf, ParseError, PyConf, PyValue};
pub use root::OpsiRoot;
