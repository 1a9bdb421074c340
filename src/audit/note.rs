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
use chrono::{DateTime, SecondsFormat, Utc};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::Digest;

const ALGORITHM_ED25519: u8 = 0x01;
/// The key name of signatures made with a PEM key, which carries no name of its own.
pub const PEM_KEY_NAME: &str = "keyward-audit";
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The origin line of keyward's checkpoints (one log per origin).
pub const ORIGIN: &str = "keyward.dev/audit";

/// What a checkpoint says of a log: how many records, the hash of the last line, when
/// (absent from the older three-line format), and, for the checkpoint written at a rotation,
/// that a file starts there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub count: u64,
    /// Lower-case hex SHA-256 of the last line (empty for an empty log).
    pub head: String,
    /// When it was written (the extension line `time <RFC 3339>`); none in the checkpoints of
    /// older keywards. Signed with the rest, so an old checkpoint cannot pass for a new one.
    pub time: Option<DateTime<Utc>>,
    /// Set (the extension line `start <seq>`, equal to `count`) on the checkpoint written when
    /// the log was rotated: a file starts at record `count`, chained to `head`, and the files
    /// before it may be pruned. Only such a checkpoint anchors a log that does not start at
    /// seq 0; the one written after every record does not, so holding on to those does not let
    /// anyone cut the log's front at any record they like.
    pub start: Option<u64>,
}

impl Checkpoint {
    /// The note's body: the three lines of a tlog checkpoint, then the extension lines, each
    /// ending in a newline.
    pub fn body(&self) -> String {
        let head = hex::decode(&self.head).unwrap_or_default();
        let mut body = format!("{}\n{}\n{}\n", self.origin, self.count, STANDARD.encode(head));
        if let Some(time) = self.time {
            body.push_str(&format!("time {}\n", time.to_rfc3339_opts(SecondsFormat::Secs, true)));
        }
        if let Some(start) = self.start {
            body.push_str(&format!("start {start}\n"));
        }
        body
    }

    /// Reads a body (and ignores signatures and unknown extension lines), or keyward's older
    /// two-line form (count, hex head). A `time` or `start` line that does not read is no
    /// checkpoint: it would be signed as written, so it is not one keyward wrote.
    pub fn parse(text: &str) -> Option<Checkpoint> {
        // The signatures follow the last blank line; the body itself has one when the chain
        // is empty (its head is the empty string), as every standby's checkpoint is.
        let body = text.rsplit_once(&format!("\n\n{SIGNATURE_PREFIX}")).map_or(text, |(body, _)| body);
        let lines: Vec<&str> = body.lines().collect();
        if let [count, head] = lines.as_slice()
            && let Ok(count) = count.trim().parse()
        {
            return Some(Checkpoint {
                origin: ORIGIN.into(),
                count,
                head: head.trim().to_string(),
                time: None,
                start: None,
            });
        }
        let [origin, count, head, extensions @ ..] = lines.as_slice() else { return None };
        let head = STANDARD.decode(head.trim()).ok()?;
        let mut checkpoint = Checkpoint {
            origin: origin.to_string(),
            count: count.trim().parse().ok()?,
            head: hex::encode(head),
            time: None,
            start: None,
        };
        for line in extensions {
            if let Some(time) = line.strip_prefix("time ") {
                checkpoint.time = Some(DateTime::parse_from_rfc3339(time.trim()).ok()?.to_utc());
            } else if let Some(start) = line.strip_prefix("start ") {
                checkpoint.start = Some(start.trim().parse().ok()?);
            }
        }
        Some(checkpoint)
    }

    /// How long before `now` it was written; none for a checkpoint without a time.
    pub fn age(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        self.time.map(|time| now - time)
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

    /// A signer key in the note form, or an Ed25519 key as PKCS#8 PEM (`-----BEGIN PRIVATE
    /// KEY-----`, what `openssl genpkey -algorithm ed25519` and the chart's generated key
    /// hold), which signs under the name [`PEM_KEY_NAME`].
    pub fn parse(text: &str) -> Result<Signer, String> {
        if text.trim_start().starts_with("-----BEGIN") {
            return Self::parse_pem(text);
        }
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

    fn parse_pem(text: &str) -> Result<Signer, String> {
        let blocks = crate::providers::jwt::pem_blocks(text).map_err(|e| format!("signer key: {e}"))?;
        let [(label, der)] = blocks.as_slice() else {
            return Err(format!("signer key: expected one PEM block, found {}", blocks.len()));
        };
        if label != "PRIVATE KEY" {
            return Err(format!("signer key: a PEM {label:?} block is not a PKCS#8 private key"));
        }
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| format!("signer key: not an Ed25519 PKCS#8 key ({e})"))?;
        Ok(Signer { name: PEM_KEY_NAME.to_string(), pair })
    }

    /// The verifier key of this signer, in the note form `<name>+<hash>+<base64>`: what
    /// auditors give `keyward audit verify --key`.
    pub fn verifier(&self) -> String {
        let public = self.pair.public_key().as_ref();
        let encoded = STANDARD.encode([&[ALGORITHM_ED25519][..], public].concat());
        format!("{}+{}+{encoded}", self.name, hex::encode(key_hash(&self.name, public)))
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
            .rsplit_once(&format!("\n\n{SIGNATURE_PREFIX}"))
            .map(|(body, rest)| (format!("{body}\n"), format!("{SIGNATURE_PREFIX}{rest}")))
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
        let checkpoint =
            Checkpoint { origin: ORIGIN.into(), count: 12, head: "ab".repeat(32), time: None, start: None };
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
        Checkpoint { origin: ORIGIN.into(), count: 1, head: String::new(), time: None, start: None }.body()
    }

    /// The time and the start of a file are extension lines of the signed body: an older
    /// checkpoint cannot be passed off as newer, nor one written after any record as the start
    /// of a file; checkpoints without them (the three-line format) still read.
    #[test]
    fn time_and_start_are_signed_extension_lines_and_older_checkpoints_still_read() {
        let (signer, verifier) = Signer::generate("acme-audit").expect("keys");
        let (signer, verifier) =
            (Signer::parse(&signer).expect("signer"), Verifier::parse(&verifier).expect("verifier"));
        let time = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").expect("time").to_utc();
        let anchor = Checkpoint {
            origin: ORIGIN.into(),
            count: 3000,
            head: "cd".repeat(32),
            time: Some(time),
            start: Some(3000),
        };
        let note = signer.sign(&anchor);
        assert!(note.contains("\ntime 2026-11-30T12:00:00Z\nstart 3000\n\n"), "{note}");
        assert_eq!(verifier.open(&note), Ok(anchor.clone()));
        assert_eq!(anchor.age(time + chrono::Duration::hours(5)), Some(chrono::Duration::hours(5)));

        let older = note.replacen("time 2026-11-30T12:00:00Z", "time 2026-12-30T12:00:00Z", 1);
        assert!(verifier.open(&older).expect_err("time altered").contains("altered"));
        let no_start = note.replacen("start 3000\n", "", 1);
        assert!(verifier.open(&no_start).expect_err("start removed").contains("altered"));
        assert_eq!(Checkpoint::parse("keyward.dev/audit\n3\nAAAA\ntime yesterday\n"), None);

        // Written by today's format: three lines, no time, no start.
        let today = Checkpoint::parse("keyward.dev/audit\n12\nq83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n")
            .expect("today's checkpoint");
        assert_eq!((today.count, today.time, today.start), (12, None, None));
        assert_eq!(today.age(time), None);
    }

    #[test]
    fn keys_are_checked_against_their_hash() {
        let (signer, verifier) = Signer::generate("k").expect("keys");
        assert!(Signer::parse(&signer.replacen("+k+", "+j+", 1)).is_err(), "renamed");
        assert!(Verifier::parse(&verifier.replacen("k+", "j+", 1)).is_err(), "renamed");
        assert!(Signer::generate("two words").is_err());
        assert!(Signer::parse(&verifier).is_err(), "a verifier key does not sign");
        let signer = Signer::parse(&signer).expect("signer");
        assert_eq!(signer.verifier(), verifier, "a signer names its own verifier key");
    }

    /// The chart generates the checkpoint key with Helm's `genPrivateKey "ed25519"`: PKCS#8
    /// PEM, which has no key name. It signs under `keyward-audit`, and its verifier checks it.
    #[test]
    fn a_pkcs8_pem_ed25519_key_signs_under_its_fixed_name() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("pkcs8");
        let pem =
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(pkcs8.as_ref()));
        let signer = Signer::parse(&pem).expect("a PEM Ed25519 key");
        let verifier = Verifier::parse(&signer.verifier()).expect("its verifier");
        assert!(signer.verifier().starts_with("keyward-audit+"), "{}", signer.verifier());
        let checkpoint = Checkpoint { origin: ORIGIN.into(), count: 1, head: "ab".repeat(32), time: None, start: None };
        assert_eq!(verifier.open(&signer.sign(&checkpoint)), Ok(checkpoint));

        let other = Ed25519KeyPair::generate_pkcs8(&rng).expect("pkcs8");
        let other = Signer::parse(&pem.replace(&STANDARD.encode(pkcs8.as_ref()), &STANDARD.encode(other.as_ref())))
            .expect("another key");
        assert_ne!(other.verifier(), signer.verifier(), "same name, another key");
        let p256 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(Signer::parse(p256).expect_err("not PKCS#8").contains("not a PKCS#8"));
        let rsa = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode([0u8; 40]));
        assert!(Signer::parse(&rsa).expect_err("not Ed25519").contains("not an Ed25519"));
    }
}
