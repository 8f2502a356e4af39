//! The fault runs over a private Redis (issue 17 §7): 10 000 events from 4 publisher tasks in
//! 2 processes while the server is restarted twice (or the connections are cut twice) and a
//! consumer process is SIGKILLed mid-handler and replaced. Durable mode: 0 lost, 0 duplicate
//! handler runs. Plain mode: the run reports what it lost.
//!
//! Run them alone with `cargo test -p bubus-redis --test redis_faults -- --nocapture`.

use std::sync::Arc;
use std::time::Duration;

use bubus::bridge::Bridge;
use bubus_redis::{Mode, RedisTransport};
use bubus_test_support::servers::fault::{self, Plan};
use bubus_test_support::servers::redis::RedisServer;
use bubus_test_support::servers::{TcpProxy, worker_role};
use parking_lot::Mutex;

/// One run at a time: they share two cores with everything else.
static SERIAL: Mutex<()> = Mutex::new(());

const LEASE: Duration = Duration::from_secs(10);

fn transport(url: &str, channel: &str, mode: Mode) -> RedisTransport {
    RedisTransport::builder(url)
        .expect("url")
        .channel(channel)
        .mode(mode)
        .group("fault")
        .lease(LEASE)
        .send_timeout(Duration::from_secs(60))
        .build()
        .expect("transport")
}

#[test]
#[ignore = "a worker process of the fault runs"]
fn worker() {
    let Some(role) = worker_role() else { return };
    fault::run_worker(&role, |env, publisher| async move {
        let mode = if env.mode == "streams" {
            Mode::Streams
        } else {
            Mode::PubSub
        };
        let t = transport(&env.url, &env.channel, mode);
        match mode {
            Mode::Streams if !publisher => Bridge::builder(t.clone())
                .dedup(Arc::new(t.dedup_store()))
                .build(),
            _ => Bridge::new(t),
        }
    });
}

fn assert_exactly_once(report: &fault::Report) {
    fault::assert_exactly_once("redis", report);
}

#[test]
fn streams_lose_nothing_across_server_restarts_and_a_killed_consumer() {
    let _serial = SERIAL.lock();
    let mut server = RedisServer::start().expect("redis-server");
    let spawn = fault::spawner(format!("{}/0", server.url()), "streams");
    let report = fault::durable_run(Plan::ISSUE, spawn, |_| server.restart().expect("restart"));
    assert_exactly_once(&report);
}

#[test]
fn streams_lose_nothing_across_cut_connections_and_a_killed_consumer() {
    let _serial = SERIAL.lock();
    let server = RedisServer::start().expect("redis-server");
    let proxy = TcpProxy::start(server.port()).expect("proxy");
    let spawn = fault::spawner(format!("redis://127.0.0.1:{}/0", proxy.port()), "streams");
    let report = fault::durable_run(Plan::ISSUE, spawn, |_| proxy.cut());
    assert!(
        proxy.accepted() > 8,
        "the clients reconnected through the proxy"
    );
    assert_exactly_once(&report);
}

#[test]
fn pubsub_reports_what_server_restarts_lose() {
    let _serial = SERIAL.lock();
    let mut server = RedisServer::start().expect("redis-server");
    let spawn = fault::spawner(format!("{}/0", server.url()), "pubsub");
    let report = fault::plain_run(
        Plan::ISSUE,
        spawn,
        |_| server.restart().expect("restart"),
        Duration::from_secs(3),
    );
    println!("redis pub/sub (at-most-once) fault run: {report}");
    assert!(
        report.distinct > 0 && report.distinct <= report.expected,
        "{report}"
    );
}
