//! mysqldump's rows as `LOAD DATA` reads them.
//!
//! The server spends most of a restore parsing `INSERT … VALUES (…),(…)` (each value becomes
//! an expression item); `LOAD DATA` reads the same rows as plain fields at a fraction of the
//! cost. [`convert`] turns a batch of mysqldump's plain `INSERT INTO `t` VALUES …;`
//! statements into `LOAD DATA`'s default text format (fields separated by tab, rows ended by
//! newline, `\` escapes, `\N` for NULL). It only knows the literals mysqldump writes for a
//! table's rows (`NULL`, numbers, quoted strings, `_binary '…'`, `0x…`); anything else (a
//! column list, `INSERT IGNORE`, `b'…'`, an expression, a comment) gives `None` and the batch
//! is loaded as the dump's own INSERTs.
//!
//! The caller loads the text in a transaction and commits only if the server counts exactly
//! the rows converted, with no warning, and its session reads string literals as the
//! conversion assumes ([`same_reading`]): where `LOAD DATA` would read a value differently, it
//! warns (or counts otherwise), the batch is rolled back and its INSERTs run instead.

/// The character sets in which no byte of a multi-byte character can be `\` or `'`, so that
/// a string literal can be scanned byte by byte (not true of e.g. GBK or SJIS).
const SAFE_CHARSETS: &[&str] = &["utf8mb4", "utf8mb3", "utf8", "latin1", "ascii", "binary"];

/// The client character set of a dump's header (`SET NAMES utf8mb4`), if it is one rows can
/// be converted in.
pub fn charset(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header).to_ascii_lowercase();
    let at = text.rfind("set names ")? + "set names ".len();
    let name: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    SAFE_CHARSETS.contains(&name.as_str()).then_some(name)
}

/// A SQL expression, 1 when the session reads the dump's string literals as [`convert`]
/// assumes: backslash escapes on (no `NO_BACKSLASH_ESCAPES` in the SQL mode) and the client
/// character set the header named. The header's `SET`s may say otherwise in ways its text does
/// not show (`SET SQL_MODE=@x`), so the server is asked after each `LOAD DATA`.
pub fn same_reading(charset: &str) -> String {
    let names = if matches!(charset, "utf8" | "utf8mb3") {
        "'utf8', 'utf8mb3'".to_string()
    } else {
        format!("'{charset}'")
    };
    format!(
        "(@@sql_mode NOT LIKE '%NO_BACKSLASH_ESCAPES%' AND @@character_set_client IN ({names}))"
    )
}

/// The `LOAD DATA` statement reading `file` (a path of safe characters: it is not quoted
/// further) into `table` (quoted as in the dump), in `charset`. The separators are hex
/// literals, which read the same in every SQL mode (`'\\t'` would not under
/// `NO_BACKSLASH_ESCAPES`, and the statement would fail).
pub fn statement(file: &str, table: &str, charset: &str) -> String {
    format!(
        "LOAD DATA LOCAL INFILE '{file}' INTO TABLE {table} CHARACTER SET {charset} \
         FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A'"
    )
}

/// Whether `quoted` is one backquoted identifier (`` `a``b` ``), safe to put in a statement.
pub fn is_quoted_identifier(quoted: &[u8]) -> bool {
    let Some(inner) = quoted.strip_prefix(b"`").and_then(|q| q.strip_suffix(b"`")) else {
        return false;
    };
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'`' {
            if inner.get(i + 1) != Some(&b'`') {
                return false;
            }
            i += 1;
        }
        i += 1;
    }
    !inner.is_empty()
}

/// Appends the rows of `sql` (plain INSERTs into `table`, quoted as in the dump, only
/// whitespace between them) to `out` in `LOAD DATA`'s format; the number of rows, or `None`
/// (with `out` in an unspecified state) when `sql` is not of that shape.
pub fn convert(sql: &[u8], table: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let mut p = Parser { s: sql, i: 0 };
    let mut rows = 0;
    loop {
        p.skip_space();
        if p.i == p.s.len() {
            return Some(rows);
        }
        p.expect(b"INSERT INTO ")?;
        p.expect(table)?;
        p.expect(b" VALUES")?;
        loop {
            p.skip_space();
            p.expect(b"(")?;
            loop {
                p.value(out)?;
                match p.next()? {
                    b',' => out.push(b'\t'),
                    b')' => break,
                    _ => return None,
                }
            }
            out.push(b'\n');
            rows += 1;
            match p.next()? {
                b',' => continue,
                b';' => break,
                _ => return None,
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<u8> {
        let b = *self.s.get(self.i)?;
        self.i += 1;
        Some(b)
    }

    fn skip_space(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn expect(&mut self, word: &[u8]) -> Option<()> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// One value, as a field.
    fn value(&mut self, out: &mut Vec<u8>) -> Option<()> {
        match *self.s.get(self.i)? {
            b'\'' => {
                self.i += 1;
                self.string(out)
            }
            b'N' => {
                self.expect(b"NULL")?;
                out.extend_from_slice(b"\\N");
                Some(())
            }
            b'_' => {
                self.expect(b"_binary")?;
                self.skip_space();
                self.expect(b"'")?;
                self.string(out)
            }
            b'0' if matches!(self.s.get(self.i + 1), Some(b'x' | b'X')) => {
                self.i += 2;
                self.hex(out)
            }
            b'-' | b'0'..=b'9' | b'.' => self.number(out),
            _ => None,
        }
    }

    /// A number literal, `-?d*(.d*)?([eE][-+]?d+)?` with at least one digit before the
    /// exponent. Not a negative zero: as a literal it is the integer 0, as a field read into a
    /// DOUBLE column it would keep its sign.
    fn number(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let from = p.i;
            while p.s.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - from
        };
        let negative = self.s[self.i] == b'-';
        if negative {
            self.i += 1;
        }
        let mut mantissa = digits(self);
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            mantissa += digits(self);
        }
        if mantissa == 0 {
            return None;
        }
        let zero = self.s[start..self.i]
            .iter()
            .all(|b| matches!(b, b'-' | b'0' | b'.'));
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'-' | b'+')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        if negative && zero {
            return None;
        }
        out.extend_from_slice(&self.s[start..self.i]);
        Some(())
    }

    /// The rest of a quoted string (after its `'`), unescaped as the server does and escaped
    /// again as `LOAD DATA` reads it.
    fn string(&mut self, out: &mut Vec<u8>) -> Option<()> {
        loop {
            let rest = &self.s[self.i..];
            let n = memchr::memchr2(b'\'', b'\\', rest)?;
            field_bytes(&rest[..n], out);
            self.i += n + 1;
            if rest[n] == b'\'' {
                if self.s.get(self.i) == Some(&b'\'') {
                    // `''` inside a string is one quote.
                    out.push(b'\'');
                    self.i += 1;
                    continue;
                }
                return Some(());
            }
            let c = self.next()?;
            match c {
                b'0' => out.extend_from_slice(b"\\0"),
                b'n' => out.extend_from_slice(b"\\n"),
                b'r' => out.extend_from_slice(b"\\r"),
                b't' => out.extend_from_slice(b"\\t"),
                b'b' => out.push(0x08),
                b'Z' => out.push(0x1a),
                // The server keeps the backslash of `\%` and `\_` (they are LIKE escapes).
                b'%' | b'_' => {
                    out.extend_from_slice(b"\\\\");
                    out.push(c);
                }
                _ => field_bytes(&[c], out),
            }
        }
    }

    /// A hex literal's digits, as the bytes they stand for.
    fn hex(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_hexdigit) {
            self.i += 1;
        }
        let digits = &self.s[start..self.i];
        if digits.is_empty() || digits.len() % 2 != 0 {
            return None;
        }
        let mut byte = [0u8; 1];
        for pair in digits.chunks(2) {
            let text = std::str::from_utf8(pair).ok()?;
            byte[0] = u8::from_str_radix(text, 16).ok()?;
            field_bytes(&byte, out);
        }
        Some(())
    }
}

/// Appends raw bytes of a value, escaping what `LOAD DATA` would read otherwise.
fn field_bytes(raw: &[u8], out: &mut Vec<u8>) {
    let mut from = 0;
    for (i, &b) in raw.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => b"\\0",
            _ => continue,
        };
        out.extend_from_slice(&raw[from..i]);
        out.extend_from_slice(escaped);
        from = i + 1;
    }
    out.extend_from_slice(&raw[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(sql: &str) -> Option<(String, usize)> {
        let mut out = Vec::new();
        let n = convert(sql.as_bytes(), b"`t`", &mut out)?;
        Some((String::from_utf8_lossy(&out).into_owned(), n))
    }

    #[test]
    fn rows_become_fields() {
        let sql = "INSERT INTO `t` VALUES (1,'a b',NULL,-2.5e-3),\n(2,'',0x00ff,.5E+2);\n\
                   INSERT INTO `t` VALUES (3,_binary 'q',7,'NULL');\n";
        let (text, n) = conv(sql).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            text,
            "1\ta b\t\\N\t-2.5e-3\n2\t\t\\0\u{fffd}\t.5E+2\n3\tq\t7\tNULL\n"
        );
    }

    #[test]
    fn escapes_are_those_of_the_server_then_of_load_data() {
        let sql = r#"INSERT INTO `t` VALUES ('a\'b''c\\d\ne\tf\0g\%h\_i\zj\"k');"#;
        let (text, _) = conv(sql).unwrap();
        assert_eq!(text, "a'b'c\\\\d\\ne\\tf\\0g\\\\%h\\\\_izj\"k\n");
        // Raw tab and newline inside a string are escaped too.
        let (text, _) = conv("INSERT INTO `t` VALUES ('a\tb\nc');").unwrap();
        assert_eq!(text, "a\\tb\\nc\n");
    }

    #[test]
    fn anything_else_is_refused() {
        for sql in [
            "INSERT INTO `t` (`a`) VALUES (1);",
            "INSERT IGNORE INTO `t` VALUES (1);",
            "REPLACE INTO `t` VALUES (1);",
            "INSERT INTO `u` VALUES (1);",
            "INSERT INTO `t` VALUES (b'101');",
            "INSERT INTO `t` VALUES (1+1);",
            "INSERT INTO `t` VALUES (-0);",
            "INSERT INTO `t` VALUES (-0.0e5);",
            "INSERT INTO `t` VALUES (1e);",
            "INSERT INTO `t` VALUES (-);",
            "INSERT INTO `t` VALUES (1.2.3);",
            "INSERT INTO `t` VALUES (0x1);",
            "INSERT INTO `t` VALUES (_utf8mb4'x');",
            "INSERT INTO `t` VALUES (1)",
            "INSERT INTO `t` VALUES ('open);",
            "/* c */ INSERT INTO `t` VALUES (1);",
            "INSERT INTO `t` VALUES (1);\nDROP TABLE `t`;",
        ] {
            assert_eq!(conv(sql), None, "{sql}");
        }
    }

    /// Damaged and random input never panics; what is accepted has one line per row.
    #[test]
    fn mangled_input_is_refused_or_counted() {
        let base = "INSERT INTO `t` VALUES (1,'a\\'b',NULL,2.5),(2,0x0aff,-3e2,'\t');\n";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut sql = base.as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % sql.len() as u64) as usize;
                match next() % 3 {
                    0 => sql[at] = next() as u8,
                    1 => {
                        sql.remove(at);
                    }
                    _ => sql.insert(at, b"'\\(),;N0x-e"[(next() % 11) as usize]),
                }
            }
            let mut out = Vec::new();
            if let Some(rows) = convert(&sql, b"`t`", &mut out) {
                let lines = out.iter().filter(|&&b| b == b'\n').count();
                assert_eq!(lines, rows, "{}", String::from_utf8_lossy(&sql));
            }
        }
    }

    #[test]
    fn header_charset_and_identifiers() {
        assert_eq!(
            charset(b"/*!40101 SET NAMES utf8mb4 */;\n").as_deref(),
            Some("utf8mb4")
        );
        assert_eq!(charset(b"/*!40101 SET NAMES gbk */;"), None);
        assert_eq!(charset(b"SET TIME_ZONE='+00:00';"), None);
        assert!(is_quoted_identifier(b"`a``b`"));
        assert!(!is_quoted_identifier(b"`a`b`"));
        assert!(!is_quoted_identifier(b"``"));
        assert!(!is_quoted_identifier(b"t"));
    }
}
