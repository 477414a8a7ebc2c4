//! Cutting a SQL stream into statements the way the `mysql` client does, one statement in
//! memory at a time.
//!
//! A statement ends at the current delimiter (`;` until a `DELIMITER` command changes it)
//! outside string literals (`'…'`, `"…"`, with backslash escapes), quoted identifiers (`` `…` ``)
//! and comments (`-- …`, `# …`, `/* … */`). Executable comments (`/*!50003 … */`, `/*M!… */`)
//! are SQL: the statement starts there, and (as in the client) a delimiter inside one ends it. Each [`Statement`] keeps its bytes exactly, leading whitespace and comments included,
//! so the statements of a stream concatenated give back the stream.

use std::io::{self, Read};

/// One statement with the comments and whitespace before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The bytes as read, from the end of the previous statement to this one's delimiter.
    pub text: Vec<u8>,
    /// Where the statement proper starts in `text` (after leading whitespace and comments);
    /// `text.len()` for trailing comments at the end of the stream.
    pub body: usize,
    /// A `DELIMITER` command (a whole line, for the client, never sent to the server).
    pub delimiter_command: bool,
}

impl Statement {
    /// The leading comments and whitespace.
    pub fn lead(&self) -> &[u8] {
        &self.text[..self.body]
    }

    /// The statement itself, delimiter included.
    pub fn body(&self) -> &[u8] {
        &self.text[self.body..]
    }
}

/// What the scanner is inside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the statement: whitespace and comments.
    Lead,
    /// In the statement, outside quotes and comments.
    Body,
    /// In a quoted string or identifier, closed by this byte.
    Quoted(u8),
    /// In a `-- ` or `#` comment, inside the statement or before it.
    LineComment { lead: bool },
    /// In a `/* */` comment that is not executable.
    BlockComment { lead: bool },
    /// In a `DELIMITER` line.
    DelimiterLine,
}

/// Reads statements from a byte stream; see the module comment.
pub struct Splitter<R> {
    input: R,
    /// Bytes read; those from `start` on are not returned yet.
    buf: Vec<u8>,
    /// Where the current statement starts in `buf`.
    start: usize,
    /// How far `buf` has been scanned.
    pos: usize,
    state: State,
    body: Option<usize>,
    delimiter: Vec<u8>,
    eof: bool,
    /// The largest statement returned whole; a longer one is an error of kind `Other`
    /// carrying [`TOO_LONG`], after which [`Splitter::into_parts`] gives back the bytes.
    max: usize,
}

/// The message of the error for a statement longer than the splitter's bound.
pub const TOO_LONG: &str = "SQL statement longer than the bound for splitting";

const CHUNK: usize = 256 * 1024;

impl<R: Read> Splitter<R> {
    pub fn new(input: R, max: usize) -> Splitter<R> {
        Splitter {
            input,
            buf: Vec::new(),
            start: 0,
            pos: 0,
            state: State::Lead,
            body: None,
            delimiter: b";".to_vec(),
            eof: false,
            max,
        }
    }

    /// The delimiter in force (after the statements returned so far).
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// The bytes read but not returned, and the rest of the input: for handing the remainder
    /// of the stream on unchanged.
    pub fn into_parts(mut self) -> (Vec<u8>, R) {
        self.buf.drain(..self.start);
        (self.buf, self.input)
    }

    /// Reads more input into `buf`; false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        // Drop what was returned: the buffer holds one statement and one read.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.pos -= self.start;
            self.body = self.body.map(|b| b - self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        (&mut self.input)
            .take(CHUNK as u64)
            .read_to_end(&mut self.buf)?;
        if self.buf.len() == old {
            self.eof = true;
        }
        Ok(self.buf.len() > old)
    }

    /// Makes `buf[pos..pos + n]` available if the input has it; false if it ends before.
    fn need(&mut self, n: usize) -> io::Result<bool> {
        while self.buf.len() < self.pos + n {
            if self.pos - self.start > self.max {
                return Err(io::Error::other(TOO_LONG));
            }
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The next statement, or `None` at the end of the input. A statement cut short by the
    /// end of input (no delimiter) is returned as it is.
    pub fn next_statement(&mut self) -> io::Result<Option<Statement>> {
        loop {
            if !self.need(1)? {
                if self.buf.len() == self.start {
                    return Ok(None);
                }
                let end = self.buf.len();
                return Ok(Some(self.take(end, false)));
            }
            if let Some(end) = self.step()? {
                let cmd = self.state == State::DelimiterLine;
                self.state = State::Lead;
                return Ok(Some(self.take(end, cmd)));
            }
        }
    }

    /// Cuts the statement `buf[..end]` off.
    fn take(&mut self, end: usize, delimiter_command: bool) -> Statement {
        let text = self.buf[self.start..end].to_vec();
        let body = self.body.take().map_or(text.len(), |b| b - self.start);
        self.start = end;
        self.pos = end;
        self.state = State::Lead;
        Statement {
            text,
            body,
            delimiter_command,
        }
    }

    /// Scans from `pos` (at least one byte is there); returns the end of the statement when
    /// this step finds it.
    fn step(&mut self) -> io::Result<Option<usize>> {
        let b = self.buf[self.pos];
        match self.state {
            State::Lead => {
                if b.is_ascii_whitespace() {
                    self.pos += 1;
                } else if self.at_line_comment()? {
                    self.state = State::LineComment { lead: true };
                    self.pos += 1;
                } else if b == b'/' && self.peek(1)? == Some(b'*') {
                    if self.at_exec_comment()? && !self.at_sandbox_line()? {
                        self.body = Some(self.pos);
                        self.state = State::Body;
                        self.pos += 2;
                    } else {
                        self.state = State::BlockComment { lead: true };
                        self.pos += 2;
                    }
                } else {
                    self.body = Some(self.pos);
                    if self.at_delimiter_command()? {
                        self.state = State::DelimiterLine;
                    } else {
                        self.state = State::Body;
                    }
                }
            }
            State::Body => return self.step_body(b),
            State::Quoted(q) => {
                // Fast path: jump to the next quote or backslash.
                let rest = &self.buf[self.pos..];
                match memchr::memchr2(q, b'\\', rest) {
                    None => self.pos = self.buf.len(),
                    Some(i) => {
                        self.pos += i;
                        if self.buf[self.pos] == b'\\' && q != b'`' {
                            // The escaped byte may not be read yet.
                            self.pos += 1;
                            if self.need(1)? {
                                self.pos += 1;
                            }
                        } else if self.buf[self.pos] == b'\\' {
                            self.pos += 1;
                        } else {
                            self.pos += 1;
                            self.state = State::Body;
                        }
                    }
                }
            }
            State::LineComment { lead } => match memchr::memchr(b'\n', &self.buf[self.pos..]) {
                None => self.pos = self.buf.len(),
                Some(i) => {
                    self.pos += i + 1;
                    self.state = if lead { State::Lead } else { State::Body };
                }
            },
            State::BlockComment { lead } => {
                match memchr::memmem::find(&self.buf[self.pos..], b"*/") {
                    Some(i) => {
                        self.pos += i + 2;
                        self.state = if lead { State::Lead } else { State::Body };
                    }
                    None => {
                        // Keep the last byte: it may be the `*` of a `*/` cut by the read.
                        self.pos = self.pos.max(self.buf.len().saturating_sub(1));
                        if !self.need(2)? {
                            self.pos = self.buf.len();
                        }
                    }
                }
            }
            State::DelimiterLine => match memchr::memchr(b'\n', &self.buf[self.pos..]) {
                None => {
                    self.pos = self.buf.len();
                    if !self.need(1)? {
                        self.set_delimiter(self.buf.len());
                        return Ok(Some(self.buf.len()));
                    }
                }
                Some(i) => {
                    let end = self.pos + i + 1;
                    self.set_delimiter(end);
                    return Ok(Some(end));
                }
            },
        }
        Ok(None)
    }

    fn step_body(&mut self, b: u8) -> io::Result<Option<usize>> {
        match b {
            b'\'' | b'"' | b'`' => {
                self.state = State::Quoted(b);
                self.pos += 1;
            }
            b'#' => {
                self.state = State::LineComment { lead: false };
                self.pos += 1;
            }
            b'-' if self.at_line_comment()? => {
                self.state = State::LineComment { lead: false };
                self.pos += 1;
            }
            // An executable comment is SQL: its text is scanned like the rest (the client, too,
            // ends a statement at a delimiter inside one).
            b'/' if self.peek(1)? == Some(b'*') => {
                if !self.at_exec_comment()? {
                    self.state = State::BlockComment { lead: false };
                }
                self.pos += 2;
            }
            _ if b == self.delimiter[0] => {
                let len = self.delimiter.len();
                if self.need(len)? && self.buf[self.pos..self.pos + len] == self.delimiter[..] {
                    self.pos += len;
                    return Ok(Some(self.pos));
                }
                self.pos += 1;
            }
            _ => self.pos += 1,
        }
        Ok(None)
    }

    fn peek(&mut self, ahead: usize) -> io::Result<Option<u8>> {
        Ok(if self.need(ahead + 1)? {
            Some(self.buf[self.pos + ahead])
        } else {
            None
        })
    }

    /// `-- ` followed by a blank, a control character or the end: the client's rule.
    fn at_line_comment(&mut self) -> io::Result<bool> {
        let b = self.buf[self.pos];
        if b == b'#' {
            return Ok(true);
        }
        if b != b'-' || self.peek(1)? != Some(b'-') {
            return Ok(false);
        }
        Ok(match self.peek(2)? {
            None => true,
            Some(c) => c <= b' ',
        })
    }

    /// At `/*!` or `/*M!`.
    fn at_exec_comment(&mut self) -> io::Result<bool> {
        Ok(match self.peek(2)? {
            Some(b'!') => true,
            Some(b'M') => self.peek(3)? == Some(b'!'),
            _ => false,
        })
    }

    /// MariaDB's first dump line `/*M!999999\- enable the sandbox mode */`: a command for the
    /// client, without delimiter; the statements start after it.
    fn at_sandbox_line(&mut self) -> io::Result<bool> {
        const SANDBOX: &[u8] = b"/*M!999999\\-";
        Ok(self.need(SANDBOX.len())? && self.buf[self.pos..].starts_with(SANDBOX))
    }

    /// At `DELIMITER` (any case) followed by a blank.
    fn at_delimiter_command(&mut self) -> io::Result<bool> {
        const WORD: &[u8] = b"delimiter";
        if !self.need(WORD.len() + 1)? {
            return Ok(false);
        }
        let s = &self.buf[self.pos..];
        Ok(s[..WORD.len()].eq_ignore_ascii_case(WORD) && matches!(s[WORD.len()], b' ' | b'\t'))
    }

    /// The delimiter named by the `DELIMITER` line ending at `end`.
    fn set_delimiter(&mut self, end: usize) {
        let start = self.body.unwrap_or(self.start) + "delimiter".len();
        let word = self.buf[start..end]
            .split(|b| b.is_ascii_whitespace())
            .find(|w| !w.is_empty());
        if let Some(w) = word {
            self.delimiter = w.to_vec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], chunk: usize) -> Vec<Statement> {
        let reader = Chunked { data: input, chunk };
        let mut s = Splitter::new(reader, 1 << 30);
        let mut out = Vec::new();
        while let Some(st) = s.next_statement().unwrap() {
            out.push(st);
        }
        out
    }

    /// Hands out at most `chunk` bytes per read, to cut tokens at every place.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn bodies(input: &[u8]) -> Vec<String> {
        split(input, 3)
            .iter()
            .map(|s| String::from_utf8_lossy(s.body()).into_owned())
            .collect()
    }

    #[test]
    fn quotes_comments_and_escapes_hide_delimiters() {
        let sql =
            b"-- c;\nINSERT INTO `a;b` VALUES ('x;\\';',\"q;\\\"\",'-- Dumping data ;'),(NULL);\n\
            /* c; */ SELECT 1 # x;\n;\n/*!40101 SET a=1 */;\nSELECT '/*';";
        assert_eq!(
            bodies(sql),
            [
                "INSERT INTO `a;b` VALUES ('x;\\';',\"q;\\\"\",'-- Dumping data ;'),(NULL);",
                "SELECT 1 # x;\n;",
                "/*!40101 SET a=1 */;",
                "SELECT '/*';",
            ]
        );
    }

    #[test]
    fn delimiter_commands_change_the_delimiter() {
        let sql = b"DELIMITER ;;\nCREATE TRIGGER t BEGIN SET a=1; END ;;\ndelimiter ;\nSET b=2;\n";
        let st = split(sql, 1);
        let b: Vec<_> = st
            .iter()
            .map(|s| {
                (
                    String::from_utf8_lossy(s.body()).into_owned(),
                    s.delimiter_command,
                )
            })
            .collect();
        assert_eq!(
            b,
            [
                ("DELIMITER ;;\n".into(), true),
                ("CREATE TRIGGER t BEGIN SET a=1; END ;;".into(), false),
                ("delimiter ;\n".into(), true),
                ("SET b=2;".into(), false),
                ("".into(), false),
            ]
        );
    }

    #[test]
    fn sandbox_line_and_trailing_comments_are_lead() {
        let sql = b"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump\n/*!40101 SET NAMES utf8mb4 */;\n\n-- Dump completed\n";
        let st = split(sql, 2);
        assert_eq!(st.len(), 2);
        assert!(st[0].lead().starts_with(b"/*M!999999"));
        assert_eq!(st[0].body(), b"/*!40101 SET NAMES utf8mb4 */;");
        assert!(st[1].body().is_empty());
    }

    #[test]
    fn too_long_statements_are_refused_and_handed_back() {
        let sql = vec![b'x'; 3 * CHUNK];
        let mut s = Splitter::new(&sql[..], 1000);
        let e = s.next_statement().unwrap_err();
        assert_eq!(e.to_string(), TOO_LONG);
        let (buf, mut rest) = s.into_parts();
        let mut all = buf;
        rest.read_to_end(&mut all).unwrap();
        assert_eq!(all, sql);
    }

    /// Random dumps built from tricky pieces: the statements always give back the input, and
    /// each generated statement comes out as one.
    #[test]
    fn random_dumps_split_back_into_their_statements() {
        const PIECES: &[&str] = &[
            "'a;b'",
            "'it\\'s'",
            "'x\\\\'",
            "\"d;\\\"q\"",
            "`we;ird``n`",
            "'-- Dumping data for table `t`;'",
            "'/* no */;'",
            "'#;'",
            "/* c; */",
            "/*!40000 x */",
            "NULL",
            "0x00ff",
            "(1,2)",
            " ",
            "\n",
            "'\n;\n'",
            "-- line; \n",
            "# hash;\n",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _round in 0..300 {
            let mut dump = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..1 + next(12) {
                let mut st = String::from("INSERT INTO t VALUES ");
                for _ in 0..next(10) {
                    st.push_str(PIECES[next(PIECES.len())]);
                }
                // A line comment at the end would swallow the delimiter.
                st.push_str(" 1;");
                let lead = [
                    "",
                    "\n",
                    "-- c;\n",
                    "/* x; */\n",
                    "\n\n-- Table structure;\n",
                ];
                dump.extend_from_slice(lead[next(lead.len())].as_bytes());
                dump.extend_from_slice(st.as_bytes());
                expected.push(st);
            }
            for chunk in [1, 2, 7, 4096] {
                let st = split(&dump, chunk);
                let joined: Vec<u8> = st.iter().flat_map(|s| s.text.clone()).collect();
                assert_eq!(joined, dump);
                let got: Vec<_> = st
                    .iter()
                    .filter(|s| !s.body().is_empty())
                    .map(|s| String::from_utf8_lossy(s.body()).into_owned())
                    .collect();
                assert_eq!(got, expected, "dump {:?}", String::from_utf8_lossy(&dump));
            }
        }
    }
}
