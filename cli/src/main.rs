//! `pgrepair`: the command-line client of the pg_repair PostgreSQL extension.
//!
//! Exit codes are in `exit.rs`; how errors are shown in `error.rs`; how the connection is found
//! in `connect.rs`. Each subcommand lives in `commands/`.

// Every unsafe block says why it is sound (`// SAFETY:`).
#![warn(clippy::undocumented_unsafe_blocks)]

/// `eprintln!` that never panics: a line on stderr through `output::err_line`, ignored when
/// stderr is closed or a broken pipe. Use it instead of `eprintln!` everywhere.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::err_line(&format!($($arg)*))
    };
}

mod backup;
mod cancel;
mod cli;
mod commands;
mod connect;
mod conninfo;
mod duration;
mod error;
mod exit;
mod output;
mod pg_error;
mod progress;
mod source_file;
mod tls;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};
use serde_json::json;

use crate::cli::{AuditCommand, BaselineCommand, Cli, Command};
use crate::commands::Ctx;
use crate::error::CliError;

fn main() {
    install_panic_hook();
    cancel::install();
    let json_requested = std::env::args_os().any(|a| a == "--json");

    let cli = match cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => usage_error(e, json_requested),
    };

    let ctx = Ctx {
        json: cli.json,
        dsn: cli.dsn.clone(),
    };
    let code = match dispatch(&ctx, &cli.command) {
        // `execute` decides itself what a Ctrl-C that came too late means (the run completed)
        Ok(_) if cancel::requested() && !matches!(cli.command, Command::Execute(_)) => {
            report(
                &ctx,
                &CliError::Cancelled("interrupted by Ctrl-C".to_string()),
            );
            exit::CANCELLED
        }
        Ok(code) => code,
        Err(e) => {
            // 57014 alone is not enough: a statement_timeout raises it too. A lost connection
            // stays what it is (exit 2): it says what the online run it ended leaves behind.
            let e = if cancel::requested()
                && !matches!(e, CliError::Cancelled(_) | CliError::ConnectionLost { .. })
            {
                CliError::Cancelled(if e.is_query_canceled() {
                    "the server cancelled the running statement".to_string()
                } else {
                    format!("interrupted by Ctrl-C ({})", e.human_lines().join(" "))
                })
            } else {
                e
            };
            report(&ctx, &e);
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn dispatch(ctx: &Ctx, command: &Command) -> Result<i32, CliError> {
    match command {
        Command::Hash { files } => commands::hash::run(ctx, files),
        Command::Lint { files } => commands::lint::run(ctx, files),
        Command::Install { dir } => commands::install::run(ctx, dir),
        Command::List => commands::list::run(ctx),
        Command::Preview { id } => commands::preview::run(ctx, id),
        Command::Execute(args) => commands::execute::run(ctx, args),
        Command::Runs { playbook, limit } => commands::runs::run(ctx, playbook.as_deref(), *limit),
        Command::Approve(args) => commands::approve::run(ctx, args),
        Command::Approvals { playbook, limit } => {
            commands::approvals::run(ctx, playbook.as_deref(), *limit)
        }
        Command::RevokeApproval {
            approval_id,
            reason,
        } => commands::approve::revoke(ctx, approval_id, reason),
        Command::Refusals {
            since,
            playbook,
            limit,
        } => commands::refusals::run(ctx, since.as_ref(), playbook.as_deref(), *limit),
        Command::Audit {
            command: AuditCommand::Verify { expect_head },
        } => commands::audit::verify(ctx, expect_head.as_deref()),
        Command::Check { tags } => commands::check::run(ctx, tags),
        Command::Baseline {
            command: BaselineCommand::Capture { label, tables },
        } => commands::baseline::capture(ctx, label, tables),
        Command::Baseline {
            command: BaselineCommand::Verify { label },
        } => commands::baseline::verify(ctx, label),
        Command::Gate { confirm_prod } => commands::gate::run(ctx, *confirm_prod),
        Command::AssertNotEmpty => commands::assert_not_empty::run(ctx),
    }
}

fn report(ctx: &Ctx, e: &CliError) {
    if ctx.json {
        output::emit_json(&e.to_json());
    } else {
        for line in e.human_lines() {
            output::eprint_human(&line);
        }
    }
}

/// clap's own errors: help and version print normally; usage errors exit 2 (as JSON with
/// `--json`).
fn usage_error(e: clap::Error, json_requested: bool) -> ! {
    // `--help` / `--version` asked for text; a missing subcommand (`pgrepair --json audit`) is a
    // usage error like any other: with --json it is a JSON error, not help text.
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if json_requested && !informational {
        let message = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            missing_subcommand_message()
        } else {
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("usage error");
            first
                .strip_prefix("error: ")
                .unwrap_or(first)
                .trim()
                .to_string()
        };
        output::emit_json(&json!({"error": {
            "kind": "usage",
            "sqlstate": null,
            "message": message,
            "detail": null,
            "hint": "see pgrepair --help",
        }}));
        std::process::exit(exit::USAGE);
    }
    if informational {
        e.exit()
    }
    // A usage error echoes the command line, which may carry anything: plain text, escaped.
    output::eprint_human(e.render().to_string().trim_end());
    std::process::exit(e.exit_code())
}

/// `audit needs a subcommand: verify` for `pgrepair --json audit`.
fn missing_subcommand_message() -> String {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .filter_map(|a| a.into_string().ok())
        .collect();
    let command = Cli::command();
    let mut cmd = &command;
    let mut path = Vec::new();
    for a in &args {
        if let Some(sub) = cmd.find_subcommand(a) {
            path.push(a.clone());
            cmd = sub;
        }
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .map(|s| s.get_name().to_string())
        .collect();
    let name = if path.is_empty() {
        "pgrepair".to_string()
    } else {
        path.join(" ")
    };
    format!("{name} needs a subcommand: {}", subs.join(", "))
}

/// A bug must still end in one line and exit 1, never a backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        output::eprint_human(&format!(
            "pgrepair: internal error: {msg}{at} (please report this bug)"
        ));
        std::process::exit(exit::FAILED);
    }));
}
