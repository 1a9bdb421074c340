//! Test support: one real privacyIDEA per test binary, users acting on it, and the keyward
//! binary run on manifest trees.
#![allow(dead_code)]

pub mod cluster;
pub mod crowd;
pub mod failing;
pub mod fault_proxy;
pub mod kube;
pub mod node;
pub mod proxy;
pub mod shown;
pub mod tls;

use serde_json::Value;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Says on the terminal that `test` did not run, and why. The harness shows a returning test as
/// `ok`, and captures what `eprintln!` prints; a write to the process's stderr itself is not
/// captured, so the skip is seen in every run, not only with `--nocapture`.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// A running privacyIDEA started by `scripts/privacyidea.sh start`.
pub struct PrivacyIdea {
    pub env: BTreeMap<String, String>,
}

static SERVER: OnceLock<PrivacyIdea> = OnceLock::new();

/// Starts privacyIDEA once for this test binary (a few seconds once the venv exists). A
/// watcher process stops it when the test binary exits, so no server outlives its tests.
pub fn privacyidea() -> &'static PrivacyIdea {
    SERVER.get_or_init(|| {
        let binary = std::env::current_exe().ok().and_then(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()));
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pi-{}", binary.unwrap_or_default()));
        let env = start_script_server(
            &repo().join("scripts/privacyidea.sh"),
            ("start", "stop"),
            ("KEYWARD_PI_HOME", &home),
            // keyward signs in with it: a canary, which nothing it shows may contain.
            &[("KEYWARD_PI_PASSWORD", shown::PRIVACYIDEA_PASSWORD)],
            &["KEYWARD_PI_PORT"],
        );
        assert!(env.contains_key("KEYWARD_PI_URL"), "no URL from start: {env:?}");
        PrivacyIdea { env }
    })
}

/// Starts a server with `bash SCRIPT UP` (its home in the `home` variable, `env` set, `remove`
/// unset), returns the `KEY=VALUE` lines it printed, and leaves a watcher that runs
/// `SCRIPT DOWN` once this test process has exited, so that no server outlives its tests.
pub fn start_script_server(
    script: &Path,
    (up, down): (&str, &str),
    (home_var, home): (&str, &Path),
    env: &[(&str, &str)],
    remove: &[&str],
) -> BTreeMap<String, String> {
    let mut command = Command::new("bash");
    command.arg(script).arg(up).env(home_var, home).envs(env.iter().copied()).stderr(Stdio::inherit());
    for name in remove {
        command.env_remove(name);
    }
    let output = command.output().unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(output.status.success(), "{} {up} failed", script.display());
    let printed = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let watcher = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; {home_var}='{}' bash '{}' {down}",
        std::process::id(),
        home.display(),
        script.display()
    );
    // Deliberately not waited for: it outlives this process to stop the server.
    let watcher = Command::new("bash")
        .args(["-c", &watcher])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn watcher");
    std::mem::forget(watcher);
    printed
}

/// A token as its user enrolled it; the test keeps the seed to log in like the user.
#[derive(Clone)]
pub struct Token {
    pub serial: String,
    pub kind: String,
    pub otpkey: String,
    pub user: String,
    pub realm: String,
    next_counter: Cell<u64>,
}

impl PrivacyIdea {
    pub fn url(&self) -> &str {
        &self.env["KEYWARD_PI_URL"]
    }

    /// Runs `scripts/pi_users.py ARGS` and returns its JSON.
    pub fn users(&self, args: &[&str]) -> Value {
        let output = Command::new("python3")
            .arg(repo().join("scripts/pi_users.py"))
            .args(args)
            .envs(&self.env)
            .output()
            .expect("run pi_users.py");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "pi_users.py {args:?} failed: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("pi_users.py {args:?}: {e}: {stdout}"))
    }

    pub fn realm(&self, name: &str) {
        self.users(&["realm", name]);
    }

    pub fn add_user(&self, realm: &str, name: &str) {
        self.users(&["user", "add", name, "--realm", realm]);
    }

    pub fn delete_user(&self, realm: &str, name: &str) {
        self.users(&["user", "del", name, "--realm", realm]);
    }

    /// The user enrols a token in self-service.
    pub fn enrol(&self, realm: &str, user: &str, kind: &str) -> Token {
        let v = self.users(&["enrol", user, "--type", kind, "--realm", realm]);
        self.token(v, realm, user, kind)
    }

    /// An admin enrols a token for the user, out of band.
    pub fn admin_enrol(&self, realm: &str, user: &str, kind: &str) -> Token {
        let v = self.users(&["admin-enrol", user, "--type", kind, "--realm", realm]);
        self.token(v, realm, user, kind)
    }

    fn token(&self, v: Value, realm: &str, user: &str, kind: &str) -> Token {
        let start = if kind == "totp" { unix_now() / 30 - 3 } else { 0 };
        Token {
            serial: v["serial"].as_str().expect("serial").to_string(),
            kind: kind.to_string(),
            otpkey: v["otpkey_hex"].as_str().expect("otpkey").to_string(),
            user: user.to_string(),
            realm: realm.to_string(),
            next_counter: Cell::new(start),
        }
    }

    /// Logs in as the token's user with a fresh OTP: `/validate/check`.
    pub fn authenticates(&self, token: &Token) -> bool {
        // privacyIDEA refuses a replayed OTP, and accepts TOTP only a few time steps around
        // now: take the current step unless an earlier check already used it, then step on.
        let mut counter = token.next_counter.get();
        if token.kind == "totp" {
            counter = counter.max(unix_now() / 30 - 1);
        }
        token.next_counter.set(counter + 1);
        let counter = counter.to_string();
        let v = self.users(&[
            "check",
            &token.user,
            "--otpkey",
            &token.otpkey,
            "--type",
            &token.kind,
            "--serial",
            &token.serial,
            "--counter",
            &counter,
            "--realm",
            &token.realm,
        ]);
        v["authenticated"].as_bool().expect("authenticated")
    }

    /// Serials of the realm's tokens, with whether each is active.
    pub fn tokens(&self, realm: &str) -> BTreeMap<String, bool> {
        let v = self.users(&["tokens", "--realm", realm]);
        v.as_array()
            .expect("token list")
            .iter()
            .map(|t| (t["serial"].as_str().unwrap_or_default().to_string(), t["active"].as_bool().unwrap_or(false)))
            .collect()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The company of `examples/acme` on its own realm, each person enrolled as they would
/// themselves. `dave` (Offboarded) has also been removed from the user store already.
pub struct Company {
    pub realm: String,
    pub tokens: BTreeMap<&'static str, Vec<Token>>,
}

impl Company {
    pub fn token(&self, user: &str, kind: &str) -> &Token {
        self.tokens[user].iter().find(|t| t.kind == kind).expect("token")
    }
}

pub fn company(pi: &PrivacyIdea, realm: &str) -> Company {
    pi.realm(realm);
    let people: [(&'static str, &[&str]); 8] = [
        ("alice", &["totp", "hotp"]),
        ("bob", &["totp", "hotp"]),
        ("carol", &["totp"]),
        ("dave", &["totp", "hotp"]),
        ("erin", &["totp"]),
        ("frank", &["totp"]),
        ("grace", &[]),
        ("breakglass", &["totp"]),
    ];
    let mut tokens = BTreeMap::new();
    for (user, kinds) in people {
        pi.add_user(realm, user);
        tokens.insert(user, kinds.iter().map(|k| pi.enrol(realm, user, k)).collect::<Vec<_>>());
    }
    pi.delete_user(realm, "dave");
    Company { realm: realm.to_string(), tokens }
}

/// A copy of `examples/acme` pointed at this privacyIDEA and realm.
pub fn example_tree(pi: &PrivacyIdea, realm: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(repo().join("examples/acme")).expect("examples/acme") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read example");
        let text = text
            .replace("url: http://127.0.0.1:5001", &format!("url: {}", pi.url()))
            .replace("realm: corp", &format!("realm: {realm}"))
            .replace("password: keyward-admin", &format!("password: {}", pi.env["KEYWARD_PI_PASSWORD"]));
        std::fs::write(dir.path().join(path.file_name().expect("name")), text).expect("write");
    }
    dir
}

/// `examples/acme` for the operator tests: its own namespace (so tests do not see each
/// other), realm and privacyIDEA.
pub fn operator_tree(pi: &PrivacyIdea, realm: &str, namespace: &str) -> tempfile::TempDir {
    let dir = example_tree(pi, realm);
    for entry in std::fs::read_dir(dir.path()).expect("tree") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let text = text
            .replace("namespace: acme", &format!("namespace: {namespace}"))
            .replace("name: acme\n", &format!("name: {namespace}\n"));
        std::fs::write(&path, text).expect("write");
    }
    dir
}

/// Replaces `from` by `to` in one file of a tree (a commit to the GitOps repository).
pub fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

pub fn append(dir: &Path, file: &str, yaml: &str) {
    let path = dir.join(file);
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str("\n---\n");
    text.push_str(yaml);
    std::fs::write(&path, text).expect("write");
}

/// Runs the keyward binary; what it printed is kept for the secrets scan ([`shown`]).
pub fn keyward(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_keyward")).args(args).output().expect("run keyward");
    // `audit keygen` prints the key it made: that is its job.
    if args.get(..2) != Some(&["audit", "keygen"]) {
        shown::record("cli", &format!("{}{}", stdout(&output), stderr(&output)));
    }
    output
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `keyward plan -f DIR --output json`: exit code and the parsed plan.
pub fn plan_json(dir: &Path) -> (i32, Value) {
    let o = keyward(&["plan", "-f", dir.to_str().expect("utf-8"), "--output", "json"]);
    let code = o.status.code().unwrap_or(-1);
    let v =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("plan json: {e}: {} {}", stdout(&o), stderr(&o)));
    (code, v)
}

/// `(action, user, kind, reason)` of every action of the first provider, sorted.
pub fn actions(plan: &Value) -> Vec<(String, String, String, String)> {
    let mut list: Vec<_> = plan["providers"][0]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or_default().to_string(),
                a["user"].as_str().unwrap_or_default().to_string(),
                a["kind"].as_str().unwrap_or_default().to_string(),
                a["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    list.sort();
    list
}

/// `keyward apply -f DIR` with the audit log in DIR/audit.jsonl.
pub fn apply(dir: &Path) -> (Output, Vec<Value>) {
    let audit = dir.join("audit.jsonl");
    let o = keyward(&["apply", "-f", dir.to_str().expect("utf-8"), "--audit-log", audit.to_str().expect("utf-8")]);
    let records: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect();
    let _ = std::fs::remove_file(&audit);
    let _ = std::fs::remove_file(dir.join("audit.jsonl.checkpoint"));
    (o, outcomes_after_their_intents(&records))
}

/// The outcome records of a log, after checking that every revocation that reached the
/// provider (revoked, already gone, failed) was announced by an intent earlier in the log.
pub fn outcomes_after_their_intents(records: &[Value]) -> Vec<Value> {
    let key = |r: &Value| (r["provider"].to_string(), r["user"].to_string(), r["enrolment"].to_string());
    let mut announced = Vec::new();
    let mut outcomes = Vec::new();
    for r in records {
        if r["event"] == "intent" {
            announced.push(key(r));
            continue;
        }
        let outcome = r["outcome"].as_str().unwrap_or("");
        // Invitations, approvals and notifications announce no provider call.
        if r["event"] == "outcome" && ["revoked", "already-gone", "failed"].contains(&outcome) {
            let at = announced.iter().position(|k| *k == key(r));
            assert!(at.is_some(), "an outcome without its intent before it: {r}");
            // A failed call's intent stays open until the next read settles it.
            if outcome != "failed" {
                announced.remove(at.unwrap_or_default());
            }
        }
        outcomes.push(r.clone());
    }
    outcomes
}

/// `people` staff, each with one self-enrolled TOTP token on a realm of their own, and the
/// manifests that declare them (Namespace, labelled Secret, MfaProvider `corp-pi`, a TOTP grant
/// for role `staff`, one Employee per person named `<prefix>NN`): for tests and benchmarks at
/// more than the example's seven people.
pub fn staff(pi: &PrivacyIdea, realm: &str, namespace: &str, prefix: &str, people: usize) -> (String, Vec<Token>) {
    pi.realm(realm);
    let mut manifests = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: pi-admin, namespace: {namespace}, labels: {{keyward.dev/credentials: \"true\"}}}}\n\
         stringData: {{username: {admin}, password: {password}}}\n---\n\
         apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp-pi, namespace: {namespace}}}\n\
         spec:\n  privacyidea: {{url: \"{url}\", realm: {realm}, credentials: {{secretRef: {{name: pi-admin}}}}}}\n  userMapping: name\n---\n\
         apiVersion: keyward.dev/v1alpha1\nkind: AccessGrant\nmetadata: {{name: staff-totp, namespace: {namespace}}}\n\
         spec: {{provider: corp-pi, subjects: {{roles: [staff]}}, factors: [totp]}}\n",
        admin = pi.env["KEYWARD_PI_ADMIN"],
        password = pi.env["KEYWARD_PI_PASSWORD"],
        url = pi.url(),
    );
    let mut tokens = Vec::new();
    for i in 0..people {
        let user = format!("{prefix}{i:02}");
        pi.add_user(realm, &user);
        tokens.push(pi.enrol(realm, &user, "totp"));
        manifests.push_str(&format!(
            "---\napiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {{name: {user}, namespace: {namespace}}}\n\
             spec: {{email: {user}@acme.example, roles: [staff]}}\n"
        ));
    }
    (manifests, tokens)
}
