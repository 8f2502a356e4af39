//! Replaying a write-ahead log into a bus (design §5.5): events are dispatched again in log order,
//! once per id, as fresh pending copies whose handlers run again; children are recreated by their
//! parents rather than replayed twice; bad lines are counted and skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bubus::wal::{
    self, ReplayChildren, ReplayOptions, WalError, WalMiddleware, WalReader, WalRecord,
};
use bubus::{AnyEvent, DispatchError, EventBus, EventHandle, EventStatus};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = u64)]
struct OrderPlaced {
    order_id: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ChargeCard {
    order_id: u64,
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bubus-wal-replay-{name}-{}-{}",
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

/// A fixed UUIDv7-shaped id.
fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0198_f5e2_7c1a_7b3e_9f00_0000_0000_0000 | n)
}

fn reader(path: &Path) -> WalReader<std::io::BufReader<std::fs::File>> {
    WalReader::open(path).unwrap()
}

/// Writes a log of `orders` placed on a bus whose handler charges the card through a child
/// event, and returns the ids of the orders.
async fn write_order_log(path: &Path, orders: &[u64]) -> Vec<Uuid> {
    let bus = EventBus::builder("Shop").wal(path).unwrap().build();
    let inner = bus.clone();
    bus.on(move |order: EventHandle<OrderPlaced>| {
        let bus = inner.clone();
        async move {
            let charge = bus.dispatch(ChargeCard {
                order_id: order.order_id,
            })?;
            charge.event_result().await?;
            Ok::<_, bubus::Error>(order.order_id)
        }
    });
    bus.on(|charge: EventHandle<ChargeCard>| format!("charged {}", charge.order_id));
    let mut ids = Vec::new();
    for &order_id in orders {
        let event = bus.dispatch(OrderPlaced { order_id }).unwrap();
        ids.push(event.event_id());
        event.await.unwrap();
    }
    ids
}

/// A bus with the same handlers as the log's, recording what they see.
fn shop(name: &str, seen: &Recorder) -> EventBus {
    let bus = EventBus::new(name);
    let inner = bus.clone();
    let orders = seen.clone();
    bus.on(move |order: EventHandle<OrderPlaced>| {
        let bus = inner.clone();
        let seen = orders.clone();
        async move {
            seen.push(format!("order {}", order.order_id));
            let charge = bus.dispatch(ChargeCard {
                order_id: order.order_id,
            })?;
            charge.event_result().await?;
            Ok::<_, bubus::Error>(order.order_id * 100)
        }
    });
    let charges = seen.clone();
    bus.on(move |charge: EventHandle<ChargeCard>| {
        charges.push(format!("charge {}", charge.order_id));
        format!("charged again {}", charge.order_id)
    });
    bus
}

#[tokio::test]
async fn replay_reruns_handlers_in_log_order_once_per_event() {
    let dir = TempDir::new("order");
    let path = dir.path("shop.jsonl");
    let ids = write_order_log(&path, &[1, 2, 3]).await;
    // Per order: dispatch + completion of the order and of its charge.
    assert_eq!(reader(&path).count(), 12);

    let seen = Recorder::new();
    let fresh = shop("Shop", &seen);
    let summary = wal::replay(reader(&path), &fresh).await.unwrap();

    assert_eq!(summary.replayed, 3);
    assert_eq!(summary.duplicates, 6);
    assert_eq!(summary.skipped_children, 3);
    assert_eq!(summary.bad_lines, 0);
    assert!(summary.errors.is_empty());
    // Each order once, in log order; each charge recreated by its order's handler, once.
    seen.assert_order(&[
        "order 1", "charge 1", "order 2", "charge 2", "order 3", "charge 3",
    ]);
    assert_eq!(seen.len(), 6);

    // The replayed events keep their ids and are completed with the new handlers' results.
    let orders: Vec<AnyEvent> = fresh
        .event_history()
        .into_iter()
        .filter(|e| e.event_type() == "OrderPlaced")
        .collect();
    assert_eq!(orders.iter().map(|e| e.event_id()).collect::<Vec<_>>(), ids);
    for (order, expected) in orders.iter().zip([100, 200, 300]) {
        assert_eq!(order.event_status(), EventStatus::Completed);
        assert_eq!(order.event_path(), [fresh.label()]);
        assert_eq!(order.event_results()[0].result, Some(json!(expected)));
        assert_eq!(order.event_children().len(), 1);
    }
}

#[tokio::test]
async fn replaying_children_too_runs_them_twice() {
    let dir = TempDir::new("children");
    let path = dir.path("shop.jsonl");
    write_order_log(&path, &[1]).await;

    let seen = Recorder::new();
    let fresh = shop("Shop", &seen);
    let summary = wal::replay_with(
        reader(&path),
        &fresh,
        ReplayOptions::new().children(ReplayChildren::All),
    )
    .await
    .unwrap();
    assert_eq!((summary.replayed, summary.skipped_children), (2, 0));
    // The logged charge, and the one the replayed order dispatches again.
    assert_eq!(
        seen.entries().iter().filter(|e| *e == "charge 1").count(),
        2
    );
}

#[tokio::test]
async fn children_of_events_outside_the_log_can_be_replayed() {
    let parent = id(1);
    let orphan = id(2);
    let logged_parent = id(3);
    let child = id(4);
    let log = [
        json!({"event_type": "ChargeCard", "event_id": orphan, "event_parent_id": parent, "order_id": 1}),
        json!({"event_type": "OrderPlaced", "event_id": logged_parent, "order_id": 2}),
        json!({"event_type": "ChargeCard", "event_id": child, "event_parent_id": logged_parent, "order_id": 2}),
    ]
    .map(|line| line.to_string())
    .join("\n");

    let seen = Recorder::new();
    let fresh = shop("Shop", &seen);
    let summary = wal::replay_with(
        WalReader::new(log.as_bytes()),
        &fresh,
        ReplayOptions::new().children(ReplayChildren::SkipIfParentReplayed),
    )
    .await
    .unwrap();
    assert_eq!((summary.replayed, summary.skipped_children), (2, 1));
    seen.assert_order(&["charge 1", "order 2", "charge 2"]);
    assert_eq!(seen.len(), 3);
    // The replayed orphan keeps its logged parent id.
    let replayed = fresh
        .event_history()
        .into_iter()
        .find(|e| e.event_id() == orphan)
        .unwrap();
    assert_eq!(replayed.event_parent_id(), Some(parent));

    // The default skips every child.
    let seen = Recorder::new();
    let summary = wal::replay(WalReader::new(log.as_bytes()), &shop("Shop", &seen))
        .await
        .unwrap();
    assert_eq!((summary.replayed, summary.skipped_children), (1, 2));
    seen.assert_order(&["order 2", "charge 2"]);
}

#[tokio::test]
async fn the_same_event_logged_many_times_is_replayed_once() {
    let id = id(5);
    let line = json!({"event_type": "OrderPlaced", "event_id": id, "order_id": 4}).to_string();
    let done = json!({"event_type": "OrderPlaced", "event_id": id, "event_status": "completed", "order_id": 4}).to_string();
    let log = [line.as_str(), &done, &line, &done].join("\n");

    let seen = Recorder::new();
    let summary = wal::replay(WalReader::new(log.as_bytes()), &shop("Shop", &seen))
        .await
        .unwrap();
    assert_eq!((summary.replayed, summary.duplicates), (1, 3));
    seen.assert_order(&["order 4", "charge 4"]);
    assert_eq!(seen.len(), 2);
}

#[tokio::test]
async fn bad_lines_are_counted_and_skipped() {
    let log = format!(
        "{}\nnot json\n{{\"event_type\":\"OrderPlaced\",\"event_status\":\"lost\"}}\n{}\n{{\"event_type\":\"Ord",
        json!({"event_type": "OrderPlaced", "order_id": 1}),
        json!({"event_type": "OrderPlaced", "order_id": 2}),
    );
    let seen = Recorder::new();
    let summary = wal::replay(WalReader::new(log.as_bytes()), &shop("Shop", &seen))
        .await
        .unwrap();
    assert_eq!(summary.replayed, 2);
    assert_eq!(summary.bad_lines, 3);
    let lines: Vec<_> = summary.errors.iter().map(|e| e.line()).collect();
    assert_eq!(lines, [Some(2), Some(3), Some(5)]);
    assert!(matches!(summary.errors[2], WalError::PartialLine { .. }));
    seen.assert_order(&["order 1", "order 2"]);
}

#[tokio::test]
async fn replay_into_a_bus_with_the_logged_label_still_runs() {
    // A bus restarted with a fixed id has the same label as the one in the logged paths; the
    // replayed copies start with an empty path, so loop prevention does not drop them.
    let dir = TempDir::new("label");
    let path = dir.path("shop.jsonl");
    let id = id(6);
    {
        let bus = EventBus::builder("Fixed")
            .id(id)
            .wal(&path)
            .unwrap()
            .build();
        bus.on(|order: EventHandle<OrderPlaced>| order.order_id);
        bus.dispatch(OrderPlaced { order_id: 5 })
            .unwrap()
            .await
            .unwrap();
    }
    let restarted = EventBus::builder("Fixed").id(id).build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    restarted.on(move |order: EventHandle<OrderPlaced>| {
        counter.fetch_add(1, Ordering::SeqCst);
        order.order_id
    });
    let logged = reader(&path).next().unwrap().unwrap();
    assert_eq!(logged.event.event_path(), [restarted.label()]);

    let summary = wal::replay(reader(&path), &restarted).await.unwrap();
    assert_eq!(summary.replayed, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn replay_waits_for_room_when_the_history_is_full() {
    let log: String = (0..20)
        .map(|n| format!("{}\n", json!({"event_type": "OrderPlaced", "order_id": n})))
        .collect();
    let bus = EventBus::builder("Small").max_history_size(Some(3)).build();
    let seen = Recorder::new();
    let recorder = seen.clone();
    bus.on(move |order: EventHandle<OrderPlaced>| {
        let seen = recorder.clone();
        async move {
            tokio::task::yield_now().await;
            seen.push(order.order_id);
            order.order_id
        }
    });

    let summary = wal::replay_with(
        WalReader::new(log.as_bytes()),
        &bus,
        ReplayOptions::new().max_in_flight(100),
    )
    .await
    .unwrap();
    assert_eq!(summary.replayed, 20);
    let expected: Vec<String> = (0..20).map(|n| n.to_string()).collect();
    assert_eq!(seen.entries(), expected);
}

#[tokio::test]
async fn replay_into_a_stopped_bus_stops_with_the_line() {
    let log = format!(
        "\n{}\n",
        json!({"event_type": "OrderPlaced", "order_id": 1})
    );
    let bus = EventBus::new("Stopped");
    bus.stop(None).await;
    let err = wal::replay(WalReader::new(log.as_bytes()), &bus)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WalError::Dispatch {
                line: 2,
                source: DispatchError::Stopped { .. }
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn replaying_into_a_bus_that_writes_the_same_log_terminates() {
    let dir = TempDir::new("same-log");
    let path = dir.path("shop.jsonl");
    write_order_log(&path, &[1, 2]).await;
    let before = reader(&path).count();

    let seen = Recorder::new();
    let bus = EventBus::builder("Shop")
        .middleware(Arc::new(WalMiddleware::open(&path).unwrap()))
        .build();
    let recorder = seen.clone();
    bus.on(move |order: EventHandle<OrderPlaced>| {
        recorder.push(order.order_id);
        order.order_id
    });
    // The reader reaches the records the replay appends; their ids were replayed already.
    let summary = wal::replay(reader(&path), &bus).await.unwrap();
    assert_eq!(summary.replayed, 2);
    seen.assert_order(&["1", "2"]);
    assert_eq!(seen.len(), 2);
    assert_eq!(reader(&path).count(), before + 4);
}

#[tokio::test]
async fn python_logs_replay_into_typed_handlers() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String)]
    struct UserActionEvent {
        action: String,
        user_id: String,
    }

    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/wal/python_wal.jsonl");
    let bus = EventBus::new("FromPython");
    let seen = Recorder::new();
    let recorder = seen.clone();
    bus.on(move |event: EventHandle<UserActionEvent>| {
        recorder.push(format!("{} by {}", event.action, event.user_id));
        event.action.clone()
    });
    let records: Vec<WalRecord> = reader(&golden).collect::<Result<_, _>>().unwrap();
    let summary = wal::replay(records.into_iter().map(Ok), &bus)
        .await
        .unwrap();
    assert_eq!(summary.replayed, 2);
    seen.assert_order(&["action_0 by user_0", "action_1 by user_1"]);
}
