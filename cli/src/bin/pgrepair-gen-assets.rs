//! `pgrepair-gen-assets OUT_DIR`: writes pgrepair's man pages and shell completions, generated
//! by clap_mangen and clap_complete from the very `clap::Command` the `pgrepair` binary parses
//! with (cli.rs is compiled into this binary too), so they always match it. Used by
//! scripts/package.sh; not installed by the packages. A separate binary rather than a hidden
//! subcommand keeps `pgrepair`'s own command line exactly as it was.
//!
//! Writes:
//!   OUT_DIR/man/pgrepair.1, plus pgrepair-SUBCOMMAND.1 for each subcommand (`man pgrepair-execute`)
//!   OUT_DIR/completions/pgrepair.bash, _pgrepair (zsh), pgrepair.fish

// Only the syntax (and the exit-code table its help text shows) is needed here; the rest of
// those modules serves the real binary.
#[allow(dead_code)]
#[path = "../cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "../duration.rs"]
mod duration;
#[allow(dead_code)]
#[path = "../exit.rs"]
mod exit;
// Every line this tool prints goes through the same escaping as pgrepair's (cli/tests/terminal.rs
// holds every binary of the crate to that).
#[allow(dead_code)]
#[path = "../output.rs"]
mod output;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [out] = args.as_slice() else {
        output::err_line("usage: pgrepair-gen-assets OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::err_line(&format!("pgrepair-gen-assets: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> std::io::Result<()> {
    let man = out.join("man");
    fs::create_dir_all(&man)?;
    // No date in the pages: the same sources give byte-identical pages (reproducible packages).
    clap_mangen::generate_to(cli::command(), &man)?;

    let completions = out.join("completions");
    fs::create_dir_all(&completions)?;
    for (shell, file) in [
        (Shell::Bash, "pgrepair.bash"),
        (Shell::Zsh, "_pgrepair"),
        (Shell::Fish, "pgrepair.fish"),
    ] {
        let path: PathBuf = completions.join(file);
        let mut f = fs::File::create(&path)?;
        clap_complete::generate(shell, &mut cli::command(), "pgrepair", &mut f);
        f.flush()?;
    }
    Ok(())
}
