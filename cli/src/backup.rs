//! `execute --backup-dir`: a `pg_dump -Fc` of the database before the playbook runs, and
//! rotation that keeps only the newest N backups of one database and playbook.
//!
//! Guarantees (README, "execute and backups"):
//!
//! - The directory is opened once and every file operation is relative to that descriptor.
//!   It must be owned by the current user or root; a directory group/other can write to is
//!   refused unless it has the sticky bit; a symlink to it owned by another user is refused.
//! - The dump is written into a new file `<final name>.partial` created with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, under a name with 64 random bits, so nobody can
//!   pre-create it, link it elsewhere or read it. `pg_dump` writes to that descriptor (its
//!   stdout), never to a path. The file is fsynced, renamed with `RENAME_NOREPLACE` (never
//!   replaces an existing file), and the directory is fsynced.
//! - Names: `<db>-<id>-<h>-<UTC yyyymmddThhmmssZ>-<nonce>.dump`, `db` and `id` reduced to
//!   `[A-Za-z0-9_.-]`, `h` = 12 hex digits of SHA-256 of the exact database name and playbook
//!   id (so `rot/db` and `rot_db` never share files), `nonce` = 16 random hex digits (two
//!   runs in the same second never share a file).
//! - Each run holds an exclusive `flock` on its own backup (and its partial file) until the
//!   process ends. Rotation runs under an `flock` of the directory, counts only completed dumps
//!   that are regular files owned by the current user, keeps the newest `--keep`, and never
//!   deletes a file that is locked (a run in progress, its own included). Partial files of
//!   killed runs (not locked any more) are deleted by the next rotation.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cancel;
use crate::connect::Target;
use crate::error::{io_reason, CliError};

/// How long to wait for another pgrepair holding the directory lock (it only holds it for a
/// file creation or a rotation, never during a dump).
const DIR_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// An opened, checked backup directory.
pub struct BackupDir {
    path: PathBuf,
    fd: File,
}

/// A completed backup of this run. Dropping it releases the lock that protects it from
/// rotation by concurrent runs; keep it alive until the run is over.
pub struct Backup {
    pub path: PathBuf,
    name: String,
    _lock: File,
}

/// Creates the directory (mode 0700) if missing, opens it and checks who can write to it.
pub fn open_dir(dir: &Path) -> Result<BackupDir, CliError> {
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                CliError::Failed(format!(
                    "cannot create backup directory {}: {}; nothing was executed",
                    dir.display(),
                    io_reason(&e)
                ))
            })?;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let trusted = |uid: u32| uid == euid || uid == 0;
    let link = std::fs::symlink_metadata(dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot read backup directory {}: {}; nothing was executed",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    if link.file_type().is_symlink() && !trusted(link.uid()) {
        return Err(CliError::Usage(format!(
            "backup directory {} is a symbolic link owned by another user (uid {}): refusing \
             to follow it, it could point anywhere; pass a directory you own; nothing was \
             executed",
            dir.display(),
            link.uid()
        )));
    }
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_dir()
        .open(dir)
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot open backup directory {}: {}; nothing was executed",
                dir.display(),
                io_reason(&e)
            ))
        })?;
    let meta = fd.metadata().map_err(|e| {
        CliError::Failed(format!("cannot stat {}: {}", dir.display(), io_reason(&e)))
    })?;
    if !meta.is_dir() {
        return Err(CliError::Usage(format!(
            "backup directory {} is not a directory; nothing was executed",
            dir.display()
        )));
    }
    if !trusted(meta.uid()) {
        return Err(CliError::Usage(format!(
            "backup directory {} belongs to another user (uid {}), who could delete or \
             replace the backups: use a directory owned by you (uid {euid}) or root; nothing \
             was executed",
            dir.display(),
            meta.uid()
        )));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(CliError::Usage(format!(
            "backup directory {} is writable by {} (mode {:04o}) and has no sticky bit: \
             other users could replace or delete backups; fix it with `chmod go-w {}` (or \
             `chmod +t {}` for a shared directory); nothing was executed",
            dir.display(),
            match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "group and others",
                (true, false) => "its group",
                _ => "others",
            },
            mode & 0o7777,
            dir.display(),
            dir.display()
        )));
    }
    Ok(BackupDir {
        path: dir.to_path_buf(),
        fd,
    })
}

trait DirFlags {
    fn custom_flags_dir(&mut self) -> &mut Self;
}

impl DirFlags for std::fs::OpenOptions {
    fn custom_flags_dir(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_DIRECTORY)
    }
}

/// `<db>-<id>-<h>-`: the start of every backup name of this database and playbook.
pub fn prefix(dbname: &str, playbook: &str) -> String {
    let mut exact = Vec::with_capacity(dbname.len() + playbook.len() + 1);
    exact.extend_from_slice(dbname.as_bytes());
    exact.push(0);
    exact.extend_from_slice(playbook.as_bytes());
    let h = pg_repair_core::sha256_hex(&exact);
    format!("{}-{}-{}-", sanitize(dbname), sanitize(playbook), &h[..12])
}

/// Keeps `[A-Za-z0-9_.-]`, replaces anything else with `_`, at most 63 characters. The result
/// never contains `/`, and a name built from it never is `.` or `..`.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Takes the backup into `dir`; returns it (locked until dropped).
pub fn dump(
    dir: &BackupDir,
    target: &Target,
    pg_dump: &Path,
    playbook: &str,
) -> Result<Backup, CliError> {
    let stamp = utc_stamp(SystemTime::now());
    let final_name = format!(
        "{}{stamp}-{}.dump",
        prefix(target.dbname(), playbook),
        nonce()
    );
    let partial_name = format!("{final_name}.partial");

    // Create and lock the partial file under the directory lock, so a concurrent rotation
    // never sees it unlocked.
    let partial = {
        let _dir_lock = dir.lock()?;
        let f = dir.create_new(&partial_name).map_err(|e| {
            CliError::Failed(format!(
                "cannot create {}: {}; nothing was executed",
                dir.path.join(&partial_name).display(),
                io_reason(&e)
            ))
        })?;
        flock(&f, libc::LOCK_EX | libc::LOCK_NB).map_err(|e| {
            let _ = dir.unlink(&partial_name);
            CliError::Failed(format!("cannot lock {partial_name}: {}", io_reason(&e)))
        })?;
        f
    };
    let fail = |msg: String| -> CliError {
        let _ = dir.unlink(&partial_name);
        CliError::Failed(format!("{msg}; nothing was executed"))
    };

    let stdout = partial
        .try_clone()
        .map_err(|e| fail(format!("cannot duplicate a descriptor: {}", io_reason(&e))))?;
    let mut cmd = Command::new(pg_dump);
    // pg_dump writes to our descriptor (its stdout); it never opens a path in the directory.
    cmd.arg("--format=custom")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
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

    let mut child = {
        let _scope = cancel::polling_scope();
        cmd.spawn().map_err(|e| {
            fail(format!(
                "cannot run {} for the backup: {}",
                pg_dump.display(),
                io_reason(&e)
            ))
        })?
    };
    let mut stderr_pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(p) = stderr_pipe.as_mut() {
            let _ = p.read_to_end(&mut text);
        }
        text
    });
    let status = {
        let _scope = cancel::polling_scope();
        loop {
            if cancel::requested() {
                // SAFETY: signalling our own child, which has not been reaped yet.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                let _ = child.wait();
                let _ = reader.join();
                let _ = dir.unlink(&partial_name);
                return Err(CliError::Cancelled(
                    "interrupted during the backup: pg_dump was stopped, its partial file \
                     removed; nothing was executed"
                        .to_string(),
                ));
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(fail(format!("waiting for pg_dump: {}", io_reason(&e)))),
            }
        }
    };
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        let reason = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        let status = match status.code() {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".to_string(),
        };
        return Err(fail(format!(
            "backup failed ({} {status}): {}",
            pg_dump.display(),
            if reason.is_empty() {
                "no message"
            } else {
                &reason
            }
        )));
    }
    partial
        .sync_all()
        .map_err(|e| fail(format!("cannot fsync the backup: {}", io_reason(&e))))?;
    dir.rename_noreplace(&partial_name, &final_name)
        .map_err(|e| {
            fail(format!(
                "cannot rename {partial_name} to {final_name} in {}: {}",
                dir.path.display(),
                io_reason(&e)
            ))
        })?;
    // the rename is durable once the directory is
    dir.fd.sync_all().map_err(|e| {
        CliError::Failed(format!(
            "cannot fsync backup directory {}: {}; nothing was executed",
            dir.path.display(),
            io_reason(&e)
        ))
    })?;
    Ok(Backup {
        path: dir.path.join(&final_name),
        name: final_name,
        _lock: partial,
    })
}

/// What a rotation did.
#[derive(Debug, Default)]
pub struct Rotation {
    /// Completed backups deleted (older than the newest `keep`).
    pub deleted: Vec<PathBuf>,
    /// Partial files of killed runs deleted.
    pub stale_partials: Vec<PathBuf>,
    /// Files with a backup's name that are not a regular file owned by us: ignored.
    pub ignored: Vec<PathBuf>,
}

/// Deletes the oldest completed backups of this database and playbook beyond the newest
/// `keep`, except any still locked by a running pgrepair (`own` included), and every unlocked
/// `.partial` file of ours.
pub fn rotate(
    dir: &BackupDir,
    dbname: &str,
    playbook: &str,
    keep: usize,
    own: Option<&Backup>,
) -> Result<Rotation, CliError> {
    let prefix = prefix(dbname, playbook);
    let _dir_lock = dir.lock()?;
    let entries = std::fs::read_dir(&dir.path).map_err(|e| {
        CliError::Failed(format!(
            "cannot read backup directory {}: {}",
            dir.path.display(),
            io_reason(&e)
        ))
    })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let mut result = Rotation::default();
    // ((start stamp, completion mtime), name, open file)
    type Candidate = ((String, (i64, i64)), String, File);
    let mut completed: Vec<Candidate> = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let is_partial = name
            .strip_suffix(".dump.partial")
            .is_some_and(|stem| stamp_and_nonce(stem).is_some());
        let ours = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".dump"))
            .and_then(|rest| (rest.len() == 33).then_some(rest))
            .and_then(stamp_and_nonce);
        if !is_partial && ours.is_none() {
            continue;
        }
        // Only regular files owned by us count (a planted symlink or another user's file is
        // neither counted nor touched).
        let file = match dir.open_nofollow(&name) {
            Ok(f) => f,
            Err(_) => {
                result.ignored.push(dir.path.join(&name));
                continue;
            }
        };
        let mtime = match file.metadata() {
            Ok(m) if m.is_file() && m.uid() == euid => (m.mtime(), m.mtime_nsec()),
            _ => {
                result.ignored.push(dir.path.join(&name));
                continue;
            }
        };
        if is_partial {
            if flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_ok() {
                dir.unlink(&name).map_err(|e| {
                    CliError::Failed(format!(
                        "cannot delete stale {}: {}",
                        dir.path.join(&name).display(),
                        io_reason(&e)
                    ))
                })?;
                result.stale_partials.push(dir.path.join(&name));
            }
            continue;
        }
        let stamp = ours.map(|(s, _)| s.to_string()).unwrap_or_default();
        completed.push(((stamp, mtime), name, file));
    }
    // newest first: by start stamp (yyyymmddThhmmssZ sorts chronologically as text), then, for
    // runs started in the same second, by when the dump was finished (mtime), then by name
    completed.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
    for (_, name, file) in completed.into_iter().skip(keep) {
        if own.is_some_and(|o| o.name == name) {
            continue;
        }
        // locked: a run in progress is using it as its backup
        if flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_err() {
            continue;
        }
        dir.unlink(&name).map_err(|e| {
            CliError::Failed(format!(
                "cannot delete old backup {}: {}",
                dir.path.join(&name).display(),
                io_reason(&e)
            ))
        })?;
        result.deleted.push(dir.path.join(&name));
    }
    if !result.deleted.is_empty() || !result.stale_partials.is_empty() {
        let _ = dir.fd.sync_all();
    }
    Ok(result)
}

/// `yyyymmddThhmmssZ-<16 hex>` → (stamp, nonce); anything else → None.
fn stamp_and_nonce(s: &str) -> Option<(&str, &str)> {
    if s.len() < 33 {
        return None;
    }
    let tail = &s[s.len() - 33..];
    let (stamp, rest) = tail.split_at(16);
    let nonce = rest.strip_prefix('-')?;
    let hex = nonce.len() == 16
        && nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    // the part before the stamp must end the prefix (`…-`) or be nothing
    let before_ok = s.len() == 33 || s.as_bytes()[s.len() - 34] == b'-';
    (is_stamp(stamp) && hex && before_ok).then_some((stamp, nonce))
}

impl BackupDir {
    /// The directory's exclusive lock (flock on the directory itself: no lock file anyone
    /// could pre-create). Waits up to `DIR_LOCK_TIMEOUT`.
    fn lock(&self) -> Result<DirLock<'_>, CliError> {
        let start = Instant::now();
        loop {
            match flock(&self.fd, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => return Ok(DirLock(&self.fd)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    return Err(CliError::Failed(format!(
                        "cannot lock backup directory {}: {}",
                        self.path.display(),
                        io_reason(&e)
                    )))
                }
            }
            if cancel::requested() {
                return Err(CliError::Cancelled(
                    "interrupted while waiting for the backup directory lock; nothing was \
                     executed"
                        .to_string(),
                ));
            }
            if start.elapsed() > DIR_LOCK_TIMEOUT {
                return Err(CliError::Failed(format!(
                    "backup directory {} stayed locked by another process for {} s; nothing \
                     was executed",
                    self.path.display(),
                    DIR_LOCK_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_new(&self, name: &str) -> std::io::Result<File> {
        let c = cname(name)?;
        // SAFETY: openat with a valid directory descriptor and a NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor we own.
        let f = unsafe { File::from_raw_fd(fd) };
        // exactly 0600 whatever the umask (it can only have removed bits)
        // SAFETY: fchmod on our descriptor.
        if unsafe { libc::fchmod(f.as_raw_fd(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f)
    }

    fn open_nofollow(&self, name: &str) -> std::io::Result<File> {
        let c = cname(name)?;
        // SAFETY: as in create_new. O_NONBLOCK: a FIFO planted under a backup's name must not
        // block us.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor we own.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    fn unlink(&self, name: &str) -> std::io::Result<()> {
        let c = cname(name)?;
        // SAFETY: unlinkat with a valid directory descriptor.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Renames within the directory; fails with EEXIST rather than replace `to`.
    fn rename_noreplace(&self, from: &str, to: &str) -> std::io::Result<()> {
        let (f, t) = (cname(from)?, cname(to)?);
        let dfd = self.fd.as_raw_fd();
        // SAFETY: renameat2 with valid descriptors and NUL-terminated names.
        let r =
            unsafe { libc::renameat2(dfd, f.as_ptr(), dfd, t.as_ptr(), libc::RENAME_NOREPLACE) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(e);
        }
        // a file system without RENAME_NOREPLACE: link (never replaces) + unlink
        // SAFETY: as above.
        if unsafe { libc::linkat(dfd, f.as_ptr(), dfd, t.as_ptr(), 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.unlink(from)
    }
}

struct DirLock<'a>(&'a File);

impl Drop for DirLock<'_> {
    fn drop(&mut self) {
        let _ = flock(self.0, libc::LOCK_UN);
    }
}

fn flock(f: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on an open descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn cname(name: &str) -> std::io::Result<CString> {
    CString::new(OsStr::new(name).as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a file name"))
}

/// 16 hex digits from the kernel's random source.
fn nonce() -> String {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        if let Ok(mut f) = File::open("/dev/urandom") {
            let _ = f.read_exact(&mut buf);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
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
    use std::os::unix::fs::PermissionsExt;

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
    fn names_never_collide_or_escape() {
        assert_ne!(prefix("rot/db", "pb"), prefix("rot_db", "pb"));
        assert!(prefix("rot/db", "pb").starts_with("rot_db-pb-"));
        // the separator cannot be used to make two pairs meet
        assert_ne!(prefix("a-b", "c"), prefix("a", "b-c"));
        let p = prefix("x", "x/../../escaped");
        assert!(!p.contains('/'), "{p}");
        assert_eq!(sanitize(".."), "..");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("é/\0"), "___");
        assert_eq!(sanitize(&"a".repeat(100)).len(), 63);
        let (a, b) = (nonce(), nonce());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }

    fn name(db: &str, pb: &str, stamp: &str, n: u8) -> String {
        format!("{}{stamp}-{:016x}.dump", prefix(db, pb), n)
    }

    #[test]
    fn rotation_keeps_newest_of_this_db_and_playbook_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let names = [
            name("app", "pb", "20240101T000000Z", 1),
            name("app", "pb", "20240102T000000Z", 2),
            name("app", "pb", "20240103T000000Z", 3),
            name("app", "pb", "20240104T000000Z", 4),
            name("app", "pb_two", "20230101T000000Z", 5),
            name("app/x", "pb", "20200101T000000Z", 6),
            name("other", "pb", "20200101T000000Z", 7),
            format!("{}notes.dump", prefix("app", "pb")),
        ];
        for n in &names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        // a stale partial of a killed run (nobody holds its lock)
        let stale = format!("{}.partial", name("app", "pb", "20240105T000000Z", 8));
        std::fs::write(dir.join(&stale), b"x").unwrap();
        // a partial still being written (locked)
        let live = format!("{}.partial", name("app", "pb", "20240106T000000Z", 9));
        std::fs::write(dir.join(&live), b"x").unwrap();
        let live_f = File::open(dir.join(&live)).unwrap();
        flock(&live_f, libc::LOCK_EX).unwrap();
        // an old backup in use by a running run (locked): kept although beyond --keep
        let in_use = File::open(dir.join(&names[0])).unwrap();
        flock(&in_use, libc::LOCK_SH).unwrap();
        // a planted symlink with a backup's name, "newest" of all: not counted, not touched
        let planted = name("app", "pb", "20991231T000000Z", 10);
        std::os::unix::fs::symlink("/etc/passwd", dir.join(&planted)).unwrap();

        let d = open_dir(&dir).unwrap_or_else(|e| panic!("{:?}", e.human_lines()));
        let r = rotate(&d, "app", "pb", 2, None).unwrap();
        let base = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
        let deleted: Vec<String> = r.deleted.iter().map(base).collect();
        assert_eq!(deleted, vec![names[1].clone()]);
        assert_eq!(
            r.stale_partials.iter().map(base).collect::<Vec<_>>(),
            vec![stale.clone()]
        );
        assert_eq!(
            r.ignored.iter().map(base).collect::<Vec<_>>(),
            vec![planted.clone()]
        );
        for kept in names.iter().filter(|n| **n != names[1]) {
            assert!(dir.join(kept).exists(), "{kept}");
        }
        assert!(dir.join(&live).exists());
        assert!(std::fs::symlink_metadata(dir.join(&planted)).is_ok());
        assert!(!dir.join(&stale).exists());
    }

    #[test]
    fn unsafe_directories_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = open_dir(&open).err().expect("world-writable refused");
        assert_eq!(e.exit_code(), 2);
        let msg = e.human_lines().join(" ");
        assert!(msg.contains(&open.display().to_string()), "{msg}");
        assert!(msg.contains("chmod go-w"), "{msg}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(open_dir(&open).is_ok(), "sticky shared directory accepted");
        let group = tmp.path().join("group");
        std::fs::create_dir(&group).unwrap();
        std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(open_dir(&group).is_err());
        // created when missing, 0700
        let fresh = tmp.path().join("a/b");
        open_dir(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
