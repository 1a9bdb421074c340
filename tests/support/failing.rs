//! A provider that answers every request with an error (outage tests).

/// An HTTP server on loopback answering every request with `status` and a non-JSON body,
/// for as long as the test binary runs.
pub fn failing_server(status: u16) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let body = "<html>internal error</html>";
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Error\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}
