//! Online runs: which text counts as "the next statement, exactly as registered".

/// A statement as compared in an online run: line ends as LF, trailing spaces and tabs of each
/// line removed (as the hash's body normalisation does), surrounding blank space and the final
/// semicolons removed. Nothing inside the statement is touched: a changed literal, comment or
/// identifier is a different statement.
pub fn normalise_statement(text: &str) -> String {
    let text = without_leading_comments(text);
    let lf = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = lf
        .lines()
        .map(|l| l.trim_end_matches([' ', '\t']))
        .collect();
    let joined = lines.join("\n");
    let mut s = joined.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n');
    loop {
        let t = s
            .strip_suffix(';')
            .map(|t| t.trim_end_matches([' ', '\t', '\n']));
        match t {
            Some(t) => s = t,
            None => break,
        }
    }
    s.to_string()
}

/// `text` from its first token on: leading blanks and comments (`-- …` lines, nested `/* … */`
/// blocks) are not part of a statement — PostgreSQL's own statement boundaries exclude them
/// from PostgreSQL 18 on, and the registered statements never start with one. Only leading ones:
/// anywhere else a comment marker may sit inside a literal, and the text must match exactly.
fn without_leading_comments(text: &str) -> &str {
    let mut s = text;
    loop {
        let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
        if let Some(rest) = t.strip_prefix("--") {
            s = rest.find(['\n', '\r']).map_or("", |i| &rest[i..]);
        } else if t.starts_with("/*") {
            let mut depth = 0usize;
            let bytes = t.as_bytes();
            let mut i = 0;
            let mut end = None;
            while i + 1 < bytes.len() {
                if bytes[i] == b'/' && bytes[i + 1] == b'*' {
                    depth += 1;
                    i += 2;
                } else if bytes[i] == b'*' && bytes[i + 1] == b'/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            match end {
                Some(i) => s = &t[i..],
                // An unterminated comment is not a statement PostgreSQL would run: keep it, so
                // it matches nothing.
                None => return t,
            }
        } else {
            return t;
        }
    }
}

/// Whether `sent` is the registered statement `registered`.
pub fn same_statement(sent: &str, registered: &str) -> bool {
    normalise_statement(sent) == normalise_statement(registered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_framing_is_ignored() {
        let reg = "CREATE INDEX CONCURRENTLY IF NOT EXISTS i\n    ON public.t (x)";
        assert!(same_statement(reg, reg));
        assert!(same_statement(&format!("  {reg};\n"), reg));
        assert!(same_statement(&format!("{reg} ;;"), reg));
        assert!(same_statement(&reg.replace('\n', "\r\n"), reg));
        assert!(same_statement(&reg.replace("i\n", "i  \t\n"), reg));
        assert!(!same_statement(&reg.replace("(x)", "(y)"), reg));
        assert!(!same_statement(&reg.replace("    ON", "  ON"), reg));
        assert!(!same_statement(&format!("{reg}; SELECT 1"), reg));
        assert!(!same_statement(&format!("{reg} /* c */"), reg));
        assert!(!same_statement(
            &reg.replace("CREATE INDEX", "CREATE  INDEX"),
            reg
        ));
        // leading comments are not part of a statement (PostgreSQL 18 leaves them out itself)
        assert!(same_statement(
            &format!("/* c /* nested */ */ -- x\n {reg}"),
            reg
        ));
        assert!(same_statement(&format!("-- why\n{reg};"), reg));
        assert!(!same_statement(&format!("/* c */ {reg} -- x"), reg));
        assert!(!same_statement("", reg));
    }
}
