//! Exclusion patterns for the server's bulk data (`[exclude]` in opsi-backup.toml): shell
//! globs matched against a path relative to its part's top directory (`win10-x64/tmp/x`).
//! `*` matches any run of characters, `/` included (so `*.part` takes such a file at any
//! depth and `*/tmp/*` anything inside a `tmp` directory below the top); `?` one character;
//! `[abc]`, `[a-z]`, `[!a]` one of a set. An excluded directory is skipped with everything
//! below it. Nothing is excluded unless configured: a depot holds data that exists nowhere
//! else, and no name in it is junk by rule.

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub(crate) struct Exclude {
    patterns: Vec<Vec<char>>,
}

impl Exclude {
    /// The patterns, each checked (an unclosed `[` is an error naming it).
    pub(crate) fn new(patterns: &[String]) -> Result<Exclude> {
        let mut out = Vec::new();
        for p in patterns {
            let chars: Vec<char> = p.trim_start_matches('/').chars().collect();
            if open_set(&chars) {
                return Err(Error::Config(format!(
                    "exclude pattern '{p}': a '[' without its ']'"
                )));
            }
            out.push(chars);
        }
        Ok(Exclude { patterns: out })
    }

    /// Whether the path `rel` (relative to the part's top, no leading `/`) is excluded.
    pub(crate) fn excludes(&self, rel: &str) -> bool {
        let text: Vec<char> = rel.chars().collect();
        self.patterns.iter().any(|p| matches(p, &text))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

fn open_set(p: &[char]) -> bool {
    let mut i = 0;
    while i < p.len() {
        if p[i] == '[' {
            match set_end(p, i) {
                Some(end) => i = end,
                None => return true,
            }
        }
        i += 1;
    }
    false
}

/// The index of the `]` closing the set opened at `p[open]`.
fn set_end(p: &[char], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if p.get(i) == Some(&'!') {
        i += 1;
    }
    // A `]` first in the set is a member.
    if p.get(i) == Some(&']') {
        i += 1;
    }
    (i..p.len()).find(|&j| p[j] == ']')
}

fn in_set(set: &[char], c: char) -> bool {
    let (negate, set) = match set.first() {
        Some('!') => (true, &set[1..]),
        _ => (false, set),
    };
    let mut i = 0;
    let mut hit = false;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == '-' {
            hit |= set[i] <= c && c <= set[i + 2];
            i += 3;
        } else {
            hit |= set[i] == c;
            i += 1;
        }
    }
    hit != negate
}

/// Glob match with backtracking over the last `*` (linear for the usual patterns).
fn matches(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => {
                let end = set_end(p, pi).expect("checked in new");
                in_set(&p[pi + 1..end], t[ti]).then_some(end + 1)
            }
            Some(&c) => (c == t[ti]).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ti += 1;
            }
            (None, Some((sp, st))) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Exclude {
        Exclude::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn globs() {
        let e = ex(&["*/tmp/*", "*.part", "cache?", "[!a-c]x"]);
        assert!(e.excludes("win10/tmp/a.bin"));
        assert!(e.excludes("win10/sub/tmp/a"));
        assert!(!e.excludes("tmp/a"), "*/ needs a directory above");
        assert!(!e.excludes("win10/tmpx/a"));
        assert!(e.excludes("a/b/c.part") && e.excludes("c.part"));
        assert!(!e.excludes("c.partial"));
        assert!(e.excludes("cache1") && !e.excludes("cache12"));
        assert!(e.excludes("dx") && !e.excludes("bx"));
        assert!(!ex(&[]).excludes("anything"));
        assert!(Exclude::new(&["a[b".to_string()]).is_err());
    }
}
