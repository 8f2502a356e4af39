//! The HTTP listener's endpoint and the sender's retries, over real loopback connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bubus_http::{HttpListener, HttpSender, ListenerOptions, RetryPolicy, SendError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn family_status_codes_and_bad_input_never_stop_the_listener() {
    let mut listener = HttpListener::bind(ListenerOptions::new().path("/events"))
        .await
        .unwrap();
    assert!(listener.local_addr().ip().is_loopback());
    let url = listener.url();
    let client = reqwest::Client::new();

    let get = client.get(&url).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    assert_eq!(status(client.put(&url).body("{}")).await, 405);
    let other = url.replace("/events", "/other");
    assert_eq!(status(client.post(&other).body("{}")).await, 404);
    assert_eq!(status(client.post(&url).body("{not json")).await, 400);
    assert_eq!(status(client.post(&url).body("[1,2]")).await, 400);
    assert_eq!(status(client.post(&url).body(vec![0xff, 0xfe])).await, 400);
    assert_eq!(
        status(client.post(&url).body(r#"{"event_type":"Ping","n":1}"#)).await,
        202
    );

    let inbound = listener.recv().await.unwrap();
    assert_eq!(inbound.body, r#"{"event_type":"Ping","n":1}"#);
    assert!(inbound.peer.ip().is_loopback());
    assert_eq!(listener.stats().rejected(), 3);
    assert_eq!(listener.stats().accepted(), 1);
    listener.close().await;
}

#[tokio::test]
async fn a_truncated_request_is_answered_and_the_next_one_taken() {
    let mut listener = HttpListener::bind(ListenerOptions::new()).await.unwrap();
    let addr = listener.local_addr();
    // Declares 100 bytes, sends 5, closes its writing half.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"a\":")
        .await
        .unwrap();
    socket.shutdown().await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    // Garbage that is not HTTP at all.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 400"));

    let sender = HttpSender::new(&listener.url()).unwrap();
    sender.send(r#"{"event_type":"After"}"#).await.unwrap();
    assert_eq!(
        listener.recv().await.unwrap().body,
        r#"{"event_type":"After"}"#
    );
    listener.close().await;
}

#[tokio::test]
async fn bearer_token_is_required_when_set() {
    let mut listener = HttpListener::bind(ListenerOptions::new().bearer_token("s3cret"))
        .await
        .unwrap();
    let url = listener.url();
    let client = reqwest::Client::new();
    let refused = client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        status(client.post(&url).bearer_auth("wrong").body("{}")).await,
        401
    );

    let anonymous = HttpSender::new(&url).unwrap();
    match anonymous.send("{}").await {
        Err(SendError::Status { status: 401, .. }) => {}
        other => panic!("expected a 401, got {other:?}"),
    }
    let sender = HttpSender::new(&url)
        .unwrap()
        .bearer_token("s3cret")
        .unwrap();
    sender.send(r#"{"ok":true}"#).await.unwrap();
    assert_eq!(listener.recv().await.unwrap().body, r#"{"ok":true}"#);
    listener.close().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413() {
    let mut listener = HttpListener::bind(ListenerOptions::new().body_limit(64))
        .await
        .unwrap();
    let url = listener.url();
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100));
    let client = reqwest::Client::new();
    assert_eq!(status(client.post(&url).body(big.clone())).await, 413);
    // Without a content-length (chunked), the limit still holds.
    let chunks = futures_stream(big);
    assert_eq!(
        status(client.post(&url).body(reqwest::Body::wrap_stream(chunks))).await,
        413
    );
    assert_eq!(status(client.post(&url).body(r#"{"small":1}"#)).await, 202);
    assert_eq!(listener.recv().await.unwrap().body, r#"{"small":1}"#);
    assert_eq!(listener.stats().rejected(), 2);
    listener.close().await;
}

fn futures_stream(
    text: String,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let parts: Vec<Result<Vec<u8>, std::io::Error>> = text
        .into_bytes()
        .chunks(16)
        .map(|c| Ok(c.to_vec()))
        .collect();
    futures_util::stream::iter(parts)
}

#[tokio::test]
async fn the_sender_keeps_its_connection_alive() {
    let mut listener = HttpListener::bind(ListenerOptions::new()).await.unwrap();
    let sender = HttpSender::new(&listener.url()).unwrap();
    let mut peers = std::collections::HashSet::new();
    for n in 0..20 {
        sender.send(format!(r#"{{"n":{n}}}"#)).await.unwrap();
        peers.insert(listener.recv().await.unwrap().peer);
    }
    assert_eq!(
        peers.len(),
        1,
        "one connection for 20 sequential sends: {peers:?}"
    );
    listener.close().await;
}

/// A real server that answers 503 to its first `failures` requests, then 202.
async fn flaky_server(failures: u32) -> (String, Arc<AtomicU32>) {
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            if counter.fetch_add(1, Ordering::SeqCst) < failures {
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            } else {
                axum::http::StatusCode::ACCEPTED
            }
        }
    });
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", socket.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(socket, app).await.unwrap() });
    (url, seen)
}

fn quick_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn the_sender_retries_5xx_until_accepted() {
    let (url, seen) = flaky_server(2).await;
    let sender = HttpSender::new(&url).unwrap().retry(quick_retries(5));
    sender.send("{}").await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 3);

    let (url, seen) = flaky_server(10).await;
    let sender = HttpSender::new(&url).unwrap().retry(quick_retries(3));
    match sender.send("{}").await {
        Err(SendError::Status { status: 503, .. }) => {}
        other => panic!("expected the last 503, got {other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_sender_does_not_retry_a_4xx() {
    let listener = HttpListener::bind(ListenerOptions::new()).await.unwrap();
    let sender = HttpSender::new(&listener.url())
        .unwrap()
        .retry(quick_retries(5));
    match sender.send("not json").await {
        Err(SendError::Status {
            status: 400, body, ..
        }) => assert!(body.contains("invalid JSON")),
        other => panic!("expected a 400, got {other:?}"),
    }
    assert_eq!(listener.stats().rejected(), 1);
}

#[tokio::test]
async fn the_sender_retries_connection_errors_until_a_listener_is_up() {
    // A socket bound to a port of its own that does not listen yet: connections to it are
    // refused until it listens, and no other process can take the port in the meantime.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/");
    let refused = HttpSender::new(&url).unwrap().retry(RetryPolicy::none());
    assert!(matches!(
        refused.send("{}").await,
        Err(SendError::Request { .. })
    ));

    let sender = HttpSender::new(&url).unwrap().retry(RetryPolicy {
        attempts: 50,
        base: Duration::from_millis(5),
        max: Duration::from_millis(20),
    });
    let send = tokio::spawn(async move { sender.send(r#"{"late":1}"#).await });
    let socket = socket.listen(1024).unwrap().into_std().unwrap();
    let mut listener = HttpListener::from_std(socket, ListenerOptions::new()).unwrap();
    assert_eq!(listener.local_addr().port(), port);
    assert_eq!(listener.recv().await.unwrap().body, r#"{"late":1}"#);
    send.await.unwrap().unwrap();
    listener.close().await;
}
