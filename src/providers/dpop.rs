//! DPoP (RFC 9449): proof-of-possession for OAuth access tokens, which Okta can require of a
//! service app ("Require Demonstrating Proof of Possession header in token requests").
//!
//! The key is a P-256 pair made when the client starts and never leaves the process: a token
//! bound to it is useless to anyone who copies the token alone. Each request carries a fresh
//! proof JWT naming its method and URL (and, to a resource server, the token's hash).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The private key of DPoP proofs, and its public JWK.
pub struct ProofKey {
    pair: EcdsaKeyPair,
    jwk: Value,
}

impl std::fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProofKey(..)") // never key material
    }
}

impl ProofKey {
    /// A new ES256 key.
    pub fn generate() -> Result<Self, String> {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| "cannot make a DPoP key".to_string())?;
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|e| format!("DPoP key: {e}"))?;
        // An uncompressed point: 0x04 ‖ x ‖ y, 32 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)});
        Ok(ProofKey { pair, jwk })
    }

    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// A proof for one request: `htm` and `htu` (the URL without query and fragment), the
    /// server's `nonce` when it gave one, and `ath` when the request carries `access_token`.
    pub fn proof(
        &self,
        method: &str,
        url: &url::Url,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<String, String> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let mut claims = json!({
            "htm": method, "htu": htu.as_str(), "iat": super::jwt::now(), "jti": super::jwt::jti(),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(token) = access_token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default());
        let input = format!("{}.{}", encode(&header), encode(&claims));
        let signature =
            self.pair.sign(&SystemRandom::new(), input.as_bytes()).map_err(|_| "DPoP signing failed".to_string())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_with_its_own_jwk_and_names_the_request() {
        let key = ProofKey::generate().expect("key");
        let url = url::Url::parse("https://acme.okta.example/api/v1/users?limit=200#x").expect("url");
        let proof = key.proof("GET", &url, Some("n-1"), Some("tok")).expect("proof");
        let parts: Vec<&str> = proof.split('.').collect();
        let decode =
            |s: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("b64")).expect("json") };
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!((header["typ"].as_str(), header["alg"].as_str()), (Some("dpop+jwt"), Some("ES256")));
        assert_eq!(claims["htu"], "https://acme.okta.example/api/v1/users");
        assert_eq!((claims["htm"].as_str(), claims["nonce"].as_str()), (Some("GET"), Some("n-1")));
        assert_eq!(claims["ath"], URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok")));
        let jwk = &header["jwk"];
        let mut point = vec![4u8];
        for c in ["x", "y"] {
            point.extend(URL_SAFE_NO_PAD.decode(jwk[c].as_str().expect("coordinate")).expect("b64"));
        }
        let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point);
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(parts[2]).expect("sig")).expect("verifies");
        assert!(jwk.get("d").is_none(), "the private part never leaves");
    }
}
