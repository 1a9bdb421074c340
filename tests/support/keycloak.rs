//! One real Keycloak per test binary (`scripts/keycloak.sh up`), one realm per test
//! (`scripts/keycloak.sh realm`), and people acting on it the way they do: TOTP enrolled
//! through Keycloak's own required-action pages, logins with password and TOTP code through
//! the realm's token endpoint. TOTP codes are computed here (RFC 6238).
//!
//! Included as `#[path = "support/keycloak.rs"] mod kc;` beside `mod support;`.
#![allow(dead_code)]

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Where the test users are sent back to after logging in (nothing listens there: the code
/// in the redirect is all a test needs).
const CALLBACK: &str = "http://127.0.0.1/callback";

use crate::support::repo;

/// A running Keycloak started by `scripts/keycloak.sh up`.
pub struct Keycloak {
    pub env: BTreeMap<String, String>,
    home: PathBuf,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

static SERVER: OnceLock<Keycloak> = OnceLock::new();

/// Starts Keycloak once for this test binary (about a minute on a busy machine). A watcher
/// process stops it when the test binary exits, so no server outlives its tests.
pub fn keycloak() -> &'static Keycloak {
    SERVER.get_or_init(|| {
        let binary = std::env::current_exe().ok().and_then(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()));
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kc-{}", binary.unwrap_or_default()));
        let started = std::time::Instant::now();
        let env = crate::support::start_script_server(
            &repo().join("scripts/keycloak.sh"),
            ("up", "down"),
            ("KEYWARD_KC_HOME", &home),
            // The bootstrap admin keyward may sign in as: a canary.
            &[
                ("KEYWARD_KC_NO_REALM", "1"),
                ("KEYWARD_KC_PASSWORD", crate::support::shown::KEYCLOAK_BOOTSTRAP_PASSWORD),
            ],
            &["KEYWARD_KC_PORT"],
        );
        eprintln!("[keycloak] up in {:.0?}", started.elapsed());
        assert!(env.contains_key("KEYWARD_KC_URL"), "no URL from up: {env:?}");
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        // Redirects are the login pages' protocol: the tests follow them by hand.
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("HTTP client");
        Keycloak { env, home, runtime, http }
    })
}

/// Tests that use the shared server hold [`shared`]; one that stops the server holds
/// [`exclusive`], so that no other test meets a stopped Keycloak.
static GATE: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(|e| e.into_inner())
}

pub fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    GATE.write().unwrap_or_else(|e| e.into_inner())
}

/// A realm set up by `scripts/keycloak.sh realm`: keyward's confidential client and a login
/// flow that requires password and OTP.
pub struct Realm {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
}

/// A TOTP credential as its user enrolled it: the test keeps the secret, as the user's phone
/// does.
pub struct Totp {
    pub realm: String,
    pub user: String,
    secret: String,
}

impl Totp {
    pub fn code(&self) -> String {
        totp_code(self.secret.as_bytes(), unix_now() / 30)
    }
}

/// An HTTP answer: status, headers that matter here, body.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub cookies: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        if self.body.is_empty() { Value::Null } else { serde_json::from_str(&self.body).unwrap_or(Value::Null) }
    }
}

impl Keycloak {
    pub fn url(&self) -> &str {
        &self.env["KEYWARD_KC_URL"]
    }

    pub fn admin_name(&self) -> &str {
        &self.env["KEYWARD_KC_ADMIN"]
    }

    pub fn admin_password(&self) -> &str {
        &self.env["KEYWARD_KC_PASSWORD"]
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Sends `signal` to the server's process group (kc.sh and its java; `up` starts it with
    /// setsid). STOP: the process is there and answers nothing; CONT: it goes on.
    pub fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.home.join("server.pid")).expect("server.pid");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), "--", &format!("-{}", pid.trim())])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Sends one request; `form` is URL-encoded, `json` sent as JSON.
    pub fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        bearer: Option<&str>,
        body: Body,
        cookies: &[(String, String)],
    ) -> Answer {
        self.runtime.block_on(async {
            let mut request = self.http.request(method.clone(), url);
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            if !cookies.is_empty() {
                let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
                request = request.header("Cookie", header.join("; "));
            }
            request = match body {
                Body::None => request,
                Body::Form(pairs) => request.form(&pairs),
                Body::Json(value) => request.json(&value),
            };
            let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = response.status().as_u16();
            let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from);
            let cookies = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|c| c.split(';').next()?.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            let body = response.text().await.unwrap_or_default();
            Answer { status, location, cookies, body }
        })
    }

    /// A master-realm admin token (they live 60 s: one per call batch).
    pub fn admin_token(&self) -> String {
        let answer = self.call(
            reqwest::Method::POST,
            &format!("{}/realms/master/protocol/openid-connect/token", self.url()),
            None,
            Body::form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", self.admin_name()),
                ("password", self.admin_password()),
            ]),
            &[],
        );
        assert_eq!(answer.status, 200, "admin token: {}", answer.body);
        answer.json()["access_token"].as_str().expect("access_token").to_string()
    }

    /// One Admin REST call as the master admin; `path` is under `/admin/realms`.
    pub fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let token = self.admin_token();
        let body = body.map_or(Body::None, Body::Json);
        self.call(method, &format!("{}/admin/realms{path}", self.url()), Some(&token), body, &[])
    }

    /// A new realm with keyward's client and the password + OTP login flow.
    pub fn realm(&self, name: &str) -> Realm {
        let output = Command::new("bash")
            .arg(repo().join("scripts/keycloak.sh"))
            .args(["realm", name])
            .env("KEYWARD_KC_HOME", &self.home)
            .env("KEYWARD_KC_PASSWORD", self.admin_password())
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/keycloak.sh realm");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "scripts/keycloak.sh realm {name} failed: {text}");
        let value =
            |key: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).expect(key).trim().to_string();
        // Keycloak made it: register it for the secrets scan.
        crate::support::shown::secret(&value("KEYWARD_KC_CLIENT_SECRET"));
        Realm {
            name: value("KEYWARD_KC_REALM"),
            client_id: value("KEYWARD_KC_CLIENT_ID"),
            client_secret: value("KEYWARD_KC_CLIENT_SECRET"),
        }
    }

    /// A user with password `<name>-password`, e-mail `<name>@acme.example`, asked to set up
    /// TOTP at the first login; returns the id.
    pub fn add_user(&self, realm: &str, name: &str) -> String {
        self.add_user_asked(realm, name, &["CONFIGURE_TOTP"])
    }

    /// A user asked for `required_actions` at the first login.
    pub fn add_user_asked(&self, realm: &str, name: &str, required_actions: &[&str]) -> String {
        self.add_user_full(realm, name, &format!("{name}@acme.example"), required_actions)
    }

    /// A user with the e-mail address `email`, asked for `required_actions`.
    pub fn add_user_full(&self, realm: &str, name: &str, email: &str, required_actions: &[&str]) -> String {
        let user = json!({
            "username": name, "email": email, "emailVerified": true, "enabled": true,
            "firstName": name, "lastName": "Example", "requiredActions": required_actions,
            "credentials": [{"type": "password", "value": password(name), "temporary": false}],
        });
        let answer = self.admin(reqwest::Method::POST, &format!("/{realm}/users"), Some(user));
        assert_eq!(answer.status, 201, "create {name}: {}", answer.body);
        self.user_id(realm, name).expect("created user")
    }

    pub fn user_id(&self, realm: &str, name: &str) -> Option<String> {
        let answer = self.admin(reqwest::Method::GET, &format!("/{realm}/users?username={name}&exact=true"), None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json().as_array()?.first()?["id"].as_str().map(String::from)
    }

    pub fn delete_user(&self, realm: &str, name: &str) {
        let id = self.user_id(realm, name).expect("user to delete");
        let answer = self.admin(reqwest::Method::DELETE, &format!("/{realm}/users/{id}"), None);
        assert_eq!(answer.status, 204, "{}", answer.body);
    }

    /// The user's credentials as the Admin REST API lists them.
    pub fn credentials(&self, realm: &str, name: &str) -> Vec<Value> {
        let Some(id) = self.user_id(realm, name) else { return vec![] };
        let answer = self.admin(reqwest::Method::GET, &format!("/{realm}/users/{id}/credentials"), None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json().as_array().cloned().unwrap_or_default()
    }

    /// Ids of the user's OTP credentials.
    pub fn otp_ids(&self, realm: &str, name: &str) -> Vec<String> {
        self.credentials(realm, name)
            .iter()
            .filter(|c| c["type"] == "otp")
            .filter_map(|c| c["id"].as_str().map(String::from))
            .collect()
    }

    /// The user's required actions.
    pub fn required_actions(&self, realm: &str, name: &str) -> Vec<String> {
        let id = self.user_id(realm, name).expect("user");
        let answer = self.admin(reqwest::Method::GET, &format!("/{realm}/users/{id}"), None);
        serde_json::from_value(answer.json()["requiredActions"].clone()).unwrap_or_default()
    }

    /// The user opens `client`'s login page in a browser and submits user name and password;
    /// the page Keycloak shows next (redirects followed), or the redirect back to the
    /// application when it asks for nothing more.
    fn after_password(&self, realm: &str, client: &str, user: &str) -> Browser<'_> {
        let mut browser = Browser { kc: self, cookies: Vec::new(), page: None };
        let auth = format!(
            "{}/realms/{realm}/protocol/openid-connect/auth?client_id={client}&response_type=code&scope=openid&redirect_uri={}",
            self.url(),
            url_encode(CALLBACK)
        );
        let page = browser.get(&auth);
        assert_eq!(page.status, 200, "login page: {}", page.body);
        let login = form_action(&page.body).expect("login form");
        browser.submit(&login, &[("username", user), ("password", &password(user)), ("credentialId", "")]);
        browser
    }

    /// The user logs in through the realm's login page, as a browser would, and completes
    /// the required action CONFIGURE_TOTP: reads the secret the page offers (as a phone scans
    /// it) and confirms it with a code. The admin API cannot create OTP credentials.
    pub fn enrol_totp(&self, realm: &str, user: &str) -> Totp {
        let mut browser = self.after_password(realm, "login", user);
        let page = browser.page.take().unwrap_or_else(|| panic!("{user} was not asked to set up TOTP"));
        let secret = input_value(&page.body, "totpSecret").expect("the page offers a TOTP secret");
        let action = form_action(&page.body).expect("TOTP form");
        let code = totp_code(secret.as_bytes(), unix_now() / 30);
        browser.submit(&action, &[("totp", &code), ("totpSecret", &secret), ("userLabel", "phone")]);
        browser.assert_back(&format!("{user}'s TOTP set-up"));
        Totp { realm: realm.to_string(), user: user.to_string(), secret }
    }

    /// The user logs in with the `recovery-login` client (password, then a recovery code) and,
    /// having no recovery codes, is asked to set them up (CONFIGURE_RECOVERY_AUTHN_CODES):
    /// notes the codes the page shows and confirms having saved them.
    pub fn enrol_recovery_codes(&self, realm: &str, user: &str) -> RecoveryCodes {
        let mut browser = self.after_password(realm, "recovery-login", user);
        let page = browser.page.take().unwrap_or_else(|| panic!("{user} was not asked to set up recovery codes"));
        let codes = input_value(&page.body, "generatedRecoveryAuthnCodes").expect("the page shows the codes");
        let generated = input_value(&page.body, "generatedAt").expect("generatedAt");
        let action = form_action(&page.body).expect("recovery codes form");
        browser.submit(
            &action,
            &[
                ("generatedRecoveryAuthnCodes", &codes),
                ("generatedAt", &generated),
                ("userLabel", "Recovery codes"),
                ("kcRecoveryCodesConfirmationCheck", "on"),
            ],
        );
        browser.assert_back(&format!("{user}'s recovery codes set-up"));
        let codes: Vec<String> = codes.split(',').map(String::from).collect();
        RecoveryCodes { realm: realm.to_string(), user: user.to_string(), codes, used: Default::default() }
    }

    /// Logs in with password and the next unused recovery code through the `recovery-login`
    /// client's pages; the reason when refused (a user without recovery codes is sent to set
    /// them up instead of being asked for one).
    pub fn recovery_login(&self, codes: &RecoveryCodes) -> Result<(), String> {
        let mut browser = self.after_password(&codes.realm, "recovery-login", &codes.user);
        let Some(page) = browser.page.take() else { return Err("not asked for a recovery code".into()) };
        if !page.body.contains("name=\"recoveryCodeInput\"") {
            return Err(format!("not asked for a recovery code: {}", page.location.unwrap_or_default()));
        }
        // Keycloak asks for the codes in order ("Recovery code #1", #2, …); each works once.
        let index = codes.used.fetch_add(1, Ordering::SeqCst);
        let code = codes.codes.get(index).ok_or("every code used")?;
        let action = form_action(&page.body).ok_or("no recovery code form")?;
        let answer = browser.submit(&action, &[("recoveryCodeInput", code), ("login", "Sign In")]);
        match answer {
            Some(location) if location.starts_with(CALLBACK) && location.contains("code=") => Ok(()),
            other => Err(format!("refused: {other:?}")),
        }
    }

    /// Logs in with password and the current TOTP code at the realm's token endpoint (the
    /// realm's direct grant flow requires both); the error when refused.
    pub fn login(&self, totp: &Totp) -> Result<(), String> {
        let answer = self.call(
            reqwest::Method::POST,
            &format!("{}/realms/{}/protocol/openid-connect/token", self.url(), totp.realm),
            None,
            Body::form(&[
                ("grant_type", "password"),
                ("client_id", "login"),
                ("username", &totp.user),
                ("password", &password(&totp.user)),
                ("totp", &totp.code()),
            ]),
            &[],
        );
        if answer.status == 200 && answer.json()["access_token"].is_string() {
            Ok(())
        } else {
            Err(format!("{} {}", answer.status, answer.body))
        }
    }

    pub fn logs_in(&self, totp: &Totp) -> bool {
        self.login(totp).is_ok()
    }
}

/// A recovery-codes credential as its user set it up: the codes the user saved.
pub struct RecoveryCodes {
    pub realm: String,
    pub user: String,
    codes: Vec<String>,
    used: AtomicUsize,
}

/// One browser session on Keycloak's login pages: its cookies, and the page it shows.
struct Browser<'k> {
    kc: &'k Keycloak,
    cookies: Vec<(String, String)>,
    /// The last page shown (200), if the last step did not lead back to the application.
    page: Option<Answer>,
}

impl Browser<'_> {
    fn keep(&mut self, answer: &Answer) {
        for (k, v) in &answer.cookies {
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.clone(), v.clone()));
            }
        }
    }

    fn get(&mut self, url: &str) -> Answer {
        let answer = self.kc.call(reqwest::Method::GET, url, None, Body::None, &self.cookies);
        self.keep(&answer);
        answer
    }

    /// Posts a form and follows Keycloak's redirects to the next page; returns the redirect
    /// back to the application when it ends there (then there is no page).
    fn submit(&mut self, action: &str, fields: &[(&str, &str)]) -> Option<String> {
        let mut answer = self.kc.call(reqwest::Method::POST, action, None, Body::form(fields), &self.cookies);
        self.keep(&answer);
        self.page = None;
        while answer.status == 302 {
            let next = answer.location.clone().expect("location");
            if next.starts_with(CALLBACK) {
                return Some(next);
            }
            answer = self.get(&next);
        }
        assert_eq!(answer.status, 200, "{action}: {}", answer.body.chars().take(500).collect::<String>());
        self.page = Some(answer);
        None
    }

    fn assert_back(&self, what: &str) {
        if let Some(page) = &self.page {
            panic!("{what} not accepted: {}", page.body.chars().take(500).collect::<String>());
        }
    }
}

pub enum Body {
    None,
    Form(Vec<(String, String)>),
    Json(Value),
}

impl Body {
    pub fn form(pairs: &[(&str, &str)]) -> Body {
        Body::Form(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }
}

pub fn password(user: &str) -> String {
    format!("{user}-password")
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&quot;", "\"").replace("&#39;", "'")
}

/// The `action` of the page's first form.
fn form_action(html: &str) -> Option<String> {
    let start = html.find("<form")?;
    let rest = &html[start..];
    let at = rest.find("action=\"")? + "action=\"".len();
    let end = rest[at..].find('"')?;
    Some(unescape(&rest[at..at + end]))
}

/// The value of the input named `name`.
fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let end = tag[v..].find('"')?;
    Some(unescape(&tag[v..v + end]))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// RFC 6238 TOTP (HMAC-SHA1, 6 digits) for time step `step`, RFC 4226's dynamic truncation.
/// Keycloak keys the HMAC with the secret's bytes as its set-up page holds them (the QR code
/// carries their base32).
pub fn totp_code(secret: &[u8], step: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value =
        u32::from_be_bytes([digest[offset], digest[offset + 1], digest[offset + 2], digest[offset + 3]]) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

/// What happens when the proxy trips.
#[derive(Clone)]
enum Stop {
    /// Keycloak is gone: every open connection is closed, new ones are refused.
    Crash,
    /// Runs the hook (which stops Keycloak's process), then forwards as before: the server is
    /// there and answers nothing.
    Hook(Arc<dyn Fn() + Send + Sync>),
}

/// A TCP proxy in front of Keycloak that stops it when the `trip_at`-th request containing
/// `pattern` reaches it: mid-sweep, at a point a test chooses. Plain HTTP on loopback, so the
/// request line can be read.
pub struct StopProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
    /// Request lines (`GET /path?query`) and status codes as they passed, in order.
    exchanges: Arc<Mutex<Vec<String>>>,
}

impl StopProxy {
    /// Keycloak crashes at the trip: connections closed, new ones refused.
    pub fn start(upstream: SocketAddr, pattern: &str, trip_at: usize) -> StopProxy {
        StopProxy::with(upstream, pattern, trip_at, Stop::Crash)
    }

    /// `hook` runs at the trip (before that request is forwarded); nothing else changes.
    pub fn hooked(
        upstream: SocketAddr,
        pattern: &str,
        trip_at: usize,
        hook: impl Fn() + Send + Sync + 'static,
    ) -> StopProxy {
        StopProxy::with(upstream, pattern, trip_at, Stop::Hook(Arc::new(hook)))
    }

    fn with(upstream: SocketAddr, pattern: &str, trip_at: usize, stop: Stop) -> StopProxy {
        let crash = matches!(stop, Stop::Crash);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let down = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let exchanges: Arc<Mutex<Vec<String>>> = Arc::default();
        let (d, s, pattern, log) = (down.clone(), seen.clone(), pattern.as_bytes().to_vec(), exchanges.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if crash && d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else { continue };
                {
                    let mut open = open.lock().expect("registry");
                    open.push(client.try_clone().expect("clone"));
                    open.push(server.try_clone().expect("clone"));
                }
                let trip = Trip {
                    pattern: pattern.clone(),
                    at: trip_at,
                    seen: s.clone(),
                    down: d.clone(),
                    open: open.clone(),
                    stop: stop.clone(),
                };
                forward(client_read, server, Some(trip), log.clone());
                forward(server_read, client, None, log.clone());
            }
        });
        StopProxy { addr, down, seen, exchanges }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// `(request line, status)` of every exchange so far: one request at a time (a caller
    /// that waits for each answer), as the comparison with the mock needs.
    pub fn exchanges(&self) -> Vec<(String, u16)> {
        let log = self.exchanges.lock().expect("log");
        let mut pairs = Vec::new();
        let mut request: Option<String> = None;
        for line in log.iter() {
            if let Some(status) = line.strip_prefix("HTTP/1.1 ") {
                let code = status.split(' ').next().and_then(|c| c.parse().ok()).unwrap_or(0);
                pairs.push((request.take().unwrap_or_default(), code));
            } else {
                request = Some(line.trim_end_matches(" HTTP/1.1").to_string());
            }
        }
        pairs
    }

    /// Keycloak is back.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
        self.seen.store(0, Ordering::SeqCst);
    }
}

struct Trip {
    pattern: Vec<u8>,
    at: usize,
    seen: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Stop,
}

fn forward(mut from: TcpStream, mut to: TcpStream, trip: Option<Trip>, log: Arc<Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(t) = &trip {
                let hit = buf[..n].windows(t.pattern.len()).any(|w| w == t.pattern.as_slice());
                let trips =
                    hit && t.seen.fetch_add(1, Ordering::SeqCst) + 1 >= t.at && !t.down.swap(true, Ordering::SeqCst);
                if let (Stop::Hook(hook), true) = (&t.stop, trips) {
                    hook();
                }
                if matches!(t.stop, Stop::Crash) && (trips || t.down.load(Ordering::SeqCst)) {
                    // Keycloak stops: this request is never answered, nothing stays open.
                    for stream in t.open.lock().expect("registry").drain(..) {
                        let _ = stream.shutdown(Shutdown::Both);
                    }
                    break;
                }
            }
            let first_line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string();
            let is_request = ["GET ", "POST ", "PUT ", "DELETE "].iter().any(|m| first_line.starts_with(m));
            if is_request || first_line.starts_with("HTTP/1.1 ") {
                log.lock().expect("log").push(first_line);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

#[cfg(test)]
mod tests {
    /// RFC 6238 appendix B, SHA-1 (8 digits there; the last 6 digits here).
    #[test]
    fn totp_matches_the_rfc_vectors() {
        let secret = b"12345678901234567890";
        assert_eq!(super::totp_code(secret, 59 / 30), "287082");
        assert_eq!(super::totp_code(secret, 1_111_111_109 / 30), "081804");
        assert_eq!(super::totp_code(secret, 2_000_000_000 / 30), "279037");
    }
}
