//! A later pass over an archive that was verified as a whole (`scan.rs`), as restore replays
//! it: every CONTENT file the wrapped sink reads is hashed on its way and, once the sink is
//! done with it, read to its end and checked against CONTROL/checksums, so bytes that changed
//! since the verifying pass fail that member's `add`. A member the sink skips unread is not
//! checked: none of its bytes reached the sink.

use std::io::Read;

use crate::archive::control::{Checksums, Sha1Reader};
use crate::error::{Error, Result};
use crate::layout;
use crate::member::Member;
use crate::sink::MemberSink;

pub(crate) struct Rechecked<'a, S: MemberSink> {
    sums: &'a Checksums,
    inner: S,
}

impl<'a, S: MemberSink> Rechecked<'a, S> {
    /// `sums`: the CONTROL/checksums of the verifying pass.
    pub(crate) fn new(sums: &'a Checksums, inner: S) -> Rechecked<'a, S> {
        Rechecked { sums, inner }
    }
}

impl<S: MemberSink> MemberSink for Rechecked<'_, S> {
    fn pass_over(&mut self, member: &Member) -> Result<()> {
        self.inner.pass_over(member)
    }

    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        if !(member.is_file() && layout::is_content(&member.path)) {
            return self.inner.add(member, content);
        }
        let mut tee = Sha1Reader::new(content);
        self.inner.add(member, &mut tee)?;
        if !tee.was_read() {
            return Ok(());
        }
        std::io::copy(&mut tee, &mut std::io::sink())
            .map_err(|e| Error::Corrupt(format!("{}: {e}", member.path)))?;
        match self.sums.get(&member.path) {
            Some(want) if want == tee.hex() => Ok(()),
            Some(_) => Err(Error::Corrupt(format!(
                "{}: checksum mismatch while restoring; nothing was changed",
                member.path
            ))),
            None => Err(Error::Corrupt(format!(
                "{}: no checksum in CONTROL/checksums",
                member.path
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the members whose path ends in "read", skips the others.
    struct Picky(Vec<String>);

    impl MemberSink for Picky {
        fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
            if member.path.ends_with("read") {
                let mut first = [0u8; 1];
                content.read_exact(&mut first).unwrap();
                self.0.push(member.path.clone());
            }
            Ok(())
        }
    }

    fn sha1(bytes: &[u8]) -> String {
        hex::encode(<sha1::Sha1 as sha1::Digest>::digest(bytes))
    }

    #[test]
    fn a_read_member_is_checked_to_its_end_a_skipped_one_not() {
        let sums = format!(
            "{} CONTENT/good-read\n{} CONTENT/bad-read\n{} CONTENT/bad-skipped\n",
            sha1(b"good"),
            sha1(b"good"),
            sha1(b"good"),
        );
        let sums = Checksums::parse(sums.as_bytes());
        let mut sink = Rechecked::new(&sums, Picky(Vec::new()));
        let add = |sink: &mut Rechecked<'_, Picky>, path: &str, bytes: &[u8]| {
            let m = Member::control(path, bytes.len() as u64);
            sink.add(&m, &mut &bytes[..])
        };
        add(&mut sink, "CONTENT/good-read", b"good").unwrap();
        add(&mut sink, "CONTENT/bad-skipped", b"evil").unwrap();
        let e = add(&mut sink, "CONTENT/bad-read", b"gooD").unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        let e = add(&mut sink, "CONTENT/unlisted-read", b"x").unwrap_err();
        assert!(e.to_string().contains("no checksum"), "{e}");
        add(&mut sink, "CONTROL/x-read", b"not checked").unwrap();
    }
}
