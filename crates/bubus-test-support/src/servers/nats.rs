//! A private `nats-server` with JetStream on a free loopback port; its store folder outlives
//! restarts, so streams and consumers survive [`ServerProcess::restart`].

use std::io;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Command;

use super::{ServerProcess, TempDir, on_free_port};

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
    /// Starts `nats-server` with JetStream on a free port and waits until it is ready (on another
    /// port if that one was taken before the server bound it).
    pub fn start() -> io::Result<Self> {
        on_free_port(Self::start_on)
    }

    /// Starts it on `port`: an error saying "address already in use" when the port is taken.
    pub fn start_on(port: u16) -> io::Result<Self> {
        let dir = TempDir::new("nats")?;
        let store = dir.path().to_owned();
        let binary = nats_server_binary();
        let process = ServerProcess::start("nats-server", "Server is ready", move || {
            let mut command = Command::new(&binary);
            command
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js"])
                .arg("-sd")
                .arg(&store);
            command
        })?;
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
