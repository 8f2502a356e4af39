//! One tree across two processes: the demo shop sends `ShipOrder` over a JSONL bridge to a
//! warehouse process. The monitor watches both processes' logs and the bridge itself (a bridge
//! transport as a source), merges them by event id, and replays through the bridge transport.

mod support;

use std::ffi::OsStr;

use bubus::bridge::JsonlTransport;
use bubus_monitor::{Monitor, Status, TransportSource, TransportTarget, WalSource};
use serde_json::{Value, json};
use support::{Demo, http, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_across_two_processes_joined_by_a_bridge() {
    let dir = temp_dir("cross");
    let shop_log = dir.join("shop.jsonl");
    let warehouse_log = dir.join("warehouse.jsonl");
    let bridge = dir.join("ship-bridge.jsonl");
    let inbox = dir.join("inbox.jsonl");
    std::fs::write(&bridge, "").unwrap();

    let monitor = Monitor::builder()
        .source(WalSource::new(&shop_log))
        .source(WalSource::new(&warehouse_log))
        .source(TransportSource::new(
            JsonlTransport::new(&bridge).poll_interval(std::time::Duration::from_millis(20)),
        ))
        .replay_target(TransportTarget::new(JsonlTransport::new(&inbox)))
        .bind(([127, 0, 0, 1], 0).into())
        .start()
        .await
        .expect("starts");
    // The bridge listeners (the warehouse's, the monitor's) start at the end of the file, as
    // the family's JSONL bridge does: both must listen before the shop sends.
    let mut warehouse = Demo::spawn_with(
        &warehouse_log,
        &[OsStr::new("--warehouse"), bridge.as_os_str()],
    );
    warehouse.expect("listening");
    support::ready(&monitor).await;
    let bridge_source = format!("bridge:jsonl:{}", bridge.display());
    let (_, _, info) = http(monitor.local_addr(), "GET", "/api/info", &[], None).await;
    assert!(info.contains(&bridge_source), "{info}");
    let mut shop = Demo::spawn_with(
        &shop_log,
        &[
            OsStr::new("--inbox"),
            inbox.as_os_str(),
            OsStr::new("--stdin"),
            OsStr::new("--ship-over"),
            bridge.as_os_str(),
        ],
    );

    let order = shop.order(5, 2_500, false);
    let shipped = warehouse.expect("shipped ");
    let ship = support::event(&monitor, &shipped, |d| {
        // Every process's record has arrived: the warehouse's handler finished and the shop's
        // own record of its sending handler (each source reports in its own time).
        d.sources.len() == 3
            && d.results
                .iter()
                .any(|r| r.handler.ends_with("::ship") && r.status == "completed")
            && d.results.iter().any(|r| r.bus.starts_with("Shop#"))
    })
    .await;
    // Dispatched in the shop's process, handled in the warehouse's: one event, one tree.
    assert_eq!(ship.summary.event_type, "ShipOrder");
    assert_eq!(ship.summary.parent.as_deref(), Some(order.as_str()));
    assert!(
        ship.summary
            .path
            .first()
            .is_some_and(|b| b.starts_with("Shop#")),
        "{:?}",
        ship.summary.path
    );
    assert!(
        ship.summary
            .path
            .iter()
            .any(|b| b.starts_with("Warehouse#")),
        "{:?}",
        ship.summary.path
    );
    let buses: Vec<&str> = ship.results.iter().map(|r| r.bus.as_str()).collect();
    assert!(
        buses.iter().any(|b| b.starts_with("Shop#")),
        "the shop's sending handler: {buses:?}"
    );
    assert!(
        buses.iter().any(|b| b.starts_with("Warehouse#")),
        "the warehouse's handlers: {buses:?}"
    );
    let parent = support::event(&monitor, &order, |d| d.summary.status == Status::Completed).await;
    assert!(parent.children.contains(&shipped));

    // Replay through a bridge transport: the shop's inbox.
    let (status, _, body) = http(
        monitor.local_addr(),
        "POST",
        "/api/replay",
        &[("Content-Type", "application/json")],
        Some(&json!({"ids": [order], "confirm": true, "target": format!("bridge:jsonl:{}", inbox.display())}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let copy = answer["replayed"][0]["replay"].as_str().unwrap().to_owned();
    assert_eq!(shop.expect("replayed "), copy);
    let copy = support::event(&monitor, &copy, |d| d.summary.status == Status::Completed).await;
    assert_eq!(copy.summary.replay_of.as_deref(), Some(order.as_str()));
    monitor.shutdown().await;
}
