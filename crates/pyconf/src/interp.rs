//! The evaluator of the backend .conf parser: expressions and the few statements a
//! backend file uses, with `socket.getfqdn()` and friends.

use super::lex::*;
use super::*;

#[derive(Debug, Clone)]
pub(super) enum ExprKind {
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
pub(super) struct Expr {
    pub(super) kind: ExprKind,
    pub(super) line: usize,
}

/// Python keywords that start statements this parser does not support.
pub(super) const UNSUPPORTED_STATEMENTS: &[&str] = &[
    "if", "elif", "else", "for", "while", "def", "class", "with", "try", "except", "finally",
    "del", "global", "nonlocal", "return", "raise", "assert", "async", "await", "lambda", "yield",
    "break", "continue", "match",
];

/// How deeply expressions may nest; bounds the recursion of parsing and evaluation.
pub(super) const MAX_DEPTH: usize = 100;

pub(super) struct Interp<'a> {
    pub(super) tokens: Vec<Token>,
    pub(super) pos: usize,
    /// Current expression nesting while parsing.
    pub(super) depth: usize,
    pub(super) fqdn: String,
    /// Answers `socket.gethostbyname(host)`: injected, so that evaluation itself never waits
    /// on DNS (and a fuzzer or test can answer without a network).
    pub(super) resolve: &'a dyn Fn(&str) -> String,
    /// Module globals in assignment order.
    pub(super) globals: Vec<(String, PyValue)>,
}

impl Interp<'_> {
    pub(super) fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    pub(super) fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    pub(super) fn at_op(&self, op: &str) -> bool {
        matches!(&self.peek().tok, Tok::Op(o) if *o == op)
    }

    pub(super) fn eat_op(&mut self, op: &str) -> bool {
        let hit = self.at_op(op);
        if hit {
            self.next();
        }
        hit
    }

    pub(super) fn expect_op(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat_op(op) {
            return Ok(());
        }
        let t = self.peek();
        err(t.line, format!("expected '{op}', found {}", t.tok))
    }

    pub(super) fn run(&mut self) -> Result<(), ParseError> {
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

    pub(super) fn statement(&mut self) -> Result<(), ParseError> {
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

    pub(super) fn expression_statement(&mut self, e: &Expr) -> Result<(), ParseError> {
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

    pub(super) fn assign(&mut self, target: &Expr, value: PyValue) -> Result<(), ParseError> {
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
    pub(super) fn lookup_mut(&mut self, e: &Expr) -> Result<&mut PyValue, ParseError> {
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

    pub(super) fn eval(&self, e: &Expr) -> Result<PyValue, ParseError> {
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
                        return Ok(PyValue::Str((self.resolve)(&host)));
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

    pub(super) fn expr(&mut self) -> Result<Expr, ParseError> {
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

    pub(super) fn unary(&mut self) -> Result<Expr, ParseError> {
        let line = self.peek().line;
        if self.depth >= MAX_DEPTH {
            return err(line, "expression too deeply nested");
        }
        self.depth += 1;
        let e = self.unary_inner(line);
        self.depth -= 1;
        e
    }

    pub(super) fn unary_inner(&mut self, line: usize) -> Result<Expr, ParseError> {
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

    pub(super) fn postfix(&mut self) -> Result<Expr, ParseError> {
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
    pub(super) fn call_args(&mut self) -> Result<(Vec<Expr>, Vec<(String, Expr)>), ParseError> {
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

    pub(super) fn atom(&mut self) -> Result<Expr, ParseError> {
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

pub(super) fn list_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let idx = if i < 0 { i + len } else { i };
    (0..len).contains(&idx).then_some(idx as usize)
}

pub(super) fn arith(
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
