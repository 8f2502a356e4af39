//! The server fixtures: private Redis and NATS servers that restart on the same port with their
//! data, a proxy that cuts connections, and worker processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bubus_test_support::servers::nats::NatsServer;
use bubus_test_support::servers::redis::RedisServer;
use bubus_test_support::servers::{TcpProxy, Worker, on_free_port, worker_role};

fn redis_command(port: u16, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(command.as_bytes()).expect("write");
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).expect("read");
    line
}

#[test]
fn redis_server_keeps_its_data_across_restart_and_kill() {
    let mut redis = RedisServer::start().expect("redis-server");
    assert_eq!(redis_command(redis.port(), "PING\r\n"), "+PONG\r\n");
    assert_eq!(redis_command(redis.port(), "SET k v1\r\n"), "+OK\r\n");
    redis.restart().expect("restart");
    assert_eq!(redis_command(redis.port(), "GET k\r\n"), "$2\r\n");
    redis.kill();
    assert!(TcpStream::connect(("127.0.0.1", redis.port())).is_err());
    redis.start_again().expect("start again");
    assert_eq!(redis_command(redis.port(), "EXISTS k\r\n"), ":1\r\n");
}

#[test]
fn nats_server_restarts_on_its_port() {
    let mut nats = NatsServer::start().expect("nats-server");
    let info = |port| {
        let mut line = String::new();
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        BufReader::new(stream).read_line(&mut line).expect("read");
        line
    };
    assert!(info(nats.port()).contains("\"jetstream\":true"));
    nats.restart().expect("restart");
    assert!(info(nats.port()).starts_with("INFO "));
    assert!(nats.log().contains("Server is ready"));
}

#[test]
fn a_server_whose_port_was_taken_starts_on_another() {
    // The first port offered is one another socket holds, as when another process takes the
    // chosen port before the server binds it.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("address").port();
    let mut offered = Vec::new();
    let redis = on_free_port(|port| {
        let port = if offered.is_empty() { taken } else { port };
        offered.push(port);
        RedisServer::start_on(port)
    })
    .expect("redis-server");
    assert_eq!(offered.len(), 2, "{offered:?}");
    assert_eq!(offered[0], taken);
    assert_eq!(redis.port(), offered[1]);
    assert_eq!(redis_command(redis.port(), "PING\r\n"), "+PONG\r\n");

    // Any other failure is not tried again.
    let mut calls = 0;
    let failed = on_free_port(|_| -> std::io::Result<()> {
        calls += 1;
        Err(std::io::Error::other("no such binary"))
    });
    assert!(failed.is_err());
    assert_eq!(calls, 1);
}

#[test]
fn proxy_forwards_cuts_and_refuses() {
    let redis = RedisServer::start().expect("redis-server");
    let proxy = TcpProxy::start(redis.port()).expect("proxy");
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect");
    stream.write_all(b"PING\r\n").expect("write");
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).expect("read");
    assert_eq!(&reply, b"+PONG\r\n");
    assert_eq!(proxy.live(), 1);

    proxy.cut();
    let mut rest = Vec::new();
    // The cut connection ends (EOF or reset), it does not hang.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let ended = match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => {
            e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut
        }
    };
    assert!(ended);

    proxy.refuse();
    let mut refused = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect");
    refused
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let _ = refused.write_all(b"PING\r\n");
    let mut buf = Vec::new();
    let got = refused
        .read_to_end(&mut buf)
        .map(|_| buf.len())
        .unwrap_or(0);
    assert_eq!(got, 0, "a refused connection carries nothing");

    proxy.resume();
    assert_eq!(redis_command(proxy.port(), "PING\r\n"), "+PONG\r\n");
    assert_eq!(proxy.accepted(), 2);
}

#[test]
#[ignore = "a worker process of worker_reports_survive_sigkill"]
fn worker() {
    let Some(role) = worker_role() else { return };
    println!("@@started {role}");
    println!("not a report");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    println!("@@got {}", line.trim());
    // Waits to be killed.
    std::io::stdin().read_line(&mut line).expect("stdin");
    println!("@@never");
}

#[test]
fn worker_reports_survive_sigkill() {
    let mut worker = Worker::spawn("worker", "echo", &[]).expect("spawn");
    assert_eq!(
        worker
            .wait_report("started", Duration::from_secs(60))
            .as_deref(),
        Some("started echo")
    );
    worker.send_line("hello").expect("send");
    assert_eq!(
        worker
            .wait_report("got", Duration::from_secs(60))
            .as_deref(),
        Some("got hello")
    );
    worker.kill();
    assert_eq!(worker.reports(), ["started echo", "got hello"]);
}
