//! Okta against a stateful fake of its Factors API (docs/providers.md): SSWS and private_key_jwt,
//! Link paging, 429 with X-Rate-Limit-Reset, 401 then a new token, 404 on a second delete, the
//! push cascade, factors hidden by policy, malformed answers; then plan/apply through the
//! keyward binary. The fake answers from the facts of Okta's own specification
//! (`tests/contracts/okta.rs`): operations, query parameters, OAuth scopes, factor types and
//! providers, the unenrolment cascade and recovery phones.

#[path = "contracts/okta.rs"]
mod contract;
mod providers_support;

use keyward::crd::mfa_provider::RevocationMode;
use keyward::crd::{FactorKind, MfaProvider};
use keyward::engine::{Enrolment, Inventory};
use keyward::providers::rest::Backoff;
use keyward::providers::{Provider, Revoked, UserQuery, connect_with};
use providers_support::*;
use serde_json::{Value, json};
use std::time::Instant;
use wiremock::{Request, ResponseTemplate};

const TOKEN: &str = shown::OKTA_TOKEN;
/// The shared secret the fake hands out for a TOTP enrolment (RFC 6238's test key).
const TOTP_SECRET: &[u8] = b"12345678901234567890";
const TOTP_SECRET_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[derive(Clone)]
struct Factor {
    id: String,
    factor_type: String,
    provider: String,
    status: String,
    /// Outside the admin's policy view: not listed, but enrolled.
    hidden: bool,
}

fn factor(id: &str, factor_type: &str, provider: &str) -> Factor {
    let allowed = contract::FACTOR_PROVIDERS.iter().find(|(t, _)| *t == factor_type).map(|(_, p)| *p);
    assert!(
        allowed.is_some_and(|p| p.contains(&provider)),
        "the fake holds only factors Okta's specification allows: {factor_type} from {provider}"
    );
    Factor {
        id: id.into(),
        factor_type: factor_type.into(),
        provider: provider.into(),
        status: "ACTIVE".into(),
        hidden: false,
    }
}

struct User {
    id: String,
    login: String,
    /// The primary e-mail, when it is not the login.
    email: Option<String>,
    status: String,
    factors: Vec<Factor>,
    /// Phone numbers usable for password recovery, enrolled with an sms or call factor.
    recovery_phones: Vec<String>,
    groups: Vec<String>,
}

#[derive(Default)]
struct Okta {
    users: Vec<User>,
    page_size: usize,
    /// Answer the next request with 429 and a reset one second ahead.
    throttle_next: bool,
    /// OAuth: tokens issued (with the scopes granted), and tokens the API now rejects.
    issued: Vec<String>,
    scopes: std::collections::HashMap<String, Vec<String>>,
    expired: Vec<String>,
    oauth: bool,
    malformed_factors: bool,
    log: Vec<String>,
    /// The service app requires DPoP: the nonce the token endpoint hands out, and the key
    /// (`x`, `y` of its JWK) each token is bound to.
    dpop_required: bool,
    dpop_nonce: String,
    bound: std::collections::HashMap<String, (String, String)>,
    /// The id of the admin who granted the API token: what `GET /users/me` answers.
    token_owner: Option<String>,
}

/// Checks a DPoP proof (RFC 9449 §4.3) as a server does: its signature under its own JWK, its
/// type, method and URL; gives the JWK's coordinates and the claims.
fn verify_dpop(proof: &str, method: &str, url: &str) -> Result<((String, String), Value), String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = proof.split('.').collect();
    let [head, body, sig] = parts.as_slice() else { return Err("not a JWS".into()) };
    let decode = |s: &str| -> Result<Value, String> {
        serde_json::from_slice(&b64.decode(s).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    };
    let (header, claims) = (decode(head)?, decode(body)?);
    if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" || header["jwk"]["kty"] != "EC" {
        return Err(format!("header {header}"));
    }
    let coordinate = |c: &str| header["jwk"][c].as_str().map(String::from).ok_or(format!("jwk without {c}"));
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let mut point = vec![4u8];
    point.extend(b64.decode(&x).map_err(|e| e.to_string())?);
    point.extend(b64.decode(&y).map_err(|e| e.to_string())?);
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    key.verify(format!("{head}.{body}").as_bytes(), &b64.decode(sig).map_err(|e| e.to_string())?)
        .map_err(|_| "bad signature".to_string())?;
    if claims["htm"] != method || claims["htu"] != url || claims["jti"].as_str().is_none_or(str::is_empty) {
        return Err(format!("claims {claims} for {method} {url}"));
    }
    if claims["iat"].as_u64().is_none_or(|iat| iat.abs_diff(now()) > 60) {
        return Err("iat".into());
    }
    Ok(((x, y), claims))
}

fn okta_error(status: u16, code: &str, summary: &str) -> ResponseTemplate {
    json(
        status,
        json!({"errorCode": code, "errorSummary": summary, "errorLink": code, "errorId": "x", "errorCauses": []}),
    )
}

fn user_json(u: &User, base: &str) -> Value {
    let mut links = json!({"self": {"href": format!("{base}/api/v1/users/{}", u.id)}});
    if !u.factors.is_empty() {
        links["resetFactors"] =
            json!({"href": format!("{base}/api/v1/users/{}/lifecycle/reset_factors", u.id), "method": "POST"});
    }
    let email = u.email.clone().unwrap_or_else(|| u.login.clone());
    json!({"id": u.id, "status": u.status, "profile": {"login": u.login, "email": email}, "_links": links})
}

fn handle(s: &mut Okta, r: &Request) -> ResponseTemplate {
    let base = base(r);
    let path = segments(r);
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    s.log.push(format!("{} {}", r.method, r.url.path()));
    if p == ["oauth2", "v1", "token"] {
        let f = form(r);
        let mut key = None;
        if s.dpop_required {
            let dpop_error =
                |code: &str, description: &str| json(400, json!({"error": code, "error_description": description}));
            let proof = header(r, "dpop");
            if proof.is_empty() {
                return dpop_error("invalid_dpop_proof", "The DPoP proof JWT header is missing.");
            }
            let (jwk, claims) = match verify_dpop(&proof, "POST", &format!("{base}/oauth2/v1/token")) {
                Ok(v) => v,
                Err(e) => return dpop_error("invalid_dpop_proof", &e),
            };
            if claims["nonce"] != s.dpop_nonce.as_str() {
                s.dpop_nonce = format!("nonce-{}", s.issued.len() + 1);
                return dpop_error("use_dpop_nonce", "Authorization server requires nonce in DPoP proof.")
                    .insert_header("DPoP-Nonce", s.dpop_nonce.as_str());
            }
            key = Some(jwk);
        }
        assert_eq!(f.get("grant_type").map(String::as_str), Some("client_credentials"));
        let scopes: Vec<String> = f.get("scope").map(|s| s.split(' ').map(String::from).collect()).unwrap_or_default();
        assert_eq!(
            f.get("client_assertion_type").map(String::as_str),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        let (header, claims) = match verify_rs256(f.get("client_assertion").map(String::as_str).unwrap_or_default()) {
            Ok(v) => v,
            Err(e) => return json(401, json!({"error": "invalid_client", "error_description": e})),
        };
        assert_eq!(header["kid"], "kid-1");
        assert_eq!(claims["iss"], "0oaclient");
        assert_eq!(claims["sub"], "0oaclient");
        assert_eq!(claims["aud"], format!("{base}/oauth2/v1/token"));
        assert!(claims["exp"].as_u64().unwrap_or(0) > now());
        let token = format!("tok{}", s.issued.len());
        s.issued.push(token.clone());
        s.scopes.insert(token.clone(), scopes.clone());
        let token_type = if let Some(key) = key {
            s.bound.insert(token.clone(), key);
            "DPoP"
        } else {
            "Bearer"
        };
        return json(
            200,
            json!({"token_type": token_type, "access_token": token, "expires_in": 3600, "scope": scopes.join(" ")}),
        );
    }
    let auth = header(r, "authorization");
    let authorized = if s.oauth {
        let valid = |t: &str| s.issued.iter().any(|i| i == t) && !s.expired.iter().any(|e| e == t);
        match (auth.strip_prefix("Bearer "), auth.strip_prefix("DPoP ")) {
            // A bound token is no bearer token.
            (Some(t), _) => valid(t) && !s.bound.contains_key(t),
            (_, Some(t)) => {
                let mut url = r.url.clone();
                url.set_query(None);
                let htu = format!("{base}{}", url.path());
                let proof = verify_dpop(&header(r, "dpop"), r.method.as_str(), &htu);
                valid(t)
                    && proof.is_ok_and(|(key, claims)| {
                        use base64::Engine;
                        let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(<sha2::Sha256 as sha2::Digest>::digest(t.as_bytes()));
                        s.bound.get(t) == Some(&key) && claims["ath"] == ath.as_str()
                    })
            }
            _ => false,
        }
    } else {
        auth == format!("SSWS {TOKEN}")
    };
    if !authorized {
        return okta_error(401, "E0000011", "Invalid token provided");
    }
    // Only what the specification declares: the operation, its query parameters, its scope.
    let Some(op) = contract::operation(r.method.as_str(), &p) else {
        return okta_error(404, "E0000022", "The endpoint does not support the provided HTTP method");
    };
    if let Some((key, _)) = r.url.query_pairs().find(|(k, _)| !op.query.contains(&k.as_ref())) {
        return okta_error(400, "E0000001", &format!("Api validation failed: {} takes no parameter {key}", op.id));
    }
    if s.oauth {
        let token = auth.split_once(' ').map(|(_, t)| t).unwrap_or_default();
        let granted = s.scopes.get(token).cloned().unwrap_or_default();
        if !granted.iter().any(|g| g == op.scope) {
            return okta_error(403, "E0000006", "You do not have permission to perform the requested action")
                .insert_header(
                    "WWW-Authenticate",
                    format!("Bearer error=\"insufficient_scope\", scope=\"{}\"", op.scope).as_str(),
                );
        }
    }
    if std::mem::take(&mut s.throttle_next) {
        return okta_error(429, "E0000047", "API call exceeded rate limit due to too many requests.")
            .insert_header("X-Rate-Limit-Limit", "600")
            .insert_header("X-Rate-Limit-Remaining", "0")
            .insert_header("X-Rate-Limit-Reset", (now() + 1).to_string().as_str());
    }
    // `getUser`'s `{id}`: "An ID, login, or login shortname (as long as the shortname is
    // unambiguous)"; "Logins with a `/` character can only be fetched by `id`". Not an e-mail.
    let find = |s: &Okta, key: &str| {
        // "you can substitute `me` for the `id` to fetch the current user linked to an API
        // token": never a user named `me`.
        if key == contract::CURRENT_USER_ID {
            let owner = s.token_owner.as_deref().filter(|_| !s.oauth)?;
            return s.users.iter().position(|u| u.id == owner);
        }
        if let Some(i) = s.users.iter().position(|u| u.id == key) {
            return Some(i);
        }
        if key.contains(contract::FETCHED_BY_ID_ONLY) {
            return None;
        }
        let short = |u: &User| u.login.split('@').next().unwrap_or_default().to_lowercase();
        let by_login = s.users.iter().position(|u| u.login.eq_ignore_ascii_case(key));
        let shorts: Vec<usize> = (0..s.users.len()).filter(|&i| short(&s.users[i]) == key.to_lowercase()).collect();
        by_login.or(if shorts.len() == 1 { Some(shorts[0]) } else { None })
    };
    match (r.method.as_str(), p.as_slice()) {
        ("GET", ["api", "v1", "users"]) if query(r, "search").is_some() => {
            let search = query(r, "search").unwrap_or_default();
            let Some(name) = login_or_email_search(&search) else {
                return okta_error(400, "E0000031", "Invalid search criteria.");
            };
            let found: Vec<Value> = s
                .users
                .iter()
                .filter(|u| {
                    u.login.eq_ignore_ascii_case(&name)
                        || u.email.as_deref().unwrap_or(&u.login).eq_ignore_ascii_case(&name)
                })
                .map(|u| {
                    let mut v = user_json(u, &base);
                    v["_links"] = json!({"self": v["_links"]["self"]});
                    v
                })
                .collect();
            json(200, Value::Array(found))
        }
        // listGroupUsers pages like listUsers, `limit` defaulting to 1000 (tests/contracts/okta.rs):
        // a group larger than a page is listed only by following `Link: rel="next"`.
        ("GET", ["api", "v1", "groups", group, "users"]) => {
            let after: usize = query(r, "after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let size = if s.page_size == 0 { contract::GROUP_USERS_DEFAULT_LIMIT } else { s.page_size };
            let members: Vec<&User> = s.users.iter().filter(|u| u.groups.iter().any(|g| g == group)).collect();
            let page: Vec<Value> = members
                .iter()
                .skip(after)
                .take(size)
                .map(|u| {
                    let mut v = user_json(u, &base);
                    v["_links"] = json!({"self": v["_links"]["self"]});
                    v
                })
                .collect();
            let path = format!("{base}/api/v1/groups/{group}/users");
            let mut link = format!("<{path}?limit={size}&after={after}>; rel=\"self\"");
            if after + size < members.len() {
                link = format!("{link}, <{path}?limit={size}&after={}>; rel=\"next\"", after + size);
            }
            json(200, Value::Array(page)).insert_header("Link", link.as_str())
        }
        ("GET", ["api", "v1", "users"]) => {
            let after: usize = query(r, "after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let size = if s.page_size == 0 { 200 } else { s.page_size };
            let page: Vec<Value> = s
                .users
                .iter()
                .skip(after)
                .take(size)
                .map(|u| {
                    let mut v = user_json(u, &base);
                    v["_links"] = json!({"self": v["_links"]["self"]}); // listings carry only `self`
                    v
                })
                .collect();
            let mut response = json(200, Value::Array(page));
            let mut link = format!("<{base}/api/v1/users?limit={size}&after={after}>; rel=\"self\"");
            if after + size < s.users.len() {
                link = format!("{link}, <{base}/api/v1/users?limit={size}&after={}>; rel=\"next\"", after + size);
            }
            response = response.insert_header("Link", link.as_str());
            response
        }
        ("GET", ["api", "v1", "users", key]) => match find(s, key) {
            Some(i) => json(200, user_json(&s.users[i], &base)),
            None => okta_error(404, "E0000007", "Not found: Resource not found: x (User)"),
        },
        ("GET", ["api", "v1", "users", key, "factors"]) => {
            if s.malformed_factors {
                return ResponseTemplate::new(200).set_body_string("<html>login</html>");
            }
            match find(s, key) {
                Some(i) if s.users[i].status != "DEPROVISIONED" => {
                    let list: Vec<Value> = s.users[i]
                        .factors
                        .iter()
                        .filter(|f| !f.hidden)
                        .map(|f| {
                            json!({"id": f.id, "factorType": f.factor_type, "provider": f.provider, "status": f.status,
                               "created": "2026-01-01T00:00:00.000Z", "_links": {}})
                        })
                        .collect();
                    json(200, Value::Array(list))
                }
                _ => okta_error(404, "E0000007", "Not found: Resource not found: x (User)"),
            }
        }
        ("DELETE", ["api", "v1", "users", key, "factors", fid]) => {
            let Some(i) = find(s, key) else { return okta_error(404, "E0000007", "Not found") };
            let user = &mut s.users[i];
            let Some(pos) = user.factors.iter().position(|f| f.id == *fid) else {
                return okta_error(404, "E0000007", "Not found: Resource not found: x (UserFactor)");
            };
            let removed = user.factors.remove(pos);
            if contract::CASCADING_FACTOR_TYPES.contains(&removed.factor_type.as_str()) {
                user.factors.retain(|f| {
                    !contract::CASCADED_FACTOR_TYPES
                        .iter()
                        .any(|(t, p)| *t == f.factor_type && p.is_none_or(|p| p == f.provider))
                });
            }
            if contract::RECOVERY_FACTOR_TYPES.contains(&removed.factor_type.as_str())
                && query(r, "removeRecoveryEnrollment").as_deref() == Some("true")
            {
                user.recovery_phones.clear();
            }
            ResponseTemplate::new(204)
        }
        ("POST", ["api", "v1", "users", key, "lifecycle", "reset_factors"]) => {
            assert_eq!(header(r, "content-length"), "0", "Okta answers 411 without it");
            let Some(i) = find(s, key) else { return okta_error(404, "E0000007", "Not found") };
            s.users[i].factors.clear();
            json(200, json!({}))
        }
        ("POST", ["api", "v1", "users"]) => {
            let body: Value = serde_json::from_slice(&r.body).expect("createUser body");
            let login = body["profile"]["login"].as_str().unwrap_or_default().to_string();
            if login.is_empty() || body["profile"]["email"].as_str().is_none() {
                return okta_error(400, "E0000001", "Api validation failed: login, email");
            }
            if s.users.iter().any(|u| u.login.eq_ignore_ascii_case(&login)) {
                return okta_error(
                    400,
                    "E0000001",
                    "Api validation failed: login: An object with this field already exists",
                );
            }
            let active = query(r, "activate").as_deref() != Some("false")
                && body["credentials"]["password"]["value"].is_string();
            let id = format!("00u{}", s.users.len() + 100);
            let mut created = user(&id, &login, Vec::new());
            created.status = if active { "ACTIVE".into() } else { "STAGED".into() };
            let json_user = user_json(&created, &base);
            s.users.push(created);
            json(200, json_user)
        }
        ("POST", ["api", "v1", "users", key, "factors"])
            if serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["factorType"] == "token:software:totp") =>
        {
            let Some(i) = find(s, key) else { return okta_error(404, "E0000007", "Not found") };
            assert_eq!(query(r, "activate").as_deref(), Some("false"), "activated with a passcode afterwards");
            let fid = format!("uft{}", s.users[i].factors.len() + 100);
            let mut f = factor(&fid, "token:software:totp", "GOOGLE");
            f.status = "PENDING_ACTIVATION".into();
            s.users[i].factors.push(f);
            json(
                200,
                json!({"id": fid, "factorType": "token:software:totp", "provider": "GOOGLE",
                "status": "PENDING_ACTIVATION",
                "_embedded": {"activation": totp_activation()}}),
            )
        }
        ("POST", ["api", "v1", "users", key, "factors", fid, "lifecycle", "activate"]) => {
            let Some(i) = find(s, key) else { return okta_error(404, "E0000007", "Not found") };
            let body: Value = serde_json::from_slice(&r.body).expect("activate body");
            let Some(f) = s.users[i].factors.iter_mut().find(|f| f.id == *fid) else {
                return okta_error(404, "E0000007", "Not found: Resource not found: x (UserFactor)");
            };
            let expected = keyward::providers::totp::code(TOTP_SECRET, now(), 30, 6);
            if body["passCode"].as_str() != Some(expected.as_str()) {
                return okta_error(403, "E0000068", "Invalid Passcode/Answer");
            }
            f.status = "ACTIVE".into();
            json(200, json!({"id": fid, "factorType": f.factor_type, "provider": f.provider, "status": "ACTIVE"}))
        }
        ("POST", ["api", "v1", "users", key, "lifecycle", "deactivate"]) => {
            let Some(i) = find(s, key) else { return okta_error(404, "E0000007", "Not found") };
            s.users[i].status = "DEPROVISIONED".into();
            json(200, json!({}))
        }
        ("DELETE", ["api", "v1", "users", key]) => {
            let Some(i) = find(s, key) else { return okta_error(404, "E0000007", "Not found") };
            // Deleting a user that is not deactivated deactivates it; only then is it deleted.
            if s.users[i].status != "DEPROVISIONED" {
                s.users[i].status = "DEPROVISIONED".into();
            } else {
                s.users.remove(i);
            }
            ResponseTemplate::new(204)
        }
        ("POST", ["api", "v1", "users", key, "factors"]) => {
            let body: Value = serde_json::from_slice(&r.body).expect("enrol body");
            assert_eq!(body["factorType"], "email");
            let Some(i) = find(s, key) else { return okta_error(404, "E0000007", "Not found") };
            let email = body["profile"]["email"].as_str().unwrap_or_default().to_string();
            assert_eq!(email, s.users[i].login);
            let mut f = factor("emf-new", "email", "OKTA");
            f.status = "PENDING_ACTIVATION".into();
            s.users[i].factors.push(f);
            json(
                200,
                json!({"id": "emf-new", "factorType": "email", "provider": "OKTA", "status": "PENDING_ACTIVATION"}),
            )
        }
        _ => okta_error(404, "E0000022", "The endpoint does not support the provided HTTP method"),
    }
}

fn user(id: &str, login: &str, factors: Vec<Factor>) -> User {
    let recovery_phones = factors
        .iter()
        .filter(|f| contract::RECOVERY_FACTOR_TYPES.contains(&f.factor_type.as_str()))
        .map(|f| format!("+1555{}", f.id))
        .collect();
    User {
        id: id.into(),
        login: login.into(),
        email: None,
        status: "ACTIVE".into(),
        factors,
        recovery_phones,
        groups: Vec::new(),
    }
}

/// The name in `profile.login eq "X" or profile.email eq "X"`, the one search the fake knows.
fn login_or_email_search(search: &str) -> Option<String> {
    let (login, email) = search.split_once(" or ")?;
    let value = |clause: &str, field: &str| -> Option<String> {
        let quoted = clause.trim().strip_prefix(field)?.trim().strip_prefix("eq")?.trim();
        let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
        Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
    };
    let name = value(login, "profile.login")?;
    (value(email, "profile.email")? == name).then_some(name)
}

/// `_embedded.activation` of a TOTP enrolment, with exactly the specification's fields.
fn totp_activation() -> Value {
    let activation = json!({"sharedSecret": TOTP_SECRET_BASE32, "encoding": "base32", "keyLength": 6, "timeStep": 30});
    let fields: Vec<&str> = activation.as_object().expect("object").keys().map(String::as_str).collect();
    let mut expected = contract::TOTP_ACTIVATION_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(fields, expected, "{}", contract::SOURCE);
    activation
}

/// `keyward conformance` on the Okta fake: a user of its own is created (active, with a
/// password, no e-mail), a TOTP factor enrolled and activated with a passcode from its shared
/// secret, listed, revoked, listed again and the user deleted (deactivated first); every
/// other user and factor is untouched, and every request is shown without a credential.
#[tokio::test]
async fn conformance_proves_the_client_on_a_user_of_its_own() {
    let (server, state) = serve(acme(), handle).await;
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    let before: Vec<(String, usize)> =
        state.lock().expect("state").users.iter().map(|u| (u.login.clone(), u.factors.len())).collect();
    let report = keyward::conformance::run(&okta, "kw-conformance-1f2e3d@acme.example").await;
    let text = report.render("acme/corp");
    assert!(report.passed(), "{text}");
    for step in [
        "create the test user",
        "enrol a second factor: totp",
        "read it as a sweep does: listed uft",
        "read it as a targeted sweep does: listed uft",
        "read again: the factor is gone",
        "delete the test user",
    ] {
        assert!(text.contains(step), "{step:?} missing from {text}");
    }
    assert!(text.contains("/lifecycle/activate → 200") && text.contains("/lifecycle/deactivate → 200"), "{text}");
    assert!(!text.contains(TOKEN) && !text.contains(TOTP_SECRET_BASE32), "no credential or secret shown: {text}");
    let after: Vec<(String, usize)> =
        state.lock().expect("state").users.iter().map(|u| (u.login.clone(), u.factors.len())).collect();
    assert_eq!(after, before, "the test user is gone and nobody else was touched");
}

fn acme() -> Okta {
    Okta {
        users: vec![
            user("00ualice", "alice@acme.example", vec![factor("totA", "token:software:totp", "GOOGLE")]),
            user(
                "00ubob",
                "bob@acme.example",
                vec![factor("totB", "token:software:totp", "GOOGLE"), factor("smsB", "sms", "OKTA")],
            ),
            user(
                "00udave",
                "dave@acme.example",
                vec![factor("totD", "token:software:totp", "GOOGLE"), factor("smsD", "sms", "OKTA")],
            ),
        ],
        ..Default::default()
    }
}

fn provider(url: &str, extra: &str, method: &str) -> MfaProvider {
    let yaml = format!(
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp, namespace: acme}}\nspec:\n  okta:\n    url: {url}\n    credentials: {{method: {method}, secretRef: {{name: okta}}}}\n{extra}"
    );
    serde_yaml::from_str(&yaml).expect("provider")
}

fn secrets(key: &str) -> Option<String> {
    match key {
        "apiToken" => Some(TOKEN.into()),
        "clientId" => Some("0oaclient".into()),
        "privateKey" => Some(RSA_KEY.into()),
        "keyId" => Some("kid-1".into()),
        _ => None,
    }
}

fn backend(provider: &MfaProvider) -> Provider {
    connect_with(provider, &|_, key| secrets(key), Backoff::quick()).expect("connect")
}

fn kinds(inventory: &Inventory, user: &str) -> Vec<String> {
    let mut kinds: Vec<String> = inventory
        .users
        .iter()
        .filter(|u| u.name == user)
        .flat_map(|u| u.enrolments.iter().map(|e| e.kind.to_string()))
        .collect();
    kinds.sort();
    kinds
}

fn enrolment(id: &str, kind: &str) -> Enrolment {
    Enrolment::new(id, FactorKind::new(kind), true)
}

#[tokio::test]
async fn lists_every_page_and_waits_out_a_rate_limit() {
    let mut state = acme();
    for i in 0..5 {
        state.users.push(user(
            &format!("00ux{i}"),
            &format!("x{i}@acme.example"),
            vec![factor(&format!("p{i}"), "push", "OKTA")],
        ));
    }
    state.page_size = 3;
    state.throttle_next = true;
    let (server, state) = serve(state, handle).await;
    let okta = backend(&provider(&server.uri(), "  scope: All\n", "ApiToken"));
    let start = Instant::now();
    let inventory = okta.inventory(&UserQuery { declared: vec![], all: true }).await.expect("inventory");
    assert!(start.elapsed().as_millis() >= 500, "waited for X-Rate-Limit-Reset: {:?}", start.elapsed());
    assert_eq!(inventory.users.len(), 8);
    assert_eq!(kinds(&inventory, "bob@acme.example"), ["sms", "totp"]);
    assert_eq!(kinds(&inventory, "x4@acme.example"), ["push"]);
    let log = state.lock().expect("state").log.clone();
    let pages = log.iter().filter(|l| l.as_str() == "GET /api/v1/users").count();
    assert_eq!(pages, 1 + 3, "the throttled attempt and three pages of three: {log:?}");
}

#[tokio::test]
async fn a_second_delete_is_already_gone_and_push_takes_every_totp_along() {
    let mut state = acme();
    state.users[0].factors = vec![
        factor("push1", "push", "OKTA"),
        factor("ovtotp", "token:software:totp", "OKTA"),
        factor("gtotp", "token:software:totp", "GOOGLE"),
    ];
    let (server, state) = serve(state, handle).await;
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    okta.inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false }).await.expect("inventory");

    let del = RevocationMode::Delete;
    // Planned with its cascade: every TOTP (Google Authenticator's too, as the specification
    // words it) and Okta Verify's push.
    let inventory = okta
        .inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false })
        .await
        .expect("inventory");
    let push = inventory.users[0].enrolments.iter().find(|e| e.id == "push1").expect("push").clone();
    let mut cascade = push.cascades.clone();
    cascade.sort();
    assert_eq!(cascade, ["gtotp", "ovtotp"]);

    assert_eq!(okta.revoke("alice@acme.example", &enrolment("push1", "push"), del).await, Ok(Revoked::Done));
    // The cascade removed both TOTPs: known without another request.
    let before = okta.requests();
    assert_eq!(okta.revoke("alice@acme.example", &enrolment("ovtotp", "totp"), del).await, Ok(Revoked::AlreadyGone));
    assert_eq!(okta.revoke("alice@acme.example", &enrolment("gtotp", "totp"), del).await, Ok(Revoked::AlreadyGone));
    assert_eq!(okta.requests(), before);
    assert!(state.lock().expect("state").users[0].factors.is_empty());
    // A factor deleted once answers 404 the second time: already gone.
    assert_eq!(okta.revoke("bob@acme.example", &enrolment("totB", "totp"), del).await, Ok(Revoked::Done));
    assert_eq!(okta.revoke("bob@acme.example", &enrolment("totB", "totp"), del).await, Ok(Revoked::AlreadyGone));
    let err = okta
        .revoke("alice@acme.example", &enrolment("gtotp", "totp"), RevocationMode::Disable)
        .await
        .expect_err("disable");
    assert!(err.to_string().contains("cannot be disabled"), "{err}");
}

#[tokio::test]
async fn factors_hidden_by_policy_are_unlisted_and_reset() {
    let mut state = acme();
    let mut hidden = factor("hid1", "webauthn", "FIDO");
    hidden.hidden = true;
    state.users[2].factors = vec![hidden];
    let mut gone = user("00ugone", "gone@acme.example", vec![]);
    gone.status = "DEPROVISIONED".into();
    state.users.push(gone);
    let (server, state) = serve(state, handle).await;
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    let query = UserQuery {
        declared: vec!["dave@acme.example".into(), "gone@acme.example".into(), "nobody@acme.example".into()],
        all: false,
    };
    let inventory = okta.inventory(&query).await.expect("inventory");
    assert_eq!(kinds(&inventory, "dave@acme.example"), ["unlisted"]);
    let gone = inventory.users.iter().find(|u| u.name == "gone@acme.example").expect("deprovisioned user listed");
    assert!(!gone.in_directory && gone.enrolments.is_empty());
    assert!(!inventory.users.iter().any(|u| u.name == "nobody@acme.example"));
    let unlisted = inventory.users.iter().find(|u| u.name == "dave@acme.example").expect("dave").enrolments[0].clone();
    assert_eq!(okta.revoke("dave@acme.example", &unlisted, RevocationMode::Delete).await, Ok(Revoked::Done));
    assert!(
        state.lock().expect("state").log.contains(&"POST /api/v1/users/00udave/lifecycle/reset_factors".to_string())
    );
    let inventory = okta.inventory(&query).await.expect("inventory");
    assert_eq!(kinds(&inventory, "dave@acme.example"), Vec::<String>::new());
}

#[tokio::test]
async fn private_key_jwt_token_is_signed_cached_and_renewed_after_401() {
    let mut state = acme();
    state.oauth = true;
    let (server, state) = serve(state, handle).await;
    let okta = backend(&provider(&server.uri(), "", "PrivateKeyJwt"));
    let query = UserQuery { declared: vec!["alice@acme.example".into(), "bob@acme.example".into()], all: false };
    okta.inventory(&query).await.expect("inventory");
    assert_eq!(state.lock().expect("state").issued.len(), 1, "one token for the whole listing");
    // The token is revoked server-side: the next call gets 401, a new token, and succeeds.
    {
        let mut s = state.lock().expect("state");
        let first = s.issued[0].clone();
        s.expired.push(first);
    }
    let inventory = okta.inventory(&query).await.expect("inventory after 401");
    assert_eq!(kinds(&inventory, "alice@acme.example"), ["totp"]);
    assert_eq!(state.lock().expect("state").issued.len(), 2);
}

#[tokio::test]
async fn wrong_token_and_malformed_answers_are_clear_errors() {
    let (server, state) = serve(acme(), handle).await;
    let okta = connect_with(
        &provider(&server.uri(), "", "ApiToken"),
        &|_, k| (k == "apiToken").then(|| "wrong".into()),
        Backoff::quick(),
    )
    .expect("connect");
    let err = okta.check().await.expect_err("rejected");
    assert!(err.to_string().contains("credentials rejected: E0000011"), "{err}");

    state.lock().expect("state").malformed_factors = true;
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    let err = okta
        .inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false })
        .await
        .expect_err("malformed");
    let text = err.to_string();
    assert!(
        text.contains("list enrolments on acme/corp") && text.contains("unexpected response: factors of user 00ualice"),
        "{text}"
    );

    let missing = connect_with(
        &provider(&server.uri(), "", "PrivateKeyJwt"),
        &|_, k| (k == "clientId").then(|| "x".into()),
        Backoff::quick(),
    );
    assert!(missing.err().expect("no key").to_string().contains("has no key \"privateKey\""));
}

#[tokio::test]
async fn invitation_enrols_the_email_factor_pending_activation() {
    let (server, state) = serve(acme(), handle).await;
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    okta.invite("alice@acme.example", &FactorKind::new("email")).await.expect("invite");
    {
        let alice = &state.lock().expect("state").users[0];
        assert!(alice.factors.iter().any(|f| f.factor_type == "email" && f.status == "PENDING_ACTIVATION"));
    }
    assert!(okta.invite("alice@acme.example", &FactorKind::new("totp")).await.is_err(), "TOTP would return its secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_apply_revoke_the_leaver_and_the_out_of_band_factor_only() {
    let (server, state) = serve(acme(), handle).await;
    let block = format!("  okta:\n    url: {}\n    credentials: {{secretRef: {{name: corp-admin}}}}", server.uri());
    let tree = company(&block, &format!("  apiToken: {TOKEN}"), "totp");

    let (code, plan_before) = plan(tree.path()).await;
    assert_eq!(code, 2, "{plan_before}");
    assert_eq!(
        actions(&plan_before),
        [
            revoke("bob@acme.example", "sms", "NotEntitled"),
            revoke("dave@acme.example", "sms", "EmployeeOffboarded"),
            revoke("dave@acme.example", "totp", "EmployeeOffboarded"),
        ]
    );
    assert!(state.lock().expect("state").log.iter().all(|l| l.starts_with("GET")), "plan changes nothing");

    let (code, audit, stderr) = apply(tree.path()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert!(audit.iter().all(|r| r["outcome"] == "revoked" && r["provider"] == "acme/corp"), "{audit:?}");
    {
        let s = state.lock().expect("state");
        let ids = |i: usize| s.users[i].factors.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(0), ["totA"], "alice keeps her entitled TOTP");
        assert_eq!(ids(1), ["totB"], "bob loses only the SMS factor");
        assert!(ids(2).is_empty(), "dave has nothing left");
    }
    let (code, plan_after) = plan(tree.path()).await;
    assert_eq!((code, actions(&plan_after)), (0, vec![]), "{plan_after}");

    outage_revokes_nothing(tree.path(), &server.uri()).await;
}

/// Okta unenrolls every Okta Verify factor with push (or FastPass): alice, entitled to TOTP
/// only, keeps her Okta Verify push, which would take her entitled Okta Verify TOTP along;
/// dave, a leaver, loses both — each planned, so each gets its own record.
#[tokio::test]
async fn push_is_withheld_when_its_cascade_would_take_an_entitled_factor() {
    let mut okta = acme();
    okta.users[0].factors = vec![factor("totV", "token:software:totp", "OKTA"), factor("pushA", "push", "OKTA")];
    okta.users[2].factors = vec![factor("totW", "token:software:totp", "OKTA"), factor("pushD", "push", "OKTA")];
    let (server, state) = serve(okta, handle).await;
    let block = format!("  okta:\n    url: {}\n    credentials: {{secretRef: {{name: corp-admin}}}}", server.uri());
    let tree = company(&block, &format!("  apiToken: {TOKEN}"), "totp");

    let (code, plan_before) = plan(tree.path()).await;
    assert_eq!(code, 2, "{plan_before}");
    assert_eq!(
        actions(&plan_before),
        [
            revoke("bob@acme.example", "sms", "NotEntitled"),
            revoke("dave@acme.example", "push", "EmployeeOffboarded"),
            revoke("dave@acme.example", "totp", "EmployeeOffboarded"),
        ],
        "alice's push is not planned: {plan_before}"
    );
    let (code, audit, stderr) = apply(tree.path()).await;
    assert_eq!(code, 0, "{stderr}");
    let dave: Vec<&Value> = audit.iter().filter(|r| r["user"] == "dave@acme.example").collect();
    assert_eq!(dave.len(), 2, "a record for each factor that disappeared: {audit:?}");
    let s = state.lock().expect("state");
    let ids = s.users[0].factors.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids, ["totV", "pushA"], "alice keeps her Okta Verify TOTP, and so her push");
    assert!(s.users[2].factors.is_empty(), "dave has nothing left");
}

/// Defect: an sms or call factor unenrolled without `removeRecoveryEnrollment=true` leaves the
/// number as a recovery method, so a leaver could still reset the password by SMS.
#[tokio::test]
async fn unenrolling_sms_removes_the_phone_as_a_recovery_method_too() {
    let (server, state) = serve(acme(), handle).await;
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    assert_eq!(state.lock().expect("state").users[2].recovery_phones.len(), 1);
    let sms = enrolment("smsD", "sms");
    assert_eq!(okta.revoke("dave@acme.example", &sms, RevocationMode::Delete).await, Ok(Revoked::Done));
    let s = state.lock().expect("state");
    assert!(s.users[2].recovery_phones.is_empty(), "the recovery phone went with the factor");
    assert!(
        s.log.contains(&"DELETE /api/v1/users/00udave/factors/smsD".to_string()),
        "the factor itself was unenrolled: {:?}",
        s.log
    );
}

/// Defect: `GET /users/{login}` takes an id, a login or a login shortname, not an e-mail that
/// differs from the login, nor a login with `/`: such users were invisible, so their factors
/// were never revoked. They are found by search.
#[tokio::test]
async fn users_named_by_email_or_a_login_with_a_slash_are_found() {
    let mut state = acme();
    state.users[2].login = "acme/dave".into();
    state.users[2].email = Some("dave@acme.example".into());
    state.users[0].email = Some("alice.example@acme.example".into());
    let (server, state) = serve(state, handle).await;
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    let query = UserQuery {
        declared: vec!["dave@acme.example".into(), "alice.example@acme.example".into(), "acme/dave".into()],
        all: false,
    };
    let inventory = okta.inventory(&query).await.expect("inventory");
    assert_eq!(kinds(&inventory, "dave@acme.example"), ["sms", "totp"]);
    assert_eq!(kinds(&inventory, "acme/dave"), ["sms", "totp"]);
    assert_eq!(kinds(&inventory, "alice.example@acme.example"), ["totp"]);
    assert_eq!(
        okta.revoke("dave@acme.example", &enrolment("totD", "totp"), RevocationMode::Delete).await,
        Ok(Revoked::Done)
    );
    assert!(state.lock().expect("state").users[2].factors.iter().all(|f| f.id != "totD"));

    // Two users answering one search: neither is acted on.
    state.lock().expect("state").users[1].email = Some("dave@acme.example".into());
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    let err = okta
        .inventory(&UserQuery { declared: vec!["dave@acme.example".into()], all: false })
        .await
        .expect_err("ambiguous");
    assert!(err.to_string().contains("identity conflict"), "{err}");
}

/// `GET /users/me` is the admin who granted the API token. An Employee named (or
/// mapped to) `me` is searched for by login and e-mail instead: keyward neither lists nor
/// revokes its own admin's factors on that person's behalf, and a user whose login is `me`
/// is found.
#[tokio::test]
async fn a_user_named_me_is_searched_for_never_the_token_s_admin() {
    let mut state = acme();
    state.users.push(user("00uadmin", "admin@acme.example", vec![factor("admpush", "push", "OKTA")]));
    state.token_owner = Some("00uadmin".into());
    let (server, state) = serve(state, handle).await;
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    let declared = UserQuery { declared: vec!["me".into()], all: false };
    let inventory = okta.inventory(&declared).await.expect("inventory");
    assert!(inventory.users.is_empty(), "no user goes by `me`: {:?}", inventory.users);
    assert_eq!(
        okta.revoke("me", &enrolment("admpush", "push"), RevocationMode::Delete).await,
        Ok(Revoked::AlreadyGone),
        "no such user: nothing of the admin's is touched"
    );
    {
        let s = state.lock().expect("state");
        assert!(!s.log.iter().any(|l| l.starts_with("GET /api/v1/users/me")), "{:?}", s.log);
        assert!(!s.log.iter().any(|l| l.contains("/users/00uadmin/")), "{:?}", s.log);
        assert_eq!(s.users[3].factors.len(), 1);
    }

    // A login pattern that allows `me`: that user is found, by search.
    state.lock().expect("state").users.push(user("00ume", "me", vec![factor("totMe", "token:software:totp", "OKTA")]));
    let inventory = okta.inventory(&declared).await.expect("inventory");
    assert_eq!(kinds(&inventory, "me"), ["totp"]);
    assert_eq!(okta.revoke("me", &enrolment("totMe", "totp"), RevocationMode::Delete).await, Ok(Revoked::Done));
    let s = state.lock().expect("state");
    assert!(s.users[4].factors.is_empty() && s.users[3].factors.len() == 1, "the admin keeps its push");
}

/// Custom TOTP (`token:hotp`) is reported as `totp`, so it is counted among what
/// unenrolling push takes along: a push whose removal might take an entitled Custom TOTP is
/// withheld rather than revoked.
#[tokio::test]
async fn push_counts_custom_totp_among_what_its_cascade_takes() {
    let mut state = acme();
    state.users[0].factors = vec![factor("push1", "push", "OKTA"), factor("ctotp", "token:hotp", "CUSTOM")];
    let (server, _state) = serve(state, handle).await;
    let okta = backend(&provider(&server.uri(), "", "ApiToken"));
    let inventory = okta
        .inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false })
        .await
        .expect("inventory");
    let push = inventory.users[0].enrolments.iter().find(|e| e.id == "push1").expect("push");
    assert_eq!(push.cascades, ["ctotp"]);
}

/// Defect: with `privateKeyJwt` and `groupId`, the token lacked `okta.groups.read`, which the
/// specification requires of `listGroupUsers`: every sweep failed with 403.
#[tokio::test]
async fn private_key_jwt_asks_for_the_scopes_of_every_operation_it_calls() {
    let mut state = acme();
    state.oauth = true;
    state.users[0].groups = vec!["00gsre".into()];
    state.users[1].groups = vec!["00gsre".into()];
    // One member per page: the second is found only by following the group listing's Link.
    state.page_size = 1;
    let (server, state) = serve(state, handle).await;
    let okta = backend(&provider(&server.uri(), "    groupId: 00gsre\n  scope: All\n", "PrivateKeyJwt"));
    let inventory = okta.inventory(&UserQuery { declared: vec![], all: true }).await.expect("inventory");
    let mut names: Vec<&str> = inventory.users.iter().map(|u| u.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["alice@acme.example", "bob@acme.example"]);
    assert_eq!(
        okta.revoke("bob@acme.example", &enrolment("smsB", "sms"), RevocationMode::Delete).await,
        Ok(Revoked::Done)
    );
    let s = state.lock().expect("state");
    let mut granted = s.scopes.values().next().expect("a token").clone();
    granted.sort();
    assert_eq!(granted, ["okta.groups.read", "okta.users.manage", "okta.users.read"], "least privilege, no more");
}

/// Every factor type and provider pair of the specification has a kind listed in `KINDS`.
#[test]
fn contract_every_factor_type_and_provider_has_a_kind() {
    use keyward::providers::okta::{KINDS, kind_of};
    assert_eq!(contract::FACTOR_TYPES.len(), contract::FACTOR_PROVIDERS.len(), "{}", contract::SOURCE);
    for (factor_type, providers) in contract::FACTOR_PROVIDERS {
        assert!(contract::FACTOR_TYPES.contains(factor_type));
        for provider in *providers {
            let kind = kind_of(factor_type, provider);
            assert!(KINDS.contains(&kind.as_str()), "{factor_type} from {provider} gives {kind}, not in KINDS");
        }
    }
    // Custom TOTP (`token:hotp`) is time-based: a TOTP grant covers it.
    assert_eq!(kind_of("token:hotp", "CUSTOM").as_str(), "totp");
}

/// The client's cascade and recovery-phone rules are the specification's.
#[test]
fn contract_cascade_and_recovery_phones_follow_the_specification() {
    use keyward::providers::okta::{has_recovery_phone, kind_of, taken_by_cascade};
    for (factor_type, providers) in contract::FACTOR_PROVIDERS {
        for provider in *providers {
            let spec = contract::CASCADED_FACTOR_TYPES
                .iter()
                .any(|(t, p)| t == factor_type && p.is_none_or(|p| p == *provider));
            let beyond = contract::CASCADE_COUNTED_BEYOND_WORDING.contains(&(*factor_type, *provider));
            assert_eq!(taken_by_cascade(factor_type, provider), spec || beyond, "{factor_type} from {provider}");
            let recovery = contract::RECOVERY_FACTOR_TYPES.contains(factor_type);
            assert_eq!(has_recovery_phone(kind_of(factor_type, provider).as_str()), recovery, "{factor_type}");
        }
    }
}

/// Every factor status and user status the specification lists is one the client decides on.
#[test]
fn contract_every_factor_and_user_status_is_handled() {
    use keyward::providers::okta::{FactorState, factor_state, user_deprovisioned};
    for status in contract::FACTOR_STATUSES {
        let state = factor_state(status);
        assert_ne!(state, FactorState::Unknown, "{status}");
        assert_eq!(state == FactorState::NotEnrolled, *status == "NOT_SETUP", "{status}");
    }
    for status in contract::USER_STATUSES {
        assert_eq!(user_deprovisioned(status), Some(*status == "DEPROVISIONED"), "{status}");
    }
    assert_eq!(user_deprovisioned("SOMETHING_NEW"), None);
}

/// Defect: an Okta service app that requires DPoP refused every token request. keyward now
/// answers `invalid_dpop_proof` with a proof of a key of its own, `use_dpop_nonce` with the
/// nonce, and sends each request with `Authorization: DPoP` and a proof bound to the token.
#[tokio::test]
async fn a_service_app_that_requires_dpop_gets_bound_tokens_and_proofs() {
    let mut state = acme();
    state.oauth = true;
    state.dpop_required = true;
    let (server, state) = serve(state, handle).await;
    let okta = backend(&provider(&server.uri(), "", "PrivateKeyJwt"));
    let query = UserQuery { declared: vec!["alice@acme.example".into(), "bob@acme.example".into()], all: false };
    let inventory = okta.inventory(&query).await.expect("inventory with DPoP");
    assert_eq!(kinds(&inventory, "bob@acme.example"), ["sms", "totp"]);
    assert_eq!(
        okta.revoke("bob@acme.example", &enrolment("smsB", "sms"), RevocationMode::Delete).await,
        Ok(Revoked::Done)
    );
    let s = state.lock().expect("state");
    assert_eq!(s.issued.len(), 1, "one token, bound to the key");
    assert!(s.bound.contains_key(&s.issued[0]));
    let token_requests = s.log.iter().filter(|l| *l == "POST /oauth2/v1/token").count();
    assert_eq!(token_requests, 3, "without a proof, without the nonce, then granted: {:?}", s.log);
}

/// Provider requests per offboarding are a constant, whatever the company's size:
/// a targeted sweep reads the leaver alone (the user, its factors), where a full `scope: All`
/// sweep lists every page of users and every user's factors (Okta has no bulk factor read).
#[tokio::test]
async fn an_offboarding_reads_one_user_however_large_the_org() {
    for people in [20, 300] {
        let mut state = acme();
        for i in 0..people {
            let (id, login) = (format!("00ux{i}"), format!("x{i}@acme.example"));
            state.users.push(user(&id, &login, vec![factor(&format!("t{i}"), "token:software:totp", "GOOGLE")]));
        }
        state.page_size = 200;
        let (server, state) = serve(state, handle).await;
        let okta = backend(&provider(&server.uri(), "  scope: All\n", "ApiToken"));
        let full = okta.inventory(&UserQuery { declared: vec![], all: true }).await.expect("inventory");
        let full_requests = okta.requests();
        assert_eq!(full.users.len(), people + 3);
        let targeted = okta.inventory_of(&["dave@acme.example".into()]).await.expect("read").expect("per-user read");
        let per_offboarding = okta.requests() - full_requests;
        assert_eq!(kinds(&targeted, "dave@acme.example"), ["sms", "totp"]);
        assert_eq!(targeted.users.len(), 1);
        println!("okta people={people} full_sweep_requests={full_requests} per_offboarding_requests={per_offboarding}");
        assert_eq!(per_offboarding, 2, "the user and its factors: {:?}", state.lock().expect("state").log);
        assert!(full_requests > people as u64, "a full sweep reads every user's factors");
    }
}

/// The reliability suite's provider faults in front of the Okta fake: 30 leavers
/// with a TOTP and an SMS factor each beside Acme, listed ten users a page, while a third of
/// the requests fail; nothing entitled is lost and every leaver's factor goes, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_at_a_third_of_the_requests_revoke_every_leaver_and_nothing_kept() {
    let mut okta = acme();
    okta.page_size = 10;
    let block = "  okta:\n    url: URL\n    timeout: 2s\n    credentials: {secretRef: {name: corp-admin}}";
    let tree = company(block, &format!("  apiToken: {TOKEN}"), "totp");
    for (i, name) in add_leavers(tree.path(), 30).iter().enumerate() {
        okta.users.push(user(
            &format!("00uleaver{i}"),
            &format!("{name}@acme.example"),
            vec![
                factor(&format!("tot{i}"), "token:software:totp", "GOOGLE"),
                factor(&format!("sms{i}"), "sms", "OKTA"),
            ],
        ));
    }
    let (server, state) = serve(okta, handle).await;
    retarget(tree.path(), "URL", &server.uri());
    let holdings = || {
        let s = state.lock().expect("state");
        let mut h = Holdings { kept: Vec::new(), left: Vec::new() };
        for u in &s.users {
            for f in &u.factors {
                let entitled = ["alice@acme.example", "bob@acme.example"].contains(&u.login.as_str())
                    && f.factor_type == "token:software:totp";
                (if entitled { &mut h.kept } else { &mut h.left }).push((u.login.clone(), f.id.clone()));
            }
        }
        h
    };
    faults_revoke_every_leaver_and_nothing_kept(tree.path(), &server.uri(), seed(), holdings).await;
}
