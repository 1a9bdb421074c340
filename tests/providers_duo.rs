//! Duo against a stateful fake of its Admin API (docs/providers.md): every request's v5 signature
//! recomputed independently, next_offset paging, bare 429s, device removal, malformed
//! answers, bypass status and bypass codes; then plan/apply through the keyward binary. The
//! fake answers only the operations and parameters of Duo's official client
//! (`tests/contracts/duo.rs`).

#[path = "contracts/duo.rs"]
mod contract;
mod providers_support;

use base64::Engine;
use hmac::{Hmac, Mac};
use keyward::crd::mfa_provider::RevocationMode;
use keyward::crd::{FactorKind, MfaProvider};
use keyward::engine::Enrolment;
use keyward::providers::rest::Backoff;
use keyward::providers::{Provider, Revoked, UserQuery, connect_with};
use providers_support::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use std::time::Instant;
use wiremock::{Request, ResponseTemplate};

const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
const SKEY: &str = shown::DUO_SKEY;

#[derive(Default)]
struct Duo {
    users: Vec<Value>,
    page_size: usize,
    throttle: usize,
    malformed: bool,
    log: Vec<String>,
    enrolled: Vec<Value>,
    /// Bypass codes: (bypass_code_id, user_id).
    codes: Vec<(String, String)>,
    /// The bypass-code listing answers 500.
    codes_broken: bool,
    /// Phones made with `add_phone`, associated with a user or not.
    phones: Vec<Value>,
}

/// RFC 3986 as Python's `quote(s, '~')`, written here independently of keyward's signer.
fn quote(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Recomputes the v5 signature of a request as Duo's server would, from what arrived.
fn signature_ok(r: &Request) -> Result<(), String> {
    let date = header(r, "date");
    let parsed = chrono::DateTime::parse_from_rfc2822(&date).map_err(|e| format!("Date {date:?}: {e}"))?;
    if (chrono::Utc::now().timestamp() - parsed.timestamp()).abs() > 300 {
        return Err("Date too far from now".into());
    }
    let mut params: Vec<(String, String)> = r.url.query_pairs().map(|(k, v)| (quote(&k), quote(&v))).collect();
    params.sort();
    let params = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let (params, body) = if r.method.as_str() == "POST" {
        assert_eq!(header(r, "content-type"), "application/json");
        (String::new(), r.body.clone())
    } else {
        (params, Vec::new())
    };
    let canonical = [
        date,
        r.method.as_str().to_uppercase(),
        header(r, "host").to_lowercase(),
        r.url.path().to_string(),
        params,
        hex::encode(Sha512::digest(&body)),
        hex::encode(Sha512::digest(b"")),
    ]
    .join("\n");
    let auth = header(r, "authorization");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").ok_or("not Basic")?)
        .map_err(|e| e.to_string())?;
    let decoded = String::from_utf8(decoded).map_err(|e| e.to_string())?;
    let (ikey, sig) = decoded.split_once(':').ok_or("no colon")?;
    if ikey != IKEY {
        return Err(format!("ikey {ikey}"));
    }
    let mut mac = Hmac::<Sha512>::new_from_slice(SKEY.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(canonical.as_bytes());
    mac.verify_slice(&hex::decode(sig).map_err(|e| e.to_string())?).map_err(|_| "signature mismatch".to_string())
}

fn fail(status: u16, code: u32, message: &str) -> ResponseTemplate {
    json(status, json!({"stat": "FAIL", "code": code, "message": message}))
}

fn handle(s: &mut Duo, r: &Request) -> ResponseTemplate {
    s.log.push(format!("{} {}", r.method, r.url.path()));
    if let Err(e) = signature_ok(r) {
        return fail(401, 40103, &format!("Invalid signature in request credentials: {e}"));
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        return fail(429, 42901, "Too Many Requests"); // no headers: Duo sends none
    }
    let path = segments(r);
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    // Only what Duo's official client sends: the operation, and its parameters (query
    // parameters, or the JSON body's keys of a POST).
    let params: Vec<String> = if r.method.as_str() == "POST" {
        serde_json::from_slice::<serde_json::Map<String, Value>>(&r.body)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    } else {
        r.url.query_pairs().map(|(k, _)| k.into_owned()).collect()
    };
    if contract::operation(r.method.as_str(), &p, &params).is_none() {
        return fail(400, 40002, &format!("Invalid request parameters: {} {} {params:?}", r.method, r.url.path()));
    }
    match (r.method.as_str(), p.as_slice()) {
        ("GET", ["admin", "v1", "users"]) => {
            if s.malformed {
                return json(200, json!({"stat": "OK"}));
            }
            if let Some(name) = query(r, "username") {
                let hit: Vec<Value> = s.users.iter().filter(|u| u["username"] == name.as_str()).cloned().collect();
                return json(200, json!({"stat": "OK", "response": hit, "metadata": {}}));
            }
            let offset: usize = query(r, "offset").and_then(|o| o.parse().ok()).unwrap_or(0);
            let limit: usize = query(r, "limit").and_then(|o| o.parse().ok()).unwrap_or(100);
            let size = if s.page_size == 0 { limit } else { s.page_size.min(limit) };
            let page: Vec<Value> = s.users.iter().skip(offset).take(size).cloned().collect();
            let mut metadata = json!({"total_objects": s.users.len()});
            if offset + size < s.users.len() {
                metadata["next_offset"] = json!(offset + size);
            }
            json(200, json!({"stat": "OK", "response": page, "metadata": metadata}))
        }
        ("GET", ["admin", "v1", "bypass_codes"]) if s.codes_broken => fail(500, 50000, "Internal server error"),
        ("GET", ["admin", "v1", "bypass_codes"]) => {
            let offset: usize = query(r, "offset").and_then(|o| o.parse().ok()).unwrap_or(0);
            let limit: usize = query(r, "limit").and_then(|o| o.parse().ok()).unwrap_or(100);
            let size = if s.page_size == 0 { limit } else { s.page_size.min(limit) };
            let page: Vec<Value> = s
                .codes
                .iter()
                .skip(offset)
                .take(size)
                .map(|(id, uid)| {
                    let owner = s.users.iter().find(|u| u["user_id"] == uid.as_str()).cloned().unwrap_or_default();
                    json!({"bypass_code_id": id, "admin_email": "admin@acme.example", "created": 1_767_225_600,
                           "expiration": null, "remaining_uses": 1, "reuse_count": 1,
                           "user": {"user_id": uid, "username": owner["username"], "email": owner["email"],
                                    "status": owner["status"]}})
                })
                .collect();
            let mut metadata = json!({"total_objects": s.codes.len()});
            if offset + size < s.codes.len() {
                metadata["next_offset"] = json!(offset + size);
            }
            json(200, json!({"stat": "OK", "response": page, "metadata": metadata}))
        }
        ("DELETE", ["admin", "v1", "bypass_codes", id]) => {
            // "If the bypass code is already deleted, does nothing."
            s.codes.retain(|(code, _)| code != id);
            json(200, json!({"stat": "OK", "response": ""}))
        }
        ("GET", ["admin", "v1", "users", uid]) => match s.users.iter().find(|u| u["user_id"] == *uid) {
            Some(user) => json(200, json!({"stat": "OK", "response": user})),
            None => fail(404, 40401, "Resource not found"),
        },
        ("POST", ["admin", "v1", "users", uid]) if *uid != "enroll" => {
            let body: serde_json::Map<String, Value> = serde_json::from_slice(&r.body).expect("json body");
            let Some(user) = s.users.iter_mut().find(|u| u["user_id"] == *uid) else {
                return fail(404, 40401, "Resource not found");
            };
            if let Some(status) = body.get("status") {
                if !["active", "bypass", "disabled"].contains(&status.as_str().unwrap_or_default()) {
                    return fail(400, 40003, "Invalid argument: status");
                }
                user["status"] = status.clone();
            }
            json(200, json!({"stat": "OK", "response": user}))
        }
        ("DELETE", ["admin", "v1", "users", uid, collection, id]) => {
            let Some(user) = s.users.iter_mut().find(|u| u["user_id"] == *uid) else {
                return fail(404, 40401, "Resource not found");
            };
            let key = if *collection == "phones" { "phone_id" } else { "token_id" };
            if let Some(list) = user[*collection].as_array_mut() {
                list.retain(|d| d[key] != *id); // already gone: Duo does nothing, and says OK
            }
            json(200, json!({"stat": "OK", "response": ""}))
        }
        ("DELETE", ["admin", "v1", "webauthncredentials", key]) => {
            for user in &mut s.users {
                if let Some(list) = user["webauthncredentials"].as_array_mut() {
                    list.retain(|d| d["webauthnkey"] != *key);
                }
            }
            json(200, json!({"stat": "OK", "response": ""}))
        }
        ("POST", ["admin", "v1", "users"]) => {
            let body: Value = serde_json::from_slice(&r.body).expect("json body");
            let name = body["username"].as_str().unwrap_or_default().to_string();
            if s.users.iter().any(|u| u["username"] == name.as_str()) {
                return fail(400, 40003, "Duplicate resource: username");
            }
            let id = format!("DUTEST{}", s.users.len());
            let mut created = user(&id, &name, json!([]), json!([]), json!([]));
            created["email"] = body["email"].clone();
            created["is_enrolled"] = json!(false);
            created["groups"] = json!([]);
            s.users.push(created.clone());
            json(200, json!({"stat": "OK", "response": created}))
        }
        ("POST", ["admin", "v1", "phones"]) => {
            let body: Value = serde_json::from_slice(&r.body).expect("json body");
            let phone = json!({"phone_id": format!("DPTEST{}", s.phones.len()), "number": body["number"],
                "type": body["type"], "platform": body["platform"], "activated": false,
                "capabilities": contract::NEW_MOBILE_CAPABILITIES, "users": []});
            s.phones.push(phone.clone());
            json(200, json!({"stat": "OK", "response": phone}))
        }
        ("POST", ["admin", "v1", "users", uid, "phones"]) => {
            let body: Value = serde_json::from_slice(&r.body).expect("json body");
            let Some(phone) = s.phones.iter().find(|p| p["phone_id"] == body["phone_id"]).cloned() else {
                return fail(404, 40401, "Resource not found");
            };
            let Some(user) = s.users.iter_mut().find(|u| u["user_id"] == *uid) else {
                return fail(404, 40401, "Resource not found");
            };
            user["phones"].as_array_mut().expect("phones").push(phone);
            json(200, json!({"stat": "OK", "response": ""}))
        }
        ("DELETE", ["admin", "v1", "phones", id]) => {
            s.phones.retain(|p| p["phone_id"] != *id);
            for user in &mut s.users {
                if let Some(list) = user["phones"].as_array_mut() {
                    list.retain(|p| p["phone_id"] != *id);
                }
            }
            json(200, json!({"stat": "OK", "response": ""}))
        }
        ("DELETE", ["admin", "v1", "users", uid]) => {
            let before = s.users.len();
            s.users.retain(|u| u["user_id"] != *uid);
            if s.users.len() == before {
                return fail(404, 40401, "Resource not found");
            }
            json(200, json!({"stat": "OK", "response": ""}))
        }
        ("POST", ["admin", "v1", "users", "enroll"]) => {
            let body: Value = serde_json::from_slice(&r.body).expect("json body");
            s.enrolled.push(body);
            json(200, json!({"stat": "OK", "response": "enrolment-code-not-for-keyward"}))
        }
        _ => fail(404, 40401, "Resource not found"),
    }
}

fn user(id: &str, name: &str, phones: Value, tokens: Value, webauthn: Value) -> Value {
    for token in tokens.as_array().into_iter().flatten() {
        let kind = token["type"].as_str().unwrap_or_default();
        assert!(contract::TOKEN_TYPES.contains(&kind), "Duo has no token type {kind}");
    }
    json!({"user_id": id, "username": name, "email": name, "status": "active", "is_enrolled": true,
           "phones": phones, "tokens": tokens, "webauthncredentials": webauthn, "u2ftokens": [],
           "groups": [group("DGSTAFF", "Staff", "Active")]})
}

/// A group as a user's `groups` embed it: the documented fields, a documented status (shown
/// capitalized, as Duo's documentation shows it).
fn group(id: &str, name: &str, status: &str) -> Value {
    assert!(contract::GROUP_STATUSES.contains(&status.to_lowercase().as_str()), "Duo has no group status {status}");
    let values = [json!(id), json!(name), json!(""), json!(status)];
    Value::Object(contract::GROUP_FIELDS.iter().map(|f| f.to_string()).zip(values).collect())
}

fn push_phone(id: &str) -> Value {
    json!({"phone_id": id, "type": "mobile", "platform": "Apple iOS", "activated": true, "capabilities": ["push", "sms", "phone"]})
}

fn acme() -> Duo {
    Duo {
        users: vec![
            user("DUALICE", "alice@acme.example", json!([push_phone("DPA")]), json!([]), json!([])),
            user(
                "DUBOB",
                "bob@acme.example",
                json!([push_phone("DPB")]),
                json!([{"token_id": "DHB", "type": "h6", "serial": "1"}]),
                json!([]),
            ),
            user(
                "DUDAVE",
                "dave@acme.example",
                json!([push_phone("DPD")]),
                json!([]),
                json!([{"webauthnkey": "WAD", "label": "key"}]),
            ),
        ],
        ..Default::default()
    }
}

fn provider(url: &str, extra: &str) -> MfaProvider {
    let yaml = format!(
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp, namespace: acme}}\nspec:\n  duo:\n    url: {url}\n    credentials: {{secretRef: {{name: duo}}}}\n{extra}"
    );
    serde_yaml::from_str(&yaml).expect("provider")
}

fn backend(url: &str, extra: &str, skey: &str) -> Provider {
    let skey = skey.to_string();
    let secrets = move |_: &str, key: &str| match key {
        "integrationKey" => Some(IKEY.to_string()),
        "secretKey" => Some(skey.clone()),
        _ => None,
    };
    connect_with(&provider(url, extra), &secrets, Backoff::quick()).expect("connect")
}

#[tokio::test]
async fn signed_paged_listing_outlasts_bare_429s() {
    let mut state = acme();
    for i in 0..4 {
        state.users.push(user(&format!("DU{i}"), &format!("u{i}@acme.example"), json!([]), json!([]), json!([])));
    }
    state.page_size = 2;
    state.throttle = 2;
    let (server, state) = serve(state, handle).await;
    let duo = backend(&server.uri(), "  scope: All\n", SKEY);
    let start = Instant::now();
    let inventory = duo.inventory(&UserQuery { declared: vec![], all: true }).await.expect("inventory");
    // Backoff::quick doubles 10 ms, 20 ms for the two bare 429s.
    assert!(start.elapsed().as_millis() >= 30, "{:?}", start.elapsed());
    assert_eq!(inventory.users.len(), 7);
    let bob = inventory.users.iter().find(|u| u.name == "bob@acme.example").expect("bob");
    let mut kinds: Vec<(String, String)> = bob.enrolments.iter().map(|e| (e.id.clone(), e.kind.to_string())).collect();
    kinds.sort();
    assert_eq!(kinds, [("phone:DPB".to_string(), "push".to_string()), ("token:DHB".into(), "hotp".into())]);
    // The phone also receives SMS passcodes and calls: one device, every kind it provides.
    let phone = bob.enrolments.iter().find(|e| e.id == "phone:DPB").expect("phone");
    let also: Vec<String> = phone.also.iter().map(|k| k.to_string()).collect();
    assert_eq!(also, ["sms", "voice"]);
    let pages = state.lock().expect("state").log.iter().filter(|l| *l == "GET /admin/v1/users").count();
    assert_eq!(pages, 2 + 4, "two throttled attempts, then four pages of two");
}

#[tokio::test]
async fn a_wrong_secret_fails_the_signature_and_rate_limits_give_up_in_the_end() {
    let (server, state) = serve(acme(), handle).await;
    let err = backend(&server.uri(), "", "not-the-secret").check().await.expect_err("rejected");
    assert!(err.to_string().contains("credentials rejected: 40103 Invalid signature"), "{err}");
    state.lock().expect("state").throttle = 100;
    let err = backend(&server.uri(), "", SKEY).check().await.expect_err("throttled");
    assert!(err.to_string().contains("rate limited"), "{err}");
    state.lock().expect("state").throttle = 0;
    state.lock().expect("state").malformed = true;
    let err = backend(&server.uri(), "", SKEY).inventory(&UserQuery::default()).await.expect_err("malformed");
    assert!(err.to_string().contains("unexpected response: user listing: stat \"OK\" without a response"), "{err}");
}

#[tokio::test]
async fn devices_are_removed_through_their_own_endpoints_and_repeat_deletes_are_harmless() {
    let (server, state) = serve(acme(), handle).await;
    let duo = backend(&server.uri(), "", SKEY);
    duo.inventory(&UserQuery::default()).await.expect("inventory");
    let e = |id: &str, kind: &str| Enrolment::new(id, FactorKind::new(kind), true);
    let del = RevocationMode::Delete;
    assert_eq!(duo.revoke("dave@acme.example", &e("phone:DPD", "push"), del).await, Ok(Revoked::Done));
    assert_eq!(duo.revoke("dave@acme.example", &e("webauthn:WAD", "webauthn"), del).await, Ok(Revoked::Done));
    assert_eq!(duo.revoke("bob@acme.example", &e("token:DHB", "hotp"), del).await, Ok(Revoked::Done));
    // Duo answers a repeated delete with 200 and does nothing.
    assert_eq!(duo.revoke("bob@acme.example", &e("token:DHB", "hotp"), del).await, Ok(Revoked::Done));
    assert_eq!(duo.revoke("ghost@acme.example", &e("phone:X", "push"), del).await, Ok(Revoked::AlreadyGone));
    let log = state.lock().expect("state").log.clone();
    assert!(log.contains(&"DELETE /admin/v1/users/DUDAVE/phones/DPD".to_string()), "{log:?}");
    assert!(log.contains(&"DELETE /admin/v1/webauthncredentials/WAD".to_string()), "{log:?}");
    let s = state.lock().expect("state");
    assert_eq!(s.users[2]["phones"], json!([]));
    assert_eq!(s.users[1]["tokens"], json!([]));
}

/// A user deleted and re-created under the same name has a new `user_id`: a phone removal that
/// meets the stale id (a 404) asks Duo again instead of calling the phone "already gone".
#[tokio::test]
async fn a_re_created_user_is_found_again_after_a_404() {
    let (server, state) = serve(acme(), handle).await;
    let duo = backend(&server.uri(), "", SKEY);
    duo.inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false }).await.expect("inventory");
    {
        let mut s = state.lock().expect("state");
        s.users.retain(|u| u["username"] != "alice@acme.example");
        s.users.push(user("DUALICE2", "alice@acme.example", json!([push_phone("DPA2")]), json!([]), json!([])));
    }
    let phone = Enrolment::new("phone:DPA2", FactorKind::new("push"), true);
    assert_eq!(duo.revoke("alice@acme.example", &phone, RevocationMode::Delete).await, Ok(Revoked::Done));
    let s = state.lock().expect("state");
    let alice = s.users.iter().find(|u| u["user_id"] == "DUALICE2").expect("alice");
    assert_eq!(alice["phones"], json!([]));
}

/// One user's alias is another's user name: both are listed under it, and no device is
/// removed by that name.
#[tokio::test]
async fn two_users_with_one_name_are_a_conflict_never_a_guess() {
    let mut state = acme();
    let mut twin = user("DUTWIN", "alice.twin@acme.example", json!([push_phone("DPT")]), json!([]), json!([]));
    twin["alias1"] = json!("alice@acme.example");
    state.users.push(twin);
    let (server, state) = serve(state, handle).await;
    let duo = backend(&server.uri(), "", SKEY);
    let inventory =
        duo.inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false }).await.expect("inventory");
    assert_eq!(inventory.duplicate_names().into_iter().collect::<Vec<_>>(), ["alice@acme.example"]);
    let phone = Enrolment::new("phone:DPT", FactorKind::new("push"), true);
    let error = duo.revoke("alice@acme.example", &phone, RevocationMode::Delete).await.expect_err("conflict");
    assert_eq!(error.category(), "identity_conflict", "{error}");
    let s = state.lock().expect("state");
    assert!(!s.log.iter().any(|l| l.starts_with("DELETE")), "{:?}", s.log);
}

/// An Employee mapped through an alias past the fourth: the user is that Employee's (its
/// device kept), not an undeclared user losing every device under `scope: All`.
#[tokio::test]
async fn a_user_is_known_by_every_alias_in_the_aliases_map() {
    let mut state = acme();
    let mut eighth = user("DUEIGHT", "erin.b@acme.example", json!([push_phone("DPE")]), json!([]), json!([]));
    let aliases: serde_json::Map<String, Value> = contract::ALIAS_KEYS
        .iter()
        .enumerate()
        .map(|(i, key)| (key.to_string(), json!(format!("erin-{}@acme.example", i + 1))))
        .collect();
    eighth["aliases"] = Value::Object(aliases);
    eighth["alias1"] = json!("erin-1@acme.example");
    state.users.push(eighth);
    let (server, _state) = serve(state, handle).await;
    let duo = backend(&server.uri(), "", SKEY);
    let declared = vec!["erin-8@acme.example".to_string()];
    let inventory = duo.inventory(&UserQuery { declared, all: true }).await.expect("inventory");
    let erin = inventory.users.iter().find(|u| u.enrolments.iter().any(|e| e.id == "phone:DPE")).expect("listed");
    assert_eq!(erin.name, "erin-8@acme.example", "the alias the Employee maps to");
    assert!(erin.aliases.iter().any(|a| a == "erin.b@acme.example") && erin.aliases.contains(&"DUEIGHT".to_string()));
}

#[tokio::test]
async fn invitation_sends_the_enrolment_email_to_new_users_only() {
    let (server, state) = serve(acme(), handle).await;
    let duo = backend(&server.uri(), "", SKEY);
    duo.invite("new@acme.example", &FactorKind::new("push")).await.expect("invite");
    duo.invite("alice@acme.example", &FactorKind::new("push")).await.expect("existing user");
    let enrolled = state.lock().expect("state").enrolled.clone();
    assert_eq!(
        enrolled,
        [json!({"email": "new@acme.example", "username": "new@acme.example", "valid_secs": "604800"})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_apply_revoke_the_leaver_and_the_out_of_band_token_only() {
    let (server, state) = serve(acme(), handle).await;
    let block = format!(
        "  duo:\n    url: {}\n    group: Staff\n    credentials: {{secretRef: {{name: corp-admin}}}}",
        server.uri()
    );
    let tree = company(&block, &format!("  integrationKey: {IKEY}\n  secretKey: {SKEY}"), "push");

    let (code, plan_before) = plan(tree.path()).await;
    assert_eq!(code, 2, "{plan_before}");
    assert_eq!(
        actions(&plan_before),
        [
            revoke("bob@acme.example", "hotp", "NotEntitled"),
            revoke("dave@acme.example", "push", "EmployeeOffboarded"),
            revoke("dave@acme.example", "webauthn", "EmployeeOffboarded"),
        ]
    );
    let (code, audit, stderr) = apply(tree.path()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(audit.len(), 3, "{audit:?}");
    {
        let s = state.lock().expect("state");
        assert_eq!(s.users[0]["phones"].as_array().map(Vec::len), Some(1), "alice keeps her phone");
        assert_eq!(s.users[1]["phones"].as_array().map(Vec::len), Some(1), "bob keeps his phone");
        assert_eq!(s.users[1]["tokens"], json!([]), "bob's token is gone");
        assert_eq!((s.users[2]["phones"].clone(), s.users[2]["webauthncredentials"].clone()), (json!([]), json!([])));
    }
    let (code, plan_after) = plan(tree.path()).await;
    assert_eq!((code, actions(&plan_after)), (0, vec![]), "{plan_after}");
    outage_revokes_nothing(tree.path(), &server.uri()).await;
}

/// Defect: a user in `bypass` status passes Duo with no device, and bypass codes were never
/// listed or deleted: a leaver in bypass, or holding a code, kept access. Both are enrolments
/// now, revoked through their own endpoints.
#[tokio::test]
async fn bypass_status_and_bypass_codes_are_enrolments_and_are_revoked() {
    let mut state = acme();
    state.users[2]["status"] = json!("bypass");
    state.codes =
        vec![("BCD1".into(), "DUDAVE".into()), ("BCD2".into(), "DUDAVE".into()), ("BCB1".into(), "DUBOB".into())];
    state.page_size = 2;
    let (server, state) = serve(state, handle).await;
    let duo = backend(&server.uri(), "", SKEY);
    let inventory = duo.inventory(&UserQuery::default()).await.expect("inventory");
    let enrolments = |name: &str| {
        let mut list: Vec<(String, String)> = inventory
            .users
            .iter()
            .filter(|u| u.name == name)
            .flat_map(|u| u.enrolments.iter().map(|e| (e.id.clone(), e.kind.to_string())))
            .collect();
        list.sort();
        list
    };
    let pair = |id: &str, kind: &str| (id.to_string(), kind.to_string());
    assert_eq!(
        enrolments("dave@acme.example"),
        [
            pair("bypass-code:BCD1", "bypass-code"),
            pair("bypass-code:BCD2", "bypass-code"),
            pair("phone:DPD", "push"),
            pair("status:bypass", "bypass"),
            pair("webauthn:WAD", "webauthn"),
        ]
    );
    assert!(enrolments("bob@acme.example").contains(&pair("bypass-code:BCB1", "bypass-code")));

    let dave = inventory.users.iter().find(|u| u.name == "dave@acme.example").expect("dave");
    for enrolment in dave.enrolments.iter().filter(|e| e.kind.as_str().starts_with("bypass")) {
        assert_eq!(duo.revoke("dave@acme.example", enrolment, RevocationMode::Delete).await, Ok(Revoked::Done));
    }
    {
        let s = state.lock().expect("state");
        assert_eq!(s.users[2]["status"], "active", "Duo asks dave for a device again");
        assert_eq!(s.codes, [("BCB1".to_string(), "DUBOB".to_string())], "only bob's code is left");
    }
    // A user an admin disabled since the sweep is not re-enabled by a late bypass revocation.
    state.lock().expect("state").users[2]["status"] = json!("disabled");
    let bypass = Enrolment::new("status:bypass", FactorKind::new("bypass"), true);
    assert_eq!(duo.revoke("dave@acme.example", &bypass, RevocationMode::Delete).await, Ok(Revoked::AlreadyGone));
    assert_eq!(state.lock().expect("state").users[2]["status"], "disabled");
}

/// A group in `bypass` lets every member through without a device. Each member
/// holds it as a `bypass` enrolment of its own (distinct from the user's own bypass status),
/// which keyward cannot revoke: the revocation fails naming the group, until an admin changes
/// the group, and then it is gone.
#[tokio::test]
async fn a_group_in_bypass_is_held_by_each_member_and_its_revocation_fails_loudly() {
    let mut state = acme();
    for i in [0, 2] {
        state.users[i]["groups"] =
            json!([group("DGSTAFF", "Staff", "Active"), group("DGCON", "Contractors", "Bypass")]);
    }
    state.users[2]["status"] = json!("bypass");
    let (server, state) = serve(state, handle).await;
    let duo = backend(&server.uri(), "", SKEY);
    let inventory = duo.inventory(&UserQuery::default()).await.expect("inventory");
    let bypasses = |name: &str| {
        let user = inventory.users.iter().find(|u| u.name == name).expect("user");
        let mut ids: Vec<(String, String)> = user
            .enrolments
            .iter()
            .filter(|e| e.kind.as_str() == "bypass")
            .map(|e| (e.id.clone(), e.kind.to_string()))
            .collect();
        ids.sort();
        ids
    };
    let held = |id: &str| (id.to_string(), "bypass".to_string());
    assert_eq!(bypasses("alice@acme.example"), [held("group-bypass:DGCON")]);
    assert_eq!(bypasses("bob@acme.example"), []);
    assert_eq!(bypasses("dave@acme.example"), [held("group-bypass:DGCON"), held("status:bypass")], "two, kept apart");

    let through_group = Enrolment::new("group-bypass:DGCON", FactorKind::new("bypass"), true);
    let error = duo.revoke("alice@acme.example", &through_group, RevocationMode::Delete).await.expect_err("loud");
    let text = error.to_string();
    assert!(
        text.contains("\"Contractors\"") && text.contains("is in bypass") && text.contains("change the group in Duo"),
        "{text}"
    );
    assert!(text.contains("alice@acme.example"), "names the user: {text}");
    // Dave's own bypass status ends; the group's does not, and is not touched.
    let own = Enrolment::new("status:bypass", FactorKind::new("bypass"), true);
    assert_eq!(duo.revoke("dave@acme.example", &own, RevocationMode::Delete).await, Ok(Revoked::Done));
    assert!(duo.revoke("dave@acme.example", &through_group, RevocationMode::Delete).await.is_err());
    {
        let s = state.lock().expect("state");
        assert_eq!(s.users[2]["status"], "active");
        assert!(!s.log.iter().any(|l| l.contains("groups")), "keyward never changes a group: {:?}", s.log);
    }
    // An admin takes the group out of bypass: nothing is held any more.
    for i in [0, 2] {
        state.lock().expect("state").users[i]["groups"][1]["status"] = json!("Active");
    }
    assert_eq!(
        duo.revoke("alice@acme.example", &through_group, RevocationMode::Delete).await,
        Ok(Revoked::AlreadyGone)
    );
    let inventory = duo.inventory(&UserQuery::default()).await.expect("inventory");
    assert!(inventory.users.iter().all(|u| u.enrolments.iter().all(|e| e.kind.as_str() != "bypass")));
}

/// A failed bypass-code listing fails the whole read: an error is never "no codes".
#[tokio::test]
async fn a_failed_bypass_code_listing_is_no_inventory() {
    let mut state = acme();
    state.codes = vec![("BCD1".into(), "DUDAVE".into())];
    let (server, state) = serve(state, handle).await;
    let duo = backend(&server.uri(), "", SKEY);
    duo.inventory(&UserQuery::default()).await.expect("inventory");
    let codes_read = state.lock().expect("state").log.iter().filter(|l| *l == "GET /admin/v1/bypass_codes").count();
    assert_eq!(codes_read, 1, "one bulk listing, not one request per user");
    state.lock().expect("state").codes_broken = true;
    let err = duo.inventory(&UserQuery::default()).await.expect_err("no inventory");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
}

/// Every user status of Duo's client is one the client decides on; every token type has a kind.
#[test]
fn contract_every_user_status_and_token_type_is_handled() {
    use keyward::providers::duo::{KINDS, UserStatus, token_kind, user_status};
    for status in contract::USER_STATUSES {
        assert_ne!(user_status(status), UserStatus::Unknown, "{status} ({})", contract::SOURCE);
    }
    assert_eq!(user_status("bypass"), UserStatus::Bypass);
    for status in contract::GROUP_STATUSES {
        let capitalized = format!("{}{}", status[..1].to_uppercase(), &status[1..]);
        for shown in [status.to_string(), capitalized] {
            assert_eq!(keyward::providers::duo::group_in_bypass(&shown), *status == "bypass", "{shown}");
        }
    }
    for token in contract::TOKEN_TYPES {
        let kind = token_kind(token);
        assert!(KINDS.contains(&kind.as_str()), "{token} gives {kind}, not in KINDS");
    }
}

/// `keyward conformance` on the Duo fake: a user of its own (`add_user`), a mobile phone made
/// and associated with it, listed as Duo describes the phone, revoked (taken from the user),
/// gone from the next listing, and the phone and user deleted; nobody else touched, and no
/// request shows the secret key or its signature.
#[tokio::test]
async fn conformance_proves_the_client_on_a_user_of_its_own() {
    let (server, state) = serve(acme(), handle).await;
    let duo = backend(&server.uri(), "", SKEY);
    let before = state.lock().expect("state").users.clone();
    let report = keyward::conformance::run(&duo, "kw-conformance-1f2e3d@acme.example").await;
    let text = report.render("acme/corp");
    assert!(report.passed(), "{text}");
    assert!(text.contains("enrol a second factor: sms"), "a phone without Duo Mobile is an SMS device: {text}");
    assert!(text.contains("no per-user read for this provider"), "{text}");
    assert!(text.contains("POST http://") && text.contains("/admin/v1/phones → 200"), "{text}");
    assert!(!text.contains(SKEY) && !text.contains("Basic "), "{text}");
    let s = state.lock().expect("state");
    assert_eq!(s.users, before, "the test user is gone and nobody else was touched");
    assert!(s.phones.is_empty(), "the test phone is deleted too");
}
