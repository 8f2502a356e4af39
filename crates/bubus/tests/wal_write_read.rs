//! Writing the write-ahead log (issue 5, design §5.5): a dispatch record and a completion record
//! with results per event, fsync, several buses and tasks sharing one log without interleaving,
//! one completion per shared middleware, and write failures that never disturb the bus.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bubus::wal::{
    FsyncPolicy, RecordKind, WalError, WalMiddleware, WalReader, WalRecord, WalWriter,
};
use bubus::{AnyEvent, EventBus, EventHandle, EventStatus, HandlerError, result::ResultStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = u64)]
struct OrderPlaced {
    order_id: u64,
    note: String,
}

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bubus-wal-write-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
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

fn raw_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn records(path: &Path) -> Vec<WalRecord> {
    WalReader::open(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn order(order_id: u64) -> OrderPlaced {
    OrderPlaced {
        order_id,
        note: String::new(),
    }
}

#[tokio::test]
async fn each_event_gets_a_dispatch_record_then_a_completion_record_with_results() {
    let dir = TempDir::new("records");
    let path = dir.path("events.jsonl");
    let wal = Arc::new(WalMiddleware::open(&path).unwrap());
    let bus = EventBus::builder("Orders").middleware(wal.clone()).build();
    bus.on(|order: EventHandle<OrderPlaced>| order.order_id * 10);
    bus.on(|order: EventHandle<OrderPlaced>| {
        if order.order_id == 2 {
            Err(HandlerError::new("ValueError", "order 2 is cursed"))
        } else {
            Ok(0)
        }
    });

    let first = bus.dispatch(order(1)).unwrap();
    first.clone().await.unwrap();
    let second = bus.dispatch(order(2)).unwrap();
    second.clone().await.unwrap();

    // The raw lines: canonical event JSON, compact, one per line.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    assert!(!text.contains(": "), "lines are compact JSON");
    let lines = raw_lines(&path);
    assert_eq!(lines.len(), 4);
    let dispatch = &lines[0];
    assert_eq!(dispatch["event_type"], "OrderPlaced");
    assert_eq!(dispatch["event_id"], first.event_id().to_string());
    assert_eq!(dispatch["event_status"], "pending");
    assert_eq!(dispatch["event_path"], json!([bus.label()]));
    assert_eq!(dispatch["order_id"], 1);
    assert!(dispatch.get("event_results").is_none());
    let completion = &lines[1];
    assert_eq!(completion["event_id"], first.event_id().to_string());
    assert_eq!(completion["event_status"], "completed");
    // Keyed by handler id, as the Python and TypeScript runtimes write them.
    let results = completion["event_results"].as_object().unwrap();
    assert_eq!(results.len(), 2);
    let (handler_id, first_result) = results.iter().next().unwrap();
    assert_eq!(first_result["handler_id"], handler_id.as_str());
    assert_eq!(first_result["result"], 10);
    assert_eq!(first_result["status"], "completed");
    assert_eq!(completion, &first.to_json_with_results());
    for key in [
        "event_id",
        "event_type",
        "event_created_at",
        "order_id",
        "note",
    ] {
        assert_eq!(dispatch[key], completion[key], "{key}");
    }
    let failed = &lines[3];
    let failed_result = failed["event_results"]
        .as_object()
        .and_then(|results| results.values().nth(1))
        .unwrap();
    assert_eq!(failed_result["status"], "error");
    assert_eq!(
        failed_result["error"],
        json!({"type": "ValueError", "message": "order 2 is cursed"})
    );

    // The same, through the reader.
    let read = records(&path);
    let kinds: Vec<_> = read.iter().map(|r| (r.line, r.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, RecordKind::Dispatched),
            (2, RecordKind::Completed),
            (3, RecordKind::Dispatched),
            (4, RecordKind::Completed),
        ]
    );
    assert_eq!(read[0].event.event_status(), EventStatus::Pending);
    assert!(read[0].event.event_results().is_empty());
    let results = read[1].event.event_results();
    assert_eq!(results[0].result, Some(json!(10)));
    assert_eq!(results[0].eventbus_name, "Orders");
    let errors = read[3].event.event_errors();
    assert_eq!(errors[0].error_type(), "ValueError");
    assert_eq!(read[3].event.event_id(), second.event_id());
    assert_eq!(read[3].event.event_results()[1].status, ResultStatus::Error);
    assert_eq!(wal.error_count(), 0);
    assert!(wal.take_error().is_none());
}

#[tokio::test]
async fn fsync_every_record_writes_the_same_records() {
    let dir = TempDir::new("fsync");
    let path = dir.path("events.jsonl");
    let writer = Arc::new(
        WalWriter::open(&path)
            .unwrap()
            .fsync(FsyncPolicy::EveryRecord),
    );
    assert_eq!(writer.fsync_policy(), FsyncPolicy::EveryRecord);
    let wal = Arc::new(WalMiddleware::new(writer.clone()));
    let bus = EventBus::builder("Durable").middleware(wal.clone()).build();
    bus.on(|order: EventHandle<OrderPlaced>| order.order_id);

    for id in 0..5 {
        bus.dispatch(order(id)).unwrap().await.unwrap();
    }
    wal.sync().unwrap();
    writer.sync().unwrap();

    let read = records(&path);
    assert_eq!(read.len(), 10);
    assert!(
        read.iter()
            .step_by(2)
            .all(|r| r.kind == RecordKind::Dispatched)
    );
    assert!(
        read.iter()
            .skip(1)
            .step_by(2)
            .all(|r| r.kind == RecordKind::Completed)
    );
    assert_eq!(wal.error_count(), 0);
}

#[tokio::test]
async fn the_builder_option_creates_the_log_and_its_directories() {
    let dir = TempDir::new("builder");
    let path = dir.path("nested/dirs/events.jsonl");
    let bus = EventBus::builder("Built").wal(&path).unwrap().build();
    bus.on(|order: EventHandle<OrderPlaced>| order.order_id);
    bus.dispatch(order(7)).unwrap().await.unwrap();

    let read = records(&path);
    assert_eq!(read.len(), 2);
    assert_eq!(read[1].event.event_results()[0].result, Some(json!(7)));

    // Reopening appends instead of truncating.
    let again = EventBus::builder("Built").wal(&path).unwrap().build();
    again.dispatch(order(8)).unwrap().await.unwrap();
    assert_eq!(records(&path).len(), 4);
}

#[tokio::test]
async fn completion_only_logs_like_the_python_runtime_but_with_results() {
    let dir = TempDir::new("completions");
    let path = dir.path("events.jsonl");
    let wal = Arc::new(WalMiddleware::open(&path).unwrap().completions_only());
    let bus = EventBus::builder("Quiet").middleware(wal).build();
    bus.on(|order: EventHandle<OrderPlaced>| order.order_id + 1);
    bus.dispatch(order(1)).unwrap().await.unwrap();
    bus.dispatch(order(2)).unwrap().await.unwrap();

    let read = records(&path);
    assert_eq!(read.len(), 2);
    assert!(read.iter().all(|r| r.kind == RecordKind::Completed));
    assert_eq!(read[1].event.event_results()[0].result, Some(json!(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_buses_and_tasks_writing_one_log_never_interleave_lines() {
    const TASKS: u64 = 8;
    const EVENTS: u64 = 25;
    let dir = TempDir::new("concurrent");
    let path = dir.path("events.jsonl");

    // Three buses share one writer (each with its own middleware); a fourth opens the same file
    // separately, as another process would.
    let shared = Arc::new(WalWriter::open(&path).unwrap());
    let separate = Arc::new(WalWriter::open(&path).unwrap());
    let mut buses = Vec::new();
    for (i, writer) in [&shared, &shared, &shared, &separate]
        .into_iter()
        .enumerate()
    {
        let bus = EventBus::builder(format!("Bus{i}"))
            .middleware(Arc::new(WalMiddleware::new(writer.clone())))
            .max_history_size(None)
            .build();
        bus.on(|order: EventHandle<OrderPlaced>| async move {
            tokio::task::yield_now().await;
            order.order_id
        });
        buses.push(bus);
    }

    // Lines of ~8 KiB, more than a page or a pipe buffer, so torn writes would show.
    let note = "x".repeat(8 * 1024);
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let bus = buses[(task as usize) % buses.len()].clone();
        let note = note.clone();
        tasks.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            for n in 0..EVENTS {
                let order_id = task * 1_000 + n;
                let event = OrderPlaced {
                    order_id,
                    note: note.clone(),
                };
                handles.push(bus.dispatch(event).unwrap());
            }
            for handle in handles {
                handle.await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Completion hooks have run once every bus is idle.
    for bus in &buses {
        assert!(bus.wait_until_idle(None).await);
    }

    // Every line is whole: it parses as an event.
    let mut kinds: HashMap<u64, Vec<RecordKind>> = HashMap::new();
    for item in WalReader::open(&path).unwrap() {
        let record = item.unwrap_or_else(|err| panic!("torn or corrupt line: {err}"));
        let payload = record.event.payload_json().unwrap();
        assert_eq!(payload["note"].as_str().map(str::len), Some(8 * 1024));
        let order_id = payload["order_id"].as_u64().unwrap();
        kinds.entry(order_id).or_default().push(record.kind);
    }
    assert_eq!(kinds.len() as u64, TASKS * EVENTS);
    for (order_id, kinds) in kinds {
        // One completion record per event, preceded by its dispatch record (which an event that
        // completes on another thread before its dispatch hook runs does not get).
        assert!(
            kinds == [RecordKind::Dispatched, RecordKind::Completed]
                || kinds == [RecordKind::Completed],
            "order {order_id}: {kinds:?}"
        );
    }
}

#[tokio::test]
async fn a_middleware_shared_by_forwarding_buses_writes_each_event_once() {
    let dir = TempDir::new("forwarded");
    let path = dir.path("events.jsonl");
    let wal: Arc<WalMiddleware> = Arc::new(WalMiddleware::open(&path).unwrap());
    let front = EventBus::builder("Front").middleware(wal.clone()).build();
    let back = EventBus::builder("Back").middleware(wal.clone()).build();
    front.on(|order: EventHandle<OrderPlaced>| order.order_id);
    front.on_pattern("*", back.forwarder());
    back.on(|order: EventHandle<OrderPlaced>| order.order_id * 2);

    let event = front.dispatch(order(21)).unwrap();
    event.clone().await.unwrap();
    assert!(front.wait_until_idle(None).await);
    assert!(back.wait_until_idle(None).await);

    let read = records(&path);
    let kinds: Vec<_> = read.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RecordKind::Dispatched, RecordKind::Completed]);
    let completed = &read[1].event;
    assert_eq!(completed.event_id(), event.event_id());
    assert_eq!(completed.event_path(), [front.label(), back.label()]);
    let values: Vec<_> = completed
        .event_results()
        .into_iter()
        .filter(|r| r.handler_name.contains("closure"))
        .map(|r| (r.eventbus_name, r.result))
        .collect();
    assert_eq!(
        values,
        [
            ("Front".to_owned(), Some(json!(21))),
            ("Back".to_owned(), Some(json!(42)))
        ]
    );
}

#[tokio::test]
async fn separate_middlewares_on_forwarding_buses_each_log_the_event() {
    let dir = TempDir::new("separate");
    let front_path = dir.path("front.jsonl");
    let back_path = dir.path("back.jsonl");
    let front = EventBus::builder("Front").wal(&front_path).unwrap().build();
    let back = EventBus::builder("Back").wal(&back_path).unwrap().build();
    front.on_pattern("*", back.forwarder());
    back.on(|order: EventHandle<OrderPlaced>| order.order_id);

    front.dispatch(order(5)).unwrap().await.unwrap();
    assert!(front.wait_until_idle(None).await);
    assert!(back.wait_until_idle(None).await);

    for path in [&front_path, &back_path] {
        let kinds: Vec<_> = records(path).iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [RecordKind::Dispatched, RecordKind::Completed]);
    }
    // The back bus's dispatch record shows the hop.
    assert_eq!(records(&back_path)[0].event.event_path().len(), 2);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn write_failures_are_reported_and_the_bus_carries_on() {
    // Every write to /dev/full fails with "no space left on device".
    let wal = Arc::new(WalMiddleware::open("/dev/full").unwrap());
    let bus = EventBus::builder("Full").middleware(wal.clone()).build();
    bus.on(|order: EventHandle<OrderPlaced>| order.order_id);

    let event = bus.dispatch(order(3)).unwrap();
    assert_eq!(event.event_result().await.unwrap(), 3);
    assert!(bus.wait_until_idle(None).await);

    assert_eq!(wal.error_count(), 2);
    let error = wal.take_error().unwrap();
    assert!(matches!(error, WalError::Write { .. }), "{error:?}");
    assert!(std::error::Error::source(&error).is_some());
    assert!(wal.take_error().is_none());
    // It converts into the crate's root error.
    let root: bubus::Error = error.into();
    assert!(matches!(root, bubus::Error::Wal(_)));
}

#[test]
fn opening_a_log_where_it_cannot_be_created_fails_cleanly() {
    let dir = TempDir::new("unopenable");
    // A directory where the file should be.
    std::fs::create_dir_all(dir.path("events.jsonl")).unwrap();
    let err = WalWriter::open(dir.path("events.jsonl")).unwrap_err();
    assert!(matches!(err, WalError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("events.jsonl"));
    // The cause is the error's source, and only there: a report that walks the chain prints it
    // once.
    let cause = std::error::Error::source(&err).expect("the I/O error is the source");
    assert!(!err.to_string().contains(&cause.to_string()), "{err}");
    assert!(
        EventBus::builder("Nope")
            .wal(dir.path("events.jsonl"))
            .is_err()
    );
}

#[tokio::test]
async fn the_writer_appends_any_event_directly() {
    let dir = TempDir::new("direct");
    let path = dir.path("events.jsonl");
    let writer = WalWriter::open(&path).unwrap();
    let bus = EventBus::new("Direct");
    bus.on(|order: EventHandle<OrderPlaced>| order.order_id);
    let event: AnyEvent = bus.dispatch(order(9)).unwrap().await.unwrap().to_any();

    writer.append_event(&event).unwrap();
    writer.append_event_with_results(&event).unwrap();
    writer.append(&json!({"not": "an event"})).unwrap();

    let mut reader = WalReader::open(&path).unwrap();
    let bare = reader.next().unwrap().unwrap();
    assert_eq!(bare.kind, RecordKind::Completed);
    assert!(bare.event.event_results().is_empty());
    let full = reader.next().unwrap().unwrap();
    assert_eq!(full.event.event_results().len(), 1);
    assert!(matches!(
        reader.next(),
        Some(Err(WalError::BadLine { line: 3, .. }))
    ));
    assert!(reader.next().is_none());
}

#[tokio::test]
async fn payload_floats_read_back_exactly_as_written() {
    // The shortest representation of these floats parses back to a different float with a
    // parser that is not correctly rounded (found by the event_decoder fuzz target).
    let dir = TempDir::new("floats");
    let path = dir.path("events.jsonl");
    let writer = WalWriter::open(&path).unwrap();
    let values = [6.666666666666667e85, 0.1, 1e-300, 123456.789e10, f64::MAX];
    let event = bubus::EventHandle::new(
        bubus::DynEvent::new("Measured", json!({ "values": values })).unwrap(),
    );
    writer.append_event(&event.to_any()).unwrap();

    let read = records(&path);
    let payload = read[0].event.payload_json().unwrap();
    let back: Vec<f64> = serde_json::from_value(payload["values"].clone()).unwrap();
    assert_eq!(back, values);
}
