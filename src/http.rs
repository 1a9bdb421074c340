//! The operator's small HTTP endpoint: `/metrics`, `/healthz`, `/readyz`.
//!
//! Three GET routes do not need a web framework; requests are read up to the end of their
//! headers and answered with `Connection: close`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the endpoint serves; implemented by the operator's context.
pub trait Health: Send + Sync + 'static {
    fn metrics(&self) -> String;
    /// Ready: caches synced (a replica that is not leader is still ready to take over).
    fn ready(&self) -> Result<(), String>;
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(listener: TcpListener, health: Arc<dyn Health>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let health = health.clone();
                tokio::spawn(async move { answer(stream, health.as_ref()).await });
            }
        }
    }
}

async fn answer(mut stream: tokio::net::TcpStream, health: &dyn Health) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Headers only; bound the size so a misbehaving client cannot grow the buffer.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let request = String::from_utf8_lossy(&buf);
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", health.metrics())
        }
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/readyz") => match health.ready() {
            Ok(()) => ("200 OK", "text/plain", "ready\n".to_string()),
            Err(why) => ("503 Service Unavailable", "text/plain", format!("{why}\n")),
        },
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "method not allowed\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(bool);
    impl Health for Fixed {
        fn metrics(&self) -> String {
            "keyward_leader 1\n".into()
        }
        fn ready(&self) -> Result<(), String> {
            if self.0 { Ok(()) } else { Err("caches not synced".into()) }
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_three_routes() {
        for (ready, expect) in [(true, "200 OK"), (false, "503")] {
            let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(listener, Arc::new(Fixed(ready)), async {
                let _ = rx.await;
            }));
            assert!(get(addr, "/metrics").await.contains("keyward_leader 1"));
            assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200 OK"));
            assert!(get(addr, "/readyz").await.contains(expect));
            assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
            let _ = tx.send(());
            server.await.unwrap();
        }
    }
}
