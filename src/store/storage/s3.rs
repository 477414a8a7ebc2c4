//! `S3Storage`: the repository's data files as objects `<prefix>/<key>` in a bucket of
//! S3-compatible object storage (Garage, Ceph RGW, MinIO, AWS). Spec: `store-format/README.md`,
//! section "Remote repositories".
//!
//! The contract of `Storage` on object storage: an S3 PUT (and a completed multipart upload)
//! makes a whole object visible at once or not at all, and the server answers 200 only once
//! it has stored it, so `put_new` is whole-or-absent and durable on return without a rename.
//! Removals are durable when DELETE returns: `flush_removals` has nothing to do. Temporary
//! files are local (a directory of the index cache), so `clean_temp` is local too.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::S3Action;

use crate::error::{Error, IoContext, Result};
use crate::store::storage::s3_address::{S3Address, S3Options};
use crate::store::storage::s3_client::{read_body, xml_field, Body, Failure, S3Client, SIGNED_FOR};
use crate::store::storage::s3_tails::Tails;
use crate::store::storage::{Object, ObjectInfo, PendingUpload, Storage, TempFile};
use crate::store::{crash_point, durable};

/// Objects up to this size are one PUT; bigger ones a multipart upload of `PART`-sized parts.
/// A pack is at most a few tens of MiB: one PUT keeps an upload at one request, and a retry
/// after a cut connection resends at most this much. Bigger objects (none today) would be
/// cut so a retry resends one part only.
const SINGLE_PUT_MAX: u64 = 64 << 20;
const PART: u64 = 16 << 20;
/// The smallest part S3 accepts (but the last).
const MIN_PART: u64 = 5 << 20;

/// (largest single PUT, part size): the constants, or both `OPSI_BACKUP_S3_PART_SIZE` (bytes,
/// at least 5 MiB) for tests, which make ordinary packs go up in parts.
fn upload_sizes() -> (u64, u64) {
    match std::env::var("OPSI_BACKUP_S3_PART_SIZE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(n) => (n.max(MIN_PART), n.max(MIN_PART)),
        None => (SINGLE_PUT_MAX, PART),
    }
}

/// Reads of an object are served from blocks of this size fetched by ranged GETs: the pack
/// readers read a group (a few KiB to 4 MiB) at a time, front to back, so one GET serves many
/// small reads, and a reader that wants one group of a pack fetches little more than it.
const BLOCK: u64 = 1 << 20;

/// Opening an object fetches its last bytes, which tell its size (Content-Range): a pack's
/// trailer is there, and a snapshot file or small record is whole in it. No HEAD is needed.
const TAIL: u64 = 64 << 10;

/// A repository in a bucket.
pub(crate) struct S3Storage {
    client: Arc<S3Client>,
    /// Where temporary files are filled before upload (local: the index cache's `tmp/`).
    temp_dir: PathBuf,
    /// Tails of write-once objects opened or written last: opened again without a request.
    tails: Tails,
}

impl S3Storage {
    pub(crate) fn new(
        address: &S3Address,
        options: &S3Options,
        temp_dir: PathBuf,
    ) -> Result<S3Storage> {
        Ok(S3Storage {
            client: Arc::new(S3Client::new(address, options)?),
            temp_dir,
            tails: Tails::default(),
        })
    }

    /// Sets the local directory of temporary files (known once the repository's id is).
    pub(crate) fn set_temp_dir(&mut self, dir: PathBuf) {
        self.temp_dir = dir;
    }

    fn put_file(&self, key: &str, path: &std::path::Path, size: u64) -> Result<()> {
        let c = &*self.client;
        let object = c.object(key);
        let (single_max, part) = upload_sizes();
        if size <= single_max {
            let url = || {
                c.bucket
                    .put_object(Some(&c.creds), &object)
                    .sign(SIGNED_FOR)
            };
            return c
                .send(
                    "PUT",
                    key,
                    &url,
                    &[],
                    Body::File(path, 0, size),
                    &mut |_| Ok(()),
                )
                .map_err(|f| f.into_error(&c.show(key)));
        }
        let create =
            || CreateMultipartUpload::new(&c.bucket, Some(&c.creds), &object).sign(SIGNED_FOR);
        let upload_id = c
            .send("POST", key, &create, &[], Body::Empty, &mut |r| {
                let text = read_body(r, 1 << 20, &c.counts)?;
                let text = String::from_utf8_lossy(&text);
                let id = xml_field(&text, "UploadId");
                if id.is_empty() {
                    return Err(io::Error::other("no UploadId in the answer"));
                }
                Ok(id)
            })
            .map_err(|f| f.into_error(&c.show(key)))?;
        let uploaded = self.put_parts(key, &object, &upload_id, path, size, part);
        if uploaded.is_err() {
            // Best effort: an upload left behind (also by a kill) costs space until prune
            // aborts it (`pending_uploads`); it is never visible as an object.
            let abort = || {
                c.bucket
                    .abort_multipart_upload(Some(&c.creds), &object, &upload_id)
                    .sign(SIGNED_FOR)
            };
            let _ = c.send("DELETE", key, &abort, &[], Body::Empty, &mut |_| Ok(()));
        }
        uploaded
    }

    fn put_parts(
        &self,
        key: &str,
        object: &str,
        upload_id: &str,
        path: &std::path::Path,
        size: u64,
        part: u64,
    ) -> Result<()> {
        let c = &*self.client;
        let mut etags = Vec::new();
        let mut offset = 0;
        let mut number: u16 = 1;
        while offset < size {
            let len = part.min(size - offset);
            let url = || {
                c.bucket
                    .upload_part(Some(&c.creds), object, number, upload_id)
                    .sign(SIGNED_FOR)
            };
            let etag = c
                .send(
                    "PUT",
                    key,
                    &url,
                    &[],
                    Body::File(path, offset, len),
                    &mut |r| {
                        r.header("ETag")
                            .map(str::to_string)
                            .ok_or_else(|| io::Error::other("no ETag in the answer to a part"))
                    },
                )
                .map_err(|f| f.into_error(&c.show(key)))?;
            etags.push(etag);
            offset += len;
            number += 1;
        }
        let complete = c.bucket.complete_multipart_upload(
            Some(&c.creds),
            object,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = complete.sign(SIGNED_FOR);
        let body = complete.body();
        c.send(
            "POST",
            key,
            &|| url.clone(),
            &[],
            Body::Bytes(body.as_bytes()),
            &mut |r| {
                // A completion can fail after 200, with an <Error> in the body.
                let text = read_body(r, 1 << 20, &c.counts)?;
                let text = String::from_utf8_lossy(&text);
                if text.contains("<Error>") {
                    return Err(io::Error::other(format!(
                        "completing the upload: {} {}",
                        xml_field(&text, "Code"),
                        xml_field(&text, "Message")
                    )));
                }
                Ok(())
            },
        )
        .map_err(|f| f.into_error(&c.show(key)))
    }
}

impl Drop for S3Storage {
    fn drop(&mut self) {
        if std::env::var_os("OPSI_BACKUP_S3_STATS").is_some()
            && Arc::strong_count(&self.client) == 1
        {
            eprintln!("s3: {}", self.client.counts.summary());
        }
    }
}

impl Storage for S3Storage {
    fn show(&self, key: &str) -> String {
        self.client.show(key)
    }

    fn create_temp(&self, prefix: &str) -> Result<TempFile> {
        if !self.temp_dir.is_dir() {
            durable::create_dir(&self.temp_dir)?;
        }
        let path = self.temp_dir.join(durable::temp_name(prefix)?);
        let file = durable::create_new(&path)?;
        Ok(TempFile { path, file })
    }

    fn put_new(&self, key: &str, tmp: TempFile, crash: &str) -> Result<()> {
        let size = tmp.file.metadata().path_ctx("reading", &tmp.path)?.len();
        drop(tmp.file);
        crash_point(&format!("{crash}-synced"));
        let put = self.put_file(key, &tmp.path, size);
        if put.is_ok() {
            // The bytes the server now holds: a read-back (the commit indexing the snapshot
            // file it wrote) needs no request.
            if let Ok(tail) = read_tail(&tmp.path, size) {
                self.tails.put(key, size, Arc::new(tail));
            }
        }
        let _ = fs::remove_file(&tmp.path);
        put
    }

    fn replace(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let c = &*self.client;
        let object = c.object(key);
        let url = || {
            c.bucket
                .put_object(Some(&c.creds), &object)
                .sign(SIGNED_FOR)
        };
        c.send("PUT", key, &url, &[], Body::Bytes(bytes), &mut |_| Ok(()))
            .map_err(|f| f.into_error(&c.show(key)))
    }

    fn open(&self, key: &str) -> io::Result<Box<dyn Object>> {
        let (size, bytes) = match self.tails.get(key) {
            Some(tail) => tail,
            None => {
                let (bytes, size) =
                    get_range(&self.client, key, Span::Last(TAIL)).map_err(Failure::into_io)?;
                let bytes = Arc::new(bytes);
                self.tails.put(key, size, Arc::clone(&bytes));
                (size, bytes)
            }
        };
        let start = size - bytes.len() as u64;
        let obj = S3Object {
            client: Arc::clone(&self.client),
            key: key.to_string(),
            size,
            blocks: Mutex::new(vec![(start, bytes)]),
        };
        Ok(Box::new(obj))
    }

    fn stat(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        let c = &*self.client;
        let object = c.object(key);
        let url = || {
            c.bucket
                .head_object(Some(&c.creds), &object)
                .sign(SIGNED_FOR)
        };
        let got = c.send("HEAD", key, &url, &[], Body::Empty, &mut |r| {
            let size = r
                .header("Content-Length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| io::Error::other("no Content-Length"))?;
            let modified = r
                .header("Last-Modified")
                .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
                .map(SystemTime::from);
            Ok(ObjectInfo { size, modified })
        });
        match got {
            Ok(info) => Ok(Some(info)),
            Err(Failure::NotFound) => Ok(None),
            Err(f) => Err(f.into_io()),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        debug_assert!(prefix.ends_with('/'), "a prefix is a folder: {prefix:?}");
        let c = &*self.client;
        let object_prefix = c.object(prefix);
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let url = || {
                let mut list = ListObjectsV2::new(&c.bucket, Some(&c.creds));
                list.with_prefix(object_prefix.as_str());
                list.with_max_keys(1000);
                if let Some(t) = &token {
                    list.with_continuation_token(t.as_str());
                }
                list.sign(SIGNED_FOR)
            };
            let page = c
                .send("LIST", prefix, &url, &[], Body::Empty, &mut |r| {
                    let text = read_body(r, 64 << 20, &c.counts)?;
                    let text = String::from_utf8(text).map_err(io::Error::other)?;
                    ListObjectsV2::parse_response(&text).map_err(io::Error::other)
                })
                .map_err(|f| f.into_error(&c.show(prefix)))?;
            for o in &page.contents {
                if let Some(k) = c.key_of(&o.key) {
                    keys.push(k.to_string());
                }
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn remove(&self, key: &str) -> Result<bool> {
        self.tails.forget(key);
        let c = &*self.client;
        let object = c.object(key);
        let url = || {
            c.bucket
                .delete_object(Some(&c.creds), &object)
                .sign(SIGNED_FOR)
        };
        // S3 answers 204 whether or not the key was there; callers do not need to know.
        match c.send("DELETE", key, &url, &[], Body::Empty, &mut |_| Ok(())) {
            Ok(()) | Err(Failure::NotFound) => Ok(true),
            Err(f) => Err(f.into_error(&c.show(key))),
        }
    }

    fn flush_removals(&self, _prefix: &str) -> Result<()> {
        Ok(())
    }

    fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        let c = &*self.client;
        let object_prefix = c.object("");
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            // rusty-s3 has no ListMultipartUploads: it is ListObjectsV2's request (GET on the
            // bucket) with the query of the other action, which the same signing covers.
            let url = || {
                let mut list = ListObjectsV2::new(&c.bucket, Some(&c.creds));
                let q = list.query_mut();
                q.remove("list-type");
                q.remove("encoding-type");
                q.insert("uploads", "");
                q.insert("prefix", object_prefix.clone());
                q.insert("max-uploads", "1000");
                if let Some((key, id)) = &markers {
                    q.insert("key-marker", key.clone());
                    q.insert("upload-id-marker", id.clone());
                }
                list.sign(SIGNED_FOR)
            };
            let text = c
                .send(
                    "LIST",
                    "(multipart uploads)",
                    &url,
                    &[],
                    Body::Empty,
                    &mut |r| {
                        let text = read_body(r, 64 << 20, &c.counts)?;
                        String::from_utf8(text).map_err(io::Error::other)
                    },
                )
                .map_err(|f| f.into_error(&c.show("(multipart uploads)")))?;
            for upload in text.split("<Upload>").skip(1) {
                let name = xml_unescape(&xml_field(upload, "Key"));
                let upload_id = xml_unescape(&xml_field(upload, "UploadId"));
                let Some(key) = c.key_of(&name) else { continue };
                if upload_id.is_empty() {
                    continue;
                }
                let initiated =
                    chrono::DateTime::parse_from_rfc3339(&xml_field(upload, "Initiated"))
                        .ok()
                        .map(SystemTime::from);
                found.push(PendingUpload {
                    key: key.to_string(),
                    upload_id,
                    initiated,
                });
            }
            let next = (
                xml_unescape(&xml_field(&text, "NextKeyMarker")),
                xml_unescape(&xml_field(&text, "NextUploadIdMarker")),
            );
            let more = xml_field(&text, "IsTruncated") == "true" && !next.0.is_empty();
            if !more || markers.as_ref() == Some(&next) {
                break;
            }
            markers = Some(next);
        }
        Ok(found)
    }

    fn abort_upload(&self, upload: &PendingUpload) -> Result<()> {
        let c = &*self.client;
        let object = c.object(&upload.key);
        let url = || {
            c.bucket
                .abort_multipart_upload(Some(&c.creds), &object, &upload.upload_id)
                .sign(SIGNED_FOR)
        };
        // Gone already (aborted by another prune, or completed): nothing to do.
        match c.send("DELETE", &upload.key, &url, &[], Body::Empty, &mut |_| {
            Ok(())
        }) {
            Ok(()) | Err(Failure::NotFound) => Ok(()),
            Err(f) => Err(f.into_error(&c.show(&upload.key))),
        }
    }

    fn clean_temp(&self) -> Result<u64> {
        let mut removed = 0;
        let entries = match fs::read_dir(&self.temp_dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            r => r.path_ctx("listing", &self.temp_dir)?,
        };
        for entry in entries {
            let path = entry.path_ctx("listing", &self.temp_dir)?.path();
            fs::remove_file(&path).path_ctx("removing leftover", &path)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// The text of an XML element with its five entities resolved.
fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The last `TAIL` bytes (or all) of the local file `path` of `size` bytes.
fn read_tail(path: &std::path::Path, size: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(path)?;
    let from = size.saturating_sub(TAIL);
    f.seek(SeekFrom::Start(from))?;
    let mut out = Vec::with_capacity((size - from) as usize);
    f.take(size - from).read_to_end(&mut out)?;
    if out.len() as u64 != size - from {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(out)
}

/// A range of an object to fetch.
#[derive(Clone, Copy)]
enum Span {
    /// `len` bytes from `from` (fewer at the end).
    At(u64, u64),
    /// The last `n` bytes (all of a smaller object).
    Last(u64),
}

/// The bytes of `span` of `key`, and the object's size.
fn get_range(c: &S3Client, key: &str, span: Span) -> std::result::Result<(Vec<u8>, u64), Failure> {
    let object = c.object(key);
    let url = || {
        c.bucket
            .get_object(Some(&c.creds), &object)
            .sign(SIGNED_FOR)
    };
    let (range, len) = match span {
        Span::At(from, len) => (format!("bytes={from}-{}", from + len - 1), len),
        Span::Last(n) => (format!("bytes=-{n}"), n),
    };
    let got = c.send(
        "GET",
        key,
        &url,
        &[("Range", range)],
        Body::Empty,
        &mut |r| {
            let size: u64 = match r.header("Content-Range") {
                // "bytes 0-99/1234"
                Some(v) => v
                    .rsplit('/')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| io::Error::other(format!("bad Content-Range {v:?}")))?,
                // 200 without a range: the whole object.
                None => r
                    .header("Content-Length")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| io::Error::other("no Content-Length"))?,
            };
            let bytes = read_body(r, len, &c.counts)?;
            let want = match span {
                Span::At(from, len) => len.min(size.saturating_sub(from)),
                Span::Last(n) => n.min(size),
            };
            if (bytes.len() as u64) < want {
                return Err(io::Error::other(format!(
                    "the answer ended after {} of {want} bytes",
                    bytes.len()
                )));
            }
            Ok((bytes, size))
        },
    );
    match got {
        // An empty object has no byte 0: its range is "not satisfiable".
        Err(Failure::Fatal(Error::Repository(m)))
            if matches!(span, Span::Last(_)) && m.contains("HTTP 416") =>
        {
            Ok((Vec::new(), 0))
        }
        r => r,
    }
}

/// An object opened for reading, with the last few blocks kept.
struct S3Object {
    client: Arc<S3Client>,
    key: String,
    size: u64,
    /// (start, bytes), most recent last.
    blocks: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
}

/// Blocks kept per open object: a reader that alternates between a pack's trailer and its
/// groups does not fetch either twice.
const KEPT: usize = 3;

impl S3Object {
    /// A kept or newly fetched block holding `offset`: (its start, its bytes).
    fn block(&self, offset: u64) -> io::Result<(u64, Arc<Vec<u8>>)> {
        {
            let mut blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
            let holds = |(s, b): &(u64, Arc<Vec<u8>>)| *s <= offset && offset < s + b.len() as u64;
            if let Some(i) = blocks.iter().position(holds) {
                let b = blocks.remove(i);
                let found = (b.0, Arc::clone(&b.1));
                blocks.push(b);
                return Ok(found);
            }
        }
        let start = offset - offset % BLOCK;
        let (bytes, _) =
            get_range(&self.client, &self.key, Span::At(start, BLOCK)).map_err(Failure::into_io)?;
        let bytes = Arc::new(bytes);
        let mut blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        blocks.push((start, Arc::clone(&bytes)));
        if blocks.len() > KEPT {
            blocks.remove(0);
        }
        Ok((start, bytes))
    }
}

impl Object for S3Object {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let (start, block) = self.block(offset)?;
        let at = (offset - start) as usize;
        if at >= block.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than when it was opened", self.key),
            ));
        }
        let n = buf.len().min(block.len() - at);
        buf[..n].copy_from_slice(&block[at..at + n]);
        Ok(n)
    }
}
