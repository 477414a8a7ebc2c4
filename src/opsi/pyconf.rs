//! A parser for opsi backend configuration files (`/etc/opsi/backends/*.conf`).
//!
//! These files are Python source that the original tool `exec()`s with the globals
//! `{"config": {}, "module": "", "socket": socket}` and then reads `module` and `config`.
//! Nothing is executed here: the file is tokenized like Python source and a small, closed subset
//! of Python is evaluated:
//!
//! - statements: `import ...` / `from ... import ...` (ignored), `pass`, assignments
//!   `name = expr` (also chained `a = b = expr`), item assignments `config["key"] = expr`
//!   (also nested), `config.update({...}, key=value)`, and expression statements such as
//!   docstrings; statements may be separated by `;`;
//! - expressions: string literals (quotes `'`, `"`, triple quotes, prefixes u/r/b in any case,
//!   escape sequences, adjacent-literal concatenation), ints (also `0x`/`0o`/`0b`, `_`),
//!   floats, `True`/`False`/`None`, lists, tuples (as lists), dicts with string keys, unary
//!   `-`/`+`, binary `+` and `-` on numbers (and `+` on strings and lists), subscripts
//!   `x["k"]`/`x[0]`, names assigned earlier in the file and `socket.getfqdn()` (the caller's
//!   FQDN).
//!
//! Anything else (control flow, other calls, f-strings, sets, ...) is a [`ParseError`] with the
//! line it starts on: the caller skips that backend with a warning, as the original skips a file
//! whose `exec()` raises. Bytes literals become strings (each `\xNN` byte one char U+00NN).

use std::fmt;

/// A Python value as it can appear in a backend configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
    /// A list or a tuple.
    List(Vec<PyValue>),
    /// A dict in insertion order (as Python keeps it); keys are unique.
    Dict(Vec<(String, PyValue)>),
}

impl PyValue {
    /// The string, when this is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, when this is an `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            PyValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, when this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            PyValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items, when this is a `List`.
    pub fn as_list(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::List(l) => Some(l),
            _ => None,
        }
    }

    /// The entries, when this is a `Dict`.
    pub fn as_dict(&self) -> Option<&[(String, PyValue)]> {
        match self {
            PyValue::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value under `key`, when this is a `Dict` that has it.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        dict_get(self.as_dict()?, key)
    }

    /// Python's truth value (`bool(x)`).
    pub fn is_truthy(&self) -> bool {
        match self {
            PyValue::Str(s) => !s.is_empty(),
            PyValue::Int(i) => *i != 0,
            PyValue::Float(f) => *f != 0.0,
            PyValue::Bool(b) => *b,
            PyValue::None => false,
            PyValue::List(l) => !l.is_empty(),
            PyValue::Dict(d) => !d.is_empty(),
        }
    }

    /// The Python type name (`str`, `int`, ...), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::Str(_) => "str",
            PyValue::Int(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Bool(_) => "bool",
            PyValue::None => "NoneType",
            PyValue::List(_) => "list",
            PyValue::Dict(_) => "dict",
        }
    }
}

/// Renders the value like Python's `repr()` (close enough for messages).
impl fmt::Display for PyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyValue::Str(s) => write!(f, "'{}'", s.escape_default()),
            PyValue::Int(i) => write!(f, "{i}"),
            PyValue::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 => {
                write!(f, "{x:.1}")
            }
            PyValue::Float(x) => write!(f, "{x}"),
            PyValue::Bool(true) => f.write_str("True"),
            PyValue::Bool(false) => f.write_str("False"),
            PyValue::None => f.write_str("None"),
            PyValue::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            PyValue::Dict(d) => {
                f.write_str("{")?;
                for (i, (k, v)) in d.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "'{}': {v}", k.escape_default())?;
                }
                f.write_str("}")
            }
        }
    }
}

/// The value under `key` in dict entries.
pub fn dict_get<'a>(entries: &'a [(String, PyValue)], key: &str) -> Option<&'a PyValue> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Inserts like Python's `d[key] = value`: an existing key keeps its place.
fn dict_set(entries: &mut Vec<(String, PyValue)>, key: String, value: PyValue) {
    match entries.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => entries.push((key, value)),
    }
}

/// Why a configuration file could not be understood, and on which (1-based) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

/// What a backend configuration file defines: the two globals the original reads after
/// `exec()`. `module` is `""` and `config` empty when the file does not assign them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PyConf {
    pub module: String,
    pub config: Vec<(String, PyValue)>,
}

/// The first IPv4 address of `host`, or 127.0.0.1 when it does not resolve.
fn resolve_ipv4(host: &str) -> String {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.find(|a| a.is_ipv4()))
        .map_or_else(|| "127.0.0.1".to_string(), |a| a.ip().to_string())
}

/// Parses and evaluates a backend configuration file. `fqdn` is what `socket.getfqdn()`
/// returns.
pub fn parse_conf(src: &str, fqdn: &str) -> Result<PyConf, ParseError> {
    let tokens = Lexer::new(src).run()?;
    let mut interp = Interp {
        tokens,
        pos: 0,
        depth: 0,
        fqdn: fqdn.to_string(),
        globals: vec![
            ("config".to_string(), PyValue::Dict(Vec::new())),
            ("module".to_string(), PyValue::Str(String::new())),
        ],
    };
    interp.run()?;
    let mut conf = PyConf::default();
    for (name, value) in interp.globals {
        match (name.as_str(), value) {
            ("module", PyValue::Str(s)) => conf.module = s,
            ("config", PyValue::Dict(d)) => conf.config = d,
            _ => {}
        }
    }
    Ok(conf)
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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
struct Token {
    tok: Tok,
    line: usize,
}

const OPS2: &[&str] = &[
    "**", "//", "==", "!=", "<=", ">=", "->", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", ":=",
    "<<", ">>",
];
const OPS1: &[&str] = &[
    "(", ")", "[", "]", "{", "}", ",", ":", ".", ";", "=", "+", "-", "*", "/", "%", "<", ">", "&",
    "|", "^", "~", "@",
];

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    /// Open brackets with the line each was opened on.
    brackets: Vec<(char, usize)>,
    at_line_start: bool,
    tokens: Vec<Token>,
}

impl Lexer {
    fn new(src: &str) -> Lexer {
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

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn push(&mut self, tok: Tok, line: usize) {
        self.tokens.push(Token { tok, line });
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\x0c')) {
            self.pos += 1;
        }
    }

    fn skip_comment(&mut self) {
        while !matches!(self.peek(), None | Some('\n')) {
            self.pos += 1;
        }
    }

    fn run(mut self) -> Result<Vec<Token>, ParseError> {
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
    fn string(&mut self, prefix: &str) -> Result<String, ParseError> {
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

    fn hex_escape(&mut self, n: usize, what: &str, line: usize) -> Result<char, ParseError> {
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

    fn number(&mut self) -> Result<(), ParseError> {
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

fn is_string_prefix(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "u" | "r" | "b" | "br" | "rb" | "f" | "fr" | "rf"
    )
}

fn op_str(c: char) -> &'static str {
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

#[derive(Debug, Clone)]
enum ExprKind {
    Lit(PyValue),
    Name(String),
    List(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    Attr(Box<Expr>, String),
    Call(Box<Expr>, Vec<Expr>, Vec<(String, Expr)>),
    Index(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone)]
struct Expr {
    kind: ExprKind,
    line: usize,
}

/// Python keywords that start statements this parser does not support.
const UNSUPPORTED_STATEMENTS: &[&str] = &[
    "if", "elif", "else", "for", "while", "def", "class", "with", "try", "except", "finally",
    "del", "global", "nonlocal", "return", "raise", "assert", "async", "await", "lambda", "yield",
    "break", "continue", "match",
];

/// How deeply expressions may nest; bounds the recursion of parsing and evaluation.
const MAX_DEPTH: usize = 100;

struct Interp {
    tokens: Vec<Token>,
    pos: usize,
    /// Current expression nesting while parsing.
    depth: usize,
    fqdn: String,
    /// Module globals in assignment order.
    globals: Vec<(String, PyValue)>,
}

impl Interp {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn at_op(&self, op: &str) -> bool {
        matches!(&self.peek().tok, Tok::Op(o) if *o == op)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        let hit = self.at_op(op);
        if hit {
            self.next();
        }
        hit
    }

    fn expect_op(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat_op(op) {
            return Ok(());
        }
        let t = self.peek();
        err(t.line, format!("expected '{op}', found {}", t.tok))
    }

    fn run(&mut self) -> Result<(), ParseError> {
        loop {
            match &self.peek().tok {
                Tok::Eof => return Ok(()),
                Tok::Newline => {
                    self.next();
                    continue;
                }
                Tok::Op(";") => {
                    self.next();
                    continue;
                }
                Tok::Indent => return err(self.peek().line, "unexpected indent"),
                _ => {}
            }
            self.statement()?;
            let t = self.peek();
            match &t.tok {
                Tok::Newline | Tok::Eof | Tok::Op(";") => {}
                other => return err(t.line, format!("unexpected {other}")),
            }
        }
    }

    fn statement(&mut self) -> Result<(), ParseError> {
        let t = self.peek().clone();
        if let Tok::Name(n) = &t.tok {
            match n.as_str() {
                "import" | "from" => {
                    // The only module the original offers is `socket`; imports are harmless.
                    while !matches!(self.peek().tok, Tok::Newline | Tok::Eof | Tok::Op(";")) {
                        self.next();
                    }
                    return Ok(());
                }
                "pass" => {
                    self.next();
                    return Ok(());
                }
                kw if UNSUPPORTED_STATEMENTS.contains(&kw) => {
                    return err(t.line, format!("'{kw}' statements are not supported"));
                }
                _ => {}
            }
        }
        let mut exprs = vec![self.expr()?];
        while self.eat_op("=") {
            exprs.push(self.expr()?);
        }
        if let Tok::Op(op) = &self.peek().tok {
            if op.ends_with('=') && !matches!(*op, "==" | "!=" | "<=" | ">=") {
                let line = self.peek().line;
                return err(
                    line,
                    format!("augmented assignment '{op}' is not supported"),
                );
            }
        }
        let t = self.peek();
        if !matches!(t.tok, Tok::Newline | Tok::Eof | Tok::Op(";")) {
            return err(t.line, format!("unexpected {}", t.tok));
        }
        let value_expr = exprs.pop().expect("at least one expression");
        if exprs.is_empty() {
            return self.expression_statement(&value_expr);
        }
        let value = self.eval(&value_expr)?;
        for target in &exprs {
            self.assign(target, value.clone())?;
        }
        Ok(())
    }

    fn expression_statement(&mut self, e: &Expr) -> Result<(), ParseError> {
        if let ExprKind::Call(callee, args, kwargs) = &e.kind {
            if let ExprKind::Attr(base, method) = &callee.kind {
                if method == "update" {
                    let mut updates = Vec::new();
                    if args.len() > 1 {
                        return err(e.line, "update() takes at most one positional argument");
                    }
                    if let Some(a) = args.first() {
                        match self.eval(a)? {
                            PyValue::Dict(d) => updates.extend(d),
                            other => {
                                return err(
                                    a.line,
                                    format!("update() needs a dict, got {}", other.type_name()),
                                )
                            }
                        }
                    }
                    for (k, v) in kwargs {
                        updates.push((k.clone(), self.eval(v)?));
                    }
                    let target = self.lookup_mut(base)?;
                    let PyValue::Dict(d) = target else {
                        let name = target.type_name();
                        return err(e.line, format!("'{name}' object has no attribute 'update'"));
                    };
                    for (k, v) in updates {
                        dict_set(d, k, v);
                    }
                    return Ok(());
                }
            }
        }
        // Docstrings and other side-effect free expressions are evaluated and dropped.
        self.eval(e).map(drop)
    }

    fn assign(&mut self, target: &Expr, value: PyValue) -> Result<(), ParseError> {
        match &target.kind {
            ExprKind::Name(n) => {
                match (n.as_str(), &value) {
                    ("config", v) if !matches!(v, PyValue::Dict(_)) => {
                        return err(
                            target.line,
                            format!("config must be a dict, got {}", v.type_name()),
                        )
                    }
                    ("module", v) if !matches!(v, PyValue::Str(_)) => {
                        return err(
                            target.line,
                            format!("module must be a string, got {}", v.type_name()),
                        )
                    }
                    ("True" | "False" | "None", _) => {
                        return err(target.line, format!("cannot assign to {n}"))
                    }
                    _ => {}
                }
                dict_set(&mut self.globals, n.clone(), value);
                Ok(())
            }
            ExprKind::Index(base, key) => {
                let key = self.eval(key)?;
                let line = target.line;
                let container = self.lookup_mut(base)?;
                match (container, key) {
                    (PyValue::Dict(d), PyValue::Str(k)) => {
                        dict_set(d, k, value);
                        Ok(())
                    }
                    (PyValue::Dict(_), k) => err(
                        line,
                        format!("dict keys must be strings, got {}", k.type_name()),
                    ),
                    (PyValue::List(l), PyValue::Int(i)) => {
                        let len = l.len();
                        let idx = list_index(i, len).ok_or_else(|| ParseError {
                            line,
                            message: "list assignment index out of range".into(),
                        })?;
                        l[idx] = value;
                        Ok(())
                    }
                    (c, _) => err(
                        line,
                        format!(
                            "'{}' object does not support item assignment",
                            c.type_name()
                        ),
                    ),
                }
            }
            _ => err(target.line, "cannot assign to this expression"),
        }
    }

    /// The global or item that `e` (a name or a subscript of one) denotes, for mutation.
    fn lookup_mut(&mut self, e: &Expr) -> Result<&mut PyValue, ParseError> {
        match &e.kind {
            ExprKind::Name(n) => {
                let line = e.line;
                match self.globals.iter_mut().find(|(k, _)| k == n) {
                    Some((_, v)) => Ok(v),
                    None => err(line, format!("name '{n}' is not defined")),
                }
            }
            ExprKind::Index(base, key) => {
                let key = self.eval(key)?;
                let line = e.line;
                match (self.lookup_mut(base)?, key) {
                    (PyValue::Dict(d), PyValue::Str(k)) => {
                        match d.iter_mut().find(|(dk, _)| *dk == k) {
                            Some((_, v)) => Ok(v),
                            None => err(line, format!("key '{k}' not found")),
                        }
                    }
                    (PyValue::List(l), PyValue::Int(i)) => {
                        let len = l.len();
                        match list_index(i, len) {
                            Some(idx) => Ok(&mut l[idx]),
                            None => err(line, "list index out of range"),
                        }
                    }
                    (c, k) => err(
                        line,
                        format!("cannot index {} with {}", c.type_name(), k.type_name()),
                    ),
                }
            }
            _ => err(e.line, "unsupported assignment target"),
        }
    }

    fn eval(&self, e: &Expr) -> Result<PyValue, ParseError> {
        let line = e.line;
        match &e.kind {
            ExprKind::Lit(v) => Ok(v.clone()),
            ExprKind::Name(n) => match self.globals.iter().find(|(k, _)| k == n) {
                Some((_, v)) => Ok(v.clone()),
                None if n == "socket" => err(line, "unsupported use of 'socket'"),
                None => err(line, format!("name '{n}' is not defined")),
            },
            ExprKind::List(items) => items
                .iter()
                .map(|i| self.eval(i))
                .collect::<Result<_, _>>()
                .map(PyValue::List),
            ExprKind::Dict(entries) => {
                let mut d = Vec::new();
                for (k, v) in entries {
                    let key = match self.eval(k)? {
                        PyValue::Str(s) => s,
                        other => {
                            return err(
                                k.line,
                                format!("dict keys must be strings, got {}", other.type_name()),
                            )
                        }
                    };
                    let value = self.eval(v)?;
                    dict_set(&mut d, key, value);
                }
                Ok(PyValue::Dict(d))
            }
            ExprKind::Call(callee, args, kwargs) => {
                if let ExprKind::Attr(base, name) = &callee.kind {
                    let is_socket = matches!(&base.kind, ExprKind::Name(n) if n == "socket"
                        && !self.globals.iter().any(|(k, _)| k == "socket"));
                    if is_socket && name == "getfqdn" && args.is_empty() && kwargs.is_empty() {
                        return Ok(PyValue::Str(self.fqdn.clone()));
                    }
                    if is_socket && name == "gethostname" && args.is_empty() && kwargs.is_empty() {
                        let short = self.fqdn.split('.').next().unwrap_or_default();
                        return Ok(PyValue::Str(short.to_string()));
                    }
                    // The stock dhcpd.conf computes `localip = socket.gethostbyname(socket.getfqdn())`
                    // for PXE parameters a backup never uses: resolve it when possible, and
                    // never let a resolver problem drop the backend from the backup.
                    if is_socket && name == "gethostbyname" && args.len() == 1 && kwargs.is_empty()
                    {
                        let host = match self.eval(&args[0])? {
                            PyValue::Str(h) => h,
                            other => {
                                return err(
                                    line,
                                    format!(
                                        "gethostbyname needs a string, got {}",
                                        other.type_name()
                                    ),
                                )
                            }
                        };
                        return Ok(PyValue::Str(resolve_ipv4(&host)));
                    }
                }
                err(line, "unsupported function call")
            }
            ExprKind::Attr(_, name) => err(line, format!("unsupported attribute access '.{name}'")),
            ExprKind::Index(base, key) => match (self.eval(base)?, self.eval(key)?) {
                (PyValue::Dict(d), PyValue::Str(k)) => match dict_get(&d, &k) {
                    Some(v) => Ok(v.clone()),
                    None => err(line, format!("key '{k}' not found")),
                },
                (PyValue::List(l), PyValue::Int(i)) => match list_index(i, l.len()) {
                    Some(idx) => Ok(l[idx].clone()),
                    None => err(line, "list index out of range"),
                },
                (PyValue::Str(s), PyValue::Int(i)) => {
                    let chars: Vec<char> = s.chars().collect();
                    match list_index(i, chars.len()) {
                        Some(idx) => Ok(PyValue::Str(chars[idx].to_string())),
                        None => err(line, "string index out of range"),
                    }
                }
                (c, k) => err(
                    line,
                    format!("cannot index {} with {}", c.type_name(), k.type_name()),
                ),
            },
            ExprKind::Neg(inner) => match self.eval(inner)? {
                PyValue::Int(i) => i.checked_neg().map(PyValue::Int).ok_or_else(|| ParseError {
                    line,
                    message: "integer overflow".into(),
                }),
                PyValue::Float(f) => Ok(PyValue::Float(-f)),
                PyValue::Bool(b) => Ok(PyValue::Int(-i64::from(b))),
                other => err(
                    line,
                    format!("bad operand type for unary -: '{}'", other.type_name()),
                ),
            },
            ExprKind::Add(a, b) => match (self.eval(a)?, self.eval(b)?) {
                (PyValue::Str(x), PyValue::Str(y)) => Ok(PyValue::Str(x + &y)),
                (PyValue::List(mut x), PyValue::List(y)) => {
                    x.extend(y);
                    Ok(PyValue::List(x))
                }
                (x, y) => arith(line, "+", &x, &y, i64::checked_add, |p, q| p + q),
            },
            ExprKind::Sub(a, b) => {
                let (x, y) = (self.eval(a)?, self.eval(b)?);
                arith(line, "-", &x, &y, i64::checked_sub, |p, q| p - q)
            }
        }
    }

    // --- expression grammar ---

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        // Left-nested trees are evaluated recursively: bound their length too.
        for _ in 0..MAX_DEPTH {
            let line = self.peek().line;
            if self.eat_op("+") {
                let right = self.unary()?;
                left = Expr {
                    kind: ExprKind::Add(Box::new(left), Box::new(right)),
                    line,
                };
            } else if self.eat_op("-") {
                let right = self.unary()?;
                left = Expr {
                    kind: ExprKind::Sub(Box::new(left), Box::new(right)),
                    line,
                };
            } else {
                return Ok(left);
            }
        }
        err(self.peek().line, "expression too deeply nested")
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let line = self.peek().line;
        if self.depth >= MAX_DEPTH {
            return err(line, "expression too deeply nested");
        }
        self.depth += 1;
        let e = self.unary_inner(line);
        self.depth -= 1;
        e
    }

    fn unary_inner(&mut self, line: usize) -> Result<Expr, ParseError> {
        if self.eat_op("-") {
            let inner = self.unary()?;
            return Ok(Expr {
                kind: ExprKind::Neg(Box::new(inner)),
                line,
            });
        }
        if self.eat_op("+") {
            let inner = self.unary()?;
            // Unary plus only makes sense on numbers; `-(-x)` checks that for us.
            let neg = Expr {
                kind: ExprKind::Neg(Box::new(inner)),
                line,
            };
            return Ok(Expr {
                kind: ExprKind::Neg(Box::new(neg)),
                line,
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.atom()?;
        for _ in 0..MAX_DEPTH {
            let line = self.peek().line;
            if self.eat_op(".") {
                let t = self.next();
                let Tok::Name(name) = t.tok else {
                    return err(
                        t.line,
                        format!("expected an attribute name, found {}", t.tok),
                    );
                };
                e = Expr {
                    kind: ExprKind::Attr(Box::new(e), name),
                    line,
                };
            } else if self.eat_op("(") {
                let (args, kwargs) = self.call_args()?;
                e = Expr {
                    kind: ExprKind::Call(Box::new(e), args, kwargs),
                    line,
                };
            } else if self.eat_op("[") {
                let key = self.expr()?;
                self.expect_op("]")?;
                e = Expr {
                    kind: ExprKind::Index(Box::new(e), Box::new(key)),
                    line,
                };
            } else {
                return Ok(e);
            }
        }
        err(self.peek().line, "expression too deeply nested")
    }

    /// Arguments after `(` up to and including `)`.
    #[allow(clippy::type_complexity)]
    fn call_args(&mut self) -> Result<(Vec<Expr>, Vec<(String, Expr)>), ParseError> {
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        while !self.eat_op(")") {
            let is_kwarg = matches!(self.peek().tok, Tok::Name(_))
                && matches!(
                    self.tokens.get(self.pos + 1),
                    Some(Token {
                        tok: Tok::Op("="),
                        ..
                    })
                );
            if is_kwarg {
                let Tok::Name(name) = self.next().tok else {
                    unreachable!()
                };
                self.next();
                kwargs.push((name, self.expr()?));
            } else {
                if !kwargs.is_empty() {
                    let line = self.peek().line;
                    return err(line, "positional argument follows keyword argument");
                }
                args.push(self.expr()?);
            }
            if !self.at_op(")") {
                self.expect_op(",")?;
            }
        }
        Ok((args, kwargs))
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        let t = self.next();
        let line = t.line;
        let lit = |v: PyValue| {
            Ok(Expr {
                kind: ExprKind::Lit(v),
                line,
            })
        };
        match t.tok {
            Tok::Str(mut s) => {
                // Adjacent literals are one string ("a" "b" == "ab").
                while let Tok::Str(more) = &self.peek().tok {
                    s.push_str(more);
                    self.next();
                }
                lit(PyValue::Str(s))
            }
            Tok::Int(i) => lit(PyValue::Int(i)),
            Tok::Float(f) => lit(PyValue::Float(f)),
            Tok::Name(n) => match n.as_str() {
                "True" => lit(PyValue::Bool(true)),
                "False" => lit(PyValue::Bool(false)),
                "None" => lit(PyValue::None),
                kw if UNSUPPORTED_STATEMENTS.contains(&kw)
                    || matches!(kw, "and" | "or" | "not" | "in" | "is" | "import" | "from") =>
                {
                    err(line, format!("unsupported keyword '{kw}'"))
                }
                _ => Ok(Expr {
                    kind: ExprKind::Name(n),
                    line,
                }),
            },
            Tok::Op("(") => {
                if self.eat_op(")") {
                    return Ok(Expr {
                        kind: ExprKind::List(Vec::new()),
                        line,
                    });
                }
                let first = self.expr()?;
                if self.eat_op(")") {
                    return Ok(first);
                }
                let mut items = vec![first];
                while self.eat_op(",") {
                    if self.at_op(")") {
                        break;
                    }
                    items.push(self.expr()?);
                }
                self.expect_op(")")?;
                Ok(Expr {
                    kind: ExprKind::List(items),
                    line,
                })
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.eat_op("]") {
                    items.push(self.expr()?);
                    if !self.at_op("]") {
                        self.expect_op(",")?;
                    }
                }
                Ok(Expr {
                    kind: ExprKind::List(items),
                    line,
                })
            }
            Tok::Op("{") => {
                let mut entries = Vec::new();
                while !self.eat_op("}") {
                    let key = self.expr()?;
                    if self.at_op(",") || self.at_op("}") {
                        return err(key.line, "set literals are not supported");
                    }
                    self.expect_op(":")?;
                    let value = self.expr()?;
                    entries.push((key, value));
                    if !self.at_op("}") {
                        self.expect_op(",")?;
                    }
                }
                Ok(Expr {
                    kind: ExprKind::Dict(entries),
                    line,
                })
            }
            other => err(line, format!("unexpected {other}")),
        }
    }
}

fn list_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let idx = if i < 0 { i + len } else { i };
    (0..len).contains(&idx).then_some(idx as usize)
}

fn arith(
    line: usize,
    op: &str,
    x: &PyValue,
    y: &PyValue,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> Result<PyValue, ParseError> {
    let as_f = |v: &PyValue| match v {
        PyValue::Int(i) => Some(*i as f64),
        PyValue::Float(f) => Some(*f),
        _ => None,
    };
    match (x, y) {
        (PyValue::Int(a), PyValue::Int(b)) => {
            int_op(*a, *b).map(PyValue::Int).ok_or_else(|| ParseError {
                line,
                message: "integer overflow".into(),
            })
        }
        _ => match (as_f(x), as_f(y)) {
            (Some(a), Some(b)) => Ok(PyValue::Float(float_op(a, b))),
            _ => err(
                line,
                format!(
                    "unsupported operand types for {op}: '{}' and '{}'",
                    x.type_name(),
                    y.type_name()
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> PyConf {
        parse_conf(src, "opsi.example.org").unwrap_or_else(|e| panic!("{e}\n{src}"))
    }

    fn parse_err(src: &str) -> ParseError {
        match parse_conf(src, "opsi.example.org") {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e,
        }
    }

    fn s(v: &str) -> PyValue {
        PyValue::Str(v.to_string())
    }

    #[test]
    fn mysql_conf_as_shipped() {
        let src = r#"# -*- coding: utf-8 -*-
module = 'MySQL'
config = {
    "address":                   u"localhost",
    "database":                  u"opsi",
    "username":                  u"opsi",
    "password":                  u"s3cr'et\"x",
    "databaseCharset":           "utf8",
    "connectionPoolSize":        20,
    "connectionPoolMaxOverflow": 10,
    "connectionPoolTimeout":     30,
}
"#;
        let c = parse(src);
        assert_eq!(c.module, "MySQL");
        assert_eq!(dict_get(&c.config, "password"), Some(&s("s3cr'et\"x")));
        assert_eq!(
            dict_get(&c.config, "connectionPoolSize"),
            Some(&PyValue::Int(20))
        );
        let keys: Vec<&str> = c.config.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys[0], "address");
        assert_eq!(keys.len(), 8);
    }

    #[test]
    fn file_conf_one_line() {
        let c = parse(
            "module = \"File\"\nconfig = {\"baseDir\": u\"/var/lib/opsi/config\", \"hostKeyFile\": u\"/etc/opsi/pckeys\"}",
        );
        assert_eq!(c.module, "File");
        assert_eq!(
            dict_get(&c.config, "baseDir"),
            Some(&s("/var/lib/opsi/config"))
        );
        assert_eq!(
            dict_get(&c.config, "hostKeyFile"),
            Some(&s("/etc/opsi/pckeys"))
        );
    }

    #[test]
    fn dhcpd_conf_with_socket_and_nested_dict() {
        let src = r#"
import socket

module = 'DHCPD'

localip = socket.gethostbyname(socket.getfqdn()) if False else None

config = {
    "dhcpdOnDepot":            False,
    "dhcpdConfigFile":         u"/etc/dhcp/dhcpd.conf",
    "reloadConfigCommand":     u"sudo service isc-dhcp-server restart",
    "fixedAddressFormat":      u"IP", # or FQDN
    "defaultClientParameters": {
        "next-server": socket.getfqdn(),
        "filename":    u"linux/pxelinux.0"
    }
}
"#;
        // The `localip` line is a call the parser does not support: line 6.
        let e = parse_err(src);
        assert_eq!(e.line, 6);
        let src = src.replace(
            "localip = socket.gethostbyname(socket.getfqdn()) if False else None\n",
            "",
        );
        let c = parse(&src);
        assert_eq!(c.module, "DHCPD");
        assert_eq!(
            dict_get(&c.config, "dhcpdOnDepot"),
            Some(&PyValue::Bool(false))
        );
        let dcp = dict_get(&c.config, "defaultClientParameters").unwrap();
        assert_eq!(dcp.get("next-server"), Some(&s("opsi.example.org")));
        assert_eq!(
            dcp.get("filename").and_then(PyValue::as_str),
            Some("linux/pxelinux.0")
        );
        assert_eq!(dict_get(&c.config, "fixedAddressFormat"), Some(&s("IP")));
    }

    #[test]
    fn literal_kinds() {
        let c = parse(
            "config = {'l': [1, -2, 3.5, -0.25, 1e3, None, True], 't': (1, 'a',), 'one': (7),\n\
             'empty': (), 'h': 0x1F, 'o': 0o17, 'b': 0b101, 'u': 1_000, 'f': .5, 'g': 2.,\n\
             'nested': {'a': {'b': []}}, 'neg': -(3), 'sum': 1 + 2 - 4, 'fsum': 1 + 0.5}",
        );
        let g = |k: &str| dict_get(&c.config, k).unwrap().clone();
        assert_eq!(
            g("l"),
            PyValue::List(vec![
                PyValue::Int(1),
                PyValue::Int(-2),
                PyValue::Float(3.5),
                PyValue::Float(-0.25),
                PyValue::Float(1000.0),
                PyValue::None,
                PyValue::Bool(true),
            ])
        );
        assert_eq!(g("t"), PyValue::List(vec![PyValue::Int(1), s("a")]));
        assert_eq!(g("one"), PyValue::Int(7));
        assert_eq!(g("empty"), PyValue::List(vec![]));
        assert_eq!(g("h"), PyValue::Int(31));
        assert_eq!(g("o"), PyValue::Int(15));
        assert_eq!(g("b"), PyValue::Int(5));
        assert_eq!(g("u"), PyValue::Int(1000));
        assert_eq!(g("f"), PyValue::Float(0.5));
        assert_eq!(g("g"), PyValue::Float(2.0));
        assert_eq!(
            g("nested").get("a").unwrap().get("b"),
            Some(&PyValue::List(vec![]))
        );
        assert_eq!(g("neg"), PyValue::Int(-3));
        assert_eq!(g("sum"), PyValue::Int(-1));
        assert_eq!(g("fsum"), PyValue::Float(1.5));
    }

    #[test]
    fn string_forms_and_escapes() {
        let src = r#"config = {
    'a': 'single "dq" inside',
    'b': "esc \n \t \\ \' \" \x41 \u00e9 \U0001F600 \101 \q",
    'c': r'raw \n \' stays',
    'd': R"C:\path\x",
    'e': b'bytes \x41',
    'f': U'upper prefix',
    'g': 'adjacent ' "literals "
         'concatenate',
    'h': """triple
"quoted" ''
text""",
    'i': '''x''' 'y',
    'j': 'line \
continued',
    'k': rb'\d+',
    'l': '',
}"#;
        let c = parse(src);
        let g = |k: &str| {
            dict_get(&c.config, k)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(g("a"), "single \"dq\" inside");
        assert_eq!(g("b"), "esc \n \t \\ ' \" A é 😀 A \\q");
        assert_eq!(g("c"), "raw \\n \\' stays");
        assert_eq!(g("d"), "C:\\path\\x");
        assert_eq!(g("e"), "bytes A");
        assert_eq!(g("f"), "upper prefix");
        assert_eq!(g("g"), "adjacent literals concatenate");
        assert_eq!(g("h"), "triple\n\"quoted\" ''\ntext");
        assert_eq!(g("i"), "xy");
        assert_eq!(g("j"), "line continued");
        assert_eq!(g("k"), "\\d+");
        assert_eq!(g("l"), "");
    }

    #[test]
    fn comments_and_continuations() {
        let src = "# header\n\
                   module = 'File'  # trailing comment with 'quote\n\
                   \n\
                   config = {  # opening\n\
                   \x20   # a comment line inside\n\
                   \x20   'baseDir': '/srv/#not a comment',  # after\n\
                   \x20   'x': [1,\n\
                   \x20         2],\n\
                   }\n\
                   y = 1 + \\\n\
                   \x20   2\n\
                   \x20 # indented comment is fine\n\
                   x = 1; z = 2\n";
        let c = parse(src);
        assert_eq!(c.module, "File");
        assert_eq!(
            dict_get(&c.config, "baseDir"),
            Some(&s("/srv/#not a comment"))
        );
        assert_eq!(
            dict_get(&c.config, "x"),
            Some(&PyValue::List(vec![PyValue::Int(1), PyValue::Int(2)]))
        );
    }

    #[test]
    fn crlf_and_bom() {
        let c = parse("\u{feff}module = 'File'\r\nconfig = {\r\n 'a': 1,\r\n}\r\n");
        assert_eq!(c.module, "File");
        assert_eq!(dict_get(&c.config, "a"), Some(&PyValue::Int(1)));
    }

    #[test]
    fn defaults_when_unassigned() {
        let c = parse("# nothing here\n\"\"\"docstring\"\"\"\npass\n");
        assert_eq!(c.module, "");
        assert!(c.config.is_empty());
        assert_eq!(parse(""), PyConf::default());
    }

    #[test]
    fn item_assignment_update_and_names() {
        let src = r#"
base = "/var/lib/opsi"
module = 'File'
config["baseDir"] = base + "/config"
config.update({"hostKeyFile": "/etc/opsi/pckeys"}, extra=1)
config["nested"] = {"a": {}}
config["nested"]["a"]["b"] = [0, 1]
config["nested"]["a"]["b"][-1] = 'last'
a = b = 5
config["ab"] = a + b
config["baseDir"] = config["baseDir"]
config["first"] = config["nested"]["a"]["b"][0]
"#;
        let c = parse(src);
        assert_eq!(c.module, "File");
        let keys: Vec<&str> = c.config.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["baseDir", "hostKeyFile", "extra", "nested", "ab", "first"]
        );
        assert_eq!(
            dict_get(&c.config, "baseDir"),
            Some(&s("/var/lib/opsi/config"))
        );
        assert_eq!(dict_get(&c.config, "extra"), Some(&PyValue::Int(1)));
        assert_eq!(
            dict_get(&c.config, "nested")
                .unwrap()
                .get("a")
                .unwrap()
                .get("b"),
            Some(&PyValue::List(vec![PyValue::Int(0), s("last")]))
        );
        assert_eq!(dict_get(&c.config, "ab"), Some(&PyValue::Int(10)));
        assert_eq!(dict_get(&c.config, "first"), Some(&PyValue::Int(0)));
    }

    #[test]
    fn duplicate_keys_keep_first_position_last_value() {
        let c = parse("config = {'a': 1, 'b': 2, 'a': 3}");
        assert_eq!(
            c.config,
            vec![("a".into(), PyValue::Int(3)), ("b".into(), PyValue::Int(2))]
        );
    }

    #[test]
    fn errors_carry_the_right_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "module = 'File'\nconfig = {\n  'a': 1\n  'b': 2\n}\n",
                4,
                "expected ','",
            ),
            ("module = 'File\n", 1, "unterminated string literal"),
            (
                "x = 1\ny = \"\"\"never\nclosed\n",
                2,
                "unterminated triple-quoted",
            ),
            ("x = 1\nconfig = {\n 'a': [1,\n", 2, "'{' was never closed"),
            ("config = {'a': (1]}\n", 1, "does not match"),
            ("x = 1\n)\n", 2, "unmatched ')'"),
            ("x = 1\n  y = 2\n", 2, "unexpected indent"),
            ("x = 1\nif x:\n    y = 2\n", 2, "'if' statements"),
            ("config = {'a': os.path.join('a', 'b')}\n", 1, "unsupported"),
            (
                "\n\nconfig = {'a': undefined_name}\n",
                3,
                "name 'undefined_name' is not defined",
            ),
            ("config = {\n  1: 'a'}\n", 2, "dict keys must be strings"),
            ("config = [1, 2]\n", 1, "config must be a dict"),
            ("module = 5\n", 1, "module must be a string"),
            ("x = 012\n", 1, "leading zeros"),
            ("x = 99999999999999999999\n", 1, "too large"),
            ("x = 1j\n", 1, "complex"),
            ("x = f'{y}'\n", 1, "f-strings"),
            ("x = 'a' + 1\n", 1, "unsupported operand"),
            ("x = '\\x4'\n", 1, "truncated"),
            ("x = {1, 2}\n", 1, "set literals"),
            ("x = 1 $\n", 1, "invalid character"),
            ("x = 1\nx += 1\n", 2, "augmented assignment"),
            ("x = 1 2\n", 1, "unexpected '2'"),
            ("x == 1\n", 1, "unexpected '=='"),
            ("x = 1 \\ y\n", 1, "line continuation"),
            (
                "config = {\n 'a': 1,\n 'b': [\n  2,\n  3 4]}\n",
                5,
                "expected ','",
            ),
            ("config['missing']['x'] = 1\n", 1, "key 'missing' not found"),
        ];
        for (src, line, msg) in cases {
            let e = parse_err(src);
            assert_eq!(e.line, *line, "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e} (wanted {msg:?})");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("x = {}1{}\n", "[".repeat(5000), "]".repeat(5000));
        assert!(parse_err(&src).message.contains("too deeply nested"));
        let src = format!("x = {}1\n", "-".repeat(5000));
        assert!(parse_err(&src).message.contains("too deeply nested"));
        let src = format!("x = 1{}\n", " + 1".repeat(100_000));
        assert!(parse_err(&src).message.contains("too deeply nested"));
        let src = format!("x = [[1]]{}\n", "[0]".repeat(100_000));
        assert!(parse_err(&src).message.contains("too deeply nested"));
        let ok = format!("x = {}1{}\n", "[".repeat(50), "]".repeat(50));
        parse(&ok);
    }

    #[test]
    fn error_display() {
        let e = ParseError {
            line: 7,
            message: "unexpected ']'".into(),
        };
        assert_eq!(e.to_string(), "line 7: unexpected ']'");
    }

    #[test]
    fn value_helpers_and_repr() {
        let v = PyValue::Dict(vec![
            ("s".into(), s("it's")),
            (
                "l".into(),
                PyValue::List(vec![PyValue::Int(1), PyValue::Float(2.0), PyValue::None]),
            ),
            ("b".into(), PyValue::Bool(false)),
        ]);
        assert_eq!(v.get("s").and_then(PyValue::as_str), Some("it's"));
        assert_eq!(v.get("nope"), None);
        assert_eq!(s("x").get("s"), None);
        assert_eq!(
            v.get("l").and_then(PyValue::as_list).map(|l| l.len()),
            Some(3)
        );
        assert_eq!(v.get("b").and_then(PyValue::as_bool), Some(false));
        assert_eq!(PyValue::Int(4).as_int(), Some(4));
        assert_eq!(
            v.to_string(),
            "{'s': 'it\\'s', 'l': [1, 2.0, None], 'b': False}"
        );
        assert!(!s("").is_truthy());
        assert!(PyValue::Int(3).is_truthy());
        assert_eq!(PyValue::None.type_name(), "NoneType");
    }

    #[test]
    fn keyword_arguments_and_socket_checks() {
        let e = parse_err("x = socket.getfqdn(1)\n");
        assert!(e.message.contains("unsupported function call"));
        let e = parse_err("x = socket\n");
        assert!(e.message.contains("socket"));
        let e = parse_err("config.update(1)\n");
        assert!(e.message.contains("needs a dict"));
        let c = parse("from socket import getfqdn\nconfig = {'h': socket.getfqdn()}\n");
        assert_eq!(dict_get(&c.config, "h"), Some(&s("opsi.example.org")));
    }
}

#[cfg(test)]
mod stock_dhcpd_conf {
    use super::*;

    #[test]
    fn gethostbyname_of_the_fqdn_evaluates() {
        let src = "import socket\nmodule = 'DHCPD'\nlocalip = socket.gethostbyname(socket.getfqdn())\n\
                   config = {\"dhcpdConfigFile\": u\"/etc/dhcp/dhcpd.conf\", \"defaultClientParameters\": {\"next-server\": localip}}\n";
        let c = parse_conf(src, "localhost").unwrap();
        assert_eq!(c.module, "DHCPD");
        let params = dict_get(&c.config, "defaultClientParameters").unwrap();
        assert_eq!(
            params.get("next-server").and_then(PyValue::as_str),
            Some("127.0.0.1")
        );
    }
}
