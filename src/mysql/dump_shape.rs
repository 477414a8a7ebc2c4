//! What a statement of a mysqldump dump is, as far as loading it in parallel needs to know.
//!
//! mysqldump writes a header of `SET` statements, then per table a section that starts with
//! the comment `-- Table structure for table `t`` (or `-- Temporary table structure for view
//! `v``): `DROP TABLE`, `CREATE TABLE`, then `LOCK TABLES`, `INSERT`s, `UNLOCK TABLES`, then the
//! table's triggers; then the trailer: final view definitions, routines, events, and the
//! footer `SET`s restoring the `@OLD_…` values. Anything else is [`Kind::Other`], and the
//! caller loads the rest of the dump serially.

use crate::mysql::statements::Statement;

/// What a statement is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `SET …` (in an executable comment or not).
    Set,
    /// `DROP TABLE|VIEW`, `CREATE TABLE|VIEW|TRIGGER` (with DEFINER and the like).
    Ddl,
    /// `ALTER TABLE t DISABLE KEYS` / `ENABLE KEYS` (around the rows).
    DisableKeys,
    EnableKeys,
    /// `LOCK TABLES`.
    Lock,
    /// `UNLOCK TABLES`.
    Unlock,
    /// `INSERT [IGNORE] INTO` / `REPLACE INTO` the table named (quoted as in the dump).
    Insert(Vec<u8>),
    /// A `DELIMITER` line.
    Delimiter,
    /// Only comments or whitespace (the end of the dump).
    Empty,
    Other,
}

/// Where the dump's sections start: the comment before a statement names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    /// A table's (or a view's stand-in) section; the name quoted as in the dump.
    Table(Vec<u8>),
    /// Final views, routines, events: loaded after all tables, on one connection.
    Trailer,
}

/// mysqldump's first comment, which says the stream is a dump.
pub fn is_dump_start(st: &Statement) -> bool {
    let lead = st.lead();
    [&b"-- MariaDB dump "[..], b"-- MySQL dump "]
        .iter()
        .any(|m| lines(lead).any(|l| l.starts_with(m)))
}

/// The section a statement opens, judged by its leading comments.
pub fn section(st: &Statement) -> Option<Section> {
    const TABLE: &[&[u8]] = &[
        b"-- Table structure for table ",
        b"-- Temporary table structure for view ",
        b"-- Temporary view structure for view ",
    ];
    const TRAILER: &[&[u8]] = &[
        b"-- Final view structure for view ",
        b"-- Dumping routines for database ",
        b"-- Dumping events for database ",
    ];
    let mut found = None;
    for l in lines(st.lead()) {
        if let Some(m) = TABLE.iter().find(|m| l.starts_with(m)) {
            found = quoted_name(&l[m.len()..]).map(|n| Section::Table(n.to_vec()));
            found.get_or_insert(Section::Trailer);
        } else if TRAILER.iter().any(|m| l.starts_with(m)) {
            found = Some(Section::Trailer);
        }
    }
    found
}

/// A footer statement (restores a value saved by the header).
pub fn is_footer(st: &Statement) -> bool {
    memchr::memmem::find(st.body(), b"@OLD_").is_some()
}

fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n').map(|l| l.trim_ascii_start())
}

/// A backtick-quoted name at the start of `s` (doubled backticks inside), quotes included.
fn quoted_name(s: &[u8]) -> Option<&[u8]> {
    if s.first() != Some(&b'`') {
        return None;
    }
    let mut i = 1;
    while i < s.len() {
        if s[i] == b'`' {
            if s.get(i + 1) == Some(&b'`') {
                i += 2;
                continue;
            }
            return Some(&s[..=i]);
        }
        i += 1;
    }
    None
}

/// The words of a statement's start, executable-comment wrappers (`/*!40101`, `*/`) skipped.
struct Words<'a> {
    s: &'a [u8],
}

impl<'a> Words<'a> {
    fn new(body: &'a [u8]) -> Words<'a> {
        Words { s: body }
    }

    /// The rest, after the words taken so far and blanks.
    fn rest(&mut self) -> &'a [u8] {
        self.skip();
        self.s
    }

    fn skip(&mut self) {
        loop {
            let s = self.s.trim_ascii_start();
            if let Some(r) = s.strip_prefix(b"/*!").or_else(|| s.strip_prefix(b"/*M!")) {
                let digits = r.iter().take_while(|b| b.is_ascii_digit()).count();
                self.s = &r[digits..];
            } else if let Some(r) = s.strip_prefix(b"*/") {
                self.s = r;
            } else {
                self.s = s;
                return;
            }
        }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.skip();
        let n = self
            .s
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_')
            .count();
        if n == 0 {
            return None;
        }
        let (w, r) = self.s.split_at(n);
        self.s = r;
        Some(w)
    }
}

fn is(word: Option<&[u8]>, want: &str) -> bool {
    word.is_some_and(|w| w.eq_ignore_ascii_case(want.as_bytes()))
}

/// Classifies a statement.
pub fn kind(st: &Statement) -> Kind {
    if st.delimiter_command {
        return Kind::Delimiter;
    }
    if st.body().is_empty() {
        return Kind::Empty;
    }
    let mut w = Words::new(st.body());
    let first = w.next();
    if is(first, "SET") {
        return Kind::Set;
    }
    if is(first, "INSERT") || is(first, "REPLACE") {
        let mut next = w.next();
        if is(next, "IGNORE") && is(first, "INSERT") {
            next = w.next();
        }
        if is(next, "INTO") {
            if let Some(name) = quoted_name(w.rest()) {
                return Kind::Insert(name.to_vec());
            }
        }
        return Kind::Other;
    }
    if is(first, "LOCK") && is(w.next(), "TABLES") {
        return Kind::Lock;
    }
    if is(first, "UNLOCK") && is(w.next(), "TABLES") {
        return Kind::Unlock;
    }
    if is(first, "DROP") {
        let what = w.next();
        if is(what, "TABLE") || is(what, "VIEW") {
            return Kind::Ddl;
        }
        return Kind::Other;
    }
    if is(first, "ALTER") && is(w.next(), "TABLE") {
        if quoted_name(w.rest()).is_some() {
            let name_len = quoted_name(w.rest()).map_or(0, <[u8]>::len);
            w.s = &w.s[name_len..];
            let (a, b) = (w.next(), w.next());
            if is(b, "KEYS") && is(a, "DISABLE") {
                return Kind::DisableKeys;
            }
            if is(b, "KEYS") && is(a, "ENABLE") {
                return Kind::EnableKeys;
            }
        }
        return Kind::Other;
    }
    if is(first, "CREATE") {
        // CREATE [OR REPLACE] [ALGORITHM=…] [DEFINER=…] [SQL SECURITY …] TABLE|VIEW|TRIGGER
        for _ in 0..12 {
            let rest = w.rest();
            if let Some(r) = strip_word(rest, "DEFINER") {
                // DEFINER=`user`@`host`: skip to the next blank.
                let end = r
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .unwrap_or(r.len());
                w.s = &r[end..];
                continue;
            }
            let word = w.next();
            if is(word, "TABLE") || is(word, "VIEW") || is(word, "TRIGGER") {
                return Kind::Ddl;
            }
            let skip = ["OR", "REPLACE", "ALGORITHM", "SQL", "SECURITY"];
            let value = ["UNDEFINED", "MERGE", "TEMPTABLE", "DEFINER", "INVOKER"];
            match word {
                Some(x)
                    if skip
                        .iter()
                        .chain(&value)
                        .any(|k| x.eq_ignore_ascii_case(k.as_bytes())) =>
                {
                    let r = w.rest();
                    w.s = r.strip_prefix(b"=").unwrap_or(r);
                }
                _ => return Kind::Other,
            }
        }
    }
    Kind::Other
}

fn strip_word<'a>(s: &'a [u8], word: &str) -> Option<&'a [u8]> {
    let n = word.len();
    (s.len() > n && s[..n].eq_ignore_ascii_case(word.as_bytes()) && s[n] == b'=').then(|| &s[n..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(lead: &str, body: &str) -> Statement {
        Statement {
            text: format!("{lead}{body}").into_bytes(),
            body: lead.len(),
            delimiter_command: false,
        }
    }

    #[test]
    fn kinds_of_mysqldump_statements() {
        let k = |b: &str| kind(&st("", b));
        assert_eq!(k("/*!40101 SET NAMES utf8mb4 */;"), Kind::Set);
        assert_eq!(k("DROP TABLE IF EXISTS `t`;"), Kind::Ddl);
        assert_eq!(k("/*!50001 DROP VIEW IF EXISTS `v`*/;"), Kind::Ddl);
        assert_eq!(k("CREATE TABLE `t` (\n `a` int\n);"), Kind::Ddl);
        assert_eq!(
            k("/*!50001 CREATE VIEW `v` AS SELECT\n 1 AS `a` */;"),
            Kind::Ddl
        );
        assert_eq!(
            k("/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER trg BEFORE INSERT ON c FOR EACH ROW SET x=1 */;;"),
            Kind::Ddl
        );
        assert_eq!(
            k("/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */\n/*!50001 VIEW `v` AS select 1 */;"),
            Kind::Ddl
        );
        assert_eq!(k("LOCK TABLES `t` WRITE;"), Kind::Lock);
        assert_eq!(k("UNLOCK TABLES;"), Kind::Unlock);
        assert_eq!(
            k("/*!40000 ALTER TABLE `t` DISABLE KEYS */;"),
            Kind::DisableKeys
        );
        assert_eq!(
            k("/*!40000 ALTER TABLE `a``b` ENABLE KEYS */;"),
            Kind::EnableKeys
        );
        assert_eq!(
            k("INSERT INTO `we;ird``n` VALUES\n(1);"),
            Kind::Insert(b"`we;ird``n`".to_vec())
        );
        assert_eq!(
            k("INSERT IGNORE INTO `t` VALUES (1);"),
            Kind::Insert(b"`t`".to_vec())
        );
        assert_eq!(
            k("REPLACE INTO `t` VALUES (1);"),
            Kind::Insert(b"`t`".to_vec())
        );
        assert_eq!(k("INSERT INTO t VALUES (1);"), Kind::Other);
        assert_eq!(k("DROP DATABASE x;"), Kind::Other);
        assert_eq!(k("CREATE PROCEDURE p() SELECT 1;"), Kind::Other);
        assert_eq!(k("ALTER TABLE `t` ADD x int;"), Kind::Other);
        assert_eq!(k("USE `x`;"), Kind::Other);
        assert_eq!(kind(&st("-- end\n", "")), Kind::Empty);
    }

    #[test]
    fn sections_from_comments() {
        let s = |lead: &str| section(&st(lead, "DROP TABLE `x`;"));
        assert_eq!(
            s("\n--\n-- Table structure for table `a``b`\n--\n\n"),
            Some(Section::Table(b"`a``b`".to_vec()))
        );
        assert_eq!(
            s("--\n-- Temporary table structure for view `v`\n--\n"),
            Some(Section::Table(b"`v`".to_vec()))
        );
        assert_eq!(
            s("-- Final view structure for view `v`\n"),
            Some(Section::Trailer)
        );
        assert_eq!(
            s("-- Dumping routines for database 'd'\n"),
            Some(Section::Trailer)
        );
        assert_eq!(s("--\n-- Dumping data for table `t`\n"), None);
        assert!(is_dump_start(&st(
            "/*M!999999\\- x */\n-- MariaDB dump 10.19\n",
            "SET a=1;"
        )));
        assert!(!is_dump_start(&st("", "SET NAMES utf8mb4;")));
        assert!(is_footer(&st(
            "",
            "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;"
        )));
    }
}
