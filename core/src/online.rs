//! Online runs: which text counts as "the next statement, exactly as registered".

/// A statement as compared in an online run: line ends as LF, trailing spaces and tabs of each
/// line removed (as the hash's body normalisation does), surrounding blank space and the final
/// semicolons removed. Nothing inside the statement is touched: a changed literal, comment or
/// identifier is a different statement.
pub fn normalise_statement(text: &str) -> String {
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
        assert!(!same_statement(&format!("/* c */ {reg}"), reg));
        assert!(!same_statement("", reg));
    }
}
