//! A map of a document (msgpack or JSON) as byte ranges, which the scanners produce and the
//! split consumes.

use std::ops::Range;

/// One entry of a map: the key's text (a string's bytes), what precedes the value (the key
/// itself, for JSON also the separators), and the value.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: Range<usize>,
    pub(crate) prefix: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// A map cut into its opening, entries and closing bytes.
#[derive(Debug, Clone)]
pub(crate) struct MapParts {
    pub(crate) open: Range<usize>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) close: Range<usize>,
}

/// An array cut into its opening, items, the separator between items (JSON's `,`; msgpack
/// has none) and closing bytes (empty for msgpack).
#[derive(Debug, Clone)]
pub(crate) struct ArrayParts {
    pub(crate) open: Range<usize>,
    pub(crate) items: Vec<Range<usize>>,
    pub(crate) separator: Option<Range<usize>>,
    pub(crate) close: Range<usize>,
}
