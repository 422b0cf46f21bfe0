//! Splitting a playbook body into statements with PostgreSQL's own parser, so that statement
//! boundaries, counts and positions are exactly what the server will execute.

use crate::errors::{caught_message, last_error_position, ErrCodeCapture};
use crate::parse_tree::NodeRef;
use pgrx::pg_sys;
use pgrx::PgTryBuilder;
use std::ffi::CString;
use std::panic::AssertUnwindSafe;

#[derive(Debug, Clone)]
pub struct Statement {
    /// 1-based statement number.
    pub n: usize,
    pub sql: String,
    /// 1-based line and column of the statement's first token within the parsed text.
    pub line: u32,
    pub col: u32,
    /// Parse-tree node tag, e.g. "CreateStmt".
    pub tag: String,
}

#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    pub line: u32,
    pub col: u32,
}

/// Line and column (1-based, columns in characters) of a byte offset.
pub fn line_col(text: &str, byte_offset: usize) -> (u32, u32) {
    LineIndex::new(text).line_col(byte_offset)
}

/// Byte offsets of line starts, so that positions of many statements cost O(log n) each
/// instead of a scan from the start of the text.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    pub fn line_col(&self, byte_offset: usize) -> (u32, u32) {
        let offset = byte_offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        (line as u32, col as u32 + 1)
    }
}

/// Parses `sql` and hands the raw statements (location, length, node) to `visit`, inside the
/// memory context of the call. A syntax error comes back as a value with its position. The nodes
/// cannot outlive `visit` (their lifetime is `visit`'s own).
pub fn with_parsed<T>(
    sql: &str,
    visit: impl FnOnce(Vec<(usize, usize, NodeRef<'_>)>) -> T,
) -> Result<T, SyntaxError> {
    let c = match CString::new(sql) {
        Ok(c) => c,
        Err(e) => {
            let (line, col) = line_col(sql, e.nul_position());
            return Err(SyntaxError {
                message: "NUL byte in SQL".into(),
                line,
                col,
            });
        }
    };
    let capture = ErrCodeCapture::push();
    let parsed = PgTryBuilder::new(AssertUnwindSafe(|| {
        // SAFETY: `c` is a NUL-terminated copy of `sql` that outlives the call; raw_parser
        // reports a syntax error by ERROR, which PgTryBuilder catches. Its result is a List of
        // RawStmt nodes (or NIL) in CurrentMemoryContext, which nothing here resets before
        // `visit` returns.
        let statements = unsafe {
            let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
            raw_statements(list, sql.len())
        };
        Ok(statements)
    }))
    .catch_others(|e| Err(Box::new(e)))
    .execute();
    let pos = last_error_position();
    drop(capture);
    match parsed {
        Ok(stmts) => Ok(visit(
            stmts
                .into_iter()
                // SAFETY: each node is a statement of the tree raw_parser just built in this
                // call's memory context, which stays alive and unchanged while `visit` runs; the
                // lifetime of the NodeRefs is `visit`'s, so none can be kept past it.
                .map(|(start, end, node)| (start, end, unsafe { NodeRef::new(node) }))
                .collect(),
        )),
        Err(e) => {
            let byte = sql
                .char_indices()
                .nth((pos.max(1) - 1) as usize)
                .map_or(sql.len(), |(b, _)| b);
            let (line, col) = if pos > 0 { line_col(sql, byte) } else { (1, 1) };
            Err(SyntaxError {
                message: caught_message(&e),
                line,
                col,
            })
        }
    }
}

/// (start, end, statement node) of each RawStmt of a raw parser result.
///
/// # Safety
/// `list` is NIL or a live List whose elements are RawStmt nodes, as `raw_parser` returns it.
unsafe fn raw_statements(
    list: *mut pg_sys::List,
    total: usize,
) -> Vec<(usize, usize, *mut pg_sys::Node)> {
    if list.is_null() {
        return vec![];
    }
    // SAFETY: `list` is a live List (caller's contract; NIL was handled above).
    let len = unsafe { (*list).length } as usize;
    (0..len)
        .map(|i| {
            // SAFETY: `i < length`, so the element is in bounds, and it is a RawStmt pointer.
            let raw = unsafe { (*(*list).elements.add(i)).ptr_value } as *mut pg_sys::RawStmt;
            // SAFETY: `raw` is a live RawStmt of the list (caller's contract).
            let (loc, slen, node) = unsafe { ((*raw).stmt_location, (*raw).stmt_len, (*raw).stmt) };
            let start = loc.max(0) as usize;
            // stmt_len 0 means "to the end of the string".
            let end = if slen == 0 {
                total
            } else {
                (start + slen as usize).min(total)
            };
            (start, end, node)
        })
        .collect()
}

pub fn node_tag(node: NodeRef<'_>) -> String {
    let Some(tag) = node.tag() else {
        return "Unknown".into();
    };
    let tag = format!("{tag:?}");
    tag.trim_start_matches("T_").to_string()
}

/// The command tag PostgreSQL reports for a statement, e.g. "DROP TABLE".
pub fn command_tag(node: NodeRef<'_>) -> String {
    if node.is_null() {
        return "statement".into();
    }
    // SAFETY: `node` is a live parse-tree node (NodeRef's contract), which is all
    // CreateCommandTag reads; GetCommandTagName returns a static C string or NULL.
    unsafe {
        let name = pg_sys::GetCommandTagName(pg_sys::CreateCommandTag(node.as_ptr()));
        if name.is_null() {
            node_tag(node)
        } else {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        }
    }
}

/// The statements of `sql` with their parse trees, valid only inside `f` (they live in the
/// call's memory context).
pub fn with_statements<T>(
    sql: &str,
    f: impl FnOnce(Vec<(Statement, NodeRef<'_>)>) -> T,
) -> Result<T, SyntaxError> {
    with_parsed(sql, |raw| {
        let index = LineIndex::new(sql);
        let stmts = raw
            .into_iter()
            .enumerate()
            .map(|(i, (start, end, node))| {
                // A statement's location is right after the previous semicolon: skip the
                // whitespace and comments in between so positions point at its first token.
                let start = (start + leading_noise(&sql[start..end])).min(end);
                let (line, col) = index.line_col(start);
                let stmt = Statement {
                    n: i + 1,
                    sql: sql[start..end].trim_end().to_string(),
                    line,
                    col,
                    tag: node_tag(node),
                };
                (stmt, node)
            })
            .collect();
        f(stmts)
    })
}

/// The statements of `sql`, in order.
pub fn split(sql: &str) -> Result<Vec<Statement>, SyntaxError> {
    with_statements(sql, |stmts| stmts.into_iter().map(|(s, _)| s).collect())
}

/// Length in bytes of the whitespace and comments (`--`, nested `/* */`) at the start of `s`.
pub fn leading_noise(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0usize;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else {
            return i;
        }
    }
}
