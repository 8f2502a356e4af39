//! `bubus dead-letters list|replay URL`: the dead letters a durable bridge keeps, listed and put
//! back for delivery. The engine is chosen by the URL's scheme; each engine is one function here.

use std::io::Write;

use clap::{Args, Subcommand};

use crate::output::Failure;

/// List or replay the dead letters of a durable bridge: events its consumers gave up on after
/// too many failed deliveries (a handler error, an undecodable event, a consumer that died on it).
///
/// URL names the bridge as its transport does: `postgresql://user@host:5432/db[/events_table]`
/// (the durable events table, default `bubus_events`).
#[derive(Debug, Args)]
pub(crate) struct DeadLettersArgs {
    #[command(subcommand)]
    pub(crate) action: Action,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// One line per dead letter, oldest first: when, the consumer group, the event, how many
    /// deliveries failed and the last error. --json prints each as a JSON object.
    List {
        /// The bridge's URL.
        #[arg(value_name = "URL")]
        url: String,
        /// Only this consumer group's.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// One JSON object per line (with the event itself under "event").
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back for delivery, their delivery count from zero: the one with
    /// EVENT_ID, or all of them (of --group, or of every group).
    Replay {
        /// The bridge's URL.
        #[arg(value_name = "URL")]
        url: String,
        /// The event to replay (default: all).
        #[arg(value_name = "EVENT_ID")]
        event_id: Option<String>,
        /// Only this consumer group's.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
    },
}

pub(crate) async fn run(args: &DeadLettersArgs) -> Result<(), Failure> {
    let url = match &args.action {
        Action::List { url, .. } | Action::Replay { url, .. } => url,
    };
    if url.starts_with("postgresql://") || url.starts_with("postgres://") {
        postgres(&args.action).await
    } else {
        Err(Failure::new(format!(
            "dead-letters: no durable bridge for {url:?} (postgresql://…)"
        )))
    }
}

async fn postgres(action: &Action) -> Result<(), Failure> {
    let failed = |e: bubus_postgres::PgError| Failure::new(format!("dead-letters: {e}"));
    match action {
        Action::List { url, group, json } => {
            let dead = bubus_postgres::list_dead_letters(url, group.as_deref())
                .await
                .map_err(failed)?;
            let mut out = std::io::stdout().lock();
            for d in dead {
                if *json {
                    let event = serde_json::from_str::<serde_json::Value>(&d.body)
                        .unwrap_or(serde_json::Value::String(d.body.clone()));
                    let line = serde_json::json!({
                        "group": d.group,
                        "event_id": d.event_id,
                        "event_type": d.event_type,
                        "attempts": d.attempts,
                        "error": d.error,
                        "dead_at": d.dead_at,
                        "event": event,
                    });
                    writeln!(out, "{line}").map_err(|e| Failure::stdout(&e))?;
                } else {
                    writeln!(
                        out,
                        "{} {} {} {} attempts={} {}",
                        d.dead_at,
                        d.group,
                        d.event_type,
                        d.event_id,
                        d.attempts,
                        d.error.as_deref().unwrap_or("")
                    )
                    .map_err(|e| Failure::stdout(&e))?;
                }
            }
            out.flush().map_err(|e| Failure::stdout(&e))?;
            Ok(())
        }
        Action::Replay {
            url,
            event_id,
            group,
        } => {
            let n = bubus_postgres::replay_dead_letters(url, group.as_deref(), event_id.as_deref())
                .await
                .map_err(failed)?;
            eprintln!(
                "replayed {n} dead {}",
                if n == 1 { "letter" } else { "letters" }
            );
            Ok(())
        }
    }
}
