//! The HTTP side of `S3Storage`: signed requests (rusty-s3 signs, ureq sends; both
//! synchronous, so the rayon threads of the store call them directly), retries with
//! exponential backoff, and the server's answers turned into clear errors.
//!
//! Every request this module sends is idempotent (GET, HEAD, LIST, DELETE, PUT of a key that
//! names its content or of a whole small record, the steps of one multipart upload), so each
//! is retried on a connection error, a timeout, 408, 429 and 5xx. 403 (credentials), a missing
//! bucket and other 4xx are final at once. Credentials are never logged: URLs carry a
//! signature only, and they are not shown in messages either (keys are).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, UrlStyle};
use url::Url;

use crate::error::Error;
use crate::logging;
use crate::store::storage::s3_address::{S3Address, S3Options};

/// How long a signed URL is valid: one attempt, with room for a slow upload of a big part.
pub(crate) const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// Attempts per request: with the backoff below, about 30 s of an unreachable server before
/// the command fails (a server restart fits in that; a dead one is reported soon enough).
const ATTEMPTS: u32 = 7;

/// Why a request did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// 404 for the key (not the bucket).
    NotFound,
    /// The final error, worded for the admin.
    Fatal(Error),
}

impl Failure {
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            Failure::NotFound => io::ErrorKind::NotFound.into(),
            Failure::Fatal(e) => io::Error::other(e.to_string()),
        }
    }

    pub(crate) fn into_error(self, what: &str) -> Error {
        match self {
            Failure::NotFound => Error::Repository(format!("{what}: not found")),
            Failure::Fatal(e) => e,
        }
    }
}

/// A request's body.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a local file from `offset` (re-read for each attempt).
    File(&'a Path, u64, u64),
}

/// Requests and bytes, counted for measurements (`OPSI_BACKUP_S3_STATS=1` prints them when
/// the storage is dropped).
#[derive(Default)]
pub(crate) struct Counts {
    pub get: AtomicU64,
    pub head: AtomicU64,
    pub put: AtomicU64,
    pub list: AtomicU64,
    pub delete: AtomicU64,
    pub post: AtomicU64,
    pub retried: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl Counts {
    pub(crate) fn requests(&self) -> u64 {
        [
            &self.get,
            &self.head,
            &self.put,
            &self.list,
            &self.delete,
            &self.post,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    pub(crate) fn summary(&self) -> String {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} requests (GET {}, HEAD {}, PUT {}, LIST {}, DELETE {}, POST {}; {} retried), \
             {} bytes up, {} bytes down",
            self.requests(),
            l(&self.get),
            l(&self.head),
            l(&self.put),
            l(&self.list),
            l(&self.delete),
            l(&self.post),
            l(&self.retried),
            l(&self.bytes_up),
            l(&self.bytes_down)
        )
    }
}

/// One bucket and prefix, with the credentials to sign for it.
pub(crate) struct S3Client {
    pub bucket: Bucket,
    pub creds: Credentials,
    /// `<prefix>/`, or empty.
    prefix: String,
    address: S3Address,
    agent: ureq::Agent,
    attempts: u32,
    pub counts: Counts,
}

impl S3Client {
    pub(crate) fn new(address: &S3Address, options: &S3Options) -> crate::error::Result<S3Client> {
        address.check_transport(options.allow_http)?;
        if options.access_key_id.is_empty() || options.secret_access_key.is_empty() {
            return Err(Error::Config(format!(
                "no credentials for {address}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                 (or access_key_id and secret_access_key in [s3] of the settings file)"
            )));
        }
        let style = if options.virtual_host {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let bucket = Bucket::new(
            address.endpoint.clone(),
            style,
            address.bucket.clone(),
            options.region.clone(),
        )
        .map_err(|e| Error::Invalid(format!("{address}: {e}")))?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(60))
            .timeout_write(Duration::from_secs(60))
            .build();
        let attempts = std::env::var("OPSI_BACKUP_S3_ATTEMPTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &u32| n >= 1)
            .unwrap_or(ATTEMPTS);
        Ok(S3Client {
            bucket,
            creds: Credentials::new(
                options.access_key_id.clone(),
                options.secret_access_key.clone(),
            ),
            prefix: if address.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", address.prefix)
            },
            address: address.clone(),
            agent,
            attempts,
            counts: Counts::default(),
        })
    }

    /// The object name of `key` in the bucket.
    pub(crate) fn object(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The key of object `name`, when it lies below the prefix.
    pub(crate) fn key_of<'n>(&self, name: &'n str) -> Option<&'n str> {
        name.strip_prefix(&self.prefix)
    }

    /// How `key` is named in messages.
    pub(crate) fn show(&self, key: &str) -> String {
        format!("{}/{key}", self.address)
    }

    /// Sends one request (signed anew by `url` for each attempt) and hands the answer to
    /// `take`, retrying what may be retried. A failure inside `take` (a connection cut while
    /// the body is read) is retried like a connection error.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send<T>(
        &self,
        method: &str,
        key: &str,
        url: &dyn Fn() -> Url,
        headers: &[(&str, String)],
        body: Body<'_>,
        take: &mut dyn FnMut(ureq::Response) -> io::Result<T>,
    ) -> Result<T, Failure> {
        let counter = match method {
            "GET" => &self.counts.get,
            "HEAD" => &self.counts.head,
            "PUT" => &self.counts.put,
            "DELETE" => &self.counts.delete,
            "LIST" => &self.counts.list,
            _ => &self.counts.post,
        };
        let http_method = if method == "LIST" { "GET" } else { method };
        let mut pause = Duration::from_millis(250);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                self.counts.retried.fetch_add(1, Ordering::Relaxed);
                logging::log(
                    logging::DEBUG,
                    &format!(
                        "retrying {method} {} in {} ms (attempt {attempt} of {}): {last}",
                        self.show(key),
                        pause.as_millis(),
                        self.attempts
                    ),
                );
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(8));
            }
            counter.fetch_add(1, Ordering::Relaxed);
            // Each request at debug level (`-l 7`): how a night's round trips are counted.
            logging::log(logging::DEBUG, &{
                let range = headers.iter().find(|(h, _)| *h == "Range");
                match range {
                    Some((_, r)) => format!("s3 request: {method} {key} {r}"),
                    None => format!("s3 request: {method} {key}"),
                }
            });
            let mut req = self.agent.request_url(http_method, &url());
            for (h, v) in headers {
                req = req.set(h, v);
            }
            let sent = match &body {
                Body::Empty => req.call(),
                Body::Bytes(b) => {
                    self.counts
                        .bytes_up
                        .fetch_add(b.len() as u64, Ordering::Relaxed);
                    req.send_bytes(b)
                }
                Body::File(path, offset, len) => {
                    let mut f = match File::open(path) {
                        Ok(f) => f,
                        Err(e) => {
                            return Err(Failure::Fatal(Error::io(
                                format!("reading {}", path.display()),
                                e,
                            )))
                        }
                    };
                    if let Err(e) = f.seek(SeekFrom::Start(*offset)) {
                        return Err(Failure::Fatal(Error::io(
                            format!("reading {}", path.display()),
                            e,
                        )));
                    }
                    self.counts.bytes_up.fetch_add(*len, Ordering::Relaxed);
                    req.set("Content-Length", &len.to_string())
                        .send(f.take(*len))
                }
            };
            match sent {
                Ok(resp) => match take(resp) {
                    Ok(t) => return Ok(t),
                    Err(e) => last = format!("reading the answer: {e}"),
                },
                Err(ureq::Error::Status(status, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    let code = xml_field(&text, "Code");
                    let message = xml_field(&text, "Message");
                    let said = match (code.is_empty(), message.is_empty()) {
                        (true, _) => format!("HTTP {status}"),
                        (false, true) => format!("HTTP {status} {code}"),
                        (false, false) => format!("HTTP {status} {code}: {message}"),
                    };
                    match self.judge(status, &code, method, key, &said) {
                        Judged::Retry => last = said,
                        Judged::NotFound => return Err(Failure::NotFound),
                        Judged::Fatal(e) => return Err(Failure::Fatal(e)),
                    }
                }
                // Not `{t}`: it shows the signed URL, a bearer token for an hour.
                Err(ureq::Error::Transport(t)) => {
                    last = match t.message() {
                        Some(m) => format!("connection: {}: {m}", t.kind()),
                        None => format!("connection: {}", t.kind()),
                    }
                }
            }
        }
        Err(Failure::Fatal(Error::Repository(format!(
            "{method} {} failed {} times, giving up; the last answer: {last}",
            self.show(key),
            self.attempts
        ))))
    }

    fn judge(&self, status: u16, code: &str, method: &str, key: &str, said: &str) -> Judged {
        let bucket = &self.address.bucket;
        let host = self.address.endpoint.as_str().trim_end_matches('/');
        match status {
            // 501: the server lacks the action (some lack ListMultipartUploads); no retry helps.
            408 | 429 | 500 | 502..=599 => Judged::Retry,
            404 if code == "NoSuchBucket" => Judged::Fatal(Error::NoRepository(format!(
                "the bucket {bucket} does not exist at {host} ({said}); create it, or give the \
                 right bucket in --repository s3:…/BUCKET/PREFIX"
            ))),
            404 if method != "LIST" => Judged::NotFound,
            401 | 403 => Judged::Fatal(Error::Repository(format!(
                "access denied by {host} to {method} {} ({said}): check AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (or [s3] in the settings file), AWS_DEFAULT_REGION, and \
                 the key's rights on the bucket {bucket}",
                self.show(key)
            ))),
            _ => Judged::Fatal(Error::Repository(format!(
                "{method} {} refused: {said}{}",
                self.show(key),
                if code.contains("Region") || code.contains("AuthorizationHeader") {
                    "; check AWS_DEFAULT_REGION (or region in [s3] of the settings file)"
                } else {
                    ""
                }
            ))),
        }
    }
}

enum Judged {
    Retry,
    NotFound,
    Fatal(Error),
}

/// The text of the first `<name>…</name>` in an S3 XML answer; empty when absent.
pub(crate) fn xml_field(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.find(&open)
        .and_then(|s| {
            let from = s + open.len();
            xml[from..]
                .find(&close)
                .map(|e| xml[from..from + e].to_string())
        })
        .unwrap_or_default()
}

/// Reads the whole answer (bounded by `limit`), counting the bytes.
pub(crate) fn read_body(resp: ureq::Response, limit: u64, counts: &Counts) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.into_reader().take(limit).read_to_end(&mut out)?;
    counts
        .bytes_down
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_fields_of_an_error_answer() {
        let x = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>Bucket not \
                 found: b</Message></Error>";
        assert_eq!(xml_field(x, "Code"), "NoSuchBucket");
        assert_eq!(xml_field(x, "Message"), "Bucket not found: b");
        assert_eq!(xml_field(x, "Resource"), "");
    }

    /// 5xx is retried but 501: a server without the action (ListMultipartUploads on some)
    /// answers so at once, not after half a minute of retries.
    #[test]
    fn not_implemented_is_final_other_server_errors_are_retried() {
        let address = S3Address::parse("s3:http://127.0.0.1:9/bucket/prefix").unwrap();
        let options = S3Options {
            access_key_id: "id".into(),
            secret_access_key: "secret".into(),
            region: "garage".into(),
            virtual_host: false,
            allow_http: false,
        };
        let c = S3Client::new(&address, &options).unwrap();
        let judged = |status| c.judge(status, "", "LIST", "(multipart uploads)", "HTTP");
        assert!(matches!(judged(501), Judged::Fatal(_)));
        for status in [500, 502, 503, 504, 429, 408] {
            assert!(matches!(judged(status), Judged::Retry), "{status}");
        }
        assert!(matches!(judged(403), Judged::Fatal(_)));
    }
}
