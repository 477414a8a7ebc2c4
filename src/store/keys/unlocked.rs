//! The storage of an unlocked encrypted repository: the storage underneath (a directory or
//! a bucket) with the repository's keys, so that whatever reads or writes a data file finds
//! them where it finds the file (`Storage::crypt`). Every other call passes through.

use std::io;
use std::sync::Arc;

use crate::error::Result;
use crate::store::seal::Crypt;
use crate::store::storage::{Object, ObjectInfo, PendingUpload, Storage, TempFile};

pub(crate) struct Unlocked {
    inner: Arc<dyn Storage>,
    crypt: Crypt,
}

impl Unlocked {
    pub(crate) fn new(inner: Arc<dyn Storage>, crypt: Crypt) -> Unlocked {
        Unlocked { inner, crypt }
    }
}

impl Storage for Unlocked {
    fn show(&self, key: &str) -> String {
        self.inner.show(key)
    }
    fn create_temp(&self, prefix: &str) -> Result<TempFile> {
        self.inner.create_temp(prefix)
    }
    fn put_new(&self, key: &str, tmp: TempFile, crash: &str) -> Result<()> {
        self.inner.put_new(key, tmp, crash)
    }
    fn replace(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.inner.replace(key, bytes)
    }
    fn open(&self, key: &str) -> io::Result<Box<dyn Object>> {
        self.inner.open(key)
    }
    fn stat(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        self.inner.stat(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn remove(&self, key: &str) -> Result<bool> {
        self.inner.remove(key)
    }
    fn flush_removals(&self, prefix: &str) -> Result<()> {
        self.inner.flush_removals(prefix)
    }
    fn clean_temp(&self) -> Result<u64> {
        self.inner.clean_temp()
    }
    fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        self.inner.pending_uploads()
    }
    fn abort_upload(&self, upload: &PendingUpload) -> Result<()> {
        self.inner.abort_upload(upload)
    }
    fn crypt(&self) -> &Crypt {
        &self.crypt
    }
}
