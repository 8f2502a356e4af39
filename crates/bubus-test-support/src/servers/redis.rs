//! A private `redis-server` on a free loopback port, with an append-only file synced on every
//! write, so a stream survives [`ServerProcess::restart`] and even [`ServerProcess::kill`].

use std::io;
use std::ops::{Deref, DerefMut};
use std::process::Command;

use super::{ServerProcess, TempDir, on_free_port};

/// A `redis-server` this test owns.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    // Dropped after the process (fields drop in order).
    process: ServerProcess,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server` (from `PATH`) on a free port and waits until it accepts connections
    /// (on another port if that one was taken before the server bound it).
    pub fn start() -> io::Result<Self> {
        on_free_port(Self::start_on)
    }

    /// Starts it on `port`: an error saying "address already in use" when the port is taken.
    pub fn start_on(port: u16) -> io::Result<Self> {
        let dir = TempDir::new("redis")?;
        let data = dir.path().to_owned();
        let process =
            ServerProcess::start("redis-server", "Ready to accept connections", move || {
                let mut command = Command::new("redis-server");
                command
                    .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                    .args([
                        "--save",
                        "",
                        "--appendonly",
                        "yes",
                        "--appendfsync",
                        "always",
                    ])
                    .args(["--logfile", "", "--daemonize", "no"])
                    .arg("--dir")
                    .arg(&data);
                command
            })?;
        Ok(RedisServer {
            port,
            process,
            _dir: dir,
        })
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>` (add `/<db>[/<channel>]` for the family's URL form).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Deref for RedisServer {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl DerefMut for RedisServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}
