//! Ports `TestSQLiteHistoryMirror`, `test_sqlite_history_records_errors`,
//! `test_sqlite_mirror_matches_inmemory_*` and `test_sqlite_mirror_supports_concurrent_processes`
//! of `tests/test_middleware.py`: the mirror's tables, read back with plain SQL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bubus::{AnyEvent, DynEvent, EventBus, EventHandle, HandlerError};
use bubus_sqlite::rusqlite::{self, Connection};
use bubus_sqlite::{MirrorError, MirrorOptions, SqliteHistoryMirror, WriteMode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct UserActionEvent {
    action: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct HistoryTestEvent {
    payload: String,
    should_fail: bool,
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bubus-sqlite-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("history.sqlite3")
}

fn strings(db: &Connection, sql: &str) -> Vec<String> {
    db.prepare(sql)
        .unwrap()
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn count(db: &Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |row| row.get(0)).unwrap()
}

fn action(name: &str) -> UserActionEvent {
    UserActionEvent {
        action: name.into(),
    }
}

#[tokio::test]
async fn events_and_results_are_mirrored_at_every_transition()
-> Result<(), Box<dyn std::error::Error>> {
    let path = temp_db("persist");
    let mirror = Arc::new(SqliteHistoryMirror::open(&path)?);
    let bus = EventBus::builder("MirrorBus")
        .middleware(mirror.clone())
        .build();
    let handler = bus.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());

    let event = bus.dispatch(action("ping"))?;
    event.clone().await?;
    mirror.flush()?;

    let db = Connection::open(&path)?;
    assert_eq!(
        strings(&db, "SELECT phase FROM events_log ORDER BY id"),
        ["pending", "started", "completed"]
    );
    assert_eq!(
        strings(&db, "SELECT event_status FROM events_log ORDER BY id"),
        ["pending", "started", "completed"]
    );
    let (event_id, event_type, bus_id, bus_name, event_json): (
        String,
        String,
        String,
        String,
        String,
    ) = db.query_row(
        "SELECT event_id, event_type, eventbus_id, eventbus_name, event_json
             FROM events_log WHERE phase = 'completed'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    assert_eq!(event_id, event.event_id().to_string());
    assert_eq!(event_type, "UserActionEvent");
    assert_eq!(bus_id, bus.id().to_string());
    assert_eq!(
        bus_name,
        bus.label(),
        "the label, as the reference stores it"
    );
    let json: Value = serde_json::from_str(&event_json)?;
    assert_eq!(json["event_id"], event.event_id().to_string());
    assert_eq!(json["event_status"], "completed");
    assert_eq!(json["action"], "ping");
    assert!(json.get("event_results").is_none());

    assert_eq!(
        strings(&db, "SELECT phase FROM event_results_log ORDER BY id"),
        ["pending", "started", "completed"]
    );
    assert_eq!(
        strings(&db, "SELECT status FROM event_results_log ORDER BY id"),
        ["pending", "started", "completed"]
    );
    type ResultRow = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let row: ResultRow = db.query_row(
        "SELECT event_result_id, event_id, handler_id, eventbus_name, result_repr, error_repr,
                event_result_json
         FROM event_results_log WHERE phase = 'completed'",
        [],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    )?;
    let result = &event.event_results()[0];
    assert_eq!(row.0, result.id.to_string());
    assert_eq!(row.1, event.event_id().to_string());
    assert_eq!(row.2, handler.id().as_str());
    assert_eq!(row.3, bus.label());
    assert_eq!(row.4.as_deref(), Some(r#""ok""#));
    assert_eq!(row.5, None);
    let result_json: Value = serde_json::from_str(&row.6)?;
    assert_eq!(result_json["result"], "ok");
    assert_eq!(result_json["status"], "completed");
    assert_eq!(result_json["handler_id"], handler.id().as_str());
    // Rows before completion say what was true then.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM event_results_log WHERE phase = 'pending' AND result_repr IS NULL"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM events_log WHERE inserted_at IS NULL"
        ),
        0
    );
    mirror.close();
    std::fs::remove_dir_all(path.parent().unwrap()).ok();
    Ok(())
}

#[tokio::test]
async fn handler_errors_are_mirrored() -> Result<(), Box<dyn std::error::Error>> {
    let path = temp_db("errors");
    let mirror = Arc::new(SqliteHistoryMirror::open(&path)?);
    let bus = EventBus::builder("MirrorErrorBus")
        .middleware(mirror.clone())
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| {
        Err::<String, _>(HandlerError::new("RuntimeError", "handler boom"))
    });

    bus.dispatch(action("boom"))?.await?;
    mirror.flush()?;

    let db = Connection::open(&path)?;
    assert_eq!(
        strings(&db, "SELECT phase FROM event_results_log ORDER BY id"),
        ["pending", "started", "completed"]
    );
    assert_eq!(
        strings(&db, "SELECT status FROM event_results_log ORDER BY id"),
        ["pending", "started", "error"]
    );
    let (result_repr, error_repr): (Option<String>, Option<String>) = db.query_row(
        "SELECT result_repr, error_repr FROM event_results_log WHERE phase = 'completed'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    assert_eq!(result_repr, None);
    assert_eq!(error_repr.as_deref(), Some("RuntimeError: handler boom"));
    assert_eq!(
        strings(&db, "SELECT event_status FROM events_log ORDER BY id"),
        ["pending", "started", "completed"]
    );
    Ok(())
}

#[test]
fn the_tables_have_the_reference_columns_and_the_file_is_in_wal_mode()
-> Result<(), Box<dyn std::error::Error>> {
    let path = temp_db("schema");
    let mirror = SqliteHistoryMirror::open(&path)?;
    let db = Connection::open(&path)?;
    assert_eq!(
        strings(
            &db,
            "SELECT name FROM pragma_table_info('events_log') ORDER BY cid"
        ),
        [
            "id",
            "event_id",
            "event_type",
            "event_status",
            "eventbus_id",
            "eventbus_name",
            "phase",
            "event_json",
            "inserted_at"
        ]
    );
    assert_eq!(
        strings(
            &db,
            "SELECT name FROM pragma_table_info('event_results_log') ORDER BY cid"
        ),
        [
            "id",
            "event_result_id",
            "event_id",
            "handler_id",
            "handler_name",
            "eventbus_id",
            "eventbus_name",
            "event_type",
            "status",
            "phase",
            "result_repr",
            "error_repr",
            "event_result_json",
            "inserted_at"
        ]
    );
    let mode: String = db.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    drop(mirror);
    Ok(())
}

#[tokio::test]
async fn inline_mode_has_the_row_in_the_file_when_the_hook_returns()
-> Result<(), Box<dyn std::error::Error>> {
    let path = temp_db("inline");
    let mirror = Arc::new(SqliteHistoryMirror::open_with(
        &path,
        MirrorOptions::new().write_mode(WriteMode::Inline),
    )?);
    assert_eq!(mirror.write_mode(), WriteMode::Inline);
    let bus = EventBus::builder("InlineBus")
        .middleware(mirror.clone())
        .build();
    let db_path = path.clone();
    // Inside the handler, the `started` rows are already committed.
    bus.on(move |_: EventHandle<UserActionEvent>| {
        let db = Connection::open(&db_path).expect("open");
        let phases = strings(&db, "SELECT phase FROM events_log ORDER BY id");
        let results = strings(&db, "SELECT phase FROM event_results_log ORDER BY id");
        format!("{}|{}", phases.join(","), results.join(","))
    });

    let seen = bus.dispatch(action("inline"))?.event_result().await?;
    assert_eq!(seen, "pending,started|pending,started");
    let db = Connection::open(&path)?;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events_log"), 3);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM event_results_log"), 3);
    Ok(())
}

#[tokio::test]
async fn close_is_idempotent_and_later_hooks_write_nothing()
-> Result<(), Box<dyn std::error::Error>> {
    for mode in [WriteMode::Background, WriteMode::Inline] {
        let path = temp_db(&format!("close-{mode:?}"));
        let mirror = Arc::new(SqliteHistoryMirror::open_with(
            &path,
            MirrorOptions::new().write_mode(mode),
        )?);
        let bus = EventBus::builder("CloseBus")
            .middleware(mirror.clone())
            .build();
        bus.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());
        bus.dispatch(action("before"))?.await?;

        assert!(!mirror.is_closed());
        mirror.close();
        mirror.close();
        assert!(mirror.is_closed());
        assert!(matches!(mirror.flush(), Err(MirrorError::Closed)));

        bus.dispatch(action("after"))?.await?;
        let db = Connection::open(&path)?;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM events_log"), 3, "{mode:?}");
        assert_eq!(mirror.error_count(), 0);
    }
    Ok(())
}

/// Runs the reference's scenario (two handlers, one failing when asked) and summarizes the
/// history: the mirror must not change what the bus does.
async fn run_scenario(mirror: Option<Arc<SqliteHistoryMirror>>, should_fail: bool) -> Vec<Value> {
    let mut builder = EventBus::builder("ScenarioBus");
    if let Some(mirror) = mirror {
        builder = builder.middleware(mirror);
    }
    let bus = builder.build();
    bus.on(|e: EventHandle<HistoryTestEvent>| format!("ok-{}", e.payload));
    bus.on(|e: EventHandle<HistoryTestEvent>| {
        if e.should_fail {
            Err(HandlerError::new("RuntimeError", "boom"))
        } else {
            Ok("fine".to_owned())
        }
    });
    let event = bus
        .dispatch(HistoryTestEvent {
            payload: "payload".into(),
            should_fail,
        })
        .unwrap();
    event.clone().await.unwrap();
    bus.event_history()
        .iter()
        .map(|e| {
            let results: Vec<Value> = e
                .event_results()
                .iter()
                .map(|r| {
                    json!([
                        r.status.as_str(),
                        r.result_json,
                        r.error.as_ref().map(ToString::to_string)
                    ])
                })
                .collect();
            json!({"type": e.event_type(), "status": e.event_status().as_str(), "results": results})
        })
        .collect()
}

#[tokio::test]
async fn the_mirror_does_not_change_what_the_bus_does() -> Result<(), Box<dyn std::error::Error>> {
    for should_fail in [false, true] {
        let path = temp_db(&format!("scenario-{should_fail}"));
        let mirror = Arc::new(SqliteHistoryMirror::open(&path)?);
        let plain = run_scenario(None, should_fail).await;
        let mirrored = run_scenario(Some(mirror.clone()), should_fail).await;
        assert_eq!(plain, mirrored);
        mirror.flush()?;
        let db = Connection::open(&path)?;
        assert_eq!(
            strings(&db, "SELECT DISTINCT phase FROM events_log ORDER BY phase"),
            ["completed", "pending", "started"]
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM event_results_log"), 6);
    }
    Ok(())
}

#[tokio::test]
async fn one_mirror_on_forwarding_buses_records_both_and_completes_once()
-> Result<(), Box<dyn std::error::Error>> {
    let path = temp_db("forward");
    let mirror = Arc::new(SqliteHistoryMirror::open(&path)?);
    let a = EventBus::builder("ForwardA")
        .middleware(mirror.clone())
        .build();
    let b = EventBus::builder("ForwardB")
        .middleware(mirror.clone())
        .build();
    a.forward_to(&b);
    b.on_pattern("Ping", |_: AnyEvent| json!("pong"));

    a.dispatch(DynEvent::new("Ping", json!({}))?)?.await?;
    mirror.flush()?;

    let db = Connection::open(&path)?;
    assert_eq!(
        strings(
            &db,
            "SELECT eventbus_name FROM events_log WHERE phase = 'pending' ORDER BY id"
        ),
        [a.label(), b.label()]
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM events_log WHERE phase = 'completed'"
        ),
        1
    );
    // The forwarder's result on A, the handler's result on B.
    assert_eq!(
        strings(
            &db,
            "SELECT eventbus_name FROM event_results_log WHERE phase = 'completed' ORDER BY id"
        ),
        [a.label(), b.label()]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_mirrors_write_one_file_at_the_same_time() -> Result<(), Box<dyn std::error::Error>> {
    let path = temp_db("two-connections");
    let first = Arc::new(SqliteHistoryMirror::open(&path)?);
    let second = Arc::new(SqliteHistoryMirror::open_with(
        &path,
        MirrorOptions::new().write_mode(WriteMode::Inline),
    )?);
    let mut tasks = Vec::new();
    for (name, mirror) in [("ConnA", first.clone()), ("ConnB", second.clone())] {
        tasks.push(tokio::spawn(async move {
            let bus = EventBus::builder(name).middleware(mirror).build();
            bus.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());
            for i in 0..200 {
                bus.dispatch(action(&format!("{name}-{i}")))?.await?;
            }
            Ok::<_, bubus::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    first.flush()?;
    second.flush()?;
    assert_eq!(first.error_count() + second.error_count(), 0);

    let db = Connection::open(&path)?;
    for name in ["ConnA", "ConnB"] {
        let like = format!("{name}#%");
        let events: i64 = db.query_row(
            "SELECT COUNT(*) FROM events_log WHERE eventbus_name LIKE ?1",
            [&like],
            |r| r.get(0),
        )?;
        let results: i64 = db.query_row(
            "SELECT COUNT(*) FROM event_results_log WHERE eventbus_name LIKE ?1",
            [&like],
            |r| r.get(0),
        )?;
        assert_eq!((events, results), (600, 600), "{name}");
    }
    Ok(())
}

const WORKER_DB: &str = "BUBUS_SQLITE_TEST_WORKER_DB";
const WORKER_ID: &str = "BUBUS_SQLITE_TEST_WORKER_ID";
const EVENTS_PER_WORKER: usize = 20;

/// One worker process of `several_processes_write_one_file`.
#[tokio::test]
#[ignore = "run as a child process by several_processes_write_one_file"]
async fn sqlite_worker_process() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var(WORKER_DB)?;
    let id = std::env::var(WORKER_ID)?;
    let mirror = Arc::new(SqliteHistoryMirror::open(&path)?);
    let bus = EventBus::builder(format!("WorkerBus{id}"))
        .middleware(mirror.clone())
        .build();
    let reply = format!("worker-{id}");
    bus.on(move |_: EventHandle<UserActionEvent>| reply.clone());
    for i in 0..EVENTS_PER_WORKER {
        bus.dispatch(action(&i.to_string()))?.await?;
    }
    mirror.close();
    assert_eq!(mirror.error_count(), 0, "{:?}", mirror.take_error());
    Ok(())
}

fn spawn_worker(path: &Path, id: usize) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "sqlite_worker_process", "--ignored", "--quiet"])
        .env(WORKER_DB, path)
        .env(WORKER_ID, id.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn a worker")
}

#[test]
fn several_processes_write_one_file() -> Result<(), Box<dyn std::error::Error>> {
    let path = temp_db("processes");
    // Created (tables, WAL mode) by the workers themselves, racing each other.
    std::fs::create_dir_all(path.parent().unwrap())?;
    let workers: Vec<_> = (0..3).map(|id| spawn_worker(&path, id)).collect();
    for worker in workers {
        let output = worker.wait_with_output()?;
        assert!(output.status.success(), "{output:?}");
    }

    let db = Connection::open(&path)?;
    let labels = strings(
        &db,
        "SELECT DISTINCT eventbus_name FROM events_log ORDER BY 1",
    );
    assert_eq!(labels.len(), 3, "{labels:?}");
    for (id, label) in labels.iter().enumerate() {
        let (name, short) = label.rsplit_once('#').expect("a label");
        assert_eq!(name, format!("WorkerBus{id}"));
        assert_eq!(short.len(), 4);
    }
    let per_worker = EVENTS_PER_WORKER as i64 * 3;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events_log"),
        3 * per_worker
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM event_results_log"),
        3 * per_worker
    );
    for id in 0..3 {
        let reply: i64 = db.query_row(
            "SELECT COUNT(*) FROM event_results_log WHERE result_repr = ?1",
            [format!("\"worker-{id}\"")],
            |r| r.get(0),
        )?;
        assert_eq!(reply, EVENTS_PER_WORKER as i64);
    }
    Ok(())
}

#[tokio::test]
async fn write_failures_are_counted_and_never_disturb_the_bus()
-> Result<(), Box<dyn std::error::Error>> {
    for mode in [WriteMode::Background, WriteMode::Inline] {
        let path = temp_db(&format!("failures-{mode:?}"));
        let mirror = Arc::new(SqliteHistoryMirror::open_with(
            &path,
            MirrorOptions::new().write_mode(mode),
        )?);
        // Someone drops the tables under the mirror's feet.
        Connection::open(&path)?
            .execute_batch("DROP TABLE events_log; DROP TABLE event_results_log;")?;
        let bus = EventBus::builder("FailingMirrorBus")
            .middleware(mirror.clone())
            .build();
        bus.on(|_: EventHandle<UserActionEvent>| "still works".to_owned());

        let answer = bus.dispatch(action("x"))?.event_result().await?;
        assert_eq!(answer, "still works");
        // A flush waits for the writer; in inline mode the failures are already counted.
        mirror.flush()?;
        assert!(mirror.error_count() > 0, "{mode:?}");
        assert!(matches!(
            mirror.take_error(),
            Some(MirrorError::Write {
                source: rusqlite::Error::SqliteFailure(..),
                ..
            })
        ));
    }
    Ok(())
}

#[test]
fn open_fails_cleanly_on_a_path_that_cannot_be_a_database() {
    let dir = temp_db("not-a-db");
    let dir = dir.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    // A directory where the file should be.
    let err = SqliteHistoryMirror::open(&dir).unwrap_err();
    assert!(matches!(err, MirrorError::Open { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_hooks_wait_instead_of_dropping_rows()
-> Result<(), Box<dyn std::error::Error>> {
    let path = temp_db("backpressure");
    let mirror = Arc::new(SqliteHistoryMirror::open_with(
        &path,
        MirrorOptions::new().queue_capacity(1),
    )?);
    let bus = EventBus::builder("BackpressureBus")
        .middleware(mirror.clone())
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());
    let handles: Vec<_> = (0..100)
        .map(|i| bus.dispatch(action(&i.to_string())))
        .collect::<Result<_, _>>()?;
    for handle in handles {
        handle.await?;
    }
    mirror.close();
    assert_eq!(mirror.error_count(), 0);

    let db = Connection::open(&path)?;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events_log"), 300);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM event_results_log"), 300);
    Ok(())
}
