//! The bridge conformance suite over the HTTP transport: each medium is two listeners bound
//! ahead on loopback; the first endpoint listens on one and sends to the other, the second the
//! other way round.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus_http::{HttpTransport, ListenerOptions, RetryPolicy};
use bubus_test_support::conformance::TransportFactory;
use parking_lot::Mutex;

struct Medium {
    sockets: Mutex<Vec<Option<std::net::TcpListener>>>,
    urls: Vec<String>,
    endpoints: AtomicUsize,
}

struct Pair;

impl TransportFactory for Pair {
    type Transport = HttpTransport;
    type Medium = Medium;

    async fn medium(&self) -> Medium {
        let sockets: Vec<_> = (0..2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let urls = sockets
            .iter()
            .map(|s| format!("http://{}/events", s.local_addr().unwrap()))
            .collect();
        Medium {
            sockets: Mutex::new(sockets.into_iter().map(Some).collect()),
            urls,
            endpoints: AtomicUsize::new(0),
        }
    }

    async fn endpoint(&self, medium: &Medium) -> HttpTransport {
        let n = medium.endpoints.fetch_add(1, Ordering::Relaxed) % 2;
        let transport = HttpTransport::new()
            .retry(RetryPolicy {
                attempts: 20,
                base: Duration::from_millis(5),
                max: Duration::from_millis(50),
            })
            .send_to(&medium.urls[1 - n])
            .unwrap();
        match medium.sockets.lock()[n].take() {
            Some(socket) => {
                transport.listen_on_socket(socket, ListenerOptions::new().path("/events"))
            }
            None => transport,
        }
    }

    async fn inject(&self, medium: &Medium, text: &str) -> bool {
        // The receiver of `pair` is the second endpoint.
        let status = reqwest::Client::new()
            .post(&medium.urls[1])
            .body(text.to_owned())
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 202 || status == 400, "{status}");
        true
    }
}

bubus_test_support::transport_conformance!(Pair);
