//! Signed checkpoints of the audit log in the C2SP forms: the body is a tlog checkpoint
//! (origin, record count, base64 head hash) and the signatures follow the signed-note form
//! (`— <key name> <base64(key hash ‖ Ed25519 signature)>`), so that `note`-aware tools can
//! check them too. Keys are the note formats as well: `PRIVATE+KEY+<name>+<hash>+<base64>` to
//! sign, `<name>+<hash>+<base64>` to verify, where the base64 holds the algorithm byte 0x01
//! and the 32-byte seed or public key, and the hash is the first four bytes of
//! SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
//!
//! Specifications: <https://c2sp.org/signed-note>, <https://c2sp.org/tlog-checkpoint>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::Digest;

const ALGORITHM_ED25519: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The origin line of keyward's checkpoints (one log per origin).
pub const ORIGIN: &str = "keyward.dev/audit";

/// What a checkpoint says of a log: how many records, and the hash of the last line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub count: u64,
    /// Lower-case hex SHA-256 of the last line (empty for an empty log).
    pub head: String,
}

impl Checkpoint {
    /// The note's body: three lines, each ending in a newline.
    pub fn body(&self) -> String {
        let head = hex::decode(&self.head).unwrap_or_default();
        format!("{}\n{}\n{}\n", self.origin, self.count, STANDARD.encode(head))
    }

    /// Reads a body (and ignores signatures and extension lines), or keyward's older
    /// two-line form (count, hex head).
    pub fn parse(text: &str) -> Option<Checkpoint> {
        let body = text.split("\n\n").next().unwrap_or(text);
        let lines: Vec<&str> = body.lines().collect();
        if let [count, head] = lines.as_slice()
            && let Ok(count) = count.trim().parse()
        {
            return Some(Checkpoint { origin: ORIGIN.into(), count, head: head.trim().to_string() });
        }
        let [origin, count, head, ..] = lines.as_slice() else { return None };
        let head = STANDARD.decode(head.trim()).ok()?;
        Some(Checkpoint { origin: origin.to_string(), count: count.trim().parse().ok()?, head: hex::encode(head) })
    }
}

fn key_hash(name: &str, public: &[u8]) -> [u8; 4] {
    let mut hasher = sha2::Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ALGORITHM_ED25519]);
    hasher.update(public);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A key that signs checkpoints.
pub struct Signer {
    name: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Signer {
    /// A new key: the signer key and the verifier key, both as text.
    pub fn generate(name: &str) -> Result<(String, String), String> {
        if !valid_name(name) {
            return Err(format!("{name:?} is not a key name (no spaces, no '+')"));
        }
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| "no randomness from the operating system".to_string())?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|e| e.to_string())?;
        let public = pair.public_key().as_ref().to_vec();
        let hash = hex::encode(key_hash(name, &public));
        let encode = |bytes: &[u8]| STANDARD.encode([&[ALGORITHM_ED25519][..], bytes].concat());
        Ok((format!("PRIVATE+KEY+{name}+{hash}+{}", encode(&seed)), format!("{name}+{hash}+{}", encode(&public))))
    }

    pub fn parse(text: &str) -> Result<Signer, String> {
        let fields: Vec<&str> = text.trim().splitn(5, '+').collect();
        let ["PRIVATE", "KEY", name, hash, key] = fields.as_slice() else {
            return Err("not a signer key (PRIVATE+KEY+<name>+<hash>+<base64>)".into());
        };
        let bytes = STANDARD.decode(key).map_err(|e| format!("signer key: {e}"))?;
        let [ALGORITHM_ED25519, seed @ ..] = bytes.as_slice() else {
            return Err("signer key: not an Ed25519 key".into());
        };
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| "signer key: not a 32-byte seed".to_string())?;
        if hex::encode(key_hash(name, pair.public_key().as_ref())) != *hash {
            return Err("signer key: its hash does not match its name and key".into());
        }
        Ok(Signer { name: name.to_string(), pair })
    }

    /// The signed note of `checkpoint`.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.pair.sign(body.as_bytes());
        let hash = key_hash(&self.name, self.pair.public_key().as_ref());
        let blob = STANDARD.encode([&hash[..], signature.as_ref()].concat());
        format!("{body}\n{SIGNATURE_PREFIX}{} {blob}\n", self.name)
    }
}

/// A key that checks checkpoints' signatures.
#[derive(Clone, Debug)]
pub struct Verifier {
    name: String,
    hash: [u8; 4],
    public: Vec<u8>,
}

impl Verifier {
    pub fn parse(text: &str) -> Result<Verifier, String> {
        let fields: Vec<&str> = text.trim().splitn(3, '+').collect();
        let [name, hash, key] = fields.as_slice() else {
            return Err("not a verifier key (<name>+<hash>+<base64>)".into());
        };
        let bytes = STANDARD.decode(key).map_err(|e| format!("verifier key: {e}"))?;
        let [ALGORITHM_ED25519, public @ ..] = bytes.as_slice() else {
            return Err("verifier key: not an Ed25519 key".into());
        };
        let expected = key_hash(name, public);
        if hex::encode(expected) != *hash || public.len() != 32 {
            return Err("verifier key: its hash does not match its name and key".into());
        }
        Ok(Verifier { name: name.to_string(), hash: expected, public: public.to_vec() })
    }

    /// The checkpoint of `note` when a signature by this key over its body is valid.
    pub fn open(&self, note: &str) -> Result<Checkpoint, String> {
        let (body, signatures) = note
            .split_once("\n\n")
            .map(|(body, rest)| (format!("{body}\n"), rest))
            .ok_or("the checkpoint is not signed (no signature lines)")?;
        let by_key = signatures
            .lines()
            .filter_map(|l| l.strip_prefix(SIGNATURE_PREFIX))
            .filter_map(|l| l.split_once(' '))
            .filter(|(name, _)| *name == self.name)
            .filter_map(|(_, blob)| STANDARD.decode(blob).ok())
            .find(|blob| blob.len() == 68 && blob[..4] == self.hash)
            .ok_or_else(|| format!("the checkpoint carries no signature by {}", self.name))?;
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(body.as_bytes(), &by_key[4..])
            .map_err(|_| format!("the signature by {} does not match the checkpoint: it was altered", self.name))?;
        Checkpoint::parse(&body).ok_or_else(|| "the signed checkpoint is not a checkpoint".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_only_unaltered() {
        let (signer, verifier) = Signer::generate("acme-audit").expect("keys");
        let (signer, verifier) =
            (Signer::parse(&signer).expect("signer"), Verifier::parse(&verifier).expect("verifier"));
        let checkpoint = Checkpoint { origin: ORIGIN.into(), count: 12, head: "ab".repeat(32) };
        let note = signer.sign(&checkpoint);
        assert!(note.starts_with("keyward.dev/audit\n12\n"), "{note}");
        assert!(note.contains("\n\n\u{2014} acme-audit "), "{note}");
        assert_eq!(verifier.open(&note), Ok(checkpoint.clone()));
        assert_eq!(Checkpoint::parse(&note), Some(checkpoint));

        let shorter = note.replacen("\n12\n", "\n11\n", 1);
        assert!(verifier.open(&shorter).expect_err("altered").contains("altered"));
        let (_, other) = Signer::generate("acme-audit").expect("keys");
        assert!(Verifier::parse(&other).expect("verifier").open(&note).is_err(), "another key of the same name");
        assert!(verifier.open(&checkpoint_unsigned()).is_err());
    }

    fn checkpoint_unsigned() -> String {
        Checkpoint { origin: ORIGIN.into(), count: 1, head: String::new() }.body()
    }

    #[test]
    fn keys_are_checked_against_their_hash() {
        let (signer, verifier) = Signer::generate("k").expect("keys");
        assert!(Signer::parse(&signer.replacen("+k+", "+j+", 1)).is_err(), "renamed");
        assert!(Verifier::parse(&verifier.replacen("k+", "j+", 1)).is_err(), "renamed");
        assert!(Signer::generate("two words").is_err());
        assert!(Signer::parse(&verifier).is_err(), "a verifier key does not sign");
    }
}
