//! The connection (opening it, inserting rows) and the queue the background writer drains.

use std::path::Path;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, TransactionBehavior, params};

use crate::row::Row;
use crate::{Failures, MirrorError};

/// The writer commits at most this many rows per transaction, and stops gathering rows for a
/// batch once it has them.
const MAX_BATCH: usize = 4_096;

/// How long the writer gathers rows after the first of a batch arrives: commits are what cost,
/// so a burst of hooks becomes one transaction. A flush or close cuts it short.
const LINGER: Duration = Duration::from_millis(2);

const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS events_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_status TEXT NOT NULL,
    eventbus_id TEXT NOT NULL,
    eventbus_name TEXT NOT NULL,
    phase TEXT,
    event_json TEXT NOT NULL,
    inserted_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS event_results_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_result_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    handler_id TEXT NOT NULL,
    handler_name TEXT NOT NULL,
    eventbus_id TEXT NOT NULL,
    eventbus_name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    phase TEXT,
    result_repr TEXT,
    error_repr TEXT,
    event_result_json TEXT,
    inserted_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
";

const INSERT_EVENT: &str = "INSERT INTO events_log
    (event_id, event_type, event_status, eventbus_id, eventbus_name, phase, event_json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const INSERT_RESULT: &str = "INSERT INTO event_results_log
    (event_result_id, event_id, handler_id, handler_name, eventbus_id, eventbus_name,
     event_type, status, phase, result_repr, error_repr, event_result_json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Opens the database in WAL mode with `synchronous=NORMAL` and creates the tables. Another
/// process opening the same file at the same moment is waited for (`busy_timeout`).
pub(crate) fn open_connection(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(busy_timeout)?;
    // Switching to WAL takes a lock the busy handler does not cover when another connection
    // is setting up the same file at the same time; the mode is persistent, so retry briefly.
    let mut attempts = 0;
    loop {
        match connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get::<_, String>(0)) {
            Ok(_) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && attempts < 50 =>
            {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.execute_batch(CREATE_TABLES)?;
    Ok(connection)
}

/// Inserts `rows` in one transaction.
pub(crate) fn write_rows(connection: &mut Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
        let mut insert_result = tx.prepare_cached(INSERT_RESULT)?;
        for row in rows {
            match row {
                Row::Event(r) => {
                    insert_event.execute(params![
                        r.event_id,
                        r.event_type,
                        r.event_status,
                        r.eventbus_id,
                        r.eventbus_name,
                        r.phase,
                        r.event_json,
                    ])?;
                }
                Row::Result(r) => {
                    let result = &r.result;
                    insert_result.execute(params![
                        result.id.to_string(),
                        result.event_id.to_string(),
                        result.handler_id.as_str(),
                        result.handler_name,
                        r.eventbus_id,
                        r.eventbus_name,
                        r.event_type,
                        result.status.as_str(),
                        r.phase,
                        r.result_repr(),
                        r.error_repr(),
                        result.to_json().to_string(),
                    ])?;
                }
            }
        }
    }
    tx.commit()
}

/// Rows waiting for the background writer.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    /// The writer waits here for rows (and for a batch to fill up).
    work: Condvar,
    /// Hooks wait here while the queue is full.
    space: Condvar,
    /// Flushes wait here for rows to be written.
    written: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct QueueState {
    rows: Vec<Row>,
    /// Rows ever queued, and rows written (or lost to a failed write).
    queued: u64,
    finished: u64,
    /// A flush or close wants the rows now.
    urgent: bool,
    closed: bool,
    /// Whether the writer thread is still running.
    writer_alive: bool,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                writer_alive: true,
                ..QueueState::default()
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            written: Condvar::new(),
            capacity,
        }
    }

    /// Queues a row, waiting while the queue is full. `Err` if the mirror is closed (the row is
    /// dropped silently) or the writer is gone.
    pub(crate) fn push(&self, row: Row) -> Result<(), MirrorError> {
        let mut st = self.state.lock();
        while st.rows.len() >= self.capacity && !st.closed && st.writer_alive {
            self.space.wait(&mut st);
        }
        if st.closed {
            return Err(MirrorError::Closed);
        }
        if !st.writer_alive {
            return Err(MirrorError::Writer("it stopped; a row is lost".into()));
        }
        st.rows.push(row);
        st.queued += 1;
        // One wake-up per batch: when the writer may be idle, and when a batch is full.
        if st.rows.len() == 1 || st.rows.len() == MAX_BATCH {
            self.work.notify_one();
        }
        Ok(())
    }

    /// Waits until every row queued so far is written.
    pub(crate) fn flush(&self) -> Result<(), MirrorError> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(MirrorError::Closed);
        }
        let target = st.queued;
        st.urgent = true;
        self.work.notify_one();
        while st.finished < target {
            if !st.writer_alive {
                return Err(MirrorError::Writer("it stopped before flushing".into()));
            }
            self.written.wait(&mut st);
        }
        Ok(())
    }

    /// Refuses rows from now on; the writer writes what is queued, then stops.
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        st.urgent = true;
        self.work.notify_one();
        self.space.notify_all();
        self.written.notify_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// The next batch to write, or `None` once closed and drained.
    fn next_batch(&self) -> Option<Vec<Row>> {
        let mut st = self.state.lock();
        while st.rows.is_empty() {
            if st.closed {
                return None;
            }
            st.urgent = false;
            self.work.wait(&mut st);
        }
        let deadline = Instant::now() + LINGER;
        while !st.urgent && !st.closed && st.rows.len() < MAX_BATCH {
            if self.work.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        st.urgent = false;
        let batch = if st.rows.len() > MAX_BATCH {
            let rest = st.rows.split_off(MAX_BATCH);
            std::mem::replace(&mut st.rows, rest)
        } else {
            std::mem::take(&mut st.rows)
        };
        self.space.notify_all();
        Some(batch)
    }

    fn batch_done(&self, rows: usize) {
        let mut st = self.state.lock();
        st.finished += rows as u64;
        self.written.notify_all();
    }
}

/// Marks the writer gone however its thread ends, so nothing waits for it forever.
struct WriterAlive<'a>(&'a Queue);

impl Drop for WriterAlive<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.writer_alive = false;
        self.0.space.notify_all();
        self.0.written.notify_all();
    }
}

/// The writer thread: commits the queued rows, one transaction per batch, until the queue is
/// closed and drained; then closes the connection.
pub(crate) fn run(mut connection: Connection, queue: &Queue, failures: &Failures) {
    let _alive = WriterAlive(queue);
    while let Some(rows) = queue.next_batch() {
        if let Err(source) = write_rows(&mut connection, &rows) {
            failures.record(MirrorError::Write {
                rows: rows.len(),
                source,
            });
        }
        queue.batch_done(rows.len());
    }
    if let Err((_, source)) = connection.close() {
        failures.record(MirrorError::Close { source });
    }
}
