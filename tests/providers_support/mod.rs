//! Shared by the `providers_*` tests: stateful fakes of the SaaS providers on a loopback
//! wiremock server, manifest trees for one company, the keyward binary, and JWT checks.
#![allow(dead_code)]

#[path = "../support/failing.rs"]
mod failing;
pub use failing::failing_server;
#[path = "../support/fault_proxy.rs"]
mod fault_proxy;
pub use fault_proxy::FaultProxy;
#[path = "../support/shown.rs"]
pub mod shown;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward::providers::jwt::pem_blocks;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const RSA_KEY: &str = include_str!("test-rsa.pem");
pub const CERTIFICATE: &str = include_str!("test-cert.pem");

/// A provider's state and the function that answers requests from it.
pub struct Fake<S> {
    pub state: Arc<Mutex<S>>,
    handler: fn(&mut S, &Request) -> ResponseTemplate,
}

impl<S: Send + 'static> Respond for Fake<S> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().expect("state");
        (self.handler)(&mut state, request)
    }
}

/// Starts a loopback server answering every request from `state` through `handler`.
pub async fn serve<S: Send + 'static>(
    state: S,
    handler: fn(&mut S, &Request) -> ResponseTemplate,
) -> (MockServer, Arc<Mutex<S>>) {
    let server = MockServer::start().await;
    let state = Arc::new(Mutex::new(state));
    Mock::given(wiremock::matchers::any()).respond_with(Fake { state: state.clone(), handler }).mount(&server).await;
    (server, state)
}

pub fn json(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

pub fn query(request: &Request, key: &str) -> Option<String> {
    request.url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// `http://host:port` as the client addressed the server (wiremock's own URL says localhost).
pub fn base(request: &Request) -> String {
    format!("http://{}", header(request, "host"))
}

pub fn header(request: &Request, name: &str) -> String {
    request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Path segments, percent-decoded.
pub fn segments(request: &Request) -> Vec<String> {
    request.url.path_segments().map(|s| s.map(percent_decode).collect()).unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub fn form(request: &Request) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(&request.body).into_owned().collect()
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// Verifies an RS256 JWT against the test key and returns its claims.
pub fn verify_rs256(jwt: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWS".into());
    }
    let (_, der) = pem_blocks(RSA_KEY)?.into_iter().next().ok_or("no key")?;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| e.to_string())?;
    use ring::signature::KeyPair;
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        pair.public_key().as_ref(),
    );
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).map_err(|e| e.to_string())?;
    public
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "bad signature".to_string())?;
    let decode = |p: &str| -> Result<Value, String> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    };
    Ok((decode(parts[0])?, decode(parts[1])?))
}

/// Indents a PEM (or any multi-line text) as a YAML block scalar under `key:`.
pub fn yaml_block(key: &str, text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let body: String = text.lines().map(|l| format!("{pad}  {l}\n")).collect();
    format!("{pad}{key}: |\n{body}")
}

/// A manifest tree for Acme on one provider: `provider` is the `spec:` block of the
/// MfaProvider (indented two spaces), `secret` the Secret's `stringData` lines. Alice (sre)
/// and Bob (dev) are active and entitled to `kept`; Dave (sre) has left.
pub fn company(provider: &str, secret: &str, kept: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "\
apiVersion: keyward.dev/v1alpha1
kind: MfaProvider
metadata: {{name: corp, namespace: acme}}
spec:
{provider}
  policy:
    budget: {{maxRevocations: 10}}
---
apiVersion: v1
kind: Secret
metadata: {{name: corp-admin, namespace: acme, labels: {{keyward.dev/credentials: \"true\"}}}}
stringData:
{secret}
---
apiVersion: keyward.dev/v1alpha1
kind: AccessGrant
metadata: {{name: staff, namespace: acme}}
spec:
  provider: corp
  subjects: {{roles: [sre, dev]}}
  factors: [{kept}]
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {{name: alice, namespace: acme}}
spec: {{email: alice@acme.example, roles: [sre]}}
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {{name: bob, namespace: acme}}
spec: {{email: bob@acme.example, roles: [dev]}}
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {{name: dave, namespace: acme}}
spec: {{email: dave@acme.example, roles: [sre], state: Offboarded}}
"
    );
    std::fs::write(dir.path().join("acme.yaml"), text).expect("write tree");
    dir
}

/// Runs the keyward binary off the async runtime (the fake answers on it meanwhile); what it
/// printed is kept for the secrets scan ([`shown`]).
pub async fn keyward(args: Vec<String>) -> Output {
    // The test RSA key signs Entra's and Google's client assertions: a credential of theirs.
    static KEY_REGISTERED: std::sync::Once = std::sync::Once::new();
    KEY_REGISTERED.call_once(|| shown::secret(&pem_body(RSA_KEY)));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_keyward")).args(&args).output().expect("run")
    })
    .await
    .expect("join");
    shown::record(
        "cli",
        &format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    );
    output
}

/// A PEM's base64 lines, without its BEGIN and END lines (those are the same in every key).
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().join("\n")
}

/// `keyward plan --output json`: exit code and plan.
pub async fn plan(dir: &Path) -> (i32, Value) {
    let o =
        keyward(vec!["plan".into(), "-f".into(), dir.display().to_string(), "--output".into(), "json".into()]).await;
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("plan json: {e}: {} {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    });
    (o.status.code().unwrap_or(-1), v)
}

/// `keyward apply` with the audit log in the tree: exit code, audit records, stderr.
pub async fn apply(dir: &Path) -> (i32, Vec<Value>, String) {
    let audit = dir.join("audit.jsonl");
    let o = keyward(vec![
        "apply".into(),
        "-f".into(),
        dir.join("acme.yaml").display().to_string(),
        "--audit-log".into(),
        audit.display().to_string(),
    ])
    .await;
    let records = std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("audit line"))
        // Outcomes: the write-ahead intents before them are checked in tests/privacyidea.rs.
        .filter(|r| r["event"] != "intent")
        .collect();
    shown::record_audit(&audit);
    let _ = std::fs::remove_file(&audit);
    (o.status.code().unwrap_or(-1), records, String::from_utf8_lossy(&o.stderr).to_string())
}

/// `(action, user, kind, reason)` of every action of the plan's first provider, sorted.
pub fn actions(plan: &Value) -> Vec<(String, String, String, String)> {
    let mut list: Vec<_> = plan["providers"][0]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
            (s("action"), s("user"), s("kind"), s("reason"))
        })
        .collect();
    list.sort();
    list
}

pub fn revoke(user: &str, kind: &str, reason: &str) -> (String, String, String, String) {
    ("revoke".into(), user.into(), kind.into(), reason.into())
}

/// The same tree with the provider's URLs pointed at `url` (an outage).
pub fn retarget(dir: &Path, from: &str, to: &str) {
    let path = dir.join("acme.yaml");
    let text = std::fs::read_to_string(&path).expect("read").replace(from, to);
    std::fs::write(path, text).expect("write");
}

/// The outage scenario shared by every provider: the provider answers 503 to everything;
/// `plan` and `apply` fail and nothing is revoked.
pub async fn outage_revokes_nothing(dir: &Path, url: &str) {
    retarget(dir, url, &failing_server(503));
    let (code, plan) = plan(dir).await;
    assert_eq!(code, 1, "{plan}");
    assert!(plan["providers"][0]["actions"].as_array().is_none_or(|a| a.is_empty()), "{plan}");
    let (code, audit, stderr) = apply(dir).await;
    assert_ne!(code, 0, "{stderr}");
    assert!(audit.is_empty(), "an outage revokes nothing: {audit:?}");
}

/// The fault schedule's seed: `KEYWARD_CHAOS_SEED` to replay a failure, else the clock.
pub fn seed() -> u64 {
    std::env::var("KEYWARD_CHAOS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").subsec_nanos())
    })
}

/// Appends `count` people who have left (`leaver00@acme.example`, …, role sre) to the tree
/// and lifts the revocation budget above them, for the fault scenario; their names, in order.
pub fn add_leavers(dir: &Path, count: usize) -> Vec<String> {
    let path = dir.join("acme.yaml");
    let mut text = std::fs::read_to_string(&path).expect("read").replace("maxRevocations: 10", "maxRevocations: 1000");
    let names: Vec<String> = (0..count).map(|i| format!("leaver{i:02}")).collect();
    for name in &names {
        text.push_str(&format!(
            "---\napiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {{name: {name}, namespace: acme}}\nspec: {{email: {name}@acme.example, roles: [sre], state: Offboarded}}\n"
        ));
    }
    std::fs::write(path, text).expect("write tree");
    names
}

/// What the fault scenario reads off a provider's fake, as (user, enrolment id): every
/// enrolment the declared state keeps, and every one it does not (the leavers', the
/// unentitled).
pub struct Holdings {
    pub kept: Vec<(String, String)>,
    pub left: Vec<(String, String)>,
}

/// The provider-faults scenario of the reliability suite, for a SaaS provider's
/// fake at `url`: `scripts/fault_proxy.py` in front of it fails 30 % of the requests (5xx, 429
/// with and without a hint, held requests, resets before and mid-body, truncated JSON, short
/// pages, empty 200s, 401s) while `keyward apply` runs again and again on one audit log.
/// After every run no kept enrolment is gone; once faults stop, one more run leaves none of
/// the leavers' enrolments, every one of them has exactly one final audit record (`revoked`
/// or `already-gone`: a delete whose answer was broken is confirmed by the next run's
/// re-read), and `keyward audit verify` passes.
pub async fn faults_revoke_every_leaver_and_nothing_kept(
    dir: &Path,
    url: &str,
    seed: u64,
    holdings: impl Fn() -> Holdings,
) -> String {
    const RUNS: usize = 8;
    let before = holdings();
    assert!(!before.left.is_empty() && !before.kept.is_empty(), "the scenario needs both kinds of enrolment");
    let proxy = tokio::task::block_in_place(|| FaultProxy::start(url, 0.3, seed));
    retarget(dir, url, &proxy.url());
    let audit = dir.join("faults-audit.jsonl");
    let apply = || {
        keyward(vec![
            "apply".into(),
            "-f".into(),
            dir.join("acme.yaml").display().to_string(),
            "--audit-log".into(),
            audit.display().to_string(),
        ])
    };
    let mut failed_runs = 0;
    for run in 0..RUNS {
        let out = apply().await;
        failed_runs += usize::from(!out.status.success());
        let now = holdings();
        let wrong: Vec<&(String, String)> = before.kept.iter().filter(|id| !now.kept.contains(id)).collect();
        assert!(wrong.is_empty(), "run {run} (seed {seed}) revoked kept enrolments {wrong:?}");
    }
    let faults = tokio::task::block_in_place(|| proxy.faults_by_kind());
    let injected: u64 = faults.iter().map(|(_, n)| n).sum();
    tokio::task::block_in_place(|| proxy.set_rate(0.0));
    let last = apply().await;
    assert!(last.status.success(), "the run after the faults: {}", String::from_utf8_lossy(&last.stderr));
    let after = holdings();
    assert!(after.left.is_empty(), "leavers' enrolments left after the faults (seed {seed}): {:?}", after.left);
    assert_eq!(after.kept.len(), before.kept.len(), "kept enrolments (seed {seed})");

    let verified = keyward(vec!["audit".into(), "verify".into(), audit.display().to_string()]).await;
    assert!(verified.status.success(), "audit verify: {}", String::from_utf8_lossy(&verified.stderr));
    let records: Vec<Value> = std::fs::read_to_string(&audit)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line"))
        .collect();
    for (user, id) in &before.left {
        let finals = records
            .iter()
            // Entra ID's enrolment ids name the collection a method is deleted from:
            // `phoneMethods/<id>`.
            .filter(|r| {
                let enrolment = r["enrolment"].as_str().unwrap_or_default();
                let named = enrolment == id || enrolment.ends_with(&format!("/{id}"));
                r["event"] == "outcome" && r["user"] == user.as_str() && named
            })
            .filter(|r| r["outcome"] == "revoked" || r["outcome"] == "already-gone")
            .count();
        assert_eq!(finals, 1, "final audit records of {user}'s {id} (seed {seed})");
    }
    let summary = format!(
        "faults seed={seed} runs={} failed_runs={failed_runs} faults={injected} by_kind={faults:?} revoked={} kept={}",
        RUNS + 1,
        before.left.len(),
        before.kept.len()
    );
    eprintln!("{summary}");
    assert!(injected > 0, "{summary}");
    summary
}
