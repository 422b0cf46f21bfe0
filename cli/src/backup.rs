//! `execute --backup-dir`: a `pg_dump -Fc` of the database before the playbook runs, and
//! rotation that keeps only the newest N backups of one database and playbook.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::connect::Target;
use crate::error::CliError;

/// Takes the backup; returns its path. Writes to `<name>.partial` first and renames on success,
/// so a failed dump never looks like a backup (nor counts for rotation).
pub fn dump(
    target: &Target,
    pg_dump: &Path,
    dir: &Path,
    playbook: &str,
) -> Result<PathBuf, CliError> {
    create_private_dir(dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot create backup directory {}: {e}; nothing was executed",
            dir.display()
        ))
    })?;
    let prefix = prefix(target.dbname(), playbook);
    // Never overwrite an earlier backup (two runs within one second): wait for the next stamp.
    let path = loop {
        let candidate = dir.join(format!("{prefix}{}.dump", utc_stamp(SystemTime::now())));
        if !candidate.exists() {
            break candidate;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let partial = path.with_extension("dump.partial");
    // A dump holds the data: owner-only. pg_dump reopens the existing file and keeps the mode.
    create_private_file(&partial).map_err(|e| {
        CliError::Failed(format!(
            "cannot create {}: {e}; nothing was executed",
            partial.display()
        ))
    })?;

    let mut cmd = Command::new(pg_dump);
    cmd.arg("--format=custom")
        .arg("--file")
        .arg(&partial)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // The connection goes through the environment only (no password on the command line).
    // TLS settings come only from libpq_env (the ones this connection resolved).
    for var in [
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGHOSTADDR",
        "PGOPTIONS",
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGSSLSNI",
        "PGSSLCRL",
        "PGSSLCRLDIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(target.libpq_env());

    let output = cmd.output().map_err(|e| {
        CliError::Failed(format!(
            "cannot run {} for the backup: {e}; nothing was executed",
            pg_dump.display()
        ))
    })?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&partial);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        let status = match output.status.code() {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".to_string(),
        };
        return Err(CliError::Failed(format!(
            "backup failed ({} {status}): {}; nothing was executed",
            pg_dump.display(),
            if reason.is_empty() {
                "no message"
            } else {
                &reason
            }
        )));
    }
    std::fs::rename(&partial, &path).map_err(|e| {
        CliError::Failed(format!(
            "cannot rename {} to {}: {e}; nothing was executed",
            partial.display(),
            path.display()
        ))
    })?;
    Ok(path)
}

/// Deletes the oldest backups of this database and playbook beyond the newest `keep`.
/// Returns the deleted paths.
pub fn rotate(
    dir: &Path,
    dbname: &str,
    playbook: &str,
    keep: usize,
) -> Result<Vec<PathBuf>, CliError> {
    let prefix = prefix(dbname, playbook);
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot read backup directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut ours: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let stamp = name.strip_prefix(&prefix)?.strip_suffix(".dump")?;
            is_stamp(stamp).then(|| (stamp.to_string(), e.path()))
        })
        .collect();
    // yyyymmddThhmmssZ sorts chronologically as text; newest first
    ours.sort_by(|a, b| b.0.cmp(&a.0));
    let mut deleted = Vec::new();
    for (_, path) in ours.into_iter().skip(keep) {
        std::fs::remove_file(&path).map_err(|e| {
            CliError::Failed(format!("cannot delete old backup {}: {e}", path.display()))
        })?;
        deleted.push(path);
    }
    Ok(deleted)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(|_| ())
}

fn prefix(dbname: &str, playbook: &str) -> String {
    // a database name may contain '/', which cannot be part of a file name
    let db: String = dbname
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    format!("{db}-{playbook}-")
}

fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// `yyyymmddThhmmssZ` in UTC.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // 2024-02-29 23:59:59
        assert_eq!(utc_stamp(t), "20240229T235959Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29 00:00:00
        assert_eq!(utc_stamp(t), "20000229T000000Z");
        assert!(is_stamp("20240229T235959Z"));
        assert!(!is_stamp("20240229T235959"));
        assert!(!is_stamp("2024022xT235959Z"));
    }

    #[test]
    fn rotation_keeps_newest_of_this_db_and_playbook_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let names = [
            "app-pb-20240101T000000Z.dump",
            "app-pb-20240102T000000Z.dump",
            "app-pb-20240103T000000Z.dump",
            "app-pb-20240104T000000Z.dump",
            "app-pb_two-20230101T000000Z.dump",
            "app-pb-20230101T000000Z.dump.partial",
            "other-pb-20200101T000000Z.dump",
            "app-pb-notes.dump",
        ];
        for n in names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        let deleted = rotate(&dir, "app", "pb", 2).unwrap();
        let mut deleted: Vec<String> = deleted
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        deleted.sort();
        assert_eq!(
            deleted,
            vec![
                "app-pb-20240101T000000Z.dump",
                "app-pb-20240102T000000Z.dump"
            ]
        );
        for kept in &names[2..] {
            assert!(dir.join(kept).exists(), "{kept}");
        }
    }
}
