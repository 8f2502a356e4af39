//! A private `nats-server` with JetStream on a free loopback port (one it binds itself and
//! names); its store folder outlives restarts, so streams and consumers survive
//! [`ServerProcess::restart`].

use std::io;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use super::{ServerProcess, TempDir};

/// The line in which `nats-server` names the address it listens on.
const LISTENING: &str = "Listening for client connections on ";

/// Where `nats-server` is: `$NATS_SERVER`, else `/usr/sbin/nats-server` when it exists, else
/// `nats-server` from `PATH`.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let sbin = PathBuf::from("/usr/sbin/nats-server");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("nats-server")
    }
}

/// A `nats-server -js` this test owns.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    process: ServerProcess,
    _dir: TempDir,
}

impl NatsServer {
    /// Starts `nats-server` with JetStream on a free port and waits until it is ready. The
    /// server binds a port of its choosing (`-p -1`) and names it in its log, so no other
    /// process can take the port between choosing and binding it; restarts come back on it.
    pub fn start() -> io::Result<Self> {
        Self::start_on(0)
    }

    /// Starts it on `port` (0: a port it chooses, as [`start`](Self::start)): an error saying
    /// "address already in use" when the port is taken.
    pub fn start_on(port: u16) -> io::Result<Self> {
        let dir = TempDir::new("nats")?;
        let store = dir.path().to_owned();
        let binary = nats_server_binary();
        // The port to listen on; 0 until the first run named the one it chose.
        let chosen = Arc::new(AtomicU16::new(port));
        let listen_on = Arc::clone(&chosen);
        let process = ServerProcess::start("nats-server", "Server is ready", move || {
            let port = match listen_on.load(Ordering::Acquire) {
                0 => "-1".to_owned(),
                port => port.to_string(),
            };
            let mut command = Command::new(&binary);
            command
                .args(["-a", "127.0.0.1", "-p", &port, "-js"])
                .arg("-sd")
                .arg(&store);
            command
        })?;
        let port = if port == 0 {
            // The ready line comes after the listening one: the log has it.
            let log = process.log();
            let port = log
                .lines()
                .find_map(|l| l.split_once(LISTENING))
                .and_then(|(_, addr)| addr.trim().rsplit_once(':'))
                .and_then(|(_, port)| port.parse().ok())
                .ok_or_else(|| {
                    io::Error::other(format!("nats-server named no client port:\n{log}"))
                })?;
            chosen.store(port, Ordering::Release);
            port
        } else {
            port
        };
        Ok(NatsServer {
            port,
            process,
            _dir: dir,
        })
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Deref for NatsServer {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl DerefMut for NatsServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}
