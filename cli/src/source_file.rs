//! Reading and parsing local playbook / check files with `pg_repair_core`, the same code the
//! extension runs, so offline hashes equal the server's.

use std::path::{Path, PathBuf};

use pg_repair_core::Source;

use crate::error::{io_reason, CliError, FileError};

/// One parsed local file.
pub struct LocalSource {
    /// The path as the user gave it (or as found in the directory), for messages.
    pub file: String,
    /// The file's text, exactly as read (sent to `repair.register`).
    pub text: String,
    pub source: Source,
}

/// Reads and parses one file; errors come back as `FILE:LINE: message`.
pub fn load(path: &Path) -> Result<LocalSource, FileError> {
    let file = path.display().to_string();
    let text = read(path)?;
    let source = pg_repair_core::parse(&text).map_err(|e| FileError {
        file: file.clone(),
        line: e.line,
        message: e.message.clone(),
    })?;
    Ok(LocalSource { file, text, source })
}

/// Reads one file as UTF-8 text, without parsing it; errors come back as `FILE: message`, or
/// `FILE:LINE: message` with the line of the first byte that is not UTF-8.
pub fn read(path: &Path) -> Result<String, FileError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| FileError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read: {}", io_reason(&e)),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count() as u32;
        FileError {
            file: file.clone(),
            line,
            message: "file is not valid UTF-8".to_string(),
        }
    })?;
    Ok(text)
}

/// Loads every file, collecting all errors instead of stopping at the first.
pub fn load_all(paths: &[PathBuf]) -> (Vec<LocalSource>, Vec<FileError>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load(p) {
            Ok(s) => ok.push(s),
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

/// A `*.sql` entry of a directory that is not a readable regular file.
pub struct Skipped {
    pub path: PathBuf,
    pub why: &'static str,
}

/// The `*.sql` files directly in `dir`, sorted by file name, and the `*.sql` entries that are
/// not regular files (dangling or looping symlinks, FIFOs, sockets, devices, directories),
/// which are skipped (reading a FIFO would block forever) and reported by the caller.
pub fn sql_files_in(dir: &Path) -> Result<(Vec<PathBuf>, Vec<Skipped>), CliError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot read directory {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            CliError::Failed(format!(
                "cannot read directory {}: {}",
                dir.display(),
                io_reason(&e)
            ))
        })?;
        let path = entry.path();
        let is_sql = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("sql"));
        if !is_sql {
            continue;
        }
        // `metadata` follows symlinks, so a link to a playbook counts
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => files.push(path),
            Ok(m) => skipped.push(Skipped {
                path,
                why: kind_of(&m.file_type()),
            }),
            Err(_) => {
                let why = match std::fs::symlink_metadata(&path) {
                    Ok(l) if l.file_type().is_symlink() => "dangling symbolic link",
                    _ => "cannot be read",
                };
                skipped.push(Skipped { path, why });
            }
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    skipped.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
    Ok((files, skipped))
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// 1-based line of the id header (`-- repair:` / `-- check:`), for duplicate-id messages.
pub fn id_line(text: &str) -> u32 {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix("--").is_some_and(|rest| {
                let rest = rest.trim_start();
                rest.starts_with("repair:") || rest.starts_with("check:")
            })
        })
        .map(|i| i as u32 + 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_line_finds_header() {
        assert_eq!(id_line("-- title: x\n--  repair: a\nSELECT 1;"), 2);
        assert_eq!(id_line("-- check: c\n"), 1);
        assert_eq!(id_line("SELECT 1;"), 1);
    }
}
