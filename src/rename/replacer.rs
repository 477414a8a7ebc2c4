//! Finding and replacing references to a host id inside text, the same way for ini lines and
//! database values.
//!
//! A reference is an occurrence of the old id, compared ASCII-case-insensitively (opsi
//! lower-cases host ids, and MySQL compares them with a `_ci` collation), that is a whole host
//! name: not preceded by a label character or a dot (`pc.opsi.example.org` is another host),
//! and not followed by a label character or by a dot and a label character
//! (`opsi.example.org.au` is another host). Label characters are letters, digits (also
//! non-ASCII), `_` and `-`. Everything else (`"`, `/`, `:`, `@`, `\`, `=`, `[`, blanks, end of
//! text...) delimits, so ids inside URLs, JSON lists, UNC paths and ini keys are found.
//!
//! Text is handled as bytes: files and columns need not be UTF-8, and a non-UTF-8 neighbour
//! simply counts as a delimiter.

/// Replaces references to one host id by another.
#[derive(Debug, Clone)]
pub struct IdReplacer {
    old: Vec<u8>,
    new: Vec<u8>,
}

impl IdReplacer {
    /// `old` and `new` are normalized ids (see [`super::validate_server_id`]).
    pub fn new(old: &str, new: &str) -> IdReplacer {
        IdReplacer {
            old: old.as_bytes().to_ascii_lowercase(),
            new: new.as_bytes().to_vec(),
        }
    }

    /// Whether `text` holds at least one reference.
    pub fn mentions(&self, text: &[u8]) -> bool {
        self.next_reference(text, 0).is_some()
    }

    /// Whether `text` is exactly the old id (ASCII case-insensitively).
    pub fn is_old(&self, text: &[u8]) -> bool {
        text.eq_ignore_ascii_case(&self.old)
    }

    /// `text` with every reference replaced and how many there were; `None` when there is none.
    pub fn replace(&self, text: &[u8]) -> Option<(Vec<u8>, usize)> {
        let mut at = self.next_reference(text, 0)?;
        let mut out = Vec::with_capacity(text.len() + self.new.len());
        let mut copied = 0;
        let mut count = 0;
        loop {
            out.extend_from_slice(&text[copied..at]);
            out.extend_from_slice(&self.new);
            copied = at + self.old.len();
            count += 1;
            match self.next_reference(text, copied) {
                Some(next) => at = next,
                None => break,
            }
        }
        out.extend_from_slice(&text[copied..]);
        Some((out, count))
    }

    fn next_reference(&self, text: &[u8], from: usize) -> Option<usize> {
        let n = self.old.len();
        if n == 0 || text.len() < n {
            return None;
        }
        let first = self.old[0];
        (from..=text.len() - n).find(|&i| {
            text[i].to_ascii_lowercase() == first
                && text[i..i + n].eq_ignore_ascii_case(&self.old)
                && starts_name(text, i)
                && ends_name(text, i + n)
        })
    }
}

/// A character that continues a DNS label (as opsi's host id rule sees it: `\w` and `-`).
fn is_label_char(c: char) -> bool {
    c == '_' || c == '-' || c.is_alphanumeric()
}

/// No label character or dot right before `at`.
fn starts_name(text: &[u8], at: usize) -> bool {
    match char_before(text, at) {
        Some(c) => !(is_label_char(c) || c == '.'),
        None => true,
    }
}

/// No label character right after `at`, nor a dot followed by one.
fn ends_name(text: &[u8], at: usize) -> bool {
    match char_at(text, at) {
        Some('.') => !matches!(char_at(text, at + 1), Some(c) if is_label_char(c)),
        Some(c) => !is_label_char(c),
        None => true,
    }
}

/// The character ending right before byte `at`, if it is valid UTF-8.
fn char_before(text: &[u8], at: usize) -> Option<char> {
    (1..=4.min(at)).find_map(|len| {
        std::str::from_utf8(&text[at - len..at])
            .ok()
            .and_then(|s| s.chars().next())
    })
}

/// The character starting at byte `at`, if it is valid UTF-8.
fn char_at(text: &[u8], at: usize) -> Option<char> {
    let end = (at + 4).min(text.len());
    (at + 1..=end).find_map(|e| {
        std::str::from_utf8(&text[at..e])
            .ok()
            .and_then(|s| s.chars().next())
    })
}

/// Replaces the host of a URL (`scheme://[user@]host[:port][/path]`) when it is `old_host`
/// (ASCII case-insensitively). Used for a renamed depot's own URLs that name it by its short
/// host name, e.g. `smb://opsi/opsi_depot`, as python-opsi's `changeAddress` does (but without
/// its plain substring replacement, which also hits `opsi_depot`).
pub fn replace_url_host(url: &str, old_host: &str, new_host: &str) -> Option<String> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host_start = rest[..authority_end].rfind('@').map_or(0, |p| p + 1);
    let host_len = rest[host_start..authority_end]
        .find(':')
        .unwrap_or(authority_end - host_start);
    let host = &rest[host_start..host_start + host_len];
    if old_host.is_empty() || !host.eq_ignore_ascii_case(old_host) {
        return None;
    }
    let at = start + host_start;
    Some(format!(
        "{}{}{}",
        &url[..at],
        new_host,
        &url[at + host_len..]
    ))
}

/// When `value` is a JSON list holding an element twice (as after renaming `old` in
/// `["old", "new"]`), the list with only the first of each; otherwise `None`. Elements are
/// written back as JSON, separated by `", "` like Python's `json.dumps`.
pub fn dedupe_json_list(value: &str) -> Option<String> {
    let trimmed = value.trim();
    if !trimmed.starts_with('[') {
        return None;
    }
    let items: Vec<serde_json::Value> = serde_json::from_str(trimmed).ok()?;
    let mut unique: Vec<&serde_json::Value> = Vec::with_capacity(items.len());
    for item in &items {
        if !unique.contains(&item) {
            unique.push(item);
        }
    }
    if unique.len() == items.len() {
        return None;
    }
    let parts: Vec<String> = unique.iter().map(|v| v.to_string()).collect();
    let lead = &value[..value.len() - value.trim_start().len()];
    let tail = &value[value.trim_end().len()..];
    Some(format!("{lead}[{}]{tail}", parts.join(", ")))
}

/// The rewrite of one stored value: references replaced, then a JSON list deduplicated.
/// Returns the new value and the number of references, or `None` when nothing changes.
pub fn rewrite_value(replacer: &IdReplacer, value: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (mut out, count) = replacer.replace(value)?;
    if let Some(deduped) = std::str::from_utf8(&out).ok().and_then(dedupe_json_list) {
        out = deduped.into_bytes();
    }
    Some((out, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(text: &str) -> String {
        let r = IdReplacer::new("opsi.example.org", "new.test.lan");
        match r.replace(text.as_bytes()) {
            Some((out, _)) => String::from_utf8(out).unwrap(),
            None => text.to_string(),
        }
    }

    #[test]
    fn replaces_whole_names_only() {
        assert_eq!(rep("opsi.example.org"), "new.test.lan");
        assert_eq!(rep("OPSI.Example.ORG"), "new.test.lan");
        assert_eq!(
            rep("https://opsi.example.org:4447/rpc"),
            "https://new.test.lan:4447/rpc"
        );
        assert_eq!(
            rep(r#"["opsi.example.org", "x.example.org"]"#),
            r#"["new.test.lan", "x.example.org"]"#
        );
        assert_eq!(rep("[opsi.example.org]"), "[new.test.lan]");
        assert_eq!(rep("opsi.example.org = 1"), "new.test.lan = 1");
        assert_eq!(rep("opsi.example.org:abcdef"), "new.test.lan:abcdef");
        assert_eq!(
            rep(r"\\opsi.example.org\opsi_depot"),
            r"\\new.test.lan\opsi_depot"
        );
        assert_eq!(rep("at opsi.example.org."), "at new.test.lan.");
        assert_eq!(
            rep("a opsi.example.org b opsi.example.org"),
            "a new.test.lan b new.test.lan"
        );
        for other in [
            "pc.opsi.example.org",
            "xopsi.example.org",
            "x-opsi.example.org",
            "opsi.example.org.au",
            "opsi.example.orgx",
            "opsi.example.org-2",
            "opsi.example.org_x",
            "äopsi.example.org",
            "opsi.example.or",
        ] {
            assert_eq!(rep(other), other);
        }
    }

    #[test]
    fn non_utf8_neighbours_delimit() {
        let r = IdReplacer::new("opsi.example.org", "new.test.lan");
        let (out, n) = r.replace(b"\xff opsi.example.org\xfe").unwrap();
        assert_eq!(out, b"\xff new.test.lan\xfe");
        assert_eq!(n, 1);
        assert!(r.is_old(b"Opsi.Example.Org"));
        assert!(!r.mentions(b"nothing here"));
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            replace_url_host("smb://opsi/opsi_depot", "opsi", "new").as_deref(),
            Some("smb://new/opsi_depot")
        );
        assert_eq!(
            replace_url_host("webdavs://user@OPSI:4447/repository", "opsi", "new").as_deref(),
            Some("webdavs://user@new:4447/repository")
        );
        assert_eq!(replace_url_host("smb://opsi2/opsi", "opsi", "new"), None);
        assert_eq!(
            replace_url_host("file:///var/lib/opsi", "opsi", "new"),
            None
        );
        assert_eq!(replace_url_host("no url", "opsi", "new"), None);
    }

    #[test]
    fn json_lists() {
        assert_eq!(
            dedupe_json_list(r#" ["a.b.cd", "x", "a.b.cd"]"#).as_deref(),
            Some(r#" ["a.b.cd", "x"]"#)
        );
        assert_eq!(dedupe_json_list(r#"["a", "b"]"#), None);
        assert_eq!(dedupe_json_list("not json"), None);
        let r = IdReplacer::new("old.b.cd", "new.b.cd");
        let (out, n) = rewrite_value(&r, br#"["old.b.cd", "new.b.cd"]"#).unwrap();
        assert_eq!((out.as_slice(), n), (&br#"["new.b.cd"]"#[..], 1));
    }
}
