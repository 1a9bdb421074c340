//! A TCP proxy between keyward and the API server that a test can tell to cut every open
//! connection at once: watches break mid-stream the way a load balancer or a network blip
//! breaks them. TLS passes through untouched (the server certificate is for 127.0.0.1).

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct CutProxy {
    pub addr: SocketAddr,
    open: Arc<Mutex<Vec<TcpStream>>>,
    /// While set, new connections are closed as soon as they are accepted: the API server
    /// is unreachable.
    refusing: Arc<AtomicBool>,
    /// While set, nothing is forwarded in either direction and nothing is closed: every call
    /// hangs, the way a half-dead load balancer or a stalled apiserver makes it hang.
    frozen: Arc<AtomicBool>,
    /// Milliseconds each forwarded chunk waits: a slow network or a slow provider.
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl CutProxy {
    pub fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let registry = open.clone();
        let refusing = Arc::new(AtomicBool::new(false));
        let refuse = refusing.clone();
        let frozen = Arc::new(AtomicBool::new(false));
        let freeze = frozen.clone();
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delay = delay_ms.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if refuse.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else { continue };
                {
                    let mut open = registry.lock().expect("proxy registry");
                    open.retain(|s| s.peer_addr().is_ok());
                    open.push(client.try_clone().expect("clone"));
                    open.push(server.try_clone().expect("clone"));
                }
                pipe(client_read, server, freeze.clone(), delay.clone());
                pipe(server_read, client, freeze.clone(), delay.clone());
            }
        });
        CutProxy { addr, open, refusing, frozen, delay_ms }
    }

    /// `https://127.0.0.1:PORT`, for a kubeconfig.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Closes every connection open through the proxy; returns how many were open.
    pub fn cut_all(&self) -> usize {
        let mut open = self.open.lock().expect("proxy registry");
        let n = open.len() / 2;
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        n
    }

    /// Cuts every connection and refuses new ones until [`CutProxy::restore`].
    pub fn go_down(&self) -> usize {
        self.refusing.store(true, Ordering::SeqCst);
        self.cut_all()
    }

    pub fn restore(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }

    /// Every call through the proxy hangs from now on (connections stay open) until
    /// [`CutProxy::thaw`].
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }

    /// Every chunk forwarded from now on waits `delay` first.
    pub fn slow_down(&self, delay: std::time::Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

/// Copies one direction until either side closes, then closes both; holds what it read while
/// `frozen`.
fn pipe(mut from: TcpStream, mut to: TcpStream, frozen: Arc<AtomicBool>, delay_ms: Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while frozen.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::thread::sleep(std::time::Duration::from_millis(delay_ms.load(Ordering::SeqCst)));
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
