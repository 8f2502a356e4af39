//! Reading the write-ahead log back (design §5.5): one bad line is reported with its line number
//! and never loses the lines after it; a last line cut short is reported, not fatal; logs from
//! the Python runtime and from Python bubus 1.x read; following a log as it grows.

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::wal::{RecordKind, WalError, WalFollower, WalReader, WalRecord};
use bubus::{DynEvent, EventHandle, EventStatus};
use futures::StreamExt;
use serde_json::json;

const GOOD_1: &str =
    r#"{"event_type":"Ping","event_id":"0198f5e2-7c1a-7b3e-9f00-3a5b2c1d0e01","n":1}"#;
const GOOD_2: &str = r#"{"event_type":"Ping","event_id":"0198f5e2-7c1a-7b3e-9f00-3a5b2c1d0e02","event_status":"completed","n":2}"#;
const GOOD_3: &str =
    r#"{"event_type":"Pong","event_id":"0198f5e2-7c1a-7b3e-9f00-3a5b2c1d0e03","n":3}"#;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bubus-wal-read-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/wal")
        .join(name)
}

fn n_of(record: &WalRecord) -> i64 {
    record.event.payload_json().unwrap()["n"].as_i64().unwrap()
}

#[test]
fn bad_lines_are_reported_with_their_line_number_and_the_rest_is_read() {
    let mut log = Vec::new();
    for line in [
        GOOD_1.as_bytes(),
        b"this is not json",
        b"",
        br#"{"no_event_type":true}"#,
        b"{\"event_type\":\"Ping\",\"s\":\"\xff\xfe\"}",
        br#"{"event_type":"Ping","event_status":"exploded"}"#,
        b"   ",
        GOOD_2.as_bytes(),
        br#"{"event_type":"Ping","event_id":"#,
        GOOD_3.as_bytes(),
    ] {
        log.extend_from_slice(line);
        log.push(b'\n');
    }

    let items: Vec<_> = WalReader::new(log.as_slice()).collect();
    assert_eq!(items.len(), 8, "{items:?}");
    let first = items[0].as_ref().unwrap();
    assert_eq!(
        (first.line, first.kind, n_of(first)),
        (1, RecordKind::Dispatched, 1)
    );

    let bad: Vec<(u64, String)> = items
        .iter()
        .filter_map(|item| match item {
            Err(WalError::BadLine { line, error }) => Some((*line, error.field().to_owned())),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => None,
        })
        .collect();
    assert_eq!(
        bad,
        [
            (2, String::new()),
            (4, "event_type".to_owned()),
            (5, String::new()),
            (6, "event_status".to_owned()),
            (9, String::new()),
        ]
    );
    let Err(err) = &items[1] else { unreachable!() };
    assert_eq!(err.to_string(), "line 2 is not an event");
    let cause = std::error::Error::source(err).expect("the decode error is the source");
    assert!(!cause.to_string().is_empty());
    assert_eq!(err.line(), Some(2));
    assert!(err.is_line_error());
    assert!(std::error::Error::source(err).is_some());

    let good: Vec<_> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
    let summary: Vec<_> = good.iter().map(|r| (r.line, r.kind, n_of(r))).collect();
    assert_eq!(
        summary,
        [
            (1, RecordKind::Dispatched, 1),
            (8, RecordKind::Completed, 2),
            (10, RecordKind::Dispatched, 3)
        ]
    );
}

#[test]
fn a_last_line_cut_short_is_reported_and_everything_before_it_read() {
    let log = format!("{GOOD_1}\n{GOOD_2}\n{{\"event_type\":\"Ping\",\"event_id\":\"0198f5e2-7c");
    let items: Vec<_> = WalReader::new(log.as_bytes()).collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap().line, 1);
    assert_eq!(items[1].as_ref().unwrap().line, 2);
    let Err(err) = &items[2] else {
        panic!("{:?}", items[2])
    };
    assert!(
        matches!(err, WalError::PartialLine { line: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("incomplete"), "{err}");

    // A last line without a newline that is a whole event is just a record.
    let log = format!("{GOOD_1}\n{GOOD_3}");
    let lines: Vec<_> = WalReader::new(log.as_bytes())
        .map(|item| item.unwrap().line)
        .collect();
    assert_eq!(lines, [1, 2]);
}

#[test]
fn lines_over_the_limit_are_skipped_without_being_held() {
    let long = format!(r#"{{"event_type":"Ping","blob":"{}"}}"#, "a".repeat(10_000));
    let log = format!("{GOOD_1}\n{long}\n{GOOD_3}\n{long}");
    let items: Vec<_> = WalReader::new(io::BufReader::with_capacity(64, log.as_bytes()))
        .max_line_len(1_000)
        .collect();
    assert_eq!(items.len(), 4);
    assert!(matches!(
        items[1],
        Err(WalError::LineTooLong { line: 2, len, max: 1_000 }) if len == long.len() as u64
    ));
    assert_eq!(items[2].as_ref().unwrap().line, 3);
    assert!(matches!(
        items[3],
        Err(WalError::LineTooLong { line: 4, .. })
    ));
}

#[test]
fn crlf_line_ends_and_a_byte_order_mark_are_tolerated() {
    let log = format!("\u{feff}{GOOD_1}\r\n{GOOD_2}\r\n");
    let lines: Vec<_> = WalReader::new(log.as_bytes())
        .map(|item| item.unwrap().line)
        .collect();
    assert_eq!(lines, [1, 2]);
}

#[test]
fn lines_read_the_same_however_the_input_is_chunked() {
    let log = format!("{GOOD_1}\nnope\n\n{GOOD_2}\n{GOOD_3}");
    let read = |capacity: usize| -> Vec<(u64, bool)> {
        WalReader::new(io::BufReader::with_capacity(capacity, log.as_bytes()))
            .map(|item| match item {
                Ok(record) => (record.line, true),
                Err(err) => (err.line().unwrap(), false),
            })
            .collect()
    };
    let whole = read(1 << 16);
    assert_eq!(whole, [(1, true), (2, false), (4, true), (5, true)]);
    for capacity in [1, 2, 3, 5, 17] {
        assert_eq!(read(capacity), whole, "capacity {capacity}");
    }
}

#[test]
fn a_read_error_is_reported_once_and_ends_the_iteration() {
    struct Failing<'a> {
        data: &'a [u8],
        failed: bool,
    }
    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                self.failed = true;
                return Err(io::Error::other("disk on fire"));
            }
            let n = self.data.read(buf)?;
            Ok(n)
        }
    }
    let log = format!("{GOOD_1}\n{GOOD_2}\n");
    let input = io::BufReader::new(Failing {
        data: log.as_bytes(),
        failed: false,
    });
    let mut reader = WalReader::new(input);
    assert_eq!(reader.next().unwrap().unwrap().line, 1);
    assert_eq!(reader.next().unwrap().unwrap().line, 2);
    let err = reader.next().unwrap().unwrap_err();
    assert!(matches!(err, WalError::Read { line: 2, .. }), "{err:?}");
    assert!(!err.is_line_error());
    assert!(reader.next().is_none());
    assert!(reader.next().is_none());
    assert_eq!(reader.lines_read(), 2);
    assert!(reader.into_inner().fill_buf().is_err());
}

#[test]
fn python_wal_lines_are_completion_records_without_results() {
    let records: Vec<_> = WalReader::open(golden("python_wal.jsonl"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), 2);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.kind, RecordKind::Completed);
        assert_eq!(record.event.event_type(), "UserActionEvent");
        assert!(record.event.event_results().is_empty());
        let payload = record.event.payload_json().unwrap();
        assert_eq!(payload["action"], format!("action_{i}"));
    }
    let first = &records[0].event;
    assert_eq!(
        first.event_id().to_string(),
        "06b05988-24ae-718a-8000-92a9c60dc8f2"
    );
    assert_eq!(first.event_path(), ["TestBus#9e05"]);
    assert_eq!(
        first.event_completed_at().unwrap().to_string(),
        "2026-11-24T14:00:34.294199028Z"
    );
    // The result schema survives.
    assert_eq!(
        records[1].event.to_json()["event_result_type"]["type"],
        "integer"
    );
}

#[test]
fn seed_1x_lines_with_offset_timestamps_are_accepted() {
    let records: Vec<_> = WalReader::open(golden("seed_1x.jsonl"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), 2);
    let login = &records[0];
    assert_eq!(login.kind, RecordKind::Completed);
    assert_eq!(login.event.event_type(), "UserLoginEvent");
    assert_eq!(login.event.event_version(), "1.0.0");
    assert_eq!(
        login.event.event_created_at().to_string(),
        "2025-07-10T20:39:56.462000000Z"
    );
    assert_eq!(
        login.event.event_completed_at().unwrap().to_string(),
        "2025-07-10T20:39:56.470000000Z"
    );
    assert_eq!(
        login.event.event_config().event_timeout,
        Some(Duration::from_secs(60))
    );
    assert_eq!(login.event.payload_json().unwrap()["username"], "alice");
    // Never processed in 1.x terms: a dispatch record.
    assert_eq!(records[1].kind, RecordKind::Dispatched);
    assert_eq!(records[1].event.event_status(), EventStatus::Pending);
}

fn line_for(n: u64) -> String {
    let event = EventHandle::new(DynEvent::new("Tick", json!({ "n": n })).unwrap());
    format!("{}\n", event.to_json_string())
}

#[tokio::test(start_paused = true)]
async fn follow_yields_what_is_there_then_each_appended_record() {
    let dir = TempDir::new("follow");
    let path = dir.path("events.jsonl");
    append(&path, format!("{}{}", line_for(1), line_for(2)).as_bytes());

    let mut follower = WalFollower::open(&path)
        .unwrap()
        .poll_interval(Duration::from_millis(50));
    assert_eq!(n_of(&follower.next_record().await.unwrap()), 1);
    let second = follower.next_record().await.unwrap();
    assert_eq!((second.line, n_of(&second)), (2, 2));

    // Nothing new: it waits (on the paused clock) instead of returning.
    let idle = tokio::time::timeout(Duration::from_secs(5), follower.next_record()).await;
    assert!(idle.is_err());

    append(&path, line_for(3).as_bytes());
    let third = follower.next_record().await.unwrap();
    assert_eq!((third.line, n_of(&third)), (3, 3));

    // Half a line is not read until its newline arrives.
    let fourth = line_for(4);
    let (head, tail) = fourth.split_at(fourth.len() / 2);
    append(&path, head.as_bytes());
    let idle = tokio::time::timeout(Duration::from_secs(5), follower.next_record()).await;
    assert!(idle.is_err());
    append(&path, tail.as_bytes());
    let fourth = follower.next_record().await.unwrap();
    assert_eq!((fourth.line, n_of(&fourth)), (4, 4));

    // Bad lines are reported, and following goes on.
    append(&path, format!("garbage\n{}", line_for(6)).as_bytes());
    assert!(matches!(
        follower.next_record().await,
        Err(WalError::BadLine { line: 5, .. })
    ));
    assert_eq!(follower.next_record().await.unwrap().line, 6);
    assert_eq!(follower.lines_read(), 6);
    assert_eq!(follower.path(), path);
}

#[tokio::test(start_paused = true)]
async fn follow_starts_over_when_the_log_is_truncated() {
    let dir = TempDir::new("truncate");
    let path = dir.path("events.jsonl");
    append(&path, format!("{}{}", line_for(1), line_for(2)).as_bytes());
    let mut follower = WalFollower::open(&path).unwrap();
    follower.next_record().await.unwrap();
    follower.next_record().await.unwrap();

    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&path, line_for(10).as_bytes());
    let record = follower.next_record().await.unwrap();
    assert_eq!((record.line, n_of(&record)), (1, 10));
}

#[cfg(unix)]
#[tokio::test(start_paused = true)]
async fn follow_moves_to_the_new_file_when_the_log_is_rotated() {
    let dir = TempDir::new("rotate");
    let path = dir.path("events.jsonl");
    append(&path, line_for(1).as_bytes());
    let mut follower = WalFollower::open(&path).unwrap();
    assert_eq!(n_of(&follower.next_record().await.unwrap()), 1);

    // Rotated: the old file is renamed (and still gets a late line), a new one takes its name.
    let old = dir.path("events.jsonl.1");
    std::fs::rename(&path, &old).unwrap();
    append(&old, line_for(2).as_bytes());
    append(&path, line_for(3).as_bytes());

    let late = follower.next_record().await.unwrap();
    assert_eq!((late.line, n_of(&late)), (2, 2));
    let fresh = follower.next_record().await.unwrap();
    assert_eq!((fresh.line, n_of(&fresh)), (1, 3));
}

#[tokio::test(start_paused = true)]
async fn follow_can_skip_what_is_already_there() {
    let dir = TempDir::new("skip");
    let path = dir.path("events.jsonl");
    append(&path, format!("{}{}", line_for(1), line_for(2)).as_bytes());
    let mut follower = WalFollower::open(&path).unwrap();
    assert_eq!(follower.skip_existing().unwrap(), 2);

    append(&path, line_for(3).as_bytes());
    let record = follower.next_record().await.unwrap();
    assert_eq!((record.line, n_of(&record)), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn follow_as_a_stream() {
    let dir = TempDir::new("stream");
    let path = dir.path("events.jsonl");
    append(&path, line_for(1).as_bytes());
    let stream = WalFollower::open(&path).unwrap().into_stream();
    tokio::pin!(stream);
    assert_eq!(n_of(&stream.next().await.unwrap().unwrap()), 1);

    let writer = {
        let path = path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            append(&path, line_for(2).as_bytes());
        })
    };
    assert_eq!(n_of(&stream.next().await.unwrap().unwrap()), 2);
    writer.await.unwrap();
}

#[test]
fn opening_a_missing_log_fails_cleanly() {
    let dir = TempDir::new("missing");
    let err = WalReader::open(dir.path("nope.jsonl")).unwrap_err();
    assert!(matches!(err, WalError::Open { .. }), "{err:?}");
    let err = WalFollower::open(dir.path("nope.jsonl")).unwrap_err();
    assert!(matches!(err, WalError::Open { .. }), "{err:?}");
}
