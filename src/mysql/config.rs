//! Connection settings of one MySQL backend, as read from opsi's `mysql.conf`
//! (`opsi::backends` reads them into this type).

use std::ffi::OsString;
use std::fmt;

/// Where a MySQL backend lives and how to log in. Built from the backend's `mysql.conf`
/// (`address`, `database`, `username`, `password`).
#[derive(Clone, PartialEq, Eq)]
pub struct MysqlConfig {
    /// Host name, or the server's socket path when it starts with `/`.
    pub address: String,
    pub database: String,
    pub username: String,
    pub password: String,
}

impl MysqlConfig {
    /// The client argument that selects the server: `--socket=` for paths, `--host=` otherwise
    /// (the original's rule; an empty address gives `--host=`, i.e. the client's default).
    pub(crate) fn address_arg(&self) -> OsString {
        if self.address.starts_with('/') {
            format!("--socket={}", self.address).into()
        } else {
            format!("--host={}", self.address).into()
        }
    }

    /// Whether the server is on this machine: a socket path, `localhost` (the client's socket),
    /// the client's default (an empty address) or a loopback address. Only such a server is
    /// let ask the client for a local file (`LOAD DATA LOCAL INFILE`): the protocol lets the
    /// server name any file, and a server elsewhere (or whoever sits between) could read the
    /// restoring root's files.
    pub(crate) fn is_local(&self) -> bool {
        let a = self.address.trim();
        a.is_empty()
            || a.starts_with('/')
            || a.eq_ignore_ascii_case("localhost")
            || a.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

// Hand-written so that logging a config (or an error holding one) never shows the password.
impl fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("address", &self.address)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(address: &str) -> MysqlConfig {
        MysqlConfig {
            address: address.into(),
            database: "opsi".into(),
            username: "opsi".into(),
            password: "s3cr3t-pw".into(),
        }
    }

    #[test]
    fn debug_hides_password() {
        let text = format!("{:?} {:#?}", cfg("localhost"), cfg("localhost"));
        assert!(!text.contains("s3cr3t-pw"), "{text}");
        assert!(text.contains("localhost"));
    }

    #[test]
    fn socket_or_host() {
        assert_eq!(
            cfg("/run/mysqld/mysqld.sock").address_arg(),
            "--socket=/run/mysqld/mysqld.sock"
        );
        assert_eq!(cfg("db.example.org").address_arg(), "--host=db.example.org");
    }

    #[test]
    fn local_servers() {
        for local in [
            "/run/mysqld/mysqld.sock",
            "localhost",
            "LOCALHOST",
            "",
            "127.0.0.1",
            "::1",
        ] {
            assert!(cfg(local).is_local(), "{local}");
        }
        for remote in [
            "db.example.org",
            "10.0.0.5",
            "localhost.example.org",
            "127.0.0.1.nip.io",
        ] {
            assert!(!cfg(remote).is_local(), "{remote}");
        }
    }
}
