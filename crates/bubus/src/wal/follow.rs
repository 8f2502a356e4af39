//! Following a log as it grows (`tail -F`).

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;

use super::reader::DEFAULT_MAX_LINE_LEN;
use super::record::LineSplitter;
use super::{WalError, WalRecord};

/// How often a [`WalFollower`] looks for new lines by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Follows a log as it grows, like `tail -F`: yields every record already in the file, then each
/// new one as it is appended.
///
/// At the end of the file it polls (every [`poll_interval`](Self::poll_interval), on tokio's
/// clock). A line is only decoded once its newline has been written, so a record being appended
/// is never read half-way. If the file shrinks below what was read (truncated in place), reading
/// starts again from its beginning, with line numbers from 1; on Unix, if the path comes to name
/// a new file (the log was rotated), the rest of the old file is read first, then the new one
/// from its beginning. (A file truncated and refilled past the old read position between two
/// polls cannot be told from one that grew.)
///
/// Line errors are yielded like [`WalReader`](super::WalReader) yields them, and following goes
/// on. File reads are ordinary blocking reads, done on the calling task; each one is small (the
/// newly appended bytes).
///
/// ```no_run
/// use bubus::wal::WalFollower;
///
/// # async fn example() -> Result<(), bubus::wal::WalError> {
/// let mut log = WalFollower::open("events.jsonl")?;
/// loop {
///     match log.next_record().await {
///         Ok(record) => println!("{:?} {}", record.kind, record.event.label()),
///         Err(err) => eprintln!("{err}"),
///     }
/// }
/// # }
/// ```
pub struct WalFollower {
    path: PathBuf,
    input: BufReader<File>,
    /// Bytes consumed from the current file.
    pos: u64,
    lines: LineSplitter,
    poll_interval: Duration,
    #[cfg(unix)]
    identity: Option<(u64, u64)>,
}

impl WalFollower {
    /// Opens the log at `path`, positioned at its beginning.
    ///
    /// # Errors
    ///
    /// [`WalError::Open`] if the file cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WalError> {
        let path = path.as_ref().to_owned();
        let file = File::open(&path).map_err(|e| WalError::Open {
            path: path.clone(),
            source: Arc::new(e),
        })?;
        Ok(WalFollower {
            #[cfg(unix)]
            identity: identity(&file),
            path,
            input: BufReader::with_capacity(64 * 1024, file),
            pos: 0,
            lines: LineSplitter::new(DEFAULT_MAX_LINE_LEN),
            poll_interval: DEFAULT_POLL_INTERVAL,
        })
    }

    /// Sets how often to look for new lines at the end of the file (default
    /// [`DEFAULT_POLL_INTERVAL`]).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the longest line decoded (default
    /// [`DEFAULT_MAX_LINE_LEN`](super::DEFAULT_MAX_LINE_LEN)).
    pub fn max_line_len(mut self, max: usize) -> Self {
        self.lines.set_max(max);
        self
    }

    /// Skips the lines already in the file without decoding them, so that only records appended
    /// from now on are yielded (`tail -f` rather than `cat`). Line numbers stay those of the
    /// file. Returns how many lines were skipped; an unterminated last line is kept, to be yielded
    /// once its writer finishes it.
    ///
    /// # Errors
    ///
    /// [`WalError::Read`] if reading fails.
    pub fn skip_existing(&mut self) -> Result<u64, WalError> {
        let before = self.lines.lines();
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(e)),
            };
            if chunk.is_empty() {
                return Ok(self.lines.lines() - before);
            }
            let (used, complete) = self.lines.push(chunk);
            self.input.consume(used);
            self.pos += used as u64;
            if complete {
                self.lines.skip();
            }
        }
    }

    /// How many lines have been read so far from the current file.
    pub fn lines_read(&self) -> u64 {
        self.lines.lines()
    }

    /// The path being followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next record (or line error), waiting for one to be appended if needed. Following
    /// never ends by itself: drop the future (or the follower) to stop.
    ///
    /// # Errors
    ///
    /// The line errors of [`WalReader`](super::WalReader), and [`WalError::Read`] if reading the
    /// file fails (the next call tries again).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a record is only consumed when it is returned, and a partly read line is
    /// kept in the follower, so `next_record` can be used in `tokio::select!`.
    pub async fn next_record(&mut self) -> Result<WalRecord, WalError> {
        loop {
            if let Some(item) = self.read_available() {
                return item;
            }
            match self.check_file() {
                Reopened::No => tokio::time::sleep(self.poll_interval).await,
                Reopened::Yes(None) => {}
                Reopened::Yes(Some(item)) => return item,
            }
        }
    }

    /// The records as a [`Stream`] that never ends (see [`next_record`](Self::next_record)).
    pub fn into_stream(self) -> impl Stream<Item = Result<WalRecord, WalError>> + Send + 'static {
        futures_util::stream::unfold(self, |mut follower| async move {
            let item = follower.next_record().await;
            Some((item, follower))
        })
    }

    /// Reads up to the next complete, non-blank line; `None` at the end of the file.
    fn read_available(&mut self) -> Option<Result<WalRecord, WalError>> {
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(self.read_error(e))),
            };
            if chunk.is_empty() {
                return None;
            }
            let (used, complete) = self.lines.push(chunk);
            self.input.consume(used);
            self.pos += used as u64;
            if complete {
                if let Some(item) = self.lines.finish(false) {
                    return Some(item);
                }
            }
        }
    }

    /// At the end of the file: notices truncation and rotation.
    fn check_file(&mut self) -> Reopened {
        if let Ok(meta) = self.input.get_ref().metadata() {
            if meta.len() < self.pos {
                tracing::warn!(
                    path = %self.path.display(),
                    "write-ahead log was truncated; reading it again from the start"
                );
                if self.input.seek(SeekFrom::Start(0)).is_ok() {
                    self.pos = 0;
                    self.lines.reset();
                    return Reopened::Yes(None);
                }
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let Ok(meta) = std::fs::metadata(&self.path) else {
                // Gone for now (mid-rotation); keep the old file until a new one appears.
                return Reopened::No;
            };
            if Some((meta.dev(), meta.ino())) == self.identity {
                return Reopened::No;
            }
            // Lines appended to the old file after it was renamed come first.
            if let Some(item) = self.read_available() {
                return Reopened::Yes(Some(item));
            }
            let Ok(file) = File::open(&self.path) else {
                return Reopened::No;
            };
            tracing::info!(
                path = %self.path.display(),
                "write-ahead log was replaced; following the new file"
            );
            // Whatever the old file ended with will never be finished now.
            let last = if self.lines.has_partial() {
                self.lines.finish(true)
            } else {
                None
            };
            self.identity = identity(&file);
            self.input = BufReader::with_capacity(64 * 1024, file);
            self.pos = 0;
            self.lines.reset();
            Reopened::Yes(last)
        }
        #[cfg(not(unix))]
        Reopened::No
    }

    fn read_error(&self, e: io::Error) -> WalError {
        WalError::Read {
            line: self.lines.lines(),
            source: Arc::new(e),
        }
    }
}

enum Reopened {
    No,
    Yes(Option<Result<WalRecord, WalError>>),
}

#[cfg(unix)]
fn identity(file: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

impl fmt::Debug for WalFollower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalFollower")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .field("lines_read", &self.lines.lines())
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}
