//! `bubus dead-letters list|replay URL`: the dead letters of a durable bridge (PostgreSQL outbox,
//! Redis Streams, NATS JetStream), listed and put back for delivery. The engine is chosen by the
//! URL's scheme.

use std::io::Write;

use serde_json::json;

use crate::cli::{DeadLettersAction, DeadLettersArgs};
use crate::output::Failure;

/// One dead letter, whatever the engine.
struct Letter {
    id: String,
    event_id: String,
    event_type: String,
    reason: String,
    deliveries: u32,
    group: String,
    text: String,
}

enum Engine {
    Redis(bubus_redis::RedisTransport),
    Nats(bubus_nats::NatsTransport),
}

async fn open(url: &str, stream: Option<&str>) -> Result<Engine, Failure> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let t = bubus_redis::RedisTransport::builder(url)
            .and_then(|b| b.streams().build())
            .map_err(|e| Failure::new(e.to_string()))?;
        return Ok(Engine::Redis(t));
    }
    if url.starts_with("nats://") {
        let (server, subject) = bubus_nats::split_url(url);
        let mut builder = bubus_nats::NatsTransport::builder(&server, &subject).jetstream();
        if let Some(stream) = stream {
            builder = builder.stream(stream);
        }
        let t = builder
            .build()
            .await
            .map_err(|e| Failure::new(e.to_string()))?;
        return Ok(Engine::Nats(t));
    }
    Err(Failure::new(format!(
        "dead letters are kept by the durable PostgreSQL, Redis and NATS bridges: give a \
         postgresql://user@host:port/db[/table], redis://host:port/<db>/<channel> or \
         nats://host:port/<subject> URL, not {url:?}"
    )))
}

async fn list(engine: &Engine, limit: usize) -> Result<Vec<Letter>, Failure> {
    let fail = |e: bubus::bridge::TransportError| Failure::new(e.to_string());
    Ok(match engine {
        Engine::Redis(t) => t
            .dead_letters(limit)
            .await
            .map_err(fail)?
            .into_iter()
            .map(|d| Letter {
                id: d.id,
                event_id: d.event_id,
                event_type: d.event_type,
                reason: d.reason,
                deliveries: d.deliveries,
                group: d.group,
                text: d.text,
            })
            .collect(),
        Engine::Nats(t) => t
            .dead_letters(limit)
            .await
            .map_err(fail)?
            .into_iter()
            .map(|d| Letter {
                id: d.seq.to_string(),
                event_id: d.event_id,
                event_type: d.event_type,
                reason: d.reason,
                deliveries: d.deliveries,
                group: d.group,
                text: d.text,
            })
            .collect(),
    })
}

async fn replay(engine: &Engine, id: Option<&str>) -> Result<usize, Failure> {
    let fail = |e: bubus::bridge::TransportError| Failure::new(e.to_string());
    match (engine, id) {
        (Engine::Redis(t), Some(id)) => {
            Ok(usize::from(t.replay_dead_letter(id).await.map_err(fail)?))
        }
        (Engine::Redis(t), None) => t.replay_dead_letters().await.map_err(fail),
        (Engine::Nats(t), Some(id)) => {
            let seq = id.parse().map_err(|_| {
                Failure::new(format!(
                    "a NATS dead letter id is its sequence number, not {id:?}"
                ))
            })?;
            Ok(usize::from(t.replay_dead_letter(seq).await.map_err(fail)?))
        }
        (Engine::Nats(t), None) => t.replay_dead_letters().await.map_err(fail),
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgresql://") || url.starts_with("postgres://")
}

pub(crate) async fn run(args: &DeadLettersArgs) -> Result<(), Failure> {
    // `bubus monitor`'s durable form names the same bridge.
    let mut action = args.action.clone();
    match &mut action {
        DeadLettersAction::List { url, .. } | DeadLettersAction::Replay { url, .. } => {
            if let Some(plain) = crate::monitor::durable_url(url) {
                *url = plain;
            }
        }
    }
    let args = &DeadLettersArgs { action };
    if let DeadLettersAction::Replay {
        id: None,
        all: false,
        ..
    } = &args.action
    {
        return Err(Failure::new(
            "give the id of a dead letter to replay, or --all",
        ));
    }
    match &args.action {
        DeadLettersAction::List { url, .. } | DeadLettersAction::Replay { url, .. }
            if is_postgres(url) =>
        {
            return postgres(&args.action).await;
        }
        _ => {}
    }
    let mut out = std::io::stdout().lock();
    match &args.action {
        DeadLettersAction::List {
            url,
            limit,
            json,
            stream,
            ..
        } => {
            let engine = open(url, stream.as_deref()).await?;
            for l in list(&engine, *limit).await? {
                let line = if *json {
                    json!({
                        "id": l.id,
                        "event_id": l.event_id,
                        "event_type": l.event_type,
                        "deliveries": l.deliveries,
                        "group": l.group,
                        "reason": l.reason,
                        "event": serde_json::from_str::<serde_json::Value>(&l.text).unwrap_or(serde_json::Value::String(l.text.clone())),
                    })
                    .to_string()
                } else {
                    format!(
                        "{}  {}#{}  deliveries={}  group={}  {}",
                        l.id,
                        if l.event_type.is_empty() {
                            "?"
                        } else {
                            &l.event_type
                        },
                        l.event_id
                            .get(l.event_id.len().saturating_sub(4)..)
                            .unwrap_or(""),
                        l.deliveries,
                        l.group,
                        l.reason
                    )
                };
                writeln!(out, "{line}").map_err(|e| Failure::stdout(&e))?;
            }
        }
        DeadLettersAction::Replay {
            url,
            id,
            all,
            stream,
            ..
        } => {
            let engine = open(url, stream.as_deref()).await?;
            let n = replay(&engine, if *all { None } else { id.as_deref() }).await?;
            if id.is_some() && !*all && n == 0 {
                return Err(Failure::new(format!(
                    "no dead letter {:?}",
                    id.as_deref().unwrap_or("")
                )));
            }
            writeln!(out, "replayed {n}").map_err(|e| Failure::stdout(&e))?;
        }
    }
    Ok(())
}

async fn postgres(action: &DeadLettersAction) -> Result<(), Failure> {
    let failed = |e: bubus_postgres::PgError| Failure::new(format!("dead-letters: {e}"));
    match action {
        DeadLettersAction::List {
            url, group, json, ..
        } => {
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
        DeadLettersAction::Replay { url, id, group, .. } => {
            let n = bubus_postgres::replay_dead_letters(url, group.as_deref(), id.as_deref())
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
