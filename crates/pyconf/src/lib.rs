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
//!
//! `socket.gethostbyname(...)` is answered by the resolver the caller passes to
//! [`parse_conf`]: evaluation never asks the network by itself. opsi-backup passes
//! [`system_resolver`]; tests and fuzzing pass a fixed answer.
//!
//! A crate of its own because it needs nothing of opsi-backup. Modules: `lex` (tokens),
//! `interp` (the evaluator); this file holds the values, the errors and the entry point.

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

/// The first IPv4 address of `host` from the system's resolver, or 127.0.0.1 when it does not
/// resolve: what `socket.gethostbyname` answers on the server. The resolver opsi-backup passes
/// to [`parse_conf`].
pub fn system_resolver(host: &str) -> String {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.find(|a| a.is_ipv4()))
        .map_or_else(|| "127.0.0.1".to_string(), |a| a.ip().to_string())
}

/// Parses and evaluates a backend configuration file. `fqdn` is what `socket.getfqdn()`
/// returns; `socket.gethostbyname(host)` returns `resolve(host)`.
pub fn parse_conf(
    src: &str,
    fqdn: &str,
    resolve: &dyn Fn(&str) -> String,
) -> Result<PyConf, ParseError> {
    let tokens = Lexer::new(src).run()?;
    let mut interp = Interp {
        tokens,
        pos: 0,
        depth: 0,
        fqdn: fqdn.to_string(),
        resolve,
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

mod interp;
mod lex;

use interp::*;
use lex::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed answer (a documentation address): unit tests never ask the network.
    fn test_resolver(_host: &str) -> String {
        "192.0.2.1".to_string()
    }

    fn parse(src: &str) -> PyConf {
        parse_conf(src, "opsi.example.org", &test_resolver).unwrap_or_else(|e| panic!("{e}\n{src}"))
    }

    fn parse_err(src: &str) -> ParseError {
        match parse_conf(src, "opsi.example.org", &test_resolver) {
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
        let c = parse_conf(src, "localhost", &system_resolver).unwrap();
        assert_eq!(c.module, "DHCPD");
        let params = dict_get(&c.config, "defaultClientParameters").unwrap();
        assert_eq!(
            params.get("next-server").and_then(PyValue::as_str),
            Some("127.0.0.1")
        );
    }
}
