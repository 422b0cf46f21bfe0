//! Characters that must never reach an operator's terminal or a reviewer's eyes raw: C0 and C1
//! control characters, DEL, and the bidirectional override / isolate characters of the "Trojan
//! Source" attack. One definition, shared by the parser (header values are refused), the
//! extension (reasons, request ids, body lint) and the CLI (everything human-readable it prints
//! shows them escaped).

use crate::rules::Rule;
use std::borrow::Cow;
use std::fmt::Write as _;

/// C0 controls (U+0000–U+001F), DEL (U+007F) and C1 controls (U+0080–U+009F).
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// The bidirectional embedding, override and isolate characters: LRE, RLE, PDF, LRO, RLO
/// (U+202A–U+202E) and LRI, RLI, FSI, PDI (U+2066–U+2069).
pub fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A control or bidi character: never shown raw, never accepted in a one-line field.
pub fn is_unsafe(c: char) -> bool {
    is_control(c) || is_bidi(c)
}

/// The visible escape of one character: `\r`, `\n`, `\t`, `\x1b` for C0 and DEL, `\u009b` for
/// C1, `\u202e` for bidi characters; any other character is returned as itself.
pub fn escape_char(c: char) -> String {
    match c {
        '\n' => "\\n".to_string(),
        '\r' => "\\r".to_string(),
        '\t' => "\\t".to_string(),
        '\u{0}'..='\u{1f}' | '\u{7f}' => format!("\\x{:02x}", c as u32),
        c if is_unsafe(c) => format!("\\u{:04x}", c as u32),
        c => c.to_string(),
    }
}

/// `U+001B` style code point name.
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// `s` with every unsafe character except those `keep` admits replaced by its visible escape.
/// Borrowed (no copy) when nothing needs escaping. Idempotent: escapes are plain ASCII.
pub fn escape_with(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) && !keep(c) {
            out.push_str(&escape_char(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text for a terminal: line feeds and tabs kept (they only move the cursor forward or down),
/// every other control and bidi character escaped. CR is escaped: it would let text overwrite
/// the line it is printed on.
pub fn visible(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| c == '\n' || c == '\t')
}

/// Text for one line: every control and bidi character escaped, line feeds and tabs included.
pub fn visible_line(s: &str) -> Cow<'_, str> {
    escape_with(s, |_| false)
}

/// JSON text (as serde_json writes it) with the characters JSON does not require escaping but a
/// terminal would act on — DEL, C1 controls, bidi characters — written as `\uXXXX` escapes. The
/// document means exactly the same; it is only safe to print. Correct because these characters
/// can only occur inside JSON strings, where `\uXXXX` denotes the same character.
pub fn json_escape_unsafe(json: &str) -> Cow<'_, str> {
    // C0 characters in JSON text are its own whitespace (strings escape them already).
    let needs = |c: char| is_unsafe(c) && c >= '\u{7f}';
    if !json.chars().any(needs) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if needs(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An unsafe character found in a one-line field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsafe {
    pub ch: char,
    /// 0-based character (not byte) index in the checked value.
    pub index: usize,
}

impl Unsafe {
    /// `a control character U+001B (shown as \x1b)` / `a bidirectional override character
    /// U+202E (shown as \u202e)`.
    pub fn describe(&self) -> String {
        let what = if is_bidi(self.ch) {
            "a bidirectional override character"
        } else {
            "a control character"
        };
        format!(
            "{what} {} (shown as {})",
            code_point(self.ch),
            escape_char(self.ch)
        )
    }
}

/// The rule for one-line text fields (header values, reasons, request ids): no control
/// character at all (tab, CR and LF included) and no bidi character. Reports the first one.
pub fn check_field(value: &str) -> Result<(), Unsafe> {
    match value.chars().enumerate().find(|(_, c)| is_unsafe(*c)) {
        Some((index, ch)) => Err(Unsafe { ch, index }),
        None => Ok(()),
    }
}

/// Characters that render as nothing: whitespace, zero-width and other format characters,
/// fillers, variation selectors and tag characters. Text made only of these reads as empty.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || is_unsafe(c)
        || matches!(
            c,
            '\u{00ad}'
                | '\u{034f}'
                | '\u{061c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206a}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e007f}'
                | '\u{e0100}'..='\u{e01ef}'
        )
}

/// Whether `s` has at least one character a reader can see.
pub fn has_visible_text(s: &str) -> bool {
    s.chars().any(|c| !is_invisible(c))
}

/// Where in the SQL body a character was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// SQL code, outside any literal or comment.
    Code,
    /// Inside a double-quoted identifier: still code (it names an object).
    QuotedIdentifier,
    /// Inside a string literal ('…', E'…', $tag$…$tag$).
    StringLiteral,
    /// Inside a `--` or `/* */` comment.
    Comment,
}

/// One unsafe character in a SQL body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyHit {
    /// 1-based line and column (in characters) within the scanned text.
    pub line: u32,
    pub col: u32,
    pub ch: char,
    pub place: Place,
    /// A bidi embedding/override/isolate opened inside a literal or comment and not closed
    /// before it ends on that line: it reorders the code that follows (Trojan Source).
    pub leaks: bool,
}

impl BodyHit {
    /// Code, quoted identifiers and leaking overrides are errors; the rest warnings.
    pub fn is_error(&self) -> bool {
        self.leaks || matches!(self.place, Place::Code | Place::QuotedIdentifier)
    }

    /// [`Rule::ControlCharacter`] for an error, [`Rule::ControlCharacterInLiteral`] otherwise.
    pub fn rule(&self) -> Rule {
        if self.is_error() {
            Rule::ControlCharacter
        } else {
            Rule::ControlCharacterInLiteral
        }
    }

    pub fn message(&self) -> String {
        let what = Unsafe {
            ch: self.ch,
            index: 0,
        }
        .describe();
        let escape = escape_char(self.ch);
        if self.leaks {
            let inside = match self.place {
                Place::Comment => "comment",
                _ => "string literal",
            };
            return format!(
                "{what} is not closed before the end of its {inside}: it reorders the code that \
                 follows on this line, so the code displayed is not the code that runs; remove it"
            );
        }
        match self.place {
            Place::Code => format!(
                "{what} in the SQL code, outside any string literal or comment: editors and \
                 terminals may display the code differently from what runs; remove it"
            ),
            Place::QuotedIdentifier => format!(
                "{what} in a double-quoted identifier: object names must not hide characters; \
                 remove it"
            ),
            Place::StringLiteral => format!(
                "{what} inside a string literal: write it as an escape (E'{escape}' or chr({})) \
                 so reviewers can see it",
                self.ch as u32
            ),
            Place::Comment => format!("{what} inside a comment: remove it"),
        }
    }
}

/// Scans a SQL body with a small lexer (PostgreSQL's quoting rules: '…' with '' escapes,
/// E'…' with backslash escapes, $tag$…$tag$, "…" identifiers with "" escapes, -- comments,
/// nested /* */ comments) and reports every unsafe character except tab, LF and CR.
pub fn scan_body(sql: &str) -> Vec<BodyHit> {
    Scanner::new(sql).run()
}

struct Scanner {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
    hits: Vec<BodyHit>,
    /// Indices into `hits` of bidi openers not yet closed in the current literal/comment line.
    open: Vec<usize>,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || (c as u32) >= 0x80
}

fn is_tag_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || (c as u32) >= 0x80
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || (c as u32) >= 0x80
}

impl Scanner {
    fn new(sql: &str) -> Self {
        Scanner {
            chars: sql.chars().collect(),
            i: 0,
            line: 1,
            col: 1,
            hits: Vec::new(),
            open: Vec::new(),
        }
    }

    fn peek(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    /// Consumes one character, recording it if unsafe.
    fn bump(&mut self, place: Place) {
        let Some(c) = self.peek(0) else { return };
        if is_unsafe(c) && !matches!(c, '\t' | '\n' | '\r') {
            self.hits.push(BodyHit {
                line: self.line,
                col: self.col,
                ch: c,
                place,
                leaks: false,
            });
            if place != Place::Code {
                match c {
                    '\u{202a}' | '\u{202b}' | '\u{202d}' | '\u{202e}' | '\u{2066}'..='\u{2068}' => {
                        self.open.push(self.hits.len() - 1)
                    }
                    '\u{202c}' | '\u{2069}' => {
                        self.open.pop();
                    }
                    _ => {}
                }
            }
        }
        self.i += 1;
        if c == '\n' || (c == '\r' && self.peek(0) != Some('\n')) {
            // A line break ends every embedding (it is a paragraph separator).
            self.open.clear();
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
    }

    /// The literal or comment ended: overrides still open reorder what follows.
    fn close_region(&mut self) {
        for k in self.open.drain(..) {
            self.hits[k].leaks = true;
        }
    }

    fn run(mut self) -> Vec<BodyHit> {
        while let Some(c) = self.peek(0) {
            let prev = self.i.checked_sub(1).map(|k| self.chars[k]);
            match c {
                '-' if self.peek(1) == Some('-') => self.line_comment(),
                '/' if self.peek(1) == Some('*') => self.block_comment(),
                '\'' => {
                    let backslash = matches!(prev, Some('e' | 'E'))
                        && !self
                            .i
                            .checked_sub(2)
                            .is_some_and(|k| is_ident_char(self.chars[k]));
                    self.string(backslash);
                }
                '"' => self.quoted_identifier(),
                '$' if !prev.is_some_and(is_ident_char) => match self.dollar_tag() {
                    Some(len) => self.dollar_string(len),
                    None => self.bump(Place::Code),
                },
                c if is_ident_char(c) => {
                    // A whole identifier or keyword, so `a$b$` is not taken for a dollar quote.
                    while self.peek(0).is_some_and(is_ident_char) {
                        self.bump(Place::Code);
                    }
                }
                _ => self.bump(Place::Code),
            }
        }
        self.hits
    }

    fn line_comment(&mut self) {
        while let Some(c) = self.peek(0) {
            if c == '\n' || c == '\r' {
                break;
            }
            self.bump(Place::Comment);
        }
        // It ends with its line, and a line break closes every embedding: nothing leaks.
        self.open.clear();
    }

    fn block_comment(&mut self) {
        self.bump(Place::Comment);
        self.bump(Place::Comment);
        let mut depth = 1u32;
        while let Some(c) = self.peek(0) {
            if c == '/' && self.peek(1) == Some('*') {
                depth += 1;
                self.bump(Place::Comment);
                self.bump(Place::Comment);
            } else if c == '*' && self.peek(1) == Some('/') {
                depth -= 1;
                if depth == 0 {
                    self.close_region();
                    self.bump(Place::Code);
                    self.bump(Place::Code);
                    return;
                }
                self.bump(Place::Comment);
                self.bump(Place::Comment);
            } else {
                self.bump(Place::Comment);
            }
        }
        // Unterminated: nothing follows it.
        self.open.clear();
    }

    fn string(&mut self, backslash: bool) {
        self.bump(Place::Code);
        while let Some(c) = self.peek(0) {
            if backslash && c == '\\' {
                self.bump(Place::StringLiteral);
                self.bump(Place::StringLiteral);
            } else if c == '\'' {
                if self.peek(1) == Some('\'') {
                    self.bump(Place::StringLiteral);
                    self.bump(Place::StringLiteral);
                } else {
                    self.close_region();
                    self.bump(Place::Code);
                    return;
                }
            } else {
                self.bump(Place::StringLiteral);
            }
        }
        self.open.clear();
    }

    fn quoted_identifier(&mut self) {
        self.bump(Place::Code);
        while let Some(c) = self.peek(0) {
            if c == '"' {
                if self.peek(1) == Some('"') {
                    self.bump(Place::QuotedIdentifier);
                    self.bump(Place::QuotedIdentifier);
                } else {
                    self.bump(Place::Code);
                    return;
                }
            } else {
                self.bump(Place::QuotedIdentifier);
            }
        }
    }

    /// Length in characters of a `$tag$` opener at the current position.
    fn dollar_tag(&self) -> Option<usize> {
        let mut k = 1;
        match self.peek(k)? {
            '$' => return Some(2),
            c if is_tag_start(c) => k += 1,
            _ => return None,
        }
        loop {
            match self.peek(k)? {
                '$' => return Some(k + 1),
                c if is_tag_char(c) => k += 1,
                _ => return None,
            }
        }
    }

    fn dollar_string(&mut self, len: usize) {
        let tag: Vec<char> = self.chars[self.i..self.i + len].to_vec();
        for _ in 0..len {
            self.bump(Place::Code);
        }
        while self.peek(0).is_some() {
            if self.chars[self.i..].starts_with(&tag) {
                self.close_region();
                for _ in 0..len {
                    self.bump(Place::Code);
                }
                return;
            }
            self.bump(Place::StringLiteral);
        }
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(sql: &str) -> Vec<(u32, u32, char, Place, bool)> {
        scan_body(sql)
            .into_iter()
            .map(|h| (h.line, h.col, h.ch, h.place, h.leaks))
            .collect()
    }

    #[test]
    fn escapes_are_visible_and_idempotent() {
        let hostile = "a\u{1b}[31mb\u{7}c\rd\u{0}e\u{7f}f\u{9b}g\u{202e}h\u{2066}i\tj\nk";
        let v = visible(hostile);
        assert_eq!(
            v,
            "a\\x1b[31mb\\x07c\\rd\\x00e\\x7ff\\u009bg\\u202eh\\u2066i\tj\nk"
        );
        assert_eq!(visible(&v), v);
        assert!(!v.chars().any(|c| is_unsafe(c) && c != '\n' && c != '\t'));
        assert_eq!(visible_line("a\tb\nc"), "a\\tb\\nc");
        assert!(matches!(visible("plain ünïcødé 漢"), Cow::Borrowed(_)));
    }

    #[test]
    fn classification_bounds() {
        for c in ['\u{0}', '\u{1f}', '\u{7f}', '\u{80}', '\u{9f}', '\t', '\n'] {
            assert!(is_control(c), "{c:?}");
        }
        for c in [' ', '~', '\u{a0}', 'é', '\u{2028}'] {
            assert!(!is_unsafe(c), "{c:?}");
        }
        for c in ['\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}'] {
            assert!(is_bidi(c));
        }
        for c in ['\u{2029}', '\u{202f}', '\u{2065}', '\u{206a}'] {
            assert!(!is_bidi(c), "{c:?}");
        }
    }

    #[test]
    fn json_escaping_keeps_the_document() {
        let s = "x\u{1b}\u{7f}\u{85}\u{202e}\u{2069}y";
        let text = serde_json::to_string(&serde_json::json!({ "t": s })).unwrap();
        let safe = json_escape_unsafe(&text);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["t"], s);
        // pretty-printed: its line breaks and indentation are JSON whitespace and stay
        let pretty = serde_json::to_string_pretty(&serde_json::json!({ "t": [s] })).unwrap();
        let safe = json_escape_unsafe(&pretty);
        assert!(safe.contains("\n  \"t\""), "{safe}");
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["t"][0], s);
    }

    #[test]
    fn fields() {
        assert_eq!(check_field("plain text, ünï"), Ok(()));
        assert_eq!(
            check_field("ab\u{1b}c"),
            Err(Unsafe {
                ch: '\u{1b}',
                index: 2
            })
        );
        assert_eq!(check_field("é\u{202e}").unwrap_err().index, 1);
        assert!(check_field("a\tb").is_err());
        assert!(check_field("a\nb").is_err());
        assert!(check_field("\u{85}").is_err());
        assert_eq!(
            check_field("\u{7}").unwrap_err().describe(),
            "a control character U+0007 (shown as \\x07)"
        );
        assert_eq!(
            check_field("\u{2066}").unwrap_err().describe(),
            "a bidirectional override character U+2066 (shown as \\u2066)"
        );
    }

    #[test]
    fn visible_text() {
        assert!(has_visible_text("x"));
        assert!(has_visible_text(" \u{200b}ticket 42"));
        for s in [
            "",
            "   ",
            "\u{200b}",
            "\u{200b}\u{200c}\u{200d}\u{2060}\u{feff}",
            "\u{3000}\u{a0}\u{2028}",
            "\u{e0041}\u{fe0f}",
            "\u{ad}",
        ] {
            assert!(!has_visible_text(s), "{s:?}");
        }
    }

    #[test]
    fn code_is_an_error() {
        let hits = places("SELECT 1;\nSELECT \u{1b}[2J 2;");
        assert_eq!(hits, vec![(2, 8, '\u{1b}', Place::Code, false)]);
        assert!(scan_body("SELECT \u{202e}1").iter().all(BodyHit::is_error));
        assert_eq!(scan_body("SELECT \u{7}")[0].rule(), Rule::ControlCharacter);
    }

    #[test]
    fn tab_lf_cr_are_not_reported() {
        assert!(scan_body("SELECT\t1\r\nFROM x\n").is_empty());
        assert!(scan_body("SELECT 'a\tb'").is_empty());
    }

    #[test]
    fn single_quoted_strings() {
        assert_eq!(
            places("SELECT 'it''s \u{7}' , \u{7}"),
            vec![
                (1, 15, '\u{7}', Place::StringLiteral, false),
                (1, 20, '\u{7}', Place::Code, false)
            ]
        );
        // standard strings: a backslash does not escape the quote
        assert_eq!(
            places("SELECT 'a\\' \u{7}")[0].3,
            Place::Code,
            "'a\\' ends at the second quote"
        );
    }

    #[test]
    fn escape_strings() {
        assert_eq!(
            places("SELECT E'a\\' \u{7}'")[0].3,
            Place::StringLiteral,
            "E'…\\'…' continues after an escaped quote"
        );
        assert_eq!(places("SELECT e'\\\\' \u{7}")[0].3, Place::Code);
        // an identifier ending in e is not an E prefix
        assert_eq!(places("SELECT name'a\\' \u{7}")[0].3, Place::Code);
    }

    #[test]
    fn dollar_strings() {
        let sql = "DO $body$\nBEGIN RAISE NOTICE '\u{1b}'; END $x$ \u{1b}\n$body$; SELECT \u{1b}";
        assert_eq!(
            places(sql),
            vec![
                (2, 21, '\u{1b}', Place::StringLiteral, false),
                (2, 33, '\u{1b}', Place::StringLiteral, false),
                (3, 16, '\u{1b}', Place::Code, false),
            ]
        );
        assert_eq!(places("SELECT $$\u{7}$$, \u{7}").len(), 2);
        assert_eq!(places("SELECT $$\u{7}$$")[0].3, Place::StringLiteral);
        // $1 is a parameter, a$b$ an identifier: neither opens a string
        assert_eq!(places("SELECT $1 \u{7}")[0].3, Place::Code);
        assert_eq!(places("SELECT a$b$ \u{7}")[0].3, Place::Code);
        // unterminated: the rest is the string
        assert_eq!(places("SELECT $q$ \u{7}")[0].3, Place::StringLiteral);
    }

    #[test]
    fn quoted_identifiers_are_code() {
        let hits = scan_body("SELECT 1 AS \"a\"\"\u{202e}b\"");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].place, Place::QuotedIdentifier);
        assert!(hits[0].is_error());
        // a quote inside an identifier does not open a string
        assert_eq!(places("SELECT \"it's\" \u{7}")[0].3, Place::Code);
    }

    #[test]
    fn comments() {
        assert_eq!(
            places("SELECT 1 -- \u{7} '\nSELECT \u{7}"),
            vec![
                (1, 13, '\u{7}', Place::Comment, false),
                (2, 8, '\u{7}', Place::Code, false)
            ]
        );
        // nested block comments: the first */ does not end the comment
        let hits = places("/* a /* b */ \u{7} */ \u{7}");
        assert_eq!(hits[0].3, Place::Comment);
        assert_eq!(hits[1].3, Place::Code);
        // a quote inside a comment opens nothing
        assert_eq!(places("/* ' */ \u{7}")[0].3, Place::Code);
        assert!(!scan_body("-- \u{1b}")[0].is_error());
        assert_eq!(
            scan_body("-- \u{1b}")[0].rule(),
            Rule::ControlCharacterInLiteral
        );
    }

    #[test]
    fn balanced_bidi_in_a_literal_is_a_warning() {
        let hits = scan_body("SELECT '\u{202e}abc\u{202c}' AS x");
        assert_eq!(hits.len(), 2);
        assert!(hits.iter().all(|h| !h.is_error()));
        let hits = scan_body("SELECT '\u{2067}abc\u{2069}'");
        assert!(hits.iter().all(|h| !h.is_error()));
    }

    #[test]
    fn bidi_leaking_out_of_a_literal_or_comment_is_an_error() {
        // Trojan Source "commenting out": the override opened in the comment flips the code.
        let hits = scan_body("SELECT 1 /* \u{202e} } */ + 1");
        assert_eq!(hits.len(), 1);
        assert!(hits[0].leaks && hits[0].is_error());
        assert!(hits[0].message().contains("not closed"));
        let hits = scan_body("SELECT '\u{2067}admin' = role");
        assert!(hits[0].is_error());
        // a line break closes every embedding, so a multi-line comment is only a warning
        let hits = scan_body("/* \u{202e}\n*/ SELECT 1");
        assert!(!hits[0].is_error());
        // -- comments end at the line end
        assert!(!scan_body("SELECT 1 -- \u{202e}")[0].is_error());
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(places("SELECT 'éé\u{7}'")[0].1, 11);
        assert_eq!(
            places("é\n漢漢\u{7}")[0],
            (2, 3, '\u{7}', Place::Code, false)
        );
    }

    #[test]
    fn messages_never_contain_the_raw_character() {
        for sql in [
            "SELECT \u{1b}",
            "SELECT '\u{1b}'",
            "-- \u{202e}",
            "SELECT \"\u{9b}\"",
            "/*\u{2066}*/",
        ] {
            for h in scan_body(sql) {
                let m = h.message();
                assert!(!m.chars().any(is_unsafe), "{m:?}");
                assert!(m.contains(&escape_char(h.ch)), "{m}");
            }
        }
    }

    #[test]
    fn scanner_is_total() {
        for sql in [
            "", "'", "E'\\", "$", "$a", "$a$", "\"", "/*", "/* /*", "-", "--", "e'",
        ] {
            scan_body(sql);
        }
    }
}
