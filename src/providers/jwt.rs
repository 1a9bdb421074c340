//! Signed JWTs for OAuth client assertions (Okta `private_key_jwt`, Entra certificate
//! credentials) and Google's service-account grant, with keys read from PEM.
//!
//! Signing uses `ring`, already in the tree through rustls: no OpenSSL.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::{Value, json};
use sha2::Digest;
use std::time::{SystemTime, UNIX_EPOCH};

/// A private key that signs JWTs.
pub enum SigningKey {
    /// RS256.
    Rsa(RsaKeyPair),
    /// ES256.
    Ec(EcdsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str(match self {
            SigningKey::Rsa(_) => "SigningKey::Rsa(..)",
            SigningKey::Ec(_) => "SigningKey::Ec(..)",
        })
    }
}

/// The DER contents of every `-----BEGIN <label>-----` block of a PEM text.
pub fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            // Encrypted-PEM headers (`Proc-Type:`) are not supported; the base64 fails below.
            body.push_str(line);
        }
        if !closed {
            return Err(format!("PEM block {label} has no END line"));
        }
        let der = STANDARD.decode(body.as_bytes()).map_err(|e| format!("PEM block {label}: {e}"))?;
        blocks.push((label.to_string(), der));
    }
    Ok(blocks)
}

impl SigningKey {
    /// Reads the first private key of a PEM text: PKCS#8 (`PRIVATE KEY`, RSA or EC P-256) or
    /// PKCS#1 (`RSA PRIVATE KEY`).
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let rng = SystemRandom::new();
        for (label, der) in pem_blocks(text)? {
            match label.as_str() {
                "PRIVATE KEY" => {
                    if let Ok(key) = RsaKeyPair::from_pkcs8(&der) {
                        return Ok(SigningKey::Rsa(key));
                    }
                    return EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                        .map(SigningKey::Ec)
                        .map_err(|e| format!("PKCS#8 key is neither RSA (2048 bits or more) nor EC P-256: {e}"));
                }
                "RSA PRIVATE KEY" => {
                    return RsaKeyPair::from_der(&der)
                        .map(SigningKey::Rsa)
                        .map_err(|e| format!("PKCS#1 RSA key rejected: {e}"));
                }
                "EC PRIVATE KEY" => {
                    return Err(
                        "SEC1 EC keys are not supported; convert to PKCS#8 (`openssl pkcs8 -topk8 -nocrypt`)".into()
                    );
                }
                "ENCRYPTED PRIVATE KEY" => return Err("encrypted private keys are not supported".into()),
                _ => continue,
            }
        }
        Err("no private key found in PEM".into())
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            SigningKey::Rsa(_) => "RS256",
            SigningKey::Ec(_) => "ES256",
        }
    }

    /// A compact JWS of `claims`, with `header` fields added to `alg` and `typ`.
    pub fn sign(&self, header: &[(&str, Value)], claims: &Value) -> Result<String, String> {
        let mut head = json!({"alg": self.algorithm(), "typ": "JWT"});
        for (name, value) in header {
            head[*name] = value.clone();
        }
        let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default());
        let input = format!("{}.{}", encode(&head), encode(claims));
        let rng = SystemRandom::new();
        let signature = match self {
            SigningKey::Rsa(key) => {
                let mut out = vec![0u8; key.public().modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut out)
                    .map_err(|_| "RSA signing failed".to_string())?;
                out
            }
            SigningKey::Ec(key) => {
                key.sign(&rng, input.as_bytes()).map_err(|_| "ECDSA signing failed".to_string())?.as_ref().to_vec()
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A random `jti`: assertions must not be replayable.
pub fn jti() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// `x5t` (SHA-1) and `x5t#S256` (SHA-256) thumbprints of the first certificate of a PEM text,
/// base64url: how Entra ID finds the certificate that signed a client assertion.
pub fn certificate_thumbprints(pem: &str) -> Result<(String, String), String> {
    let (_, der) = pem_blocks(pem)?
        .into_iter()
        .find(|(label, _)| label == "CERTIFICATE")
        .ok_or_else(|| "no CERTIFICATE block in PEM".to_string())?;
    let sha1 = sha1::Sha1::digest(&der);
    let sha256 = sha2::Sha256::digest(&der);
    Ok((URL_SAFE_NO_PAD.encode(sha1), URL_SAFE_NO_PAD.encode(sha256)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_keys_sign_verifiable_jwts() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pem =
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(pkcs8.as_ref()));
        let key = SigningKey::from_pem(&pem).expect("parse");
        assert_eq!(key.algorithm(), "ES256");
        let jwt = key.sign(&[("kid", json!("k1"))], &json!({"iss": "me"})).expect("sign");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(header["kid"], "k1");
        assert_eq!(header["alg"], "ES256");
        let SigningKey::Ec(pair) = &key else { panic!("ec") };
        use ring::signature::KeyPair;
        let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(parts[2]).expect("sig")).expect("verifies");
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        assert!(SigningKey::from_pem("not a key").is_err());
        assert!(SigningKey::from_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----").is_err());
        assert!(SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
        assert!(pem_blocks("-----BEGIN X-----\nAAAA\n").is_err());
    }
}
