//! Splits a file into its header lines and its normalised body, before any key is interpreted.

/// One `-- key: value` header line.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeaderLine<'a> {
    pub line: u32,
    pub key: &'a str,
    pub value: &'a str,
    /// Everything after the `:`, untrimmed, and the 1-based column (in characters) where it
    /// starts: what the control-character check looks at.
    pub raw_value: &'a str,
    pub raw_value_col: u32,
}

#[derive(Debug)]
pub(super) struct Layout<'a> {
    pub header: Vec<HeaderLine<'a>>,
    /// 1-based; the first non-blank line, or 1 for a file without one.
    pub first_line: u32,
    /// 1-based number of the file's last line (1 for an empty file), where an empty body is
    /// reported: that is where the SQL is missing.
    pub last_line: u32,
    /// Normalised body and the original line number of its first line; `None` when empty.
    pub body: Option<(String, u32)>,
    /// The first non-blank line when it is not a header line (the header is then empty).
    pub first_text: Option<&'a str>,
}

pub(super) fn layout(source: &str) -> Layout<'_> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let lines = split_lines(source);
    let start = lines
        .iter()
        .position(|l| !is_blank(l))
        .unwrap_or(lines.len());

    let mut header = Vec::new();
    let mut end = start;
    while let Some(text) = lines.get(end) {
        match header_line(text) {
            Some((key, value)) => {
                // The key and the separators before the `:` are ASCII without `:`, so the first
                // `:` is the separator.
                let colon = text.find(':').unwrap_or(text.len().saturating_sub(1));
                header.push(HeaderLine {
                    line: line_no(end),
                    key,
                    value,
                    raw_value: &text[colon + 1..],
                    raw_value_col: u32::try_from(colon + 2).unwrap_or(u32::MAX),
                })
            }
            None => break,
        }
        end += 1;
    }

    Layout {
        first_text: if header.is_empty() {
            lines.get(start).copied()
        } else {
            None
        },
        header,
        first_line: line_no(start.min(lines.len().saturating_sub(1))),
        last_line: line_no(lines.len().saturating_sub(1)),
        body: normalise_body(&lines, end),
    }
}

/// Line numbers are u32 in the API; a file with more than 4 billion lines saturates rather than
/// wrapping around to a wrong small number.
fn line_no(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// Lines split on `\r\n`, `\r` or `\n`. A terminator ends a line rather than starting one, so a
/// final newline adds no empty last line and line numbers match what an editor shows.
pub(super) fn split_lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Blank means what body normalisation removes: nothing but spaces and tabs.
fn is_blank(line: &str) -> bool {
    line.bytes().all(|b| b == b' ' || b == b'\t')
}

/// `--` + optional spaces + KEY + optional spaces + `:` + value, KEY = `[A-Za-z][A-Za-z0-9_-]*`.
/// Returns the key and the trimmed value.
pub(super) fn header_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("--")?.trim_start_matches([' ', '\t']);
    if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let key_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    let (key, after) = rest.split_at(key_len);
    let value = after.trim_start_matches([' ', '\t']).strip_prefix(':')?;
    Some((key, value.trim()))
}

fn normalise_body(lines: &[&str], from: usize) -> Option<(String, u32)> {
    let body: Vec<&str> = lines
        .get(from..)
        .unwrap_or(&[])
        .iter()
        .map(|l| l.trim_end_matches([' ', '\t']))
        .collect();
    let first = body.iter().position(|l| !l.is_empty())?;
    let last = body.iter().rposition(|l| !l.is_empty())?;
    Some((body[first..=last].join("\n"), line_no(from + first)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_every_line_ending_style() {
        assert_eq!(split_lines(""), Vec::<&str>::new());
        assert_eq!(split_lines("a"), vec!["a"]);
        assert_eq!(split_lines("a\n"), vec!["a"]);
        assert_eq!(split_lines("a\n\n"), vec!["a", ""]);
        assert_eq!(split_lines("a\r\nb\rc\nd"), vec!["a", "b", "c", "d"]);
        assert_eq!(split_lines("\r\r\n\n"), vec!["", "", ""]);
        assert_eq!(split_lines("é\r漢"), vec!["é", "漢"]);
    }

    #[test]
    fn recognises_header_lines() {
        assert_eq!(header_line("-- repair: x"), Some(("repair", "x")));
        assert_eq!(header_line("--repair:x"), Some(("repair", "x")));
        assert_eq!(header_line("--  title \t:  A b  "), Some(("title", "A b")));
        assert_eq!(header_line("-- lock-timeout:"), Some(("lock-timeout", "")));
        assert_eq!(header_line("-- just a note"), None);
        assert_eq!(header_line("-- just a note: x"), None);
        assert_eq!(header_line("-- 1x: y"), None);
        assert_eq!(header_line("--- x: y"), None);
        assert_eq!(header_line(" -- x: y"), None);
        assert_eq!(header_line("SELECT 1"), None);
        assert_eq!(header_line("--"), None);
    }

    #[test]
    fn body_is_trimmed_and_located() {
        let l = layout("\n\n-- repair: x\n\n  \nSELECT 1;  \t\n\nSELECT 2;\n\n\t\n");
        assert_eq!(l.first_line, 3);
        assert_eq!(l.header.len(), 1);
        assert_eq!(l.header[0].line, 3);
        assert_eq!(l.body, Some(("SELECT 1;\n\nSELECT 2;".to_string(), 6)));
        assert_eq!(l.last_line, 10);
    }

    #[test]
    fn bom_is_ignored() {
        let l = layout("\u{feff}-- repair: x\nSELECT 1");
        assert_eq!(l.header[0].key, "repair");
    }
}
