//! Shared by the monitor's tests: the demo process, a raw HTTP client, headless Chromium.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

/// How long a test waits for something that must happen before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bubus-monitor-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The demo shop (`bubus-monitor-demo --stdin`) as a separate process: orders are placed by
/// writing lines to it; it answers `dispatched ID` and `replayed ID` lines.
pub struct Demo {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Demo {
    pub fn spawn(log: &Path, inbox: &Path) -> Demo {
        Demo::spawn_with(
            log,
            &["--inbox".as_ref(), inbox.as_os_str(), "--stdin".as_ref()],
        )
    }

    /// The demo with other arguments after the log's path.
    pub fn spawn_with(log: &Path, args: &[&std::ffi::OsStr]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bubus-monitor-demo"))
            .arg(log)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the demo");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            stdin,
            lines,
        }
    }

    /// Places an order; returns its event id once the demo dispatched (and logged) it.
    pub fn order(&mut self, id: u64, cents: u64, fail: bool) -> String {
        let fail = if fail { " fail" } else { "" };
        writeln!(self.stdin, "order {id} {cents}{fail}").expect("write to the demo");
        self.stdin.flush().expect("flush");
        self.expect("dispatched ")
    }

    /// The rest of the next line starting with `prefix` (other lines are skipped).
    pub fn expect(&mut self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("the demo never printed {prefix:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the demo exited"),
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`RunningMonitor::wait_for_event`], failing the test after [`PATIENCE`].
pub async fn event(
    monitor: &bubus_monitor::RunningMonitor,
    id: &str,
    f: impl Fn(&bubus_monitor::Detail) -> bool,
) -> bubus_monitor::Detail {
    match tokio::time::timeout(PATIENCE, monitor.wait_for_event(id, f)).await {
        Ok(detail) => detail,
        Err(_) => panic!(
            "event {id} never showed as expected; now: {:#?}",
            monitor.event(id)
        ),
    }
}

/// [`RunningMonitor::wait_ready`], failing the test after [`PATIENCE`].
pub async fn ready(monitor: &bubus_monitor::RunningMonitor) {
    tokio::time::timeout(PATIENCE, monitor.wait_ready())
        .await
        .expect("every source started reading");
}

/// One HTTP/1.1 request over a fresh connection: (status, headers, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    if let Some(body) = body {
        request.push_str(body);
    }
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Debian's chromedriver and chromium, if installed. Without them the browser tests are
/// skipped with a warning, except on CI (`CI=true`), where they fail: `.ci/run` installs them.
pub fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|path| path.is_file())
            })
        })
    };
    let driver = find(&["chromedriver"]);
    let chromium = find(&["chromium", "chromium-browser"]);
    match (driver, chromium) {
        (Some(d), Some(c)) => Some((d, c)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium and chromedriver are required on CI (apt-get install chromium chromium-driver)"
            );
            eprintln!("warning: chromium or chromedriver not found: skipping the browser test");
            None
        }
    }
}

/// A chromedriver process on a port it chose (`--port=0`: it binds a free one and names it, so
/// no other process can take it first), and a WebDriver session of headless Chromium.
pub struct Browser {
    driver: Child,
    pub client: fantoccini::Client,
}

impl Browser {
    pub async fn start(driver: &Path, chromium: &Path) -> Browser {
        let mut child = Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // It says when it listens, and on which port: "… started successfully on port 41799."
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((_, rest)) = line.split_once("started successfully on port ") {
                    let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>());
                }
            }
        });
        let port = rx
            .recv_timeout(PATIENCE)
            .expect("chromedriver started")
            .expect("chromedriver names the port it listens on");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--window-size=1440,900",
                    "--hide-scrollbars",
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        // `until` waits inside the page (an async script): up to its own limit.
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(180)),
                Some(Duration::from_secs(60)),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set the timeouts");
        Browser {
            driver: child,
            client,
        }
    }

    /// Waits, in the page, until the JavaScript expression `condition` is truthy: checked now
    /// and on every change of the page (a MutationObserver), so no polling interval delays it.
    /// `false` if it did not become true within `within`.
    pub async fn until(&self, condition: &str, within: Duration) -> bool {
        let script = r#"
            const [expr, ms, done] = arguments;
            const check = new Function(`return (${expr});`);
            const ok = () => { try { return !!check(); } catch (_) { return false; } };
            if (ok()) { done(true); return; }
            const obs = new MutationObserver(() => { if (ok()) { obs.disconnect(); clearTimeout(t); done(true); } });
            obs.observe(document.documentElement, { subtree: true, childList: true, attributes: true, characterData: true });
            const t = setTimeout(() => { obs.disconnect(); done(ok()); }, ms);
        "#;
        let result = self
            .client
            .execute_async(
                script,
                vec![
                    serde_json::Value::from(condition),
                    serde_json::Value::from(within.as_millis() as u64),
                ],
            )
            .await
            .expect("the wait script runs");
        result.as_bool() == Some(true)
    }

    /// Like [`until`](Self::until) with [`PATIENCE`], failing the test with `what`.
    pub async fn expect(&self, condition: &str, what: &str) {
        assert!(
            self.until(condition, PATIENCE).await,
            "the page never showed {what} ({condition})"
        );
    }

    /// Runs a script and returns its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script runs")
    }

    /// Clicks the element `css` selects, once it exists. The list re-renders its rows as events
    /// arrive, so an element found can be replaced before the click lands: a stale element is
    /// looked up again (a bounded number of times).
    pub async fn click(&self, css: &str) {
        const ATTEMPTS: usize = 20;
        for attempt in 1..=ATTEMPTS {
            let element = self
                .client
                .wait()
                .at_most(PATIENCE)
                .for_element(fantoccini::Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no {css}: {e}"));
            match element.click().await {
                Ok(()) => return,
                Err(e) if e.is_stale_element_reference() && attempt < ATTEMPTS => continue,
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Saves a screenshot of the page when `BUBUS_MONITOR_SCREENSHOTS` names a directory.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("BUBUS_MONITOR_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        let path = PathBuf::from(dir).join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
