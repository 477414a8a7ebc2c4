//! The MySQL backend: `mysqldump` out, `mysql` in, exactly as the original opsi-backup drives
//! the client tools (see `docs/OPSI-BACKUP-FACTS.md`, MySQL).
//!
//! - [`config`]: where the server is and who we are ([`MysqlConfig`]);
//! - [`defaults_file`]: the credentials, handed to the tools in a private option file;
//! - [`tools`]: finding and running `mysqldump` / `mysql`;
//! - [`sql`]: quoting of identifiers and strings for SQL we generate;
//! - [`dump`]: streaming a dump into a [`crate::sink::MemberSink`];
//! - [`prefetch`]: a dump started ahead of its turn, spooled while the files are backed up;
//! - [`restore`]: feeding a dump back, and running ad-hoc SQL;
//! - [`statements`], [`dump_shape`]: a dump cut into statements, and what they are;
//! - [`parallel_load`], [`load_worker`]: a dump loaded over several connections;
//! - [`load_data`]: rows of the dump's INSERTs as `LOAD DATA` reads them.

pub mod config;
pub mod defaults_file;
pub mod dump;
pub mod dump_shape;
pub mod load_data;
pub mod load_worker;
pub mod parallel_load;
pub mod prefetch;
pub mod restore;
pub mod sql;
pub mod statements;
pub mod tools;

pub use config::MysqlConfig;
pub use dump::{dump_into, Consistency, DumpOptions};
pub use prefetch::Prefetch;
pub use restore::{connections, restore_from, restore_with, run_sql};
pub use sql::{quote_identifier, quote_string};
