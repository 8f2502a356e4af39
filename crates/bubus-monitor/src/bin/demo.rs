//! `bubus-monitor-demo LOG [--inbox FILE] [--rate N] [--stdin] [--ship-over FILE]`: a small shop
//! whose buses write a log for `bubus monitor LOG` to watch.
//! `bubus-monitor-demo LOG --warehouse FILE`: the warehouse alone, in a process of its own.
//!
//! Two buses, `Shop` and `Warehouse`, share the log. Each `OrderPlaced` on `Shop` dispatches a
//! `ChargeCard` child (awaited) and a `ShipOrder` child that `Shop` forwards to `Warehouse`;
//! `audit` fails with `AuditError` for orders marked `fail` (every 7th in `--rate` mode), and
//! `ChargeCard` fails with `CardDeclined` over 1 000.00.
//!
//! * `--rate N`: places N orders a second (default 2 when neither `--rate` nor `--stdin`).
//! * `--stdin`: places one order per line read, `order ID CENTS [fail]`; prints
//!   `dispatched EVENT_ID` once the order is dispatched (and logged).
//! * `--inbox FILE`: follows FILE (JSONL events, as `bubus monitor --replay-to FILE` appends
//!   them) and dispatches each event on `Shop`; prints `replayed EVENT_ID`.
//! * `--ship-over FILE`: `ShipOrder` goes over a JSONL bridge (FILE) instead of to the local
//!   `Warehouse` bus — to a `--warehouse FILE` process, so one tree spans two processes.
//! * `--warehouse FILE`: no shop: a `Warehouse` bus (its log at LOG) that takes `ShipOrder` from
//!   the JSONL bridge FILE. Prints `listening` once it does, `shipped EVENT_ID` per order.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bubus::bridge::{Bridge, JsonlTransport};
use bubus::wal::{WalFollower, WalMiddleware};
use bubus::{AnyEvent, Event, EventBus, EventHandle, HandlerError};
use serde::{Deserialize, Serialize};

/// An order was placed.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
struct OrderPlaced {
    order_id: u64,
    cents: u64,
    customer: String,
    #[serde(default)]
    fail: bool,
}

/// Charge the order's card.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct ChargeCard {
    order_id: u64,
    cents: u64,
}

/// Ship the order (handled on the Warehouse bus).
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct ShipOrder {
    order_id: u64,
}

async fn place_order(order: EventHandle<OrderPlaced>) -> Result<u64, bubus::Error> {
    let Some(bus) = bubus::bus::current_bus() else {
        return Ok(0);
    };
    bus.dispatch(ChargeCard {
        order_id: order.order_id,
        cents: order.cents,
    })?
    .await?;
    let _ship = bus.dispatch(ShipOrder {
        order_id: order.order_id,
    })?;
    Ok(order.cents)
}

fn charge_card(charge: EventHandle<ChargeCard>) -> Result<String, HandlerError> {
    if charge.cents > 100_000 {
        return Err(HandlerError::new(
            "CardDeclined",
            "amount over the card's limit",
        ));
    }
    Ok(format!("charged {} cents", charge.cents))
}

/// Registered by type name: it returns nothing, where `OrderPlaced`'s handlers return a number.
fn audit(order: AnyEvent) -> Result<(), HandlerError> {
    let payload = order.payload_json()?;
    if payload.get("fail").and_then(serde_json::Value::as_bool) == Some(true) {
        return Err(HandlerError::new("AuditError", "disk full"));
    }
    Ok(())
}

async fn ship(order: EventHandle<ShipOrder>) -> String {
    // Some latency to make the percentiles worth a look.
    let ms = 2 + order.order_id % 7 * 3;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("parcel {}", 9_000 + order.order_id)
}

/// `--warehouse FILE`: takes `ShipOrder` from the bridge until killed.
async fn run_warehouse(warehouse: &EventBus, file: &std::path::Path) -> std::process::ExitCode {
    let bridge = Bridge::new(JsonlTransport::new(file).poll_interval(Duration::from_millis(50)));
    bridge.on("*", warehouse.forwarder());
    warehouse.on_pattern("ShipOrder", |order: AnyEvent| {
        say(&format!("shipped {}", order.event_id()));
    });
    if let Err(e) = bridge.start().await {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(2);
    }
    say("listening");
    std::future::pending::<()>().await;
    std::process::ExitCode::SUCCESS
}

struct Args {
    log: PathBuf,
    inbox: Option<PathBuf>,
    rate: Option<f64>,
    stdin: bool,
    ship_over: Option<PathBuf>,
    warehouse: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut log = None;
    let mut inbox = None;
    let mut rate = None;
    let mut stdin = false;
    let mut ship_over = None;
    let mut warehouse = None;
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--inbox") => inbox = Some(PathBuf::from(it.next().ok_or("--inbox FILE")?)),
            Some("--rate") => {
                let n = it.next().and_then(|n| n.to_str()?.parse::<f64>().ok());
                rate = Some(
                    n.filter(|n| *n > 0.0)
                        .ok_or("--rate N (events per second)")?,
                );
            }
            Some("--stdin") => stdin = true,
            Some("--ship-over") => {
                ship_over = Some(PathBuf::from(it.next().ok_or("--ship-over FILE")?));
            }
            Some("--warehouse") => {
                warehouse = Some(PathBuf::from(it.next().ok_or("--warehouse FILE")?));
            }
            Some("-h" | "--help") => return Err(String::new()),
            _ if log.is_none() => log = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(Args {
        log: log.ok_or("the log's path is missing")?,
        inbox,
        rate: if stdin { rate } else { rate.or(Some(2.0)) },
        stdin,
        ship_over,
        warehouse,
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn place(shop: &EventBus, order_id: u64, cents: u64, fail: bool) -> Option<AnyEvent> {
    let customers = ["Ada", "Grace", "Linus", "Barbara", "Ken"];
    let order = OrderPlaced {
        order_id,
        cents,
        customer: customers[(order_id % 5) as usize].to_owned(),
        fail,
    };
    match shop.dispatch(order) {
        Ok(handle) => Some(handle.to_any()),
        Err(e) => {
            eprintln!("dispatch failed: {e}");
            None
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("error: {why}");
            }
            eprintln!(
                "usage: bubus-monitor-demo LOG [--inbox FILE] [--rate N] [--stdin] [--ship-over FILE]"
            );
            eprintln!("       bubus-monitor-demo LOG --warehouse FILE");
            return std::process::ExitCode::from(2);
        }
    };
    let log = match WalMiddleware::open(&args.log) {
        Ok(log) => Arc::new(log),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let warehouse = EventBus::builder("Warehouse")
        .middleware(log.clone())
        .build();
    warehouse.on(ship);
    if let Some(file) = &args.warehouse {
        return run_warehouse(&warehouse, file).await;
    }
    let shop = EventBus::builder("Shop").middleware(log.clone()).build();
    shop.on(place_order);
    shop.on(charge_card);
    shop.on_pattern("OrderPlaced", audit);
    // Kept alive for the whole run.
    let _bridge = match &args.ship_over {
        Some(file) => {
            let bridge = Bridge::new(JsonlTransport::new(file));
            shop.on_pattern("ShipOrder", bridge.sender());
            Some(bridge)
        }
        None => {
            shop.on_pattern("ShipOrder", warehouse.forwarder());
            None
        }
    };

    if let Some(inbox) = args.inbox.clone() {
        let shop = shop.clone();
        tokio::spawn(async move {
            if !inbox.exists() {
                let _ = std::fs::File::create(&inbox);
            }
            let Ok(follower) = WalFollower::open(&inbox) else {
                eprintln!("error: cannot read {}", inbox.display());
                return;
            };
            let mut follower = follower.poll_interval(Duration::from_millis(50));
            loop {
                match follower.next_record().await {
                    Ok(record) => {
                        let id = record.event.event_id();
                        match bubus::wal::replay(std::iter::once(Ok(record)), &shop).await {
                            Ok(_) => say(&format!("replayed {id}")),
                            Err(e) => eprintln!("replay failed: {e}"),
                        }
                    }
                    Err(e) => eprintln!("{}: {e}", inbox.display()),
                }
            }
        });
    }

    if args.stdin {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut rate_tick = args
            .rate
            .map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r)));
        let mut next_id = 1_000_000;
        loop {
            tokio::select! {
                line = rx.recv() => {
                    let Some(line) = line else { break };
                    let words: Vec<&str> = line.split_whitespace().collect();
                    match words.as_slice() {
                        ["order", id, cents, rest @ ..] => {
                            let (Ok(id), Ok(cents)) = (id.parse(), cents.parse()) else {
                                eprintln!("bad order line: {line}");
                                continue;
                            };
                            if let Some(event) = place(&shop, id, cents, rest.contains(&"fail")) {
                                say(&format!("dispatched {}", event.event_id()));
                            }
                        }
                        [] => {}
                        _ => eprintln!("unknown command: {line}"),
                    }
                }
                () = async {
                    match &mut rate_tick {
                        Some(tick) => { tick.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    next_id += 1;
                    place(&shop, next_id, 500 + next_id % 9 * 1_250, next_id % 7 == 0);
                }
            }
        }
        // Stdin closed: let what runs finish.
        let _ = shop.wait_until_idle(Some(Duration::from_secs(5))).await;
        return std::process::ExitCode::SUCCESS;
    }

    let rate = args.rate.unwrap_or(2.0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut order_id = 0u64;
    say(&format!(
        "placing {rate} orders a second; their log: {} (Ctrl-C to stop)",
        args.log.display()
    ));
    loop {
        tick.tick().await;
        order_id += 1;
        let cents = 500 + order_id % 9 * 12_500;
        place(&shop, order_id, cents, order_id % 7 == 0);
    }
}
