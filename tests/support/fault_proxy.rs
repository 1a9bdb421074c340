//! `scripts/fault_proxy.py` in front of an HTTP server (privacyIDEA, a provider mock): the
//! reliability suite's provider faults, shared by `tests/chaos.rs` and the `providers_*` tests.

use serde_json::Value;
use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};

pub struct FaultProxy {
    child: Child,
    port: u16,
}

impl FaultProxy {
    /// Faults at `rate` of the requests, drawn from `seed`; a `timeout` fault holds its
    /// request for 3 s (past the providers' 2 s timeout in the suite's manifests).
    pub fn start(upstream: &str, rate: f64, seed: u64) -> FaultProxy {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fault_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--upstream", upstream, "--rate", &rate.to_string(), "--seed", &seed.to_string(), "--hold", "3"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fault proxy");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("its port");
        let port = line.trim().strip_prefix("listening ").and_then(|p| p.parse().ok()).expect("listening PORT");
        FaultProxy { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn call(&self, method: &str, path: &str) -> Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("proxy");
        write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .expect("ask");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("answer");
        serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap_or("{}")).expect("json")
    }

    pub fn set_rate(&self, rate: f64) {
        self.call("POST", &format!("/__chaos/rate?r={rate}"));
    }

    /// Faults injected so far, by kind.
    pub fn faults_by_kind(&self) -> Vec<(String, u64)> {
        let stats = self.call("GET", "/__chaos/stats");
        stats["faults"]
            .as_object()
            .map(|f| f.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
            .unwrap_or_default()
    }

    /// Faults injected so far.
    pub fn faults(&self) -> u64 {
        self.faults_by_kind().iter().map(|(_, n)| n).sum()
    }

    /// Requests seen so far (faulted or not).
    pub fn requests(&self) -> u64 {
        self.call("GET", "/__chaos/stats")["requests"].as_u64().unwrap_or(0)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
