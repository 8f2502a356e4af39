//! Semaphores shared by processes on one machine, built on advisory file locks (`flock` on Unix,
//! `LockFileEx` on Windows), which the OS releases when a process exits or dies.
//!
//! A semaphore named `n` with limit `L` uses, in its directory:
//!
//! * `n.limit`: holds `L`. Every process taking part — waiting for or holding a slot — keeps a
//!   shared lock on it. Writing it needs the exclusive lock, which only a process alone with the
//!   semaphore can get; so the limit can change only when nobody uses the semaphore, and a
//!   process that finds another limit while others take part gets a clear error.
//! * `n.0.slot` … `n.{L-1}.slot`: a process holds a slot by holding the exclusive lock on one.
//!
//! Waiting polls with non-blocking lock attempts (5 ms, doubling up to 100 ms): portable file
//! locks offer no wake-up, and a blocking lock call would tie up a thread. The files are tiny and
//! never deleted — deleting a lock file another process has open would let two processes lock
//! "the same" file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

const POLL_MIN: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

/// The default lock-file directory: `bubus-semaphores` in the system temporary directory.
pub(super) fn default_dir() -> PathBuf {
    std::env::temp_dir().join("bubus-semaphores")
}

/// Why no slot was taken.
#[derive(Debug)]
pub(super) enum SlotError {
    Timeout,
    /// The processes using the semaphore use this other limit.
    Mismatch(usize),
    Io(io::Error),
}

impl From<io::Error> for SlotError {
    fn from(err: io::Error) -> Self {
        SlotError::Io(err)
    }
}

/// A held slot; dropping it unlocks (and closes) both files.
#[derive(Debug)]
pub(super) struct FileSlot {
    slot: File,
    session: File,
}

impl Drop for FileSlot {
    fn drop(&mut self) {
        // Closing the files would release the locks too; unlocking first releases them at once
        // on every platform.
        let _ = lock::unlock(&self.slot);
        let _ = lock::unlock(&self.session);
    }
}

/// Takes one of `limit` slots of the semaphore `name` in `dir`, waiting until `deadline`
/// (forever if `None`).
///
/// The file operations are non-blocking calls on small local files, so they run on the calling
/// task.
pub(super) async fn acquire(
    dir: &Path,
    name: &str,
    limit: usize,
    deadline: Option<Instant>,
) -> Result<FileSlot, SlotError> {
    std::fs::create_dir_all(dir)?;
    let stem = file_stem(name);
    let session = open(&dir.join(format!("{stem}.limit")))?;
    let mut poll = POLL_MIN;

    // Join the semaphore's session: a shared lock on the limit file, holding our limit.
    loop {
        if lock::try_exclusive(&session)? {
            // Nobody else takes part: the limit is ours to set.
            let written = write_limit(&session, limit);
            lock::unlock(&session)?;
            written?;
        }
        if lock::try_shared(&session)? {
            match read_limit(&session)? {
                Some(existing) if existing == limit => break,
                Some(existing) => {
                    lock::unlock(&session)?;
                    return Err(SlotError::Mismatch(existing));
                }
                // Created but not written yet by the process that created it.
                None => lock::unlock(&session)?,
            }
        }
        pause(&mut poll, deadline).await?;
    }

    // Take a free slot. A failure from here on drops `session`, which leaves the session.
    loop {
        for index in 0..limit {
            let slot = open(&dir.join(format!("{stem}.{index}.slot")))?;
            if lock::try_exclusive(&slot)? {
                return Ok(FileSlot { slot, session });
            }
        }
        pause(&mut poll, deadline).await?;
    }
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

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn write_limit(mut file: &File, limit: usize) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(limit.to_string().as_bytes())?;
    file.flush()
}

fn read_limit(mut file: &File) -> io::Result<Option<usize>> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_string(&mut text)?;
    Ok(text.trim().parse().ok())
}

/// A file-name-safe stem for a semaphore name: the name itself when it is already safe, else its
/// safe characters plus a hash of the whole name (stable across builds and platforms).
fn file_stem(name: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !name.is_empty() && name.len() <= 64 && !name.starts_with('.') && name.chars().all(safe) {
        return name.to_owned();
    }
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii())
        .map(|c| if safe(c) { c } else { '_' })
        .take(48)
        .collect();
    format!(
        "{}-{:016x}",
        cleaned.trim_start_matches('.'),
        fnv1a(name.as_bytes())
    )
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(any(unix, windows))]
mod lock {
    use std::fs::File;
    use std::io;

    // Called through the trait: newer std has inherent `File::try_lock*` methods with other
    // error types, which would otherwise win method resolution.
    use fs4::{FileExt, TryLockError};

    fn tried(result: Result<(), TryLockError>) -> io::Result<bool> {
        match result {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(err)) => Err(err),
        }
    }

    pub(super) fn try_exclusive(file: &File) -> io::Result<bool> {
        tried(FileExt::try_lock(file))
    }

    pub(super) fn try_shared(file: &File) -> io::Result<bool> {
        tried(FileExt::try_lock_shared(file))
    }

    pub(super) fn unlock(file: &File) -> io::Result<()> {
        FileExt::unlock(file)
    }
}

#[cfg(not(any(unix, windows)))]
mod lock {
    use std::fs::File;
    use std::io;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "file locks are not available on this platform",
        )
    }

    pub(super) fn try_exclusive(_: &File) -> io::Result<bool> {
        Err(unsupported())
    }

    pub(super) fn try_shared(_: &File) -> io::Result<bool> {
        Err(unsupported())
    }

    pub(super) fn unlock(_: &File) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe_and_distinct() {
        assert_eq!(file_stem("db-pool_1.v2"), "db-pool_1.v2");
        let a = file_stem("src/db.rs:12:5");
        let b = file_stem("src/db.rs:12:6");
        assert_ne!(a, b);
        assert!(a.starts_with("src_db.rs_12_5-"));
        assert!(!file_stem("..").starts_with('.'));
        assert!(!file_stem("").is_empty());
        assert!(file_stem(&"x".repeat(500)).len() < 70);
    }
}
