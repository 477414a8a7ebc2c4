//! Validation of the new config server id, after python-opsi's `forceHostId` (= `forceFqdn` in
//! `opsicommon.types`): the text is lower-cased, must match
//! `^[a-z0-9][a-z0-9\-]{,63}\.((\w+\-+)|(\w+\.))*\w{1,63}\.\w{2,16}\.?$`, and loses one trailing
//! dot. In words:
//!
//! - at least three labels: host name, domain part(s), top-level domain;
//! - the host name (first label) is 1-64 characters of `a-z`, `0-9`, `-`, starting with a letter
//!   or digit;
//! - the domain part is made of word characters (`\w`: letters, digits, `_`, also non-ASCII ones)
//!   separated by single dots or by runs of hyphens; its last label is at most 63 characters;
//! - the top-level domain is 2-16 word characters.
//!
//! One deliberate difference: Python's `$` also matches before a final newline, so `forceHostId`
//! accepts (and returns) `"a.b.cd\n"`; we refuse it, since such an id would break every ini file.

use crate::error::{Error, Result};

/// Returns the normalized (lower-cased, trailing dot removed) host id, or [`Error::Invalid`]
/// saying why `id` is not a valid opsi host id. Touches nothing: call it before restoring.
pub fn validate_server_id(id: &str) -> Result<String> {
    let lower = id.to_lowercase();
    check(&lower).map_err(|why| {
        Error::Invalid(format!(
            "invalid new server id {id:?}: {why} (expected a fully qualified domain name such as opsi.example.org)"
        ))
    })?;
    let normalized = lower.strip_suffix('.').unwrap_or(&lower);
    Ok(normalized.to_string())
}

fn is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn check(id: &str) -> std::result::Result<(), &'static str> {
    let body = id.strip_suffix('.').unwrap_or(id);
    let (host, rest) = body
        .split_once('.')
        .ok_or("it needs at least three dot-separated labels")?;
    let mut host_chars = host.chars();
    match host_chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {}
        _ => return Err("the host name must start with a letter or digit"),
    }
    if host.chars().count() > 64 {
        return Err("the host name is longer than 64 characters");
    }
    if !host_chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err("the host name may only contain a-z, 0-9 and '-'");
    }
    let (domain, tld) = rest
        .rsplit_once('.')
        .ok_or("it needs at least three dot-separated labels")?;
    let tld_len = tld.chars().count();
    if !(2..=16).contains(&tld_len) || !tld.chars().all(is_word) {
        return Err("the top-level domain must be 2-16 letters or digits");
    }
    check_domain(domain)
}

/// `((\w+\-+)|(\w+\.))*\w{1,63}`: word runs separated by a single dot or by hyphens.
fn check_domain(domain: &str) -> std::result::Result<(), &'static str> {
    const BAD: &str = "the domain labels must be letters or digits separated by single dots";
    // Alternating runs: word, separator, word, ..., word.
    let mut runs: Vec<(bool, String)> = Vec::new();
    for c in domain.chars() {
        let word = is_word(c);
        if !word && c != '.' && c != '-' {
            return Err(BAD);
        }
        match runs.last_mut() {
            Some((w, text)) if *w == word => text.push(c),
            _ => runs.push((word, c.to_string())),
        }
    }
    let (first, last) = match (runs.first(), runs.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => return Err(BAD),
    };
    if !first.0 || !last.0 {
        return Err(BAD);
    }
    let separators_ok = runs
        .iter()
        .filter(|(word, _)| !word)
        .all(|(_, sep)| sep == "." || sep.chars().all(|c| c == '-'));
    if !separators_ok {
        return Err(BAD);
    }
    if last.1.chars().count() > 63 {
        return Err("a domain label is longer than 63 characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalizes() {
        for (input, expected) in [
            ("client.test.invalid", "client.test.invalid"),
            ("CLIENT.test.invalid", "client.test.invalid"),
            ("abc.example.local.", "abc.example.local"),
            ("BLA.doMAIN.iNVAlid", "bla.domain.invalid"),
            (
                "opsi-2.sub.corp-x.example.org",
                "opsi-2.sub.corp-x.example.org",
            ),
            ("a.b--c.de", "a.b--c.de"),
            ("srv.dom_ain.de", "srv.dom_ain.de"),
            ("srv.münchen.de", "srv.münchen.de"),
        ] {
            assert_eq!(validate_server_id(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn rejects() {
        for input in [
            "abc",
            "8",
            "abc.def",
            ".test.invalid",
            "abc.uib.x",
            "host_name.rootzone.tld",
            "hostname.tld",
            "",
            "a..b.cd",
            "a.b..cd",
            "a.-b.cd",
            "a.b-.cd",
            "a.b.-cd",
            "a.b.c-d",
            "a.b.cd..",
            "-a.b.cd",
            "a b.c.de",
            "a.b c.de",
            "a.b.cd\n",
            "a.b.cd/x",
            "a.b.abcdefghijklmnopq",
        ] {
            let err = validate_server_id(input).unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{input}: {err}");
        }
        let long_host = format!("{}.example.org", "a".repeat(65));
        assert!(validate_server_id(&long_host).is_err());
        assert!(validate_server_id(&format!("{}.example.org", "a".repeat(64))).is_ok());
        assert!(validate_server_id(&format!("a.{}.org", "b".repeat(64))).is_err());
        assert!(validate_server_id(&format!("a.{}.b.org", "b".repeat(64))).is_ok());
    }
}
