//! A TLS front for a plain-HTTP server, with a certificate from a private CA made for the test:
//! a privacyIDEA "behind an internal CA", as `spec.caBundle` is for.

use std::net::SocketAddr;
use std::sync::Arc;

pub struct TlsFront {
    pub addr: SocketAddr,
    /// The CA's certificate, PEM: what `spec.caBundle` must hold to trust the front.
    pub ca_pem: String,
    _runtime: std::thread::JoinHandle<()>,
}

impl TlsFront {
    /// `https://localhost:PORT`: the certificate names `localhost` and 127.0.0.1.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn start(upstream: SocketAddr) -> TlsFront {
        Self::start_at(upstream, std::net::IpAddr::from([127, 0, 0, 1]))
    }

    /// The same, listening on `ip` (a Pod reaches the host at `KEYWARD_NODE_IP`): the
    /// certificate names that address too, so `https://IP:PORT` verifies against the CA.
    pub fn start_at(upstream: SocketAddr, ip: std::net::IpAddr) -> TlsFront {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "keyward test internal CA");
        ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = rcgen::KeyPair::generate().expect("server key");
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        if !ip.is_loopback() {
            names.push(ip.to_string());
        }
        let leaf = rcgen::CertificateParams::new(names)
            .expect("server params")
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("server certificate");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
        let addr = listener.local_addr().expect("address");
        listener.set_nonblocking(true).expect("nonblocking");
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((client, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // A client that does not trust the CA ends the handshake: nothing to do.
                        let Ok(mut tls) = acceptor.accept(client).await else { return };
                        let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                    });
                }
            });
        });
        TlsFront { addr, ca_pem: ca_cert.pem(), _runtime: runtime }
    }
}
