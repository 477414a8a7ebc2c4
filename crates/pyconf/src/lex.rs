//! The tokenizer of the backend .conf parser: Python tokens with line numbers.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Name(String),
    Str(String),
    Int(i64),
    Float(f64),
    Op(&'static str),
    /// Leading white space on a logical line; top-level statements must not be indented.
    Indent,
    /// The end of a logical line.
    Newline,
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Name(n) => write!(f, "'{n}'"),
            Tok::Str(_) => f.write_str("string literal"),
            Tok::Int(i) => write!(f, "'{i}'"),
            Tok::Float(x) => write!(f, "'{x}'"),
            Tok::Op(o) => write!(f, "'{o}'"),
            Tok::Indent => f.write_str("indent"),
            Tok::Newline => f.write_str("end of line"),
            Tok::Eof => f.write_str("end of file"),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: usize,
}

pub(super) const OPS2: &[&str] = &[
    "**", "//", "==", "!=", "<=", ">=", "->", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", ":=",
    "<<", ">>",
];
pub(super) const OPS1: &[&str] = &[
    "(", ")", "[", "]", "{", "}", ",", ":", ".", ";", "=", "+", "-", "*", "/", "%", "<", ">", "&",
    "|", "^", "~", "@",
];

pub(super) struct Lexer {
    pub(super) chars: Vec<char>,
    pub(super) pos: usize,
    pub(super) line: usize,
    /// Open brackets with the line each was opened on.
    pub(super) brackets: Vec<(char, usize)>,
    pub(super) at_line_start: bool,
    pub(super) tokens: Vec<Token>,
}

impl Lexer {
    pub(super) fn new(src: &str) -> Lexer {
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        // Python reads source with universal newlines.
        let normalized = src.replace("\r\n", "\n").replace('\r', "\n");
        Lexer {
            chars: normalized.chars().collect(),
            pos: 0,
            line: 1,
            brackets: Vec::new(),
            at_line_start: true,
            tokens: Vec::new(),
        }
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    pub(super) fn push(&mut self, tok: Tok, line: usize) {
        self.tokens.push(Token { tok, line });
    }

    pub(super) fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\x0c')) {
            self.pos += 1;
        }
    }

    pub(super) fn skip_comment(&mut self) {
        while !matches!(self.peek(), None | Some('\n')) {
            self.pos += 1;
        }
    }

    pub(super) fn run(mut self) -> Result<Vec<Token>, ParseError> {
        loop {
            if self.at_line_start && self.brackets.is_empty() {
                let start = self.pos;
                self.skip_blanks();
                match self.peek() {
                    None => break,
                    Some('\n') => {
                        self.pos += 1;
                        self.line += 1;
                        continue;
                    }
                    Some('#') => {
                        self.skip_comment();
                        continue;
                    }
                    Some(_) => {
                        if self.pos > start {
                            // Reported by the parser, so that earlier lines fail first.
                            self.push(Tok::Indent, self.line);
                        }
                        self.at_line_start = false;
                    }
                }
            }
            self.skip_blanks();
            let Some(c) = self.peek() else { break };
            let line = self.line;
            match c {
                '#' => self.skip_comment(),
                '\\' => {
                    if self.peek_at(1) != Some('\n') {
                        return err(
                            line,
                            "unexpected character after line continuation character",
                        );
                    }
                    self.pos += 2;
                    self.line += 1;
                }
                '\n' => {
                    self.pos += 1;
                    if self.brackets.is_empty() {
                        let last_is_newline = matches!(
                            self.tokens.last(),
                            None | Some(Token {
                                tok: Tok::Newline,
                                ..
                            })
                        );
                        if !last_is_newline {
                            self.push(Tok::Newline, line);
                        }
                        self.at_line_start = true;
                    }
                    self.line += 1;
                }
                '\'' | '"' => {
                    let s = self.string("")?;
                    self.push(Tok::Str(s), line);
                }
                '0'..='9' => self.number()?,
                '.' if matches!(self.peek_at(1), Some('0'..='9')) => self.number()?,
                c if c == '_' || c.is_alphabetic() => {
                    let start = self.pos;
                    while matches!(self.peek(), Some(c) if c == '_' || c.is_alphanumeric()) {
                        self.pos += 1;
                    }
                    let word: String = self.chars[start..self.pos].iter().collect();
                    if matches!(self.peek(), Some('\'' | '"')) && is_string_prefix(&word) {
                        let s = self.string(&word)?;
                        self.push(Tok::Str(s), line);
                    } else {
                        self.push(Tok::Name(word), line);
                    }
                }
                '(' | '[' | '{' => {
                    self.brackets.push((c, line));
                    self.pos += 1;
                    self.push(Tok::Op(op_str(c)), line);
                }
                ')' | ']' | '}' => {
                    let want = match c {
                        ')' => '(',
                        ']' => '[',
                        _ => '{',
                    };
                    match self.brackets.pop() {
                        None => return err(line, format!("unmatched '{c}'")),
                        Some((open, open_line)) if open != want => {
                            return err(
                                line,
                                format!(
                                "closing '{c}' does not match opening '{open}' on line {open_line}"
                            ),
                            )
                        }
                        Some(_) => {}
                    }
                    self.pos += 1;
                    self.push(Tok::Op(op_str(c)), line);
                }
                _ => {
                    let two: String = self.chars[self.pos..(self.pos + 2).min(self.chars.len())]
                        .iter()
                        .collect();
                    if let Some(op) = OPS2.iter().find(|o| **o == two) {
                        self.pos += 2;
                        self.push(Tok::Op(op), line);
                    } else if let Some(op) = OPS1.iter().find(|o| o.starts_with(c)) {
                        self.pos += 1;
                        self.push(Tok::Op(op), line);
                    } else {
                        return err(line, format!("invalid character '{}'", c.escape_default()));
                    }
                }
            }
        }
        if let Some((open, open_line)) = self.brackets.first() {
            return err(*open_line, format!("'{open}' was never closed"));
        }
        let line = self.line;
        if !matches!(
            self.tokens.last(),
            None | Some(Token {
                tok: Tok::Newline,
                ..
            })
        ) {
            self.push(Tok::Newline, line);
        }
        self.push(Tok::Eof, line);
        Ok(self.tokens)
    }

    /// A string literal starting at the current quote; `prefix` is its (validated) prefix.
    pub(super) fn string(&mut self, prefix: &str) -> Result<String, ParseError> {
        let prefix = prefix.to_ascii_lowercase();
        let start_line = self.line;
        if prefix.contains('f') {
            return err(start_line, "f-strings are not supported");
        }
        let raw = prefix.contains('r');
        let bytes = prefix.contains('b');
        let q = self.peek().expect("at a quote");
        let triple = self.peek_at(1) == Some(q) && self.peek_at(2) == Some(q);
        self.pos += if triple { 3 } else { 1 };
        let unterminated = if triple {
            "unterminated triple-quoted string literal"
        } else {
            "unterminated string literal"
        };
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return err(start_line, unterminated);
            };
            if c == q {
                if !triple {
                    self.pos += 1;
                    return Ok(out);
                }
                if self.peek_at(1) == Some(q) && self.peek_at(2) == Some(q) {
                    self.pos += 3;
                    return Ok(out);
                }
                out.push(c);
                self.pos += 1;
                continue;
            }
            if c == '\n' {
                if !triple {
                    return err(start_line, unterminated);
                }
                self.line += 1;
                out.push(c);
                self.pos += 1;
                continue;
            }
            if c != '\\' {
                out.push(c);
                self.pos += 1;
                continue;
            }
            // A backslash.
            let Some(e) = self.peek_at(1) else {
                return err(start_line, unterminated);
            };
            self.pos += 2;
            if raw {
                // Raw strings keep the backslash; it still protects a quote or a newline.
                out.push('\\');
                out.push(e);
                if e == '\n' {
                    self.line += 1;
                }
                continue;
            }
            match e {
                '\n' => self.line += 1,
                '\\' | '\'' | '"' => out.push(e),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\x0b'),
                '0'..='7' => {
                    let mut v = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match self.peek().and_then(|d| d.to_digit(8)) {
                            Some(d) => {
                                v = v * 8 + d;
                                self.pos += 1;
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                'x' => out.push(self.hex_escape(2, "\\xXX", self.line)?),
                'u' if !bytes => out.push(self.hex_escape(4, "\\uXXXX", self.line)?),
                'U' if !bytes => out.push(self.hex_escape(8, "\\UXXXXXXXX", self.line)?),
                'N' if !bytes => return err(self.line, "\\N{...} escapes are not supported"),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    pub(super) fn hex_escape(
        &mut self,
        n: usize,
        what: &str,
        line: usize,
    ) -> Result<char, ParseError> {
        let mut v: u32 = 0;
        for _ in 0..n {
            match self.peek().and_then(|d| d.to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.pos += 1;
                }
                None => return err(line, format!("truncated {what} escape")),
            }
        }
        char::from_u32(v).ok_or_else(|| ParseError {
            line,
            message: format!("{what} escape is not a valid character (U+{v:04X})"),
        })
    }

    pub(super) fn number(&mut self) -> Result<(), ParseError> {
        let line = self.line;
        let start = self.pos;
        let radix = match (self.peek(), self.peek_at(1)) {
            (Some('0'), Some('x' | 'X')) => 16,
            (Some('0'), Some('o' | 'O')) => 8,
            (Some('0'), Some('b' | 'B')) => 2,
            _ => 10,
        };
        let tok = if radix != 10 {
            self.pos += 2;
            let digits_start = self.pos;
            while matches!(self.peek(), Some(c) if c == '_' || c.is_ascii_alphanumeric()) {
                self.pos += 1;
            }
            let digits: String = self.chars[digits_start..self.pos]
                .iter()
                .filter(|c| **c != '_')
                .collect();
            match i64::from_str_radix(&digits, radix) {
                Ok(v) => Tok::Int(v),
                Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) => {
                    return err(line, "integer literal too large")
                }
                Err(_) => return err(line, "invalid integer literal"),
            }
        } else {
            let digits = |lx: &mut Lexer| {
                while matches!(lx.peek(), Some(c) if c == '_' || c.is_ascii_digit()) {
                    lx.pos += 1;
                }
            };
            digits(self);
            let mut float = false;
            if self.peek() == Some('.') {
                float = true;
                self.pos += 1;
                digits(self);
            }
            if matches!(self.peek(), Some('e' | 'E'))
                && (matches!(self.peek_at(1), Some('0'..='9'))
                    || (matches!(self.peek_at(1), Some('+' | '-'))
                        && matches!(self.peek_at(2), Some('0'..='9'))))
            {
                float = true;
                self.pos += 2;
                digits(self);
            }
            if matches!(self.peek(), Some('j' | 'J')) {
                return err(line, "complex numbers are not supported");
            }
            let text: String = self.chars[start..self.pos]
                .iter()
                .filter(|c| **c != '_')
                .collect();
            if float {
                match text.parse::<f64>() {
                    Ok(v) => Tok::Float(v),
                    Err(_) => return err(line, format!("invalid float literal '{text}'")),
                }
            } else if text.len() > 1 && text.starts_with('0') && text.chars().any(|c| c != '0') {
                return err(
                    line,
                    "leading zeros in decimal integer literals are not permitted",
                );
            } else {
                match text.parse::<i64>() {
                    Ok(v) => Tok::Int(v),
                    Err(_) => return err(line, "integer literal too large"),
                }
            }
        };
        if matches!(self.peek(), Some(c) if c == '_' || c.is_alphanumeric()) {
            return err(line, "invalid decimal literal");
        }
        self.push(tok, line);
        Ok(())
    }
}

pub(super) fn is_string_prefix(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "u" | "r" | "b" | "br" | "rb" | "f" | "fr" | "rf"
    )
}

pub(super) fn op_str(c: char) -> &'static str {
    match c {
        '(' => "(",
        ')' => ")",
        '[' => "[",
        ']' => "]",
        '{' => "{",
        _ => "}",
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions and statements
