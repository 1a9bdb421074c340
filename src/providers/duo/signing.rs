//! Duo's request signature, canonical string version 5, as the official
//! clients compute it: HMAC-SHA512 over
//! `date \n METHOD \n host \n path \n params \n sha512(body) \n sha512(x-duo headers)`,
//! sent as `Authorization: Basic base64(ikey:hexsig)` with the same `Date`.

use crate::providers::error::Failure;
use crate::providers::rest::{Auth, Body, Call, Transport};
use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha512};

pub struct Signer {
    integration_key: String,
    secret_key: String,
}

impl Signer {
    pub fn new(integration_key: String, secret_key: String) -> Self {
        Signer { integration_key, secret_key }
    }

    /// The `Authorization` value for a request with this canonical string.
    pub fn authorization(&self, canonical: &str) -> Result<String, Failure> {
        let mut mac = Hmac::<Sha512>::new_from_slice(self.secret_key.as_bytes())
            .map_err(|e| Failure::Configuration(format!("secretKey: {e}")))?;
        mac.update(canonical.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{signature}", self.integration_key));
        Ok(format!("Basic {basic}"))
    }
}

/// RFC 3986 encoding as Duo's canonicalization does it (Python `quote(s, '~')`): unreserved
/// characters stay, everything else is `%XX`, a space is `%20` and never `+`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v` pairs, encoded, sorted by key then value, joined by `&`.
pub fn canonical_params(pairs: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    encoded.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// `json.dumps(v, sort_keys=True, separators=(',', ':'))`: keys sorted at every level.
pub fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical_json(&map[k.as_str()])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// The canonical string of a request: what the signature covers.
pub fn canonical(date: &str, method: &str, host: &str, path: &str, params: &str, body: &[u8]) -> String {
    let empty_headers = hex::encode(Sha512::digest(b""));
    [
        date,
        &method.to_uppercase(),
        &host.to_lowercase(),
        path,
        params,
        &hex::encode(Sha512::digest(body)),
        &empty_headers,
    ]
    .join("\n")
}

/// `host[:port]` as the request's `Host` header carries it.
pub fn host_of(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

#[async_trait]
impl Auth for Signer {
    async fn authorize(&self, _: &Transport, call: &Call) -> Result<Vec<(String, String)>, Failure> {
        // RFC 2822, as Python's email.utils.formatdate(): "Tue, 21 Aug 2012 17:29:18 -0000".
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S -0000").to_string();
        let pairs: Vec<(String, String)> =
            call.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        // v5: query parameters for GET/DELETE; the JSON body (and no parameters) for POST.
        let (params, body): (String, Vec<u8>) = match &call.body {
            Body::Json(bytes) => (String::new(), bytes.clone()),
            Body::Form(_) => return Err(Failure::Configuration("Duo v5 signing sends JSON bodies only".into())),
            Body::Empty => (canonical_params(&pairs), Vec::new()),
        };
        let canonical = canonical(&date, call.method.as_str(), &host_of(&call.url), call.url.path(), &params, &body);
        Ok(vec![("Authorization".into(), self.authorization(&canonical)?), ("Date".into(), date)])
    }

    async fn rejected(&self) -> bool {
        false // a rejected signature stays rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_encoded_and_sorted_like_duos_clients() {
        let pairs = vec![
            ("username".to_string(), "a b~c@x".to_string()),
            ("limit".to_string(), "300".to_string()),
            ("email".to_string(), "ü".to_string()),
        ];
        assert_eq!(canonical_params(&pairs), "email=%C3%BC&limit=300&username=a%20b~c%40x");
    }

    #[test]
    fn json_is_compact_with_sorted_keys() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, "x"], "c": null}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#);
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        let signer = Signer::new("DIWJ8X6AEYOR5OMC6TQ1".into(), "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep".into());
        let canonical = canonical(
            "Tue, 21 Aug 2012 17:29:18 -0000",
            "get",
            "API-XXXXXXXX.duosecurity.com",
            "/admin/v1/users",
            "limit=1&offset=0",
            b"",
        );
        let lines: Vec<&str> = canonical.lines().collect();
        assert_eq!(lines[1], "GET");
        assert_eq!(lines[2], "api-xxxxxxxx.duosecurity.com");
        assert_eq!(lines[5].len(), 128);
        let header = signer.authorization(&canonical).expect("sign");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(header.strip_prefix("Basic ").expect("basic"))
            .expect("b64");
        let (ikey, sig) = std::str::from_utf8(&decoded).expect("utf8").split_once(':').expect("colon");
        assert_eq!(ikey, "DIWJ8X6AEYOR5OMC6TQ1");
        let mut mac = Hmac::<Sha512>::new_from_slice(b"Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep").expect("key");
        mac.update(canonical.as_bytes());
        mac.verify_slice(&hex::decode(sig).expect("hex")).expect("signature verifies");
    }
}
