//! The monitor's page in a real browser (headless Chromium over WebDriver), fed by a live bus
//! in another process (the demo shop): live updates, handler rows, failure groups, filters,
//! search, pause, deep links, replay, and 100 000 events in a virtualised list.
//!
//! Set `BUBUS_MONITOR_SCREENSHOTS=docs/monitor` to save the screenshots the README shows.

mod support;

use std::time::{Duration, Instant};

use bubus_monitor::{JsonlTarget, Monitor, Status, StreamSource, WalSource};
use support::{Browser, Demo, browser_binaries, temp_dir};

/// Events dispatched after the page opened must show within this.
const LIVE: Duration = Duration::from_secs(1);

/// How long the 100 000 events may take to load into the monitor and the page (a debug build on
/// a busy machine).
const HEAVY: Duration = Duration::from_secs(120);

fn row(id: &str) -> String {
    format!(r#"document.querySelector('.row[data-event-id="{id}"]')"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_a_live_bus_in_another_process() {
    let Some((driver, chromium)) = browser_binaries() else {
        return;
    };
    let dir = temp_dir("live");
    let log = dir.join("shop.jsonl");
    let inbox = dir.join("inbox.jsonl");
    let mut demo = Demo::spawn(&log, &inbox);
    let monitor = Monitor::builder()
        .source(WalSource::new(&log))
        .replay_target(JsonlTarget::new(&inbox))
        .bind(([127, 0, 0, 1], 0).into())
        .start()
        .await
        .expect("the monitor starts");
    let browser = Browser::start(&driver, &chromium).await;
    browser
        .client
        .goto(&monitor.url())
        .await
        .expect("open the page");
    browser
        .expect(
            "document.querySelector('#conn').textContent === 'live'",
            "the live stream",
        )
        .await;

    // 1. An event dispatched now, in the other process, shows within a second, with its
    //    children under it as they come.
    let first = demo.order(1, 1_999, false);
    let started = Instant::now();
    assert!(
        browser.until(&row(&first), LIVE).await,
        "the order dispatched after the page opened did not show within {LIVE:?}"
    );
    eprintln!("live: the new event showed after {:?}", started.elapsed());
    let done = support::event(&monitor, &first, |d| d.summary.status == Status::Completed).await;
    assert_eq!(done.children.len(), 2, "ChargeCard and ShipOrder");
    for child in &done.children {
        browser.expect(&row(child), "the child events").await;
    }
    // Children are drawn under their parent: right after it, indented.
    let order = browser
        .eval(&format!(
            r#"const rows = [...document.querySelectorAll('.row')].sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));
               const i = rows.findIndex(r => r.dataset.eventId === "{first}");
               return rows.slice(i, i + 3).map(r => [r.dataset.type, parseFloat(r.style.paddingLeft)]);"#
        ))
        .await;
    let order = order.as_array().expect("rows");
    assert_eq!(order[0][0], "OrderPlaced");
    assert!(
        order[1][1].as_f64() > order[0][1].as_f64(),
        "a child is indented: {order:?}"
    );

    // Its detail: one row per handler, with status and result; the path across both buses.
    browser
        .click(&format!(r#".row[data-event-id="{first}"]"#))
        .await;
    browser
        .expect(
            r#"[...document.querySelectorAll('#handlers .handler-row')].some(r => r.dataset.handler.endsWith('place_order') && r.dataset.status === 'completed' && r.textContent.includes('1999'))"#,
            "place_order's row with its result",
        )
        .await;
    browser
        .expect(
            &format!("location.hash === '#event={first}'"),
            "the deep link of the selected event",
        )
        .await;
    browser.click("#toggle-raw").await;
    browser
        .expect(
            r#"document.querySelector('#raw') && JSON.parse(document.querySelector('#raw').textContent).customer === 'Grace'"#,
            "the raw JSON",
        )
        .await;
    let ship = done
        .children
        .iter()
        .find(|c| {
            monitor
                .event(c)
                .is_some_and(|d| d.summary.event_type == "ShipOrder")
        })
        .expect("a ShipOrder child")
        .clone();
    support::event(&monitor, &ship, |d| d.summary.path.len() == 2).await;
    browser
        .expect(
            &format!(r#"{}.querySelectorAll('.bus').length === 2"#, row(&ship)),
            "the forwarded child on both buses of its path",
        )
        .await;

    // 2. A failing handler shows in its failure group.
    let failing = demo.order(2, 4_500, true);
    browser.expect(&row(&failing), "the failing order").await;
    browser.click("#tab-failures").await;
    browser
        .expect(
            r#"[...document.querySelectorAll('.group-row')].some(g => g.dataset.errorType === 'AuditError' && g.dataset.handler.endsWith('audit') && g.querySelector('.group-count').textContent === '1')"#,
            "the AuditError group of audit with one failure",
        )
        .await;
    browser.click(".group-row .show-group").await;
    browser
        .expect(
            &format!(
                "{} && !{} && document.querySelector('#group-filter').offsetParent !== null",
                row(&failing),
                row(&first)
            ),
            "the group's events only",
        )
        .await;
    browser.click("#group-filter").await;

    // 3. Filters hide what they should: status, type, search.
    browser.expect(&row(&first), "every event again").await;
    browser
        .client
        .find(fantoccini::Locator::Css("#f-status"))
        .await
        .expect("status filter")
        .select_by_value("failed")
        .await
        .expect("select failed");
    browser
        .expect(
            &format!("{} && !{}", row(&failing), row(&first)),
            "only the failed tree",
        )
        .await;
    browser
        .client
        .find(fantoccini::Locator::Css("#f-status"))
        .await
        .expect("status filter")
        .select_by_value("")
        .await
        .expect("select any");
    browser
        .client
        .find(fantoccini::Locator::Css("#f-type"))
        .await
        .expect("type filter")
        .select_by_value("ChargeCard")
        .await
        .expect("select ChargeCard");
    browser
        .expect(
            r#"[...document.querySelectorAll('.row:not(.context)')].every(r => r.dataset.type === 'ChargeCard') && document.querySelectorAll('.row:not(.context)').length === 2"#,
            "only the two ChargeCard events (their parents dimmed for context)",
        )
        .await;
    browser
        .client
        .find(fantoccini::Locator::Css("#f-type"))
        .await
        .expect("type filter")
        .select_by_value("")
        .await
        .expect("select all");
    // Order 2's customer is Linus: a payload search.
    browser
        .client
        .find(fantoccini::Locator::Css("#search"))
        .await
        .expect("search box")
        .send_keys("linus")
        .await
        .expect("type");
    browser
        .expect(
            &format!("{} && !{}", row(&failing), row(&first)),
            "only the order whose payload says Linus",
        )
        .await;
    browser
        .client
        .find(fantoccini::Locator::Css("#search"))
        .await
        .expect("search box")
        .clear()
        .await
        .expect("clear");
    browser
        .client
        .execute(
            "document.querySelector('#search').dispatchEvent(new Event('input'))",
            vec![],
        )
        .await
        .expect("input event");
    browser
        .expect(&row(&first), "everything after the search is cleared")
        .await;

    // 4. Pause holds updates; resume shows them.
    browser.click("#pause").await;
    let held = demo.order(3, 2_000, false);
    support::event(&monitor, &held, |_| true).await;
    browser
        .expect(
            "document.querySelector('#conn').textContent.includes('waiting') && !document.querySelector('#conn').textContent.startsWith('paused (0 ')",
            "updates held while paused",
        )
        .await;
    assert_eq!(
        browser.eval(&format!("return !!{}", row(&held))).await,
        false,
        "paused: not shown"
    );
    browser.click("#pause").await;
    browser
        .expect(&row(&held), "the held event after resume")
        .await;

    // 5. Replay re-dispatches: a fresh copy goes to the inbox, the demo dispatches it, and it
    //    comes back through the log as a new event linked to its original.
    browser
        .client
        .goto(&format!("{}#event={failing}", monitor.url()))
        .await
        .expect("deep link");
    browser
        .expect(
            &format!("document.querySelector('#detail').dataset.eventId === '{failing}'"),
            "the deep-linked event's detail",
        )
        .await;
    browser.click("#replay-event").await;
    browser
        .expect(
            "getComputedStyle(document.querySelector('#confirm')).display !== 'none'",
            "the confirmation",
        )
        .await;
    browser.click("#confirm-yes").await;
    let replayed = demo.expect("replayed ");
    browser.expect(&row(&replayed), "the replayed event").await;
    let copy = support::event(&monitor, &replayed, |d| {
        d.summary.status == Status::Completed
    })
    .await;
    assert_eq!(copy.summary.replay_of.as_deref(), Some(failing.as_str()));
    assert_eq!(copy.summary.event_type, "OrderPlaced");
    assert!(
        copy.results
            .iter()
            .any(|r| r.error_type.as_deref() == Some("AuditError")),
        "the handlers ran again on the copy"
    );
    // The group now counts the copy's failure too; replaying the whole group asks first.
    browser.click("#tab-failures").await;
    browser
        .expect(
            r#"[...document.querySelectorAll('.group-row')].some(g => g.dataset.errorType === 'AuditError' && g.querySelector('.group-count').textContent === '2')"#,
            "two failures in the group",
        )
        .await;
    browser.click(".group-row .replay-group").await;
    browser.click("#confirm-yes").await;
    let again = [demo.expect("replayed "), demo.expect("replayed ")];
    for id in &again {
        support::event(&monitor, id, |d| d.summary.replay_of.is_some()).await;
    }

    browser.click("#tab-stats").await;
    browser
        .expect(
            r#"[...document.querySelectorAll('#stats-type tbody tr')].some(r => r.dataset.key === 'OrderPlaced')"#,
            "the statistics",
        )
        .await;

    // 6. A busier shop, for the screenshots of the main views.
    let mut orders = Vec::new();
    for n in 10..34u64 {
        orders.push(demo.order(n, 1_000 + n * 7_919 % 150_000, n % 6 == 0));
    }
    for id in &orders {
        support::event(&monitor, id, |d| d.summary.status == Status::Completed).await;
    }
    browser.click("#tab-events").await;
    browser
        .eval("document.querySelector('#toast').classList.add('hidden'); return 0")
        .await;
    let shown = &orders[20]; // order 30: its audit fails (and it is near the top)
    browser.expect(&row(shown), "the last orders").await;
    browser
        .click(&format!(r#".row[data-event-id="{shown}"]"#))
        .await;
    browser
        .expect(
            r#"[...document.querySelectorAll('#handlers .handler-row')].some(r => r.dataset.status === 'error')"#,
            "the failed handler's row",
        )
        .await;
    // Order 33's card is declined (over 1 000.00), order 31's is not: the tree with a failure
    // below its root is marked on the root's row.
    browser
        .expect(
            &format!(
                r#"{}.querySelector('.below') && !{}.querySelector('.below')"#,
                row(&orders[23]),
                row(&orders[21])
            ),
            "the mark on a tree with a failure below its root",
        )
        .await;
    browser.screenshot("events.png").await;
    browser.click("#tab-failures").await;
    browser
        .expect(
            "document.querySelectorAll('.group-row').length === 2",
            "two failure groups (AuditError, CardDeclined)",
        )
        .await;
    browser.screenshot("failures.png").await;
    browser.click("#tab-stats").await;
    browser
        .expect(
            r#"document.querySelector('#stats-type tbody tr') && document.querySelector('#totals').textContent.includes('failed')"#,
            "the statistics",
        )
        .await;
    browser.screenshot("stats.png").await;
    browser.close().await;
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_events_stay_in_a_virtualised_list() {
    const N: usize = 100_000;
    let Some((driver, chromium)) = browser_binaries() else {
        return;
    };
    // 20 000 trees of 5 events.
    let events = (0..N).map(|i| {
        let root = i - i % 5;
        let id = |n: usize| format!("0190a000-0000-7000-8000-{n:012x}");
        serde_json::json!({
            "event_id": id(i),
            "event_type": if i == root { "Batch" } else { "Item" },
            "event_parent_id": if i == root { serde_json::Value::Null } else { id(root).into() },
            "event_path": [format!("Load#{:04x}", i % 3)],
            "event_status": "completed",
            "event_created_at": format!("2026-01-01T00:00:{:02}.{:09}Z", (i / 10_000) % 60, i % 1_000_000_000),
            "event_completed_at": format!("2026-01-01T00:00:{:02}.{:09}Z", (i / 10_000) % 60, i % 1_000_000_000 + 500),
            "n": i,
        })
    });
    let monitor = Monitor::builder()
        .source(StreamSource::new(
            "load",
            futures_util::stream::iter(events),
        ))
        .max_events(N)
        .bind(([127, 0, 0, 1], 0).into())
        .start()
        .await
        .expect("the monitor starts");
    let last = format!("0190a000-0000-7000-8000-{:012x}", N - 1);
    // Loading is setup, not what is tested: on a busy machine it takes a while.
    tokio::time::timeout(HEAVY, monitor.wait_for_event(&last, |_| true))
        .await
        .expect("the 100 000 events loaded");
    assert_eq!(monitor.events_in_memory(), N);

    let browser = Browser::start(&driver, &chromium).await;
    let opened = Instant::now();
    browser
        .client
        .goto(&monitor.url())
        .await
        .expect("open the page");
    assert!(
        browser
            .until(
                "document.querySelector('#shown').textContent === '100000 events'",
                HEAVY,
            )
            .await,
        "the page never showed all 100 000 events"
    );
    eprintln!("100 000 events loaded and drawn in {:?}", opened.elapsed());
    let rows = browser
        .eval("return document.querySelectorAll('.row').length")
        .await;
    let rows = rows.as_u64().expect("a count");
    assert!(
        rows > 10 && rows < 200,
        "only the rows on screen are in the page: {rows}"
    );
    // Scrolled to the end, the oldest tree is drawn.
    browser
        .eval("const l = document.querySelector('#list'); l.scrollTop = l.scrollHeight; return 0")
        .await;
    browser
        .expect(
            r#"document.querySelector('.row[data-event-id="0190a000-0000-7000-8000-000000000000"]')"#,
            "the oldest tree at the bottom",
        )
        .await;
    // A filter over all of them.
    browser
        .client
        .find(fantoccini::Locator::Css("#f-type"))
        .await
        .expect("type filter")
        .select_by_value("Batch")
        .await
        .expect("select Batch");
    browser
        .expect(
            "document.querySelector('#shown').textContent === '20000 of 100000 events match'",
            "the filtered count",
        )
        .await;
    browser.close().await;
    monitor.shutdown().await;
}

/// A durable Redis bridge's dead letter on the page: the "Dead letters" tab lists it (group,
/// event, the error) and replays it after a confirmation — the consumer, healed since, gets it
/// again and handles it.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_lists_dead_letters_and_replays_them() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use bubus::bridge::Bridge;
    use bubus::{AnyEvent, DynEvent, EventHandle};
    use bubus_monitor::{RedisDeadLetters, TransportSource};
    use bubus_redis::RedisTransport;

    let Some((driver, chromium)) = browser_binaries() else {
        return;
    };
    let url = format!(
        "redis://127.0.0.1:6379/0/monitor_page_{}",
        uuid::Uuid::new_v4().simple()
    );
    let transport = |group: &str| {
        RedisTransport::builder(&url)
            .expect("url")
            .streams()
            .group(group)
            .from_now()
            .build()
            .expect("transport")
    };
    // The consumer: its refund handler fails until healed; one failure and it is dead.
    let healed = Arc::new(AtomicBool::new(false));
    let consumer = Bridge::builder(transport("billing"))
        .max_deliveries(1)
        .build();
    let h = Arc::clone(&healed);
    consumer.on("RefundRequested", move |_e: AnyEvent| {
        if h.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(std::io::Error::other("the ledger is locked"))
        }
    });
    consumer.start().await.expect("the consumer starts");
    let monitor = Monitor::builder()
        .source(TransportSource::new(transport("bubus-monitor")))
        .dead_letters(RedisDeadLetters::new(&url).expect("url"))
        .bind(([127, 0, 0, 1], 0).into())
        .start()
        .await
        .expect("the monitor starts");
    support::ready(&monitor).await;

    let sender = Bridge::new(transport("senders"));
    let refund = EventHandle::new(
        DynEvent::new(
            "RefundRequested",
            serde_json::json!({"order_id": 4, "cents": 1_250}),
        )
        .expect("event"),
    )
    .to_any();
    let id = refund.event_id().to_string();
    sender.send(&refund).await.expect("send");
    consumer.wait_metrics(|m| m.dead_lettered == 1).await;
    support::event(&monitor, &id, |_| true).await;

    let browser = Browser::start(&driver, &chromium).await;
    browser
        .client
        .goto(&monitor.url())
        .await
        .expect("open the page");
    browser
        .expect(
            "getComputedStyle(document.querySelector('#tab-dead')).display !== 'none'",
            "the dead letters tab",
        )
        .await;
    browser.click("#tab-dead").await;
    let dead_row = format!(r#"document.querySelector('.dead-row[data-event-id="{id}"]')"#);
    browser
        .expect(
            &format!(
                "{dead_row} && {dead_row}.textContent.includes('billing') && {dead_row}.textContent.includes('the ledger is locked') && {dead_row}.textContent.includes('RefundRequested')"
            ),
            "the dead letter with its group and error",
        )
        .await;
    browser
        .expect(
            "document.querySelector('#dead-count').textContent === '1'",
            "the count on the tab",
        )
        .await;
    browser
        .click(&format!(r#".dead-row[data-event-id="{id}"] .show-dead"#))
        .await;
    browser
        .expect(
            "document.querySelector('.dead-json pre') && JSON.parse(document.querySelector('.dead-json pre').textContent).cents === 1250",
            "the dead letter's JSON",
        )
        .await;
    browser.screenshot("dead-letters.png").await;

    // Replay asks first; cancelling replays nothing.
    healed.store(true, Ordering::SeqCst);
    browser
        .click(&format!(r#".dead-row[data-event-id="{id}"] .replay-dead"#))
        .await;
    browser
        .expect(
            "getComputedStyle(document.querySelector('#confirm')).display !== 'none' && document.querySelector('#confirm-text').textContent.includes('RefundRequested')",
            "the confirmation",
        )
        .await;
    browser.click("#confirm-no").await;
    assert_eq!(consumer.metrics().completed, 0, "cancelled: not replayed");
    browser
        .click(&format!(r#".dead-row[data-event-id="{id}"] .replay-dead"#))
        .await;
    browser.click("#confirm-yes").await;
    // The consumer gets it again and, healed, handles it.
    consumer.wait_metrics(|m| m.completed == 1).await;
    browser
        .expect(
            &format!(
                "!{dead_row} && document.querySelector('.no-dead') && document.querySelector('#toast').textContent.includes('Replayed 1')"
            ),
            "no dead letter left",
        )
        .await;
    browser.close().await;
    monitor.shutdown().await;
    sender.close().await.expect("close");
    consumer.close().await.expect("close");
}
