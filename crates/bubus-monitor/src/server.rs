//! The HTTP side: the page, its JSON API, the live stream (SSE), `/metrics`, and the access check.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Shared;
use crate::replay::fresh_copy;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON: &[u8] = include_bytes!("../assets/favicon.svg");

/// Events per SSE message while a page catches up.
const CHUNK: usize = 5_000;
/// How long changes are gathered before they are sent: many changes, one message.
const BATCH: Duration = Duration::from_millis(50);
/// How often the statistics are sent.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// The most events one replay request may name.
const MAX_REPLAY: usize = 1_000;
/// The cookie that carries the access token once a page was opened with `?token=`.
const COOKIE: &str = "bubus_monitor_token";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(app_js))
        .route("/assets/app.css", get(app_css))
        .route("/favicon.svg", get(favicon))
        .route("/api/info", get(info))
        .route("/api/stream", get(stream))
        .route("/api/events/{id}", get(detail))
        .route("/api/search", get(search))
        .route("/api/failures/events", get(group_events))
        .route("/api/stats", get(stats))
        .route("/api/replay", post(replay))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/dead-letters/replay", post(replay_dead_letters))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn eq_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 without Host: only a local client sends that to a loopback address.
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_owned(),
    )
        .into_response()
}

/// The access check in front of every route.
///
/// * With a token (required when bound to a non-loopback address): the request must carry it,
///   as `Authorization: Bearer TOKEN`, the cookie a page opened with `?token=TOKEN` gets, or
///   `?token=TOKEN` itself.
/// * Without one (loopback only): the `Host` must name a loopback address, so a web page
///   elsewhere cannot reach the monitor through a DNS name rebound to 127.0.0.1.
/// * A request that changes something (POST) must come from the monitor's own page: an
///   `Origin`, when sent, must be the host the request was made to.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let mut set_cookie = None;
    match &shared.token {
        Some(token) => {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let from_query = query_token(request.uri().query());
            let ok = |t: Option<&str>| {
                t.is_some_and(|t| eq_constant_time(t.as_bytes(), token.as_bytes()))
            };
            if ok(from_query) {
                set_cookie = Some(format!(
                    "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                ));
            } else if !ok(bearer) && !ok(cookie_token(headers)) {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "this monitor needs its access token: open the URL it printed (…/?token=…), \
                     or send `Authorization: Bearer TOKEN`\n",
                );
            }
        }
        None => {
            if !host_is_loopback(headers) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "this monitor answers only requests made to a loopback address\n",
                );
            }
        }
    }
    if request.method() == Method::POST {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        if let (Some(origin), Some(host)) = (origin, host) {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if origin_host != host {
                return refuse(StatusCode::FORBIDDEN, "cross-origin requests are refused\n");
            }
        }
    }
    let mut response = next.run(request).await;
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(INDEX_HTML),
    )
        .into_response()
}

async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

async fn favicon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], FAVICON).into_response()
}

async fn info(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let sources: Vec<_> = shared.sources.iter().map(|s| s.lock().clone()).collect();
    let targets: Vec<_> = shared.targets.iter().map(|t| t.name()).collect();
    let dead: Vec<_> = shared.dead.iter().map(|d| d.name()).collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "sources": sources,
        "replay_targets": targets,
        "dead_letter_stores": dead,
        "max_events": shared.max_events,
    }))
}

/// The live stream: every change as it happens (batched over 50 ms), the statistics every
/// second. The first messages hold everything in memory; a page that reconnects (EventSource
/// does so by itself) starts over from there.
async fn stream(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(4);
    let mut changed = shared.notify.subscribe();
    tokio::spawn(async move {
        let mut seq = 0u64;
        let mut first = true;
        let mut stats_at = tokio::time::Instant::now();
        let send_stats = |shared: &Shared| {
            let stats = shared.model.lock().stats_snapshot(now_ms());
            let sources: Vec<_> = shared.sources.iter().map(|s| s.lock().clone()).collect();
            SseEvent::default()
                .event("stats")
                .json_data(json!({"stats": stats, "sources": sources}))
                .ok()
        };
        loop {
            let mut changes = shared.model.lock().changes_since(seq, CHUNK);
            if first {
                changes.reset = true;
                first = false;
            }
            let behind = changes.seq != shared.model.lock().seq();
            if changes.reset || !changes.events.is_empty() || !changes.removed.is_empty() {
                seq = changes.seq;
                let Ok(message) = SseEvent::default().event("events").json_data(&changes) else {
                    return;
                };
                if tx.send(message).await.is_err() {
                    return;
                }
            } else {
                seq = changes.seq;
            }
            if stats_at.elapsed() >= STATS_EVERY {
                stats_at = tokio::time::Instant::now();
                if let Some(message) = send_stats(&shared) {
                    if tx.send(message).await.is_err() {
                        return;
                    }
                }
            }
            if behind {
                continue;
            }
            tokio::select! {
                result = changed.changed() => {
                    if result.is_err() {
                        return;
                    }
                    tokio::time::sleep(BATCH).await;
                }
                () = tokio::time::sleep_until(stats_at + STATS_EVERY) => {}
                () = tx.closed() => return,
            }
        }
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

async fn detail(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match shared.model.lock().detail(&id) {
        Some(detail) => Json(detail).into_response(),
        None => refuse(StatusCode::NOT_FOUND, "no such event in memory\n"),
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    #[serde(default)]
    limit: Option<usize>,
}

async fn search(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<SearchQuery>,
) -> Json<serde_json::Value> {
    let limit = query.limit.unwrap_or(10_000).min(100_000);
    let ids = shared.model.lock().search(&query.q, limit);
    Json(json!({ "ids": ids }))
}

#[derive(Deserialize)]
struct GroupQuery {
    error_type: String,
    handler: String,
}

async fn group_events(
    State(shared): State<Arc<Shared>>,
    Query(group): Query<GroupQuery>,
) -> Json<serde_json::Value> {
    let ids = shared
        .model
        .lock()
        .group_events(&group.error_type, &group.handler);
    Json(json!({ "ids": ids }))
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let stats = shared.model.lock().stats_snapshot(now_ms());
    Json(json!(stats))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = shared.model.lock().stats.encode_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[derive(Deserialize)]
struct GroupKey {
    error_type: String,
    handler: String,
}

#[derive(Deserialize)]
struct ReplayRequest {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    group: Option<GroupKey>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    confirm: bool,
}

#[derive(Serialize)]
struct Replayed {
    original: String,
    replay: String,
}

#[derive(Serialize)]
struct Skipped {
    id: String,
    reason: String,
}

/// Re-dispatches events: fresh copies (new ids, no results) of the named events or of a failure
/// group's, sent to a replay target. Needs `"confirm": true`: the page asks first.
async fn replay(State(shared): State<Arc<Shared>>, Json(request): Json<ReplayRequest>) -> Response {
    if !request.confirm {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a replay needs \"confirm\": true\n",
        );
    }
    let target = match &request.target {
        Some(name) => shared.targets.iter().find(|t| &t.name() == name),
        None => shared.targets.first(),
    };
    let Some(target) = target else {
        return refuse(
            StatusCode::CONFLICT,
            "no such replay target: start the monitor with --replay-to FILE (a JSONL inbox)\n",
        );
    };
    let mut ids = request.ids;
    if let Some(group) = &request.group {
        ids.extend(
            shared
                .model
                .lock()
                .group_events(&group.error_type, &group.handler),
        );
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    if ids.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "nothing to replay\n");
    }
    if ids.len() > MAX_REPLAY {
        return refuse(StatusCode::BAD_REQUEST, "at most 1000 events per replay\n");
    }
    let mut skipped = Vec::new();
    let mut copies = Vec::new();
    let mut originals = Vec::new();
    {
        let model = shared.model.lock();
        for id in ids {
            match model.raw(&id) {
                None => skipped.push(Skipped {
                    id,
                    reason: "not in memory, or its JSON was too large to keep".into(),
                }),
                Some(raw) => match fresh_copy(&raw) {
                    Ok(copy) => {
                        copies.push(copy);
                        originals.push(id);
                    }
                    Err(reason) => skipped.push(Skipped { id, reason }),
                },
            }
        }
    }
    if let Err(error) = target.send(&copies).await {
        return refuse(StatusCode::BAD_GATEWAY, &format!("{error}\n"));
    }
    let replayed: Vec<Replayed> = {
        let mut model = shared.model.lock();
        originals
            .into_iter()
            .zip(&copies)
            .map(|(original, copy)| {
                let replay = copy.event_id().to_string();
                model.note_replay(&original, &replay);
                Replayed { original, replay }
            })
            .collect()
    };
    shared.changed();
    Json(json!({
        "target": target.name(),
        "replayed": replayed,
        "skipped": skipped,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct DeadQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// Every store's dead letters, read from the engines now: `{"stores": [{"name", "letters",
/// "error"}]}` (a store that cannot be read says why; the others are still listed).
async fn dead_letters(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<DeadQuery>,
) -> Json<serde_json::Value> {
    let limit = query
        .limit
        .unwrap_or(crate::MAX_DEAD_LETTERS)
        .min(crate::MAX_DEAD_LETTERS);
    let lists =
        futures_util::future::join_all(shared.dead.iter().map(|store| store.list(limit))).await;
    let stores: Vec<_> = shared
        .dead
        .iter()
        .zip(lists)
        .map(|(store, list)| match list {
            Ok(letters) => json!({"name": store.name(), "letters": letters, "error": null}),
            Err(e) => json!({"name": store.name(), "letters": [], "error": e.to_string()}),
        })
        .collect();
    Json(json!({ "stores": stores }))
}

#[derive(Deserialize)]
struct DeadReplayRequest {
    store: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    confirm: bool,
}

/// Puts a dead letter (`id`) or all of a store's (`all`) back for delivery. Needs
/// `"confirm": true`: the page asks first.
async fn replay_dead_letters(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<DeadReplayRequest>,
) -> Response {
    if !request.confirm {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a replay needs \"confirm\": true\n",
        );
    }
    let store = match &request.store {
        Some(name) => shared.dead.iter().find(|d| &d.name() == name),
        None if shared.dead.len() == 1 => shared.dead.first(),
        None => None,
    };
    let Some(store) = store else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no such dead-letter store: name one of /api/info's dead_letter_stores\n",
        );
    };
    let replayed = match (&request.id, request.all) {
        (Some(_), true) | (None, false) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "name one dead letter (\"id\") or ask for \"all\"\n",
            );
        }
        (Some(id), false) => match store.replay(id).await {
            Ok(true) => 1,
            Ok(false) => return refuse(StatusCode::NOT_FOUND, "no such dead letter\n"),
            Err(e) => return refuse(StatusCode::BAD_GATEWAY, &format!("{e}\n")),
        },
        (None, true) => match store.replay_all().await {
            Ok(n) => n,
            Err(e) => return refuse(StatusCode::BAD_GATEWAY, &format!("{e}\n")),
        },
    };
    Json(json!({"store": store.name(), "replayed": replayed})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_tokens_are_read_strictly() {
        let mut h = HeaderMap::new();
        for (host, ok) in [
            ("127.0.0.1:8080", true),
            ("localhost:1", true),
            ("[::1]:80", true),
            ("LOCALHOST", true),
            ("evil.example:8080", false),
            ("127.0.0.1.evil.example", false),
        ] {
            h.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(host_is_loopback(&h), ok, "{host}");
        }
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; bubus_monitor_token=xyz"),
        );
        assert_eq!(cookie_token(&h), Some("xyz"));
        assert_eq!(query_token(Some("a=1&token=t")), Some("t"));
        assert!(eq_constant_time(b"abc", b"abc"));
        assert!(!eq_constant_time(b"abc", b"abd"));
        assert!(!eq_constant_time(b"abc", b"ab"));
    }
}
