//! Secrets never shown, across the whole suite.
//!
//! Every credential the tests hand to keyward is recognisable: a canary below (it starts with
//! [`CANARY`]), or a value the test registers with [`secret`] (a key Keycloak generated, the
//! test RSA key's lines). Everything keyward shows — each CLI run's stdout and stderr, each
//! operator's log and `/metrics`, the Events and every keyward object (status included) of
//! its namespace when it stops, its audit lines — is kept under `target/tmp/shown/`. After
//! the whole suite, `scripts/secrets_shown.py` searches all of it for every secret and its
//! base64 (`scripts/test.sh` runs it; a find names the file and line).
//!
//! The files are test output, never read back by a test: a test cannot see what other test
//! binaries recorded, and the check must come after all of them.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What every canary starts with. The scanner looks for it (and its base64 at any alignment)
/// whether or not a test registered the value.
pub const CANARY: &str = "kwCANARY-";

/// privacyIDEA's local admin password (the test server is set up with it).
pub const PRIVACYIDEA_PASSWORD: &str = "kwCANARY-privacyidea-admin-password";
/// Okta's SSWS API token.
pub const OKTA_TOKEN: &str = "kwCANARY-okta-ssws-api-token-00ab";
/// Entra ID's client secret.
pub const ENTRA_SECRET: &str = "kwCANARY-entra-client-secret-Q8";
/// Duo's Admin API secret key (40 characters, as Duo's are).
pub const DUO_SKEY: &str = "kwCANARY-duo-admin-api-secret-key-0f3a9c";
/// A Keycloak client secret (the fake of tests/support/keycloak_mock.rs has its own).
pub const KEYCLOAK_SECRET: &str = "kwCANARY-keycloak-client-secret";
/// The real Keycloak's bootstrap admin password (the test server is started with it).
pub const KEYCLOAK_BOOTSTRAP_PASSWORD: &str = "kwCANARY-keycloak-bootstrap-admin";
/// A bearer token for an audit collector or webhook.
pub const BEARER: &str = "kwCANARY-collector-bearer-token";
/// A webhook HMAC key.
pub const HMAC_KEY: &str = "kwCANARY-webhook-hmac-key";

/// `target/tmp/shown` (`scripts/test.sh` empties it before the suite).
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shown")
}

fn binary() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
        .unwrap_or_else(|| "test".into())
}

/// Keeps `text`, something keyward showed, for the scan after the suite. `kind` says what it
/// is (`cli`, `operator-log`, `metrics`, `objects`, `audit`); the scanner requires each.
pub fn record(kind: &str, text: &str) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if text.is_empty() {
        return;
    }
    let dir = dir();
    let _ = std::fs::create_dir_all(&dir);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{kind}.{}.{}.{n}.txt", binary(), std::process::id()));
    // Best effort: a full disk must not fail the test that only wanted to run keyward; the
    // scanner refuses a run that recorded too little.
    let _ = std::fs::write(path, text);
}

/// Registers a secret a test did not choose (so it is no canary): each of its lines of 16
/// characters or more becomes a needle. Shorter lines would match by chance.
pub fn secret(value: &str) {
    let dir = dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("needles.{}.{}.txt", binary(), std::process::id()));
    let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) else {
        return;
    };
    for line in value.lines().map(str::trim).filter(|l| l.len() >= 16) {
        let _ = writeln!(file, "{line}");
    }
}

/// Every file whose name starts with `path`'s (an audit log and its rotated or peer files),
/// recorded as `audit`.
pub fn record_audit(path: &Path) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let name = name.to_string_lossy().to_string();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&name)
            && let Ok(text) = std::fs::read_to_string(entry.path())
        {
            record("audit", &text);
        }
    }
}
