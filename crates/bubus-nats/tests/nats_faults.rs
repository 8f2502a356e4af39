//! The fault runs over a private NATS server with JetStream (issue 17 §7): 10 000 events from 4 publisher tasks in
//! 2 processes while the server is restarted twice (or the connections are cut twice) and a
//! consumer process is SIGKILLed mid-handler and replaced. Durable mode: 0 lost, 0 duplicate
//! handler runs. Plain mode: the run reports what it lost.
//!
//! Run them alone with `cargo test -p bubus-nats --test nats_faults -- --nocapture`.

use std::sync::Arc;
use std::time::Duration;

use bubus::bridge::Bridge;
use bubus_nats::{Mode, NatsTransport};
use bubus_test_support::servers::fault::{self, Plan};
use bubus_test_support::servers::nats::NatsServer;
use bubus_test_support::servers::{TcpProxy, worker_role};
use parking_lot::Mutex;

/// One run at a time: they share two cores with everything else.
static SERIAL: Mutex<()> = Mutex::new(());

const LEASE: Duration = Duration::from_secs(10);

async fn transport(url: &str, subject: &str, mode: Mode) -> NatsTransport {
    NatsTransport::builder(url, subject)
        .mode(mode)
        .group("fault")
        .lease(LEASE)
        .send_timeout(Duration::from_secs(60))
        .build()
        .await
        .expect("transport")
}

#[test]
#[ignore = "a worker process of the fault runs"]
fn worker() {
    let Some(role) = worker_role() else { return };
    // FAULT_TRACE=<dir>: each worker logs to <dir>/<role>-<pid>.log.
    if let Some(dir) = std::env::var_os("FAULT_TRACE") {
        let path = std::path::Path::new(&dir).join(format!("{role}-{}.log", std::process::id()));
        let file = std::fs::File::create(path).expect("trace file");
        tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .init();
    }
    fault::run_worker(&role, |env, publisher| async move {
        let mode = if env.mode == "jetstream" {
            Mode::JetStream
        } else {
            Mode::Core
        };
        let t = transport(&env.url, &env.channel, mode).await;
        match mode {
            Mode::JetStream if !publisher => Bridge::builder(t.clone())
                .dedup(Arc::new(t.dedup_store()))
                .build(),
            _ => Bridge::new(t),
        }
    });
}

fn assert_exactly_once(report: &fault::Report) {
    fault::assert_exactly_once("nats", report);
}

#[test]
fn jetstream_loses_nothing_across_server_restarts_and_a_killed_consumer() {
    let _serial = SERIAL.lock();
    let mut server = NatsServer::start().expect("nats-server");
    let spawn = fault::spawner(server.url(), "jetstream");
    let report = fault::durable_run(Plan::ISSUE, spawn, |_| server.restart().expect("restart"));
    assert_exactly_once(&report);
}

#[test]
fn jetstream_loses_nothing_across_cut_connections_and_a_killed_consumer() {
    let _serial = SERIAL.lock();
    let server = NatsServer::start().expect("nats-server");
    let proxy = TcpProxy::start(server.port()).expect("proxy");
    let spawn = fault::spawner(format!("nats://127.0.0.1:{}", proxy.port()), "jetstream");
    let report = fault::durable_run(Plan::ISSUE, spawn, |_| proxy.cut());
    assert!(
        proxy.accepted() > 8,
        "the clients reconnected through the proxy"
    );
    assert_exactly_once(&report);
}

#[test]
fn core_reports_what_server_restarts_lose() {
    let _serial = SERIAL.lock();
    let mut server = NatsServer::start().expect("nats-server");
    let spawn = fault::spawner(server.url(), "core");
    let report = fault::plain_run(
        Plan::ISSUE,
        spawn,
        |_| server.restart().expect("restart"),
        Duration::from_secs(3),
    );
    println!("nats core (at-most-once) fault run: {report}");
    assert!(
        report.distinct > 0 && report.distinct <= report.expected,
        "{report}"
    );
}
