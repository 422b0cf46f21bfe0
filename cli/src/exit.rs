//! Process exit codes. They are part of the CLI's contract (scripts and CI branch on them), so
//! they live in one place and `--help` / README are generated from / checked against this table.

/// Everything went through (or the decision is GO).
pub const OK: i32 = 0;
/// Refused or failed: the server raised an error (a guard refusal, a failed registration), a run
/// came back FAILED (or, online, ABORTED by Ctrl-C), the audit chain does not verify, or a local
/// file did not parse.
pub const FAILED: i32 = 1;
/// Usage error (bad flags, missing arguments), the database could not be reached, or the
/// connection was lost during an online run.
pub const USAGE: i32 = 2;
/// Baseline drift, or a NO-GO decision from the validation checks.
pub const DRIFT_OR_NO_GO: i32 = 3;
/// HOLD decision from the validation checks (only one or two important failures).
pub const HOLD: i32 = 4;
/// `assert-not-empty` found no user tables.
pub const EMPTY_DATABASE: i32 = 99;
/// Interrupted by Ctrl-C (SIGINT): the running statement was cancelled on the server
/// (128 + SIGINT, as shells report it).
pub const CANCELLED: i32 = 130;

/// Every exit code with its meaning, in the order `--help` prints them.
pub const TABLE: &[(i32, &str)] = &[
    (OK, "ok (GO)"),
    (
        FAILED,
        "refused or failed: the server raised an error (guard refusal, failed registration), \
         a run came back FAILED, an online run was ABORTED by Ctrl-C, `audit verify` found a \
         broken chain or an unexpected head, or a local file did not parse",
    ),
    (
        USAGE,
        "usage error, or cannot connect to the database, or the connection was lost during \
         an online run (the run stays INCOMPLETE)",
    ),
    (DRIFT_OR_NO_GO, "baseline drift, or NO-GO"),
    (HOLD, "HOLD"),
    (EMPTY_DATABASE, "empty database (no user tables)"),
    (
        CANCELLED,
        "cancelled by Ctrl-C (SIGINT): the server was asked to cancel the running statement \
         and answered; a cancelled execute is rolled back",
    ),
];

/// The "Exit codes" section of `--help`.
pub fn help_section() -> String {
    const WIDTH: usize = 88;
    let mut s = String::from("Exit codes:\n");
    for (code, meaning) in TABLE {
        // hanging indent so wrapped lines stay under their code
        let mut line = format!("  {code:>3} ");
        for word in meaning.split_whitespace() {
            if line.len() + 1 + word.len() > WIDTH {
                s.push_str(&line);
                s.push('\n');
                line = " ".repeat(6);
            }
            line.push(' ');
            line.push_str(word);
        }
        s.push_str(&line);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_documented() {
        let mut codes: Vec<i32> = TABLE.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 99, 130]);
        let help = help_section();
        assert!(help.contains("   99  empty database"), "{help}");
        assert!(help.contains("  130  cancelled by Ctrl-C"), "{help}");
        assert!(help.lines().all(|l| l.len() <= 88), "{help}");
    }
}
