//! A private PostgreSQL server for fault tests: its own data directory and a free loopback port,
//! so a test can restart it, crash it or stop it without disturbing the shared server on 5432.
//!
//! `initdb` refuses to run as root, so the server is created and run as the `postgres` user
//! (`runuser -u postgres --` when the test runs as root), with a data directory that user owns.
//! Trust authentication, user `postgres`, database `postgres`; no Unix socket, TCP on
//! 127.0.0.1 only; `fsync` off (a crash test kills the server, not the machine, so what reached
//! the OS survives) but `synchronous_commit` on (an acknowledged commit must survive the crash).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many ports [`PgServer::start`] tries.
const PORT_ATTEMPTS: usize = 5;

/// A PostgreSQL server owned by the test; stopped (`immediate`) and deleted when dropped.
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    port: u16,
}

fn as_postgres(program: &str) -> Command {
    // Running as root: hand the command to the postgres user. Otherwise run it as ourselves.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", program]);
        cmd
    } else {
        Command::new(program)
    }
}

#[track_caller]
fn check(out: std::io::Result<Output>, what: &str) {
    let out = out.unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP port on 127.0.0.1 that nothing listens on right now (another process can take it
/// before a server binds it: [`PgServer::start`] chooses again in that case).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

impl PgServer {
    /// Creates a cluster in a fresh directory and starts it on a free port.
    ///
    /// # Panics
    ///
    /// If `initdb` or `pg_ctl` cannot be run or fail (the message has their output).
    pub fn start() -> PgServer {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bubus-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        // Created by the postgres user so it owns it (the temp dir is world-writable).
        check(
            as_postgres("mkdir")
                .arg("-p")
                .arg(dir.join("data"))
                .output(),
            "mkdir",
        );
        check(
            as_postgres("initdb")
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
                .arg("-D")
                .arg(dir.join("data"))
                .output(),
            "initdb",
        );
        let mut server = PgServer {
            dir,
            port: free_port(),
        };
        // The port was free when chosen; if another process took it before the server bound
        // it, the server fails at once saying so: choose another one.
        let mut attempt = 1;
        while let Err(failure) = server.try_pg_ctl_start() {
            let taken = crate::servers::port_taken(&failure);
            assert!(taken && attempt < PORT_ATTEMPTS, "{failure}");
            attempt += 1;
            server.port = free_port();
        }
        wait_port(server.port, true);
        server
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `postgresql://` URL of its `postgres` database (append `/<table>` for the family's
    /// table segment).
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("data/server.log")
    }

    fn pg_ctl_start(&self) {
        if let Err(failure) = self.try_pg_ctl_start() {
            panic!("{failure}");
        }
        wait_port(self.port, true);
    }

    /// `pg_ctl start`; on failure, what it and the server's log (this start's part) said.
    fn try_pg_ctl_start(&self) -> Result<(), String> {
        let logged_before = std::fs::metadata(self.log()).map_or(0, |m| m.len());
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off \
             -c full_page_writes=off -c max_connections=200",
            self.port
        );
        let out = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", "60", "-l"])
            .arg(self.log())
            .args(["-o", &opts, "start"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl start: {e}"));
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "pg_ctl start failed ({}):\n{}\n{}\n--- server log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read(self.log())
                .ok()
                .and_then(|log| log
                    .get(usize::try_from(logged_before).ok()?..)
                    .map(<[u8]>::to_vec))
                .map(|log| String::from_utf8_lossy(&log).into_owned())
                .unwrap_or_default()
        ))
    }

    fn pg_ctl_stop(&self, mode: &str) {
        check(
            as_postgres("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-w", "-t", "60", "-m", mode, "stop"])
                .output(),
            "pg_ctl stop",
        );
        wait_port(self.port, false);
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`).
    pub fn stop(&self) {
        self.pg_ctl_stop("fast");
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`): clients are cut and
    /// recovery runs on the next start.
    pub fn crash(&self) {
        self.pg_ctl_stop("immediate");
    }

    /// Starts it again after [`stop`](Self::stop) or [`crash`](Self::crash), on the same port
    /// and data.
    pub fn resume(&self) {
        self.pg_ctl_start();
    }

    /// Crashes the server ([`crash`](Self::crash): every connection is cut) and starts it again.
    pub fn restart(&self) {
        self.crash();
        self.resume();
    }

    /// The path of the server log, for failure messages.
    pub fn log_path(&self) -> &Path {
        &self.dir
    }
}

fn wait_port(port: u16, open: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let is_open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if is_open == open {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "port {port} did not become {}",
            if open { "open" } else { "closed" }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
