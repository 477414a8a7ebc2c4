//! Quoting for the few SQL statements we generate ourselves (database names, host renames).

use crate::error::{Error, Result};

/// Quotes an identifier with backticks, doubling any backtick inside (MySQL's rule, valid in
/// every `sql_mode`). NUL is refused: the server does not allow it in names.
pub fn quote_identifier(name: &str) -> Result<String> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::Invalid(format!("invalid MySQL identifier {name:?}")));
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// Quotes a string literal with single quotes, escaping `\`, `'`, NUL, CR, LF and Ctrl-Z with
/// backslashes, like `mysql_real_escape_string`. Assumes the server's default `sql_mode`
/// (without `NO_BACKSLASH_ESCAPES`), which is what opsi servers run with.
pub fn quote_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(quote_identifier("opsi").unwrap(), "`opsi`");
        assert_eq!(quote_identifier("a`b; DROP").unwrap(), "`a``b; DROP`");
        assert!(quote_identifier("").is_err());
        assert!(quote_identifier("a\0b").is_err());
    }

    #[test]
    fn strings() {
        assert_eq!(quote_string(r"it's a \ test"), r"'it\'s a \\ test'");
        assert_eq!(quote_string("l1\nl2"), r"'l1\nl2'");
    }
}
