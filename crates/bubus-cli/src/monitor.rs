//! `bubus monitor`: the live web monitor (crate `bubus-monitor`) over logs and mirrors.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use bubus::bridge::{JsonlTransport, Transport, UnixSocketTransport};
use bubus_http::{HttpTransport, ListenerOptions};
use bubus_monitor::{
    JsonlTarget, Monitor, MonitorBuilder, NatsDeadLetters, PgDeadLetters, RedisDeadLetters,
    SqliteSource, TransportSource, TransportTarget, WalSource,
};
use bubus_nats::NatsTransport;
use bubus_postgres::{DurableOptions, GroupStart, PgTransport};
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
    /// A durable bridge's URL (`+durable` taken off the scheme): Redis Streams, JetStream, the
    /// PostgreSQL outbox, read through a consumer group of the monitor's own.
    Durable(String),
    /// A Unix socket the monitor binds and reads, the family's socket bridge.
    Socket(String),
    /// An HTTP listener the monitor binds: the family's HTTP bridge's receiving side.
    Http {
        addr: SocketAddr,
        path: String,
    },
}

const ENGINES: &[&str] = &["redis", "rediss", "nats", "postgres", "postgresql"];

/// `scheme+durable://…` → `scheme://…` for the engines that have a durable mode.
pub(crate) fn durable_url(arg: &str) -> Option<String> {
    let (scheme, rest) = arg.split_once("://")?;
    let engine = scheme.strip_suffix("+durable")?;
    ENGINES
        .contains(&engine)
        .then(|| format!("{engine}://{rest}"))
}

/// `http://host:port/path` (the family's `listen_on`: port 80 when none is given, the path
/// with its query is the one events are POSTed to).
fn http_listen(arg: &str) -> std::result::Result<(SocketAddr, String), String> {
    let rest = arg.strip_prefix("http://").unwrap_or(arg);
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "{arg}: an HTTP source is http://host:port/path, the address the monitor listens on"
        ));
    }
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_owned()
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&with_port)
        .map_err(|e| format!("{arg}: {e}"))?
        .next()
        .ok_or_else(|| format!("{arg}: the host has no address"))?;
    Ok((addr, path))
}

/// `wal:PATH`, `sqlite:PATH`, `jsonl:PATH` (a JSONL bridge), `unix:PATH` (a socket bridge),
/// `http://host:port/path` (an HTTP bridge), an engine's URL (plain, or `+durable`), or a path
/// whose content (or, for a file not there yet, name) tells: an SQLite database, else a log.
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
    if let Some(path) = arg.strip_prefix("unix:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err("unix: needs the socket's path (unix:/run/app/events.sock)".into());
        }
        return Ok(SourceSpec::Socket(path.to_owned()));
    }
    if arg.starts_with("http://") {
        let (addr, path) = http_listen(arg)?;
        return Ok(SourceSpec::Http { addr, path });
    }
    if let Some(url) = durable_url(arg) {
        return Ok(SourceSpec::Durable(url));
    }
    if let Some((scheme, _)) = arg.split_once("://") {
        if ENGINES.contains(&scheme) {
            return Ok(SourceSpec::Url(arg.to_owned()));
        }
        let tls = if scheme == "https" {
            " (the monitor's HTTP listener has no TLS: give http://host:port/path)"
        } else {
            ""
        };
        return Err(format!(
            "{scheme}:// sources are not built into this command{tls}; give a log (wal:PATH), a \
             history mirror (sqlite:PATH), a JSONL bridge (jsonl:PATH), a socket bridge \
             (unix:PATH), an HTTP bridge (http://host:port/path), or a redis://, nats:// or \
             postgresql:// bridge URL (redis+durable://… and the like for the durable modes), \
             or embed the bubus-monitor crate with a TransportSource for that bridge transport"
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

/// A durable engine read through the consumer group `group` (created with the events
/// published from then on; kept across restarts, so a restarted monitor first shows what was
/// published while it was away), and the engine's dead letters (every group's).
async fn durable(
    url: &str,
    group: &str,
) -> Result<(
    Arc<dyn Transport>,
    Box<dyn FnOnce(MonitorBuilder) -> MonitorBuilder>,
)> {
    let failed = |e: &dyn std::fmt::Display| Failure::new(format!("monitor: {url}: {e}"));
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    Ok(match scheme {
        "redis" | "rediss" => {
            let t = RedisTransport::builder(url)
                .and_then(|b| b.streams().group(group).consumer(group).from_now().build())
                .map_err(|e| failed(&e))?;
            let dead = RedisDeadLetters::from_transport(t.clone());
            (
                Arc::new(t),
                Box::new(move |b: MonitorBuilder| b.dead_letters(dead)),
            )
        }
        "nats" => {
            let (server, subject) = bubus_nats::split_url(url);
            let t = NatsTransport::builder(&server, &subject)
                .jetstream()
                .group(group)
                .from_now()
                .build()
                .await
                .map_err(|e| failed(&e))?;
            let dead = NatsDeadLetters::from_transport(t.clone());
            (
                Arc::new(t),
                Box::new(move |b: MonitorBuilder| b.dead_letters(dead)),
            )
        }
        _ => {
            let t = PgTransport::durable(url, DurableOptions::new(group).start(GroupStart::New))
                .await
                .map_err(|e| failed(&e))?;
            let dead = PgDeadLetters::new(url);
            (
                Arc::new(t),
                Box::new(move |b: MonitorBuilder| b.dead_letters(dead)),
            )
        }
    })
}

/// A `--replay-to` target: a JSONL inbox (a path), or the sending side of a bridge — `jsonl:`,
/// `unix:`, `http(s)://`, an engine's URL (plain or `+durable`).
async fn replay_target(builder: MonitorBuilder, target: &Path) -> Result<MonitorBuilder> {
    let Some(text) = target.to_str() else {
        return Ok(builder.replay_target(JsonlTarget::new(target)));
    };
    let failed = |e: &dyn std::fmt::Display| Failure::new(format!("--replay-to {text}: {e}"));
    if let Some(path) = text.strip_prefix("jsonl:") {
        return Ok(builder.replay_target(TransportTarget::new(JsonlTransport::new(path))));
    }
    if let Some(path) = text.strip_prefix("unix:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        let t = UnixSocketTransport::new(path).map_err(|e| failed(&e))?;
        return Ok(builder.replay_target(TransportTarget::new(t)));
    }
    if text.starts_with("http://") || text.starts_with("https://") {
        let t = HttpTransport::new().send_to(text).map_err(|e| failed(&e))?;
        return Ok(builder.replay_target(TransportTarget::new(t)));
    }
    if let Some(url) = durable_url(text) {
        let t: Arc<dyn Transport> = match url.split_once("://").map_or("", |(s, _)| s) {
            "redis" | "rediss" => Arc::new(RedisTransport::streams(&url).map_err(|e| failed(&e))?),
            "nats" => {
                let (server, subject) = bubus_nats::split_url(&url);
                Arc::new(
                    NatsTransport::jetstream(&server, &subject)
                        .await
                        .map_err(|e| failed(&e))?,
                )
            }
            // A durable PostgreSQL transport is made for a consumer group, which would keep
            // collecting deliveries for ever.
            _ => {
                return Err(failed(
                    &"replaying to a PostgreSQL outbox is not built into this \
                     command (replay its dead letters from the page, or send with \
                     PgTransport::send_event)",
                ));
            }
        };
        return Ok(builder.replay_target(TransportTarget::from_arc(t)));
    }
    if let Some((scheme, _)) = text.split_once("://") {
        if ENGINES.contains(&scheme) {
            return Ok(builder.replay_target(TransportTarget::from_arc(engine(text).await?)));
        }
    }
    Ok(builder.replay_target(JsonlTarget::new(target)))
}

/// An HTTP source's transport, on a socket bound here when it can be, so the address it got
/// (the system's choice for port 0) is known before the monitor starts: the URL senders POST to
/// comes back with it. A bind that fails now (the port taken) is left to the transport, which
/// says why on the page and keeps trying, as for a socket bridge.
fn http_source(
    addr: SocketAddr,
    path: &str,
    diag: &Diagnostics,
) -> (HttpTransport, Option<String>) {
    let options = ListenerOptions::new().bind_addr(addr).path(path);
    match std::net::TcpListener::bind(addr).and_then(|s| Ok((s.local_addr()?, s))) {
        Ok((bound, socket)) => {
            // The bound address in the options too: a listener started again binds it again.
            let options = options.bind_addr(bound);
            let url = format!("http://{bound}{path}");
            (
                HttpTransport::new().listen_on_socket(socket, options),
                Some(url),
            )
        }
        Err(e) => {
            diag.warning(format_args!(
                "http://{addr}{path}: cannot listen yet ({e}); the monitor keeps trying"
            ));
            (HttpTransport::new().listen_on(options), None)
        }
    }
}

pub(crate) async fn run(args: &MonitorArgs, diag: &Diagnostics) -> Result<()> {
    let mut builder = Monitor::builder()
        .bind(SocketAddr::new(args.host, args.port))
        .max_events(args.max_events);
    let mut http_urls = Vec::new();
    for arg in &args.sources {
        builder = match parse_source(arg).map_err(Failure::new)? {
            SourceSpec::Wal(path) => builder.source(WalSource::new(path)),
            SourceSpec::Sqlite(path) => builder.source(SqliteSource::new(path)),
            SourceSpec::JsonlBridge(path) => {
                builder.source(TransportSource::new(JsonlTransport::new(path)))
            }
            SourceSpec::Url(url) => builder.source(TransportSource::from_arc(engine(&url).await?)),
            SourceSpec::Durable(url) => {
                let (transport, dead) = durable(&url, &args.group).await?;
                dead(builder.source(TransportSource::from_arc(transport)))
            }
            SourceSpec::Socket(path) => {
                let t = UnixSocketTransport::new(&path)
                    .map_err(|e| Failure::new(format!("monitor: unix:{path}: {e}")))?;
                builder.source(TransportSource::new(t))
            }
            SourceSpec::Http { addr, path } => {
                let (transport, bound) = http_source(addr, &path, diag);
                http_urls.extend(bound);
                builder.source(TransportSource::new(transport))
            }
        };
    }
    for target in &args.replay_to {
        builder = replay_target(builder, target).await?;
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
        for url in &http_urls {
            let _ = writeln!(out, "bubus monitor: HTTP bridge listening on {url}");
        }
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
        assert_eq!(
            parse_source("redis+durable://127.0.0.1:6379/0/orders"),
            Ok(SourceSpec::Durable(
                "redis://127.0.0.1:6379/0/orders".into()
            ))
        );
        assert_eq!(
            parse_source("postgresql+durable://u@h/db/t"),
            Ok(SourceSpec::Durable("postgresql://u@h/db/t".into()))
        );
        assert!(parse_source("amqp+durable://h").is_err());
        assert_eq!(
            parse_source("unix:///tmp/a.sock"),
            Ok(SourceSpec::Socket("/tmp/a.sock".into()))
        );
        assert_eq!(
            parse_source("unix:/tmp/a.sock"),
            Ok(SourceSpec::Socket("/tmp/a.sock".into()))
        );
        assert!(parse_source("unix:").is_err());
        assert_eq!(
            parse_source("http://127.0.0.1:9000/events?x=1"),
            Ok(SourceSpec::Http {
                addr: ([127, 0, 0, 1], 9000).into(),
                path: "/events?x=1".into()
            })
        );
        assert_eq!(
            parse_source("http://127.0.0.1"),
            Ok(SourceSpec::Http {
                addr: ([127, 0, 0, 1], 80).into(),
                path: "/".into()
            })
        );
        assert!(parse_source("http://u@127.0.0.1:1/").is_err());
        assert!(
            parse_source("https://127.0.0.1:1/")
                .unwrap_err()
                .contains("no TLS")
        );
    }
}
