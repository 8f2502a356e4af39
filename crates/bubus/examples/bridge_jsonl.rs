//! Two processes, one JSONL file: a listener and a sender.
//!
//! ```text
//! cargo run --example bridge_jsonl -- listen            # terminal 1
//! cargo run --example bridge_jsonl -- send 5            # terminal 2
//! ```
//!
//! The listener keeps a cursor file beside the log, so stop it (Ctrl-C), send again, and start it
//! again: it picks up exactly the greetings it missed. Both take `--path FILE` (default: the
//! system temp directory's `bubus-bridge-example.jsonl`). The same file works with Python
//! abxbus's `JSONLEventBridge(path)` on either side.

use std::path::PathBuf;
use std::time::Duration;

use bubus::bridge::{Bridge, JsonlTransport};
use bubus::{Event, EventBus, EventHandle};
use serde::{Deserialize, Serialize};

/// A greeting; the listener's handler answers it.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct Greeting {
    n: u64,
    text: String,
}

/// Tells the listener to stop.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Goodbye {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.iter().position(|a| a == "--path") {
        Some(i) if i + 1 < args.len() => {
            let p = PathBuf::from(args.remove(i + 1));
            args.remove(i);
            p
        }
        _ => std::env::temp_dir().join("bubus-bridge-example.jsonl"),
    };
    match args.first().map(String::as_str) {
        Some("listen") => listen(path).await,
        Some("send") => {
            let count = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(3);
            send(path, count).await
        }
        _ => {
            eprintln!("usage: bridge_jsonl listen|send [COUNT] [--path FILE]");
            std::process::exit(2);
        }
    }
}

async fn listen(path: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new("Listener");
    bus.on(|greeting: EventHandle<Greeting>| {
        println!(
            "got #{} {:?} (id {}, path {:?})",
            greeting.n,
            greeting.text,
            greeting.event_id(),
            greeting.event_path()
        );
        format!("hello back to #{}", greeting.n)
    });
    let goodbye = std::future::IntoFuture::into_future(bus.expect::<Goodbye>());

    let cursor = path.with_extension("cursor");
    let bridge = Bridge::new(
        JsonlTransport::new(&path)
            .poll_interval(Duration::from_millis(20))
            .cursor_file(&cursor),
    );
    bridge.attach(&bus);
    bridge.start().await?;
    println!(
        "listening on {} (cursor {})",
        path.display(),
        cursor.display()
    );

    goodbye.await?;
    bus.wait_until_idle(None).await;
    bridge.close().await?;
    let m = bridge.metrics();
    println!(
        "bye: {} received, {} handled, {} duplicates, {} bad lines skipped",
        m.received, m.completed, m.duplicates, m.invalid
    );
    Ok(())
}

async fn send(path: PathBuf, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new("Sender");
    let bridge = Bridge::new(JsonlTransport::new(&path));
    bridge.attach(&bus);
    for n in 1..=count {
        let greeting = bus.dispatch(Greeting {
            n,
            text: format!("hello #{n}"),
        })?;
        greeting.clone().await?; // sent: the bridge's handler appended the line
        println!("sent #{n} (id {})", greeting.event_id());
    }
    bus.dispatch(Goodbye {})?.await?;
    bridge.close().await?;
    Ok(())
}
