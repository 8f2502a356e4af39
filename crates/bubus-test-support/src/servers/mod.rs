//! Private servers for fault tests: a test starts its own Redis or NATS on a free loopback port,
//! stops, kills and restarts it on the same port, cuts its connections with a [`TcpProxy`], and
//! drives worker processes ([`Worker`]).
//!
//! Every server is a [`ServerProcess`]: a command, a line of its log that says it is ready, a
//! data folder that outlives restarts and is removed when the fixture is dropped. A fixture for
//! another engine is a function that builds its command and names its ready line (see
//! [`redis`] and [`nats`]).
//!
//! Waiting for a server reads its log until the ready line appears; nothing here sleeps to wait.

use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

pub mod fault;
pub mod nats;
mod proxy;
pub mod redis;
mod worker;

pub use proxy::TcpProxy;
pub use worker::{Worker, worker_role};

/// How long a server may take to say it is ready before the fixture gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
///
/// Another process can take it before the server meant for it binds it: start servers with
/// [`on_free_port`], which chooses again in that case.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// How many ports [`on_free_port`] tries.
const PORT_ATTEMPTS: usize = 5;

/// `start(port)` on a [`free_port`], again on another one while it fails because the port was
/// taken (its error says "address already in use"), up to a few times.
///
/// For a server that cannot choose a port itself and name it (`redis-server` takes port 0 as "no
/// TCP at all"; a restart then comes back on the same port, where its clients reconnect), the
/// port is chosen here; between choosing and binding, another process may take it, and then the
/// server fails at once with that error. A server that can choose, binds port 0 its own way and
/// names the port instead ([`nats::NatsServer::start`] reads it from the server's log).
pub fn on_free_port<T>(mut start: impl FnMut(u16) -> io::Result<T>) -> io::Result<T> {
    let mut attempt = 1;
    loop {
        match start(free_port()) {
            Err(e) if attempt < PORT_ATTEMPTS && port_taken(&e.to_string()) => attempt += 1,
            done => return done,
        }
    }
}

/// Whether a server's error output says its port was taken.
pub(crate) fn port_taken(output: &str) -> bool {
    output
        .to_ascii_lowercase()
        .contains("address already in use")
}

/// A folder under the system temp folder, removed with everything in it when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/bubus-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("bubus-{label}-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Lines a server wrote (stdout and stderr, interleaved), and whether the ready line came.
#[derive(Debug, Default)]
struct Log {
    lines: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct LogState {
    lines: Vec<String>,
    /// Bumped on every start; a reader thread of an older run stops touching `ready`.
    run: u64,
    ready: bool,
    /// Reader threads of the current run still reading (both done: the process exited).
    open_pipes: u8,
}

/// A server process started from a command, restartable on the same port with the same data.
pub struct ServerProcess {
    name: String,
    make_command: Box<dyn Fn() -> Command + Send + Sync>,
    ready_line: String,
    child: Option<Child>,
    log: Arc<Log>,
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProcess")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl ServerProcess {
    /// Starts the command and waits until a line of its output contains `ready_line`.
    ///
    /// `make_command` is called again for every restart.
    pub fn start(
        name: &str,
        ready_line: &str,
        make_command: impl Fn() -> Command + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let mut server = ServerProcess {
            name: name.to_owned(),
            make_command: Box::new(make_command),
            ready_line: ready_line.to_owned(),
            child: None,
            log: Arc::default(),
        };
        server.start_again()?;
        Ok(server)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether a process is running (started and not stopped or killed by the fixture).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything the server printed, every run, one line each.
    pub fn log(&self) -> String {
        self.log.lines.lock().lines.join("\n")
    }

    /// Starts the process again (after [`stop`](Self::stop) or [`kill`](Self::kill)) and waits
    /// for its ready line. Does nothing while it runs.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut child = (self.make_command)()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", self.name)))?;
        let run = {
            let mut state = self.log.lines.lock();
            state.run += 1;
            state.ready = false;
            state.open_pipes = 2;
            state.run
        };
        let stdout = child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>);
        for pipe in [stdout, stderr].into_iter().flatten() {
            let log = Arc::clone(&self.log);
            let ready_line = self.ready_line.clone();
            std::thread::spawn(move || read_log(pipe, &log, run, &ready_line));
        }
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        let mut state = self.log.lines.lock();
        loop {
            if state.ready {
                return Ok(());
            }
            if state.open_pipes == 0 {
                drop(state);
                self.reap();
                return Err(io::Error::other(format!(
                    "{} exited before it was ready:\n{}",
                    self.name,
                    self.log()
                )));
            }
            if self
                .log
                .changed
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                drop(state);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} not ready after {READY_TIMEOUT:?}:\n{}",
                        self.name,
                        self.log()
                    ),
                ));
            }
        }
    }

    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server gracefully (SIGTERM; it flushes its data) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            #[cfg(unix)]
            {
                let pid = rustix::process::Pid::from_child(&child);
                if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_err() {
                    let _ = child.kill();
                }
            }
            #[cfg(not(unix))]
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        self.reap();
    }

    /// [`stop`](Self::stop), then [`start_again`](Self::start_again).
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.start_again()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.reap();
    }
}

fn read_log(pipe: Box<dyn Read + Send>, log: &Log, run: u64, ready_line: &str) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        let mut state = log.lines.lock();
        if state.run == run && line.contains(ready_line) {
            state.ready = true;
            log.changed.notify_all();
        }
        state.lines.push(line);
    }
    let mut state = log.lines.lock();
    if state.run == run {
        state.open_pipes = state.open_pipes.saturating_sub(1);
    }
    log.changed.notify_all();
}
