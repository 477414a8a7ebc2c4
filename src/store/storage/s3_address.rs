//! The address of a repository on S3-compatible object storage, as restic spells it:
//! `s3:http(s)://host[:port]/bucket[/prefix]`, and what else is needed to reach it
//! (credentials, region, URL style). Credentials never come from the address: they come from
//! the environment or the settings file (see `cli/repo.rs`).

use std::fmt;
use std::net::IpAddr;

use url::Url;

use crate::error::{Error, Result};

/// Where a repository lies in a bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Address {
    /// `http(s)://host[:port]`, nothing after.
    pub endpoint: Url,
    pub bucket: String,
    /// The folder of the repository in the bucket, without slashes at either end; may be empty.
    pub prefix: String,
}

/// How to reach the server; secrets never appear in `Debug`.
#[derive(Clone)]
pub struct S3Options {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    /// Virtual-host style (`bucket.host/key`) instead of path style (`host/bucket/key`).
    pub virtual_host: bool,
    /// Plain http to a host that is not a loopback address.
    pub allow_http: bool,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .field("region", &self.region)
            .field("virtual_host", &self.virtual_host)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3Address {
    /// Whether `s` is meant as an S3 address (it may still be malformed).
    pub fn is_s3(s: &str) -> bool {
        s.starts_with("s3:")
    }

    pub fn parse(s: &str) -> Result<S3Address> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "{s:?} is not an S3 repository address ({why}); the form is \
                 s3:https://host[:port]/bucket[/prefix]"
            ))
        };
        let rest = s
            .strip_prefix("s3:")
            .ok_or_else(|| bad("no s3: in front"))?;
        // The URL parser would resolve `..` (another bucket, silently): refused first.
        if rest.split(['/', '?', '#']).any(|p| p == "." || p == "..") {
            return Err(bad("the path has a . or .. part"));
        }
        let url = Url::parse(rest).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad("only http and https are known"));
        }
        if url.host_str().is_none() {
            return Err(bad("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not belong in the address: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or [s3] in the settings file",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("no ? or # part is allowed"));
        }
        let path = url.path().trim_matches('/');
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..")
            || (!prefix.is_empty() && prefix.split('/').any(str::is_empty))
        {
            return Err(bad("the prefix has an empty, . or .. part"));
        }
        let mut endpoint = url.clone();
        endpoint.set_path("/");
        Ok(S3Address {
            endpoint,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// Whether the host is a loopback address (`localhost`, 127.0.0.0/8, ::1): plain http
    /// there never leaves the machine.
    pub fn is_loopback(&self) -> bool {
        match self.endpoint.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(a)) => IpAddr::V4(a).is_loopback(),
            Some(url::Host::Ipv6(a)) => IpAddr::V6(a).is_loopback(),
            None => false,
        }
    }

    /// Refuses plain http to a host that is not loopback unless `allow_http` is set: the
    /// credentials' signatures and the data would cross the network in the clear.
    pub fn check_transport(&self, allow_http: bool) -> Result<()> {
        if self.endpoint.scheme() == "http" && !self.is_loopback() && !allow_http {
            return Err(Error::Invalid(format!(
                "{self}: plain http to a host that is not this machine; use https, or set \
                 allow_http = true in [s3] of the settings file (OPSI_BACKUP_S3_ALLOW_HTTP=1) \
                 if the network is trusted"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for S3Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = self.endpoint.as_str().trim_end_matches('/');
        if self.prefix.is_empty() {
            write!(f, "s3:{base}/{}", self.bucket)
        } else {
            write!(f, "s3:{base}/{}/{}", self.bucket, self.prefix)
        }
    }
}

impl fmt::Debug for S3Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_restic_writes_them() {
        let a = S3Address::parse("s3:https://s3.example.org:9000/bkp/opsi/main").unwrap();
        assert_eq!(a.endpoint.as_str(), "https://s3.example.org:9000/");
        assert_eq!((a.bucket.as_str(), a.prefix.as_str()), ("bkp", "opsi/main"));
        assert_eq!(
            a.to_string(),
            "s3:https://s3.example.org:9000/bkp/opsi/main"
        );
        let b = S3Address::parse("s3:http://127.0.0.1:3900/b/").unwrap();
        assert_eq!((b.bucket.as_str(), b.prefix.as_str()), ("b", ""));
        assert!(b.is_loopback() && b.check_transport(false).is_ok());
        for bad in [
            "s3:ftp://h/b",
            "s3:https://h/",
            "s3:https://k:s@h/b",
            "s3:https://h/b/../x",
            "s3:https://h/b/x?y",
        ] {
            assert!(S3Address::parse(bad).is_err(), "{bad}");
        }
        let far = S3Address::parse("s3:http://s3.example.org/b").unwrap();
        let e = far.check_transport(false).unwrap_err().to_string();
        assert!(e.contains("plain http"), "{e}");
        assert!(far.check_transport(true).is_ok());
    }
}
