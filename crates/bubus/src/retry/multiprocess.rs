//! Semaphores shared by processes on one machine, in the slot-file format every abxbus runtime
//! (Python, TypeScript, Rust) uses, so processes of any of them share one limit.
//!
//! A semaphore named `n` with limit `L` is `L` slots in one directory:
//!
//! * slot `i` is the file `{p}.{i:02}.lock`, `p` being the first 40 hex digits of the SHA-256 of
//!   `n`. A process holds the slot while the file exists: it takes it by creating the file with
//!   `O_CREAT | O_EXCL` (so exactly one creator wins) and writing its owner into it —
//!   `{"token", "pid", "semaphore_name", "created_at_ms"}` — and gives it back by deleting it, if
//!   the file still holds its token.
//! * A slot is stale — its holder is gone — when its file names a `pid` that is not running, or,
//!   when it names none (not written yet, or unreadable), when it was last modified 300 s ago or
//!   more. A stale slot file is deleted and the slot taken by whoever creates it next.
//!
//! Waiting polls the slots (10 ms, doubling up to 250 ms): there is no wake-up to wait for.
//! Processes that use one name with different limits each count up to their own limit, as in the
//! other runtimes (the files say nothing about the limit).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(250);

/// A slot file that names no process is stale once it is this old (the family's rule).
const STALE_AFTER: Duration = Duration::from_secs(300);

/// The directory every abxbus runtime uses unless told otherwise:
/// `$ABXBUS_MULTIPROCESS_SEMAPHORE_DIR`, else `$XDG_RUNTIME_DIR/abxbus/semaphores`, else
/// `$XDG_CACHE_HOME/abxbus/semaphores`, else `~/.cache/abxbus/semaphores` (a leading `~` is the
/// home directory). Without a home directory: `abxbus/semaphores` in the temporary directory.
pub(super) fn default_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let home = var("HOME")
        .or_else(|| var("USERPROFILE"))
        .map(PathBuf::from);
    dir_from(
        var("ABXBUS_MULTIPROCESS_SEMAPHORE_DIR").map(PathBuf::from),
        var("XDG_RUNTIME_DIR").map(PathBuf::from),
        var("XDG_CACHE_HOME").map(PathBuf::from),
        home,
    )
}

fn dir_from(
    configured: Option<PathBuf>,
    runtime: Option<PathBuf>,
    cache: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    let expand = |path: PathBuf| match (path.strip_prefix("~"), &home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path,
    };
    if let Some(configured) = configured {
        return expand(configured);
    }
    let base = runtime
        .map(expand)
        .or_else(|| cache.map(expand))
        .or_else(|| home.as_ref().map(|home| home.join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("abxbus").join("semaphores")
}

/// Why no slot was taken.
#[derive(Debug)]
pub(super) enum SlotError {
    Timeout,
    Io(io::Error),
}

impl From<io::Error> for SlotError {
    fn from(err: io::Error) -> Self {
        SlotError::Io(err)
    }
}

/// A held slot; dropping it deletes its file (if the file is still ours).
#[derive(Debug)]
pub(super) struct FileSlot {
    path: PathBuf,
    token: String,
}

impl FileSlot {
    /// The slot's file.
    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileSlot {
    fn drop(&mut self) {
        // Another process may have judged the slot stale and taken it over: never delete a file
        // that is not ours. (Gone already — the directory was removed — is fine too.)
        if owner(&self.path).is_some_and(|owner| owner.token.as_deref() == Some(&self.token)) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The file of slot `index` of the semaphore `name`.
fn slot_path(dir: &Path, name: &str, index: usize) -> PathBuf {
    let digest = Sha256::digest(name.as_bytes());
    let prefix: String = digest
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>()
        .chars()
        .take(40)
        .collect();
    dir.join(format!("{prefix}.{index:02}.lock"))
}

/// Takes one of `limit` slots of the semaphore `name` in `dir`, waiting until `deadline`
/// (forever if `None`).
///
/// The file operations are small and local, so they run on the calling task.
pub(super) async fn acquire(
    dir: &Path,
    name: &str,
    limit: usize,
    deadline: Option<Instant>,
) -> Result<FileSlot, SlotError> {
    std::fs::create_dir_all(dir)?;
    let mut poll = POLL_MIN;
    loop {
        for index in 0..limit {
            let path = slot_path(dir, name, index);
            if let Some(slot) = try_take(dir, &path, name)? {
                return Ok(slot);
            }
        }
        pause(&mut poll, deadline).await?;
    }
}

/// Creates the slot file if it does not exist (or its holder is gone).
fn try_take(dir: &Path, path: &Path, name: &str) -> io::Result<Option<FileSlot>> {
    let file = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_if_stale(path);
            return Ok(None);
        }
        // The directory was removed under us: make it again; the slot is tried next round.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let token = new_token();
    let body = serde_json::json!({
        "token": token,
        "pid": std::process::id(),
        "semaphore_name": name,
        "created_at_ms": SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    });
    let slot = FileSlot {
        path: path.to_owned(),
        token,
    };
    if let Err(e) = write_body(file, &body) {
        // Ours but unusable: give it back (dropping `slot` deletes it only if it holds our
        // token; an empty file is left to go stale, as the other runtimes would).
        drop(slot);
        return Err(e);
    }
    Ok(Some(slot))
}

fn write_body(mut file: File, body: &Value) -> io::Result<()> {
    // One write of the whole body, so a reader sees it all or (for an instant) nothing.
    file.write_all(body.to_string().as_bytes())?;
    file.flush()
}

/// `{pid}:{nanoseconds since the epoch}:{counter}`: unique per acquisition in this process.
fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}:{nanos}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a slot file says about its holder.
#[derive(Debug, PartialEq)]
struct Owner {
    token: Option<String>,
    pid: Option<u64>,
    /// The file's text, to tell it apart from a file that replaced it.
    text: String,
}

/// The owner a slot file names; `None` if it cannot be read (gone, for one).
fn owner(path: &Path) -> Option<Owner> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let json: Option<Value> = serde_json::from_str(text.trim()).ok();
    let field = |key: &str| json.as_ref().and_then(|json| json.get(key).cloned());
    Some(Owner {
        token: field("token").and_then(|v| v.as_str().map(str::to_owned)),
        pid: field("pid").and_then(|v| v.as_u64()),
        text,
    })
}

/// Deletes a slot file whose holder is gone: its process is not running, or it names none and
/// is 300 s old. The file is read again right before it is deleted, and kept if it changed (its
/// holder gave it back and another process took the slot meanwhile).
fn remove_if_stale(path: &Path) {
    let Some(owner) = owner(path) else {
        return;
    };
    let old = || {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age >= STALE_AFTER)
    };
    let stale = match owner.pid.map(process_is_running) {
        Some(Some(running)) => !running,
        // No process named, or no way to ask whether it runs: by age.
        Some(None) | None => old(),
    };
    if stale && self::owner(path).is_some_and(|again| again == owner) {
        tracing::debug!(
            target: "bubus::retry",
            slot = %path.display(),
            pid = ?owner.pid,
            "removing a stale semaphore slot"
        );
        let _ = std::fs::remove_file(path);
    }
}

/// Whether a process with this id exists (signal 0: nothing is sent). A process that exists but
/// belongs to another user counts as running.
#[cfg(unix)]
fn process_is_running(pid: u64) -> Option<bool> {
    use rustix::io::Errno;
    use rustix::process::{Pid, test_kill_process};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Some(false);
    };
    Some(match test_kill_process(pid) {
        Ok(()) => true,
        Err(errno) => errno != Errno::SRCH,
    })
}

/// Without a way to ask (not Unix): unknown, so the slot goes stale by age, as a slot that names
/// no process does.
#[cfg(not(unix))]
fn process_is_running(_pid: u64) -> Option<bool> {
    None
}

async fn pause(poll: &mut Duration, deadline: Option<Instant>) -> Result<(), SlotError> {
    let mut nap = *poll;
    if let Some(deadline) = deadline {
        let now = Instant::now();
        if now >= deadline {
            return Err(SlotError::Timeout);
        }
        nap = nap.min(deadline - now);
    }
    tokio::time::sleep(nap).await;
    *poll = (*poll * 2).min(POLL_MAX);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_follows_the_family_order() {
        let home = Some(PathBuf::from("/home/ada"));
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            dir_from(p("~/locks"), p("/run/user/1000"), None, home.clone()),
            PathBuf::from("/home/ada/locks")
        );
        assert_eq!(
            dir_from(p("/srv/locks"), p("/run/user/1000"), None, home.clone()),
            PathBuf::from("/srv/locks")
        );
        assert_eq!(
            dir_from(None, p("/run/user/1000"), p("/var/cache"), home.clone()),
            PathBuf::from("/run/user/1000/abxbus/semaphores")
        );
        assert_eq!(
            dir_from(None, None, p("/var/cache/ada"), home.clone()),
            PathBuf::from("/var/cache/ada/abxbus/semaphores")
        );
        assert_eq!(
            dir_from(None, None, None, home),
            PathBuf::from("/home/ada/.cache/abxbus/semaphores")
        );
        assert_eq!(
            dir_from(None, None, None, None),
            std::env::temp_dir().join("abxbus").join("semaphores")
        );
    }

    #[test]
    fn slot_files_are_named_by_the_sha256_of_the_name() {
        // sha256("db") = 7bdc25d1…; the family keeps the first 40 hex digits.
        let path = slot_path(Path::new("/d"), "db", 3);
        assert_eq!(
            path,
            Path::new("/d/7bdc25d1694ef984782a16f6f1710c1c6bc83ba7.03.lock")
        );
        assert!(
            slot_path(Path::new("/d"), "db", 123)
                .to_string_lossy()
                .ends_with(".123.lock")
        );
    }

    #[tokio::test]
    async fn a_slot_is_a_file_holding_its_owner_until_dropped() {
        let dir = std::env::temp_dir().join(format!("bubus-mp-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let slot = acquire(&dir, "unit", 1, None).await.unwrap();
        let owner: Value =
            serde_json::from_str(&std::fs::read_to_string(slot.path()).unwrap()).unwrap();
        assert_eq!(owner["pid"], std::process::id());
        assert_eq!(owner["semaphore_name"], "unit");
        assert_eq!(owner["token"], slot.token.as_str());
        assert!(owner["created_at_ms"].as_u64().unwrap() > 1_700_000_000_000);
        let path = slot.path().to_owned();
        drop(slot);
        assert!(!path.exists());

        // A file left by a process that is gone is taken over; one whose owner runs is not.
        std::fs::write(
            &path,
            r#"{"token":"t","pid":4000000000,"semaphore_name":"unit"}"#,
        )
        .unwrap();
        let taken = acquire(&dir, "unit", 1, None).await.unwrap();
        drop(taken);
        std::fs::write(
            &path,
            format!(r#"{{"token":"t","pid":{}}}"#, std::process::id()),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(matches!(
            acquire(&dir, "unit", 1, Some(deadline)).await,
            Err(SlotError::Timeout)
        ));
        // A fresh file naming no process (being written) is not stale either.
        std::fs::write(&path, "").unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(matches!(
            acquire(&dir, "unit", 1, Some(deadline)).await,
            Err(SlotError::Timeout)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
