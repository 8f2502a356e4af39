//! A TCP proxy on a free loopback port that a test can cut: every connection through it is
//! closed at once, both ways, as a network failure would, and it can refuse new ones for a while.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

#[derive(Debug, Default)]
struct Shared {
    live: Mutex<HashMap<u64, [TcpStream; 2]>>,
    refusing: AtomicBool,
    closed: AtomicBool,
    accepted: AtomicU64,
    cuts: AtomicU64,
}

/// Forwards connections on its own port to `127.0.0.1:<target>`.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:<target_port>`.
    pub fn start(target_port: u16) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || accept_loop(&listener, target_port, &accept_shared));
        Ok(TcpProxy { addr, shared })
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Closes every connection through the proxy now (both sides see the connection reset or
    /// closed). New connections are accepted as before unless [`refuse`](Self::refuse) is in effect.
    pub fn cut(&self) {
        self.shared.cuts.fetch_add(1, Ordering::Relaxed);
        let live = std::mem::take(&mut *self.shared.live.lock());
        for [client, upstream] in live.into_values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }

    /// From now on, new connections are closed as soon as they are accepted (until
    /// [`resume`](Self::resume)).
    pub fn refuse(&self) {
        self.shared.refusing.store(true, Ordering::SeqCst);
    }

    /// New connections are forwarded again after [`refuse`](Self::refuse).
    pub fn resume(&self) {
        self.shared.refusing.store(false, Ordering::SeqCst);
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections open through the proxy now.
    pub fn live(&self) -> usize {
        self.shared.live.lock().len()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `closed`.
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

fn accept_loop(listener: &TcpListener, target_port: u16, shared: &Arc<Shared>) {
    let mut next_id = 0u64;
    for client in listener.incoming() {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.refusing.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(upstream) = TcpStream::connect(("127.0.0.1", target_port)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
            client.try_clone(),
            upstream.try_clone(),
            client.try_clone(),
            upstream.try_clone(),
        ) else {
            continue;
        };
        next_id += 1;
        let id = next_id;
        shared.live.lock().insert(id, [c3, u3]);
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        for (mut from, mut to) in [(client, u2), (upstream, c2)] {
            let shared = Arc::clone(shared);
            std::thread::spawn(move || {
                let _ = io::copy(&mut from, &mut to);
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                shared.live.lock().remove(&id);
            });
        }
    }
}
