//! `bubus dead-letters list|replay` against a durable PostgreSQL bridge on the shared server.

use std::process::Command;
use std::time::Duration;

use bubus::{AnyEvent, DynEvent, EventBus, EventHandle};
use bubus_postgres::{DurableOptions, PgTransport};

const SHARED: &str = "postgresql://postgres@127.0.0.1:5432/test";

fn bubus(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bubus"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_replays_postgres_dead_letters() {
    let table = format!("cli_dead_{}_{:08x}", std::process::id(), fastrand::u32(..));
    let url = format!("{SHARED}/{table}");
    let transport = PgTransport::durable(
        &url,
        DurableOptions::new("billing")
            .max_deliveries(1)
            .poll_interval(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let bus = EventBus::new("Billing");
    bus.on_pattern("Charge", |_e: AnyEvent| {
        Err::<(), _>(std::io::Error::other("card declined"))
    });
    let bridge = transport.bridge().build();
    bridge.attach(&bus);
    bridge.start().await.unwrap();
    let event: AnyEvent =
        EventHandle::new(DynEvent::new("Charge", serde_json::json!({"cents": 5})).unwrap()).into();
    let id = event.event_id().to_string();
    transport.send_event(&event).await.unwrap();
    while transport.dead_letters().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bridge.close().await.unwrap();

    let (ok, out, err) = bubus(&["dead-letters", "list", &url]);
    assert!(ok, "{err}");
    let line = out.lines().next().unwrap();
    assert!(
        line.contains(&id) && line.contains("billing") && line.contains("Charge"),
        "{out}"
    );
    assert!(
        line.contains("attempts=1") && line.contains("card declined"),
        "{out}"
    );

    let (ok, out, err) = bubus(&["dead-letters", "list", "--json", "--group", "billing", &url]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["event_id"], id.as_str());
    assert_eq!(v["event"]["cents"], 5);
    let (ok, out, _) = bubus(&["dead-letters", "list", "--group", "other", &url]);
    assert!(ok && out.is_empty());

    let (ok, _, err) = bubus(&["dead-letters", "replay", &url, &id]);
    assert!(ok && err.contains("replayed 1 dead letter"), "{err}");
    let again = PgTransport::durable(&url, DurableOptions::new("billing"))
        .await
        .unwrap();
    assert_eq!(again.pending().await.unwrap(), 1);
    let (ok, out, _) = bubus(&["dead-letters", "list", &url]);
    assert!(ok && out.is_empty(), "{out}");

    let (ok, _, err) = bubus(&["dead-letters", "list", "redis://127.0.0.1/0"]);
    assert!(!ok && err.contains("no durable bridge"), "{err}");
}
