//! "Did you mean" suggestions for misspelt header keys and waiver rules.

/// Candidates close to `word`, best first: same text ignoring case and `_`/`-`, then small edit
/// distances. Empty when nothing is plausibly what was meant.
pub(crate) fn close_matches<'a>(word: &str, candidates: &[&'a str]) -> Vec<&'a str> {
    let folded = fold(word);
    let limit = match word.chars().count() {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    let mut scored: Vec<(usize, &'a str)> = candidates
        .iter()
        .filter_map(|c| {
            let fc = fold(c);
            if fc == folded {
                return Some((0, *c));
            }
            // Long inputs cannot be close to our short names; skip the quadratic work.
            if folded.len() > fc.len() + limit {
                return None;
            }
            let d = edit_distance(&folded, &fc);
            (d <= limit).then_some((d, *c))
        })
        .collect();
    scored.sort();
    scored.into_iter().map(|(_, c)| c).collect()
}

fn fold(s: &str) -> Vec<char> {
    s.chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// `a`, `a or b`, `a, b or c`, each in backticks.
pub(crate) fn or_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rule;

    #[test]
    fn finds_typos_and_case_and_separator_variants() {
        let rules = [
            Rule::BanDrop,
            Rule::BanDelete,
            Rule::BanUpdate,
            Rule::BanSet,
        ]
        .map(Rule::id);
        assert_eq!(close_matches("ban-drops", &rules), vec![Rule::BanDrop.id()]);
        assert_eq!(close_matches("BAN_DROP", &rules), vec![Rule::BanDrop.id()]);
        assert!(close_matches("completely-else", &rules).is_empty());
        assert_eq!(close_matches("tilte", &["title", "repair"]), vec!["title"]);
        assert!(close_matches(&"x".repeat(10_000), &rules).is_empty());
    }

    #[test]
    fn or_list_reads_naturally() {
        assert_eq!(or_list(&[]), "");
        assert_eq!(or_list(&["a"]), "`a`");
        assert_eq!(or_list(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
