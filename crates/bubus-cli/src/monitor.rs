//! `bubus monitor`: the live web monitor (crate `bubus-monitor`) over logs and mirrors.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use bubus::bridge::{JsonlTransport, Transport};
use bubus_monitor::{
    JsonlTarget, Monitor, SqliteSource, TransportSource, TransportTarget, WalSource,
};
use bubus_nats::NatsTransport;
use bubus_postgres::PgTransport;
use bubus_redis::RedisTransport;

use crate::cli::MonitorArgs;
use crate::mirror::{has_sqlite_extension, is_sqlite};
use crate::output::{Diagnostics, Failure, Result};
use crate::tail::Interrupt;

/// What a SOURCE argument names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SourceSpec {
    Wal(PathBuf),
    Sqlite(PathBuf),
    /// The JSONL bridge transport on a file: what is sent on it from now on.
    JsonlBridge(PathBuf),
    /// A bridge engine's URL in the family's form, listened to in its plain mode: Redis
    /// pub/sub, core NATS, PostgreSQL `LISTEN`.
    Url(String),
}

/// `wal:PATH`, `sqlite:PATH`, `jsonl:PATH` (a JSONL bridge), or a path whose content (or, for a
/// file not there yet, name) tells: an SQLite database, else a log.
pub(crate) fn parse_source(arg: &str) -> std::result::Result<SourceSpec, String> {
    if let Some(path) = arg.strip_prefix("jsonl:") {
        return Ok(SourceSpec::JsonlBridge(path.into()));
    }
    if let Some(path) = arg.strip_prefix("wal:") {
        return Ok(SourceSpec::Wal(path.into()));
    }
    if let Some(path) = arg.strip_prefix("sqlite:") {
        return Ok(SourceSpec::Sqlite(path.into()));
    }
    if let Some((scheme, _)) = arg.split_once("://") {
        if matches!(
            scheme,
            "redis" | "rediss" | "nats" | "postgres" | "postgresql"
        ) {
            return Ok(SourceSpec::Url(arg.to_owned()));
        }
        return Err(format!(
            "{scheme}:// sources are not built into this command; give a log (wal:PATH), a \
             history mirror (sqlite:PATH), a JSONL bridge (jsonl:PATH) or a redis://, nats:// \
             or postgresql:// bridge URL, or embed the bubus-monitor crate with a \
             TransportSource for that bridge transport"
        ));
    }
    let path = Path::new(arg);
    let sqlite = match is_sqlite(path) {
        Ok(true) => true,
        Ok(false) => false,
        Err(_) => has_sqlite_extension(path),
    };
    Ok(if sqlite {
        SourceSpec::Sqlite(path.into())
    } else {
        SourceSpec::Wal(path.into())
    })
}

/// The plain-mode transport of a bridge engine's URL: what every listener receives (Redis
/// pub/sub, core NATS, PostgreSQL `LISTEN`), so the monitor takes nothing from other consumers.
async fn engine(url: &str) -> Result<Arc<dyn Transport>> {
    let failed = |e: &dyn std::fmt::Display| Failure::new(format!("monitor: {url}: {e}"));
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    Ok(match scheme {
        "redis" | "rediss" => Arc::new(RedisTransport::pubsub(url).map_err(|e| failed(&e))?),
        "nats" => {
            let (server, subject) = bubus_nats::split_url(url);
            Arc::new(
                NatsTransport::core(&server, &subject)
                    .await
                    .map_err(|e| failed(&e))?,
            )
        }
        _ => Arc::new(
            PgTransport::plain(url, None)
                .await
                .map_err(|e| failed(&e))?,
        ),
    })
}

pub(crate) async fn run(args: &MonitorArgs, diag: &Diagnostics) -> Result<()> {
    let mut builder = Monitor::builder()
        .bind(SocketAddr::new(args.host, args.port))
        .max_events(args.max_events);
    for arg in &args.sources {
        builder = match parse_source(arg).map_err(Failure::new)? {
            SourceSpec::Wal(path) => builder.source(WalSource::new(path)),
            SourceSpec::Sqlite(path) => builder.source(SqliteSource::new(path)),
            SourceSpec::JsonlBridge(path) => {
                builder.source(TransportSource::new(JsonlTransport::new(path)))
            }
            SourceSpec::Url(url) => builder.source(TransportSource::from_arc(engine(&url).await?)),
        };
    }
    for target in &args.replay_to {
        builder = match target.to_str().and_then(|t| t.strip_prefix("jsonl:")) {
            Some(path) => builder.replay_target(TransportTarget::new(JsonlTransport::new(path))),
            None => builder.replay_target(JsonlTarget::new(target)),
        };
    }
    if let Some(token) = &args.token {
        builder = builder.token(token.clone());
    }
    let mut interrupt = Interrupt::listen();
    let monitor = builder
        .start()
        .await
        .map_err(|e| Failure::new(e.to_string()))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "bubus monitor: {}", monitor.url());
        let _ = out.flush();
    }
    if !monitor.local_addr().ip().is_loopback() {
        diag.note(format_args!(
            "listening on {}: the page needs the token in the URL above (or \
             `Authorization: Bearer TOKEN`)",
            monitor.local_addr()
        ));
    }
    interrupt.recv().await;
    monitor.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart() {
        assert_eq!(parse_source("wal:x.db"), Ok(SourceSpec::Wal("x.db".into())));
        assert_eq!(
            parse_source("sqlite:x.jsonl"),
            Ok(SourceSpec::Sqlite("x.jsonl".into()))
        );
        assert_eq!(
            parse_source("nope/history.sqlite3"),
            Ok(SourceSpec::Sqlite("nope/history.sqlite3".into()))
        );
        assert_eq!(
            parse_source("nope/app.jsonl"),
            Ok(SourceSpec::Wal("nope/app.jsonl".into()))
        );
        assert_eq!(
            parse_source("jsonl:bridge.jsonl"),
            Ok(SourceSpec::JsonlBridge("bridge.jsonl".into()))
        );
        assert_eq!(
            parse_source("redis://127.0.0.1:6379/0/orders"),
            Ok(SourceSpec::Url("redis://127.0.0.1:6379/0/orders".into()))
        );
        assert!(parse_source("amqp://localhost").is_err());
    }
}
