//! Progress bars on stderr for the long commands, shown only when stderr is a terminal (cron
//! mail and scripts stay clean). A sink wrapper counts the content bytes passing through.

use std::io::{IsTerminal, Read};

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::Result;
use crate::member::Member;
use crate::parent::ParentFile;
use crate::sink::MemberSink;

/// A bar when `total` is known, else a spinner with bytes and rate; hidden without a terminal.
pub(super) fn bar(label: &str, total: Option<u64>) -> ProgressBar {
    bar_counting(label, || total)
}

/// `bar`, with a total that costs work to find (a walk of the files): `total` runs only when
/// the bar is shown, so cron runs never pay for it.
pub(super) fn bar_counting(label: &str, total: impl FnOnce() -> Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = match total() {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                // At most 78 columns, so a bar never wraps on an 80-column terminal.
                "{msg:>8} [{bar:20}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg:>8} {spinner} {binary_bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    pb.set_message(label.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb
}

/// Passes members on, advancing `bar` by each file's bytes as they are read.
pub(super) struct ProgressSink<'a> {
    pub inner: &'a mut dyn MemberSink,
    pub bar: ProgressBar,
    /// Files taken from the parent snapshot without reading them.
    pub reused: u64,
}

impl<'a> ProgressSink<'a> {
    pub(super) fn new(inner: &'a mut dyn MemberSink, bar: ProgressBar) -> ProgressSink<'a> {
        ProgressSink {
            inner,
            bar,
            reused: 0,
        }
    }
}

/// Moves `bar` on by `n` bytes. An expected total is an estimate (files grow, a dump differs
/// from the parent's): past it, the total follows, so the bar never shows more than 100%.
fn advance(bar: &ProgressBar, n: u64) {
    bar.inc(n);
    if let Some(len) = bar.length() {
        let at = bar.position();
        if at > len {
            bar.set_length(at);
        }
    }
}

struct Counting<'a> {
    inner: &'a mut dyn Read,
    bar: &'a ProgressBar,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        advance(self.bar, n as u64);
        Ok(n)
    }
}

impl MemberSink for ProgressSink<'_> {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        self.inner.add(
            member,
            &mut Counting {
                inner: content,
                bar: &self.bar,
            },
        )
    }

    fn add_unsized(&mut self, member: Member, content: &mut dyn Read) -> Result<u64> {
        self.inner.add_unsized(
            member,
            &mut Counting {
                inner: content,
                bar: &self.bar,
            },
        )
    }

    fn note_checksum(&mut self, path: &str, sha1_hex: &str) {
        self.inner.note_checksum(path, sha1_hex);
    }

    fn reuse(&mut self, member: &Member, parent: &ParentFile) -> Result<bool> {
        let reused = self.inner.reuse(member, parent)?;
        if reused {
            advance(&self.bar, member.size);
            self.reused += 1;
        }
        Ok(reused)
    }

    fn pass_over(&mut self, member: &Member) -> Result<()> {
        self.inner.pass_over(member)
    }
}
