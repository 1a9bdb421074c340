//! Okta (docs/providers.md): Factors API under `/api/v1`, SSWS API token or an OAuth 2.0 service
//! app (`private_key_jwt`).
//!
//! Okta has no bulk factor listing: users come from one paged listing (`scope: All`) or one
//! lookup each (`Declared`), then one factor listing per user. The factor listing is filtered
//! by the user's enrolment policy, so it cannot prove that a user holds nothing: when it comes
//! back empty while the user object still offers `resetFactors` ("present only if the user is
//! enrolled in one or more factors"), the user holds factors keyward cannot see, reported as
//! one `unlisted` enrolment that `reset_factors` revokes.

mod mapping;
pub mod spec;

pub use mapping::{
    FactorState, KINDS, factor_state, has_recovery_phone, kind_of, taken_by_cascade, user_deprovisioned,
};

use super::api::ProviderApi;
use super::error::{Failure, ProviderError};
use super::oauth::{Grant, TokenSource};
use super::paging;
use super::rest::{
    Auth, Backoff, Call, Rest, StaticHeader, declared_name, declared_set, decode, join, reset_in, same_origin, snippet,
    status_failure,
};
use super::user_ids::{self, UserIds};
use super::{Revoked, UserQuery};
use crate::crd::FactorKind;
use crate::crd::mfa_provider::{OktaSpec, RevocationMode};
use crate::engine::inventory::UNLISTED_KIND;
use crate::engine::{Capabilities, Enrolment, Inventory, ProviderUser};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// Default pace: Okta's per-endpoint limits start around 600 requests a minute.
const DEFAULT_RPS: u32 = 10;
const PAGE_SIZE: &str = "200";
const MAX_PAGES: usize = 10_000;
/// Id of the `unlisted` enrolment: revoking it is `POST …/lifecycle/reset_factors`.
const RESET_FACTORS: &str = "reset_factors";

/// How keyward authenticates to Okta.
pub enum OktaAuth {
    ApiToken(String),
    PrivateKeyJwt { client_id: String, private_key: String, key_id: Option<String> },
}

pub struct Okta {
    name: String,
    base: url::Url,
    group_id: Option<String>,
    rest: Rest,
    /// Lower-cased login (or e-mail) → user, from lookups and listings.
    users: UserIds<Known>,
    /// Factors that an earlier revocation's cascade already removed, per user id.
    cascaded: Mutex<HashMap<String, HashSet<String>>>,
    /// The user listing of `scope: All`, resumed from the page where it last failed.
    user_listing: paging::Resumable<url::Url, User>,
}

#[derive(Clone, Debug)]
struct Known {
    id: String,
    email: Option<String>,
    deprovisioned: bool,
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    profile: Profile,
    #[serde(rename = "_links", default)]
    links: Links,
}

#[derive(Debug, Default, Deserialize)]
struct Profile {
    #[serde(default)]
    login: String,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Links {
    #[serde(rename = "resetFactors", default)]
    reset_factors: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Factor {
    id: String,
    #[serde(rename = "factorType")]
    factor_type: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    status: String,
}

/// What unenrolling push or FastPass takes along.
fn cascaded(factor: &Factor) -> bool {
    mapping::taken_by_cascade(&factor.factor_type, &factor.provider)
        && factor_state(&factor.status) != FactorState::NotEnrolled
}

#[derive(Debug, Deserialize)]
struct OktaError {
    #[serde(rename = "errorCode", default)]
    code: String,
    #[serde(rename = "errorSummary", default)]
    summary: String,
}

/// Okta's 429 carries `X-Rate-Limit-Reset` (epoch seconds); `Retry-After` is preferred when a
/// proxy in front adds one.
fn throttle(response: &super::http::Response) -> Option<Option<Duration>> {
    (response.status == 429).then(|| response.retry_after().or_else(|| reset_in(response)))
}

fn failure(response: &super::http::Response) -> Failure {
    let message = match serde_json::from_slice::<OktaError>(&response.body) {
        Ok(e) if !e.code.is_empty() => format!("{} {}", e.code, e.summary),
        _ => snippet(&response.body),
    };
    status_failure(response, message)
}

fn ok(response: &super::http::Response) -> bool {
    (200..300).contains(&response.status)
}

impl Okta {
    pub fn new(
        name: &str,
        spec: &OktaSpec,
        settings: &super::rest::TransportSettings,
        auth: OktaAuth,
        backoff: Backoff,
    ) -> Result<Self, ProviderError> {
        let configure = |message: String| ProviderError::Configure { provider: name.to_string(), message };
        let base = super::rest::url_field(name, &spec.url)?;
        let transport = super::rest::provider_transport(name, spec.timeout.as_deref(), settings, Some(DEFAULT_RPS))?;
        let auth: Box<dyn Auth> = match auth {
            OktaAuth::ApiToken(token) => {
                Box::new(StaticHeader { name: "Authorization".into(), value: format!("SSWS {}", token.trim()) })
            }
            OktaAuth::PrivateKeyJwt { client_id, private_key, key_id } => {
                let key = super::jwt::SigningKey::from_pem(&private_key)
                    .map_err(|e| configure(format!("privateKey: {e}")))?;
                let header = key_id.into_iter().map(|k| ("kid", json!(k))).collect();
                let grant = Grant::ClientAssertion { client_id, key, header, scope: scopes(spec).join(" ") };
                // Okta service apps may require DPoP ("Require Demonstrating Proof of
                // Possession"): offered, and used once the token endpoint asks.
                let source = TokenSource::new(join(&base, &["oauth2", "v1", "token"]), grant)
                    .offering_dpop()
                    .map_err(|f| configure(f.to_string()))?;
                Box::new(source)
            }
        };
        let mut rest = Rest::new(transport, auth, throttle);
        rest.backoff = backoff;
        Ok(Okta {
            name: name.to_string(),
            base,
            group_id: spec.group_id.clone().filter(|g| !g.is_empty()),
            rest,
            users: UserIds::default(),
            cascaded: Mutex::new(HashMap::new()),
            user_listing: paging::Resumable::default(),
        })
    }

    fn api(&self, segments: &[&str]) -> url::Url {
        let mut all = vec!["api", "v1"];
        all.extend_from_slice(segments);
        join(&self.base, &all)
    }

    fn remember(&self, names: &[&str], user: &User) {
        let known = Known {
            id: user.id.clone(),
            email: user.profile.email.clone(),
            deprovisioned: user_deprovisioned(&user.status) == Some(true),
        };
        self.users.set_all(names, &known);
    }

    /// The user `name` addresses (a login, an e-mail or an id): `None` when Okta has none.
    ///
    /// `GET /users/{id}` takes "an ID, login, or login shortname", but not an e-mail that
    /// differs from the login, nor a name [`fetchable_by_path`] refuses: those are searched for
    /// by login or primary e-mail. Several users matching is an identity conflict, never a
    /// guess.
    async fn get_user(&self, name: &str) -> Result<Option<User>, Failure> {
        if fetchable_by_path(name)
            && let Some(user) = self.fetch_user(name).await?
        {
            self.remember(&[name, &user.profile.login], &user);
            return Ok(Some(user));
        }
        let mut url = self.api(&["users"]);
        url.query_pairs_mut().append_pair("search", &search_by_name(name));
        let response = self.rest.send(&Call::get(url)).await?;
        if !ok(&response) {
            return Err(failure(&response));
        }
        let found: Vec<User> = decode(&response, &format!("search for user {name}"))?;
        // Search compares values without regard to case, as logins are compared.
        let exact = |u: &&User| u.profile.login.eq_ignore_ascii_case(name);
        let user = match found.iter().filter(exact).count() {
            1 => found.into_iter().find(|u| exact(&u)),
            _ => {
                let ids: Vec<String> = found.iter().map(|u| u.id.clone()).collect();
                user_ids::one(name, &ids)?;
                found.into_iter().next()
            }
        };
        let Some(user) = user else { return Ok(None) };
        // A search result carries only `_links.self`: read the whole user by its id.
        let Some(user) = self.fetch_user(&user.id).await? else { return Ok(None) };
        self.remember(&[name, &user.profile.login], &user);
        Ok(Some(user))
    }

    /// `GET /users/{id}` (an id, login or login shortname): `None` on 404.
    async fn fetch_user(&self, key: &str) -> Result<Option<User>, Failure> {
        let response = self.rest.send(&Call::get(self.api(&["users", key]))).await?;
        match response.status {
            404 => Ok(None),
            _ if ok(&response) => decode(&response, &format!("user {key}")).map(Some),
            _ => Err(failure(&response)),
        }
    }

    /// The user's Okta id (factor paths take the id), from the cache or a lookup.
    async fn known(&self, login: &str) -> Result<Option<Known>, Failure> {
        if let Some(known) = self.users.get(login) {
            return Ok(Some(known));
        }
        self.get_user(login).await?;
        Ok(self.users.get(login))
    }

    /// Every user of the org (or of `groupId`), following `Link: rel="next"`; a listing that
    /// failed on a page goes on from that page's cursor next time.
    async fn list_users(&self) -> Result<Vec<User>, Failure> {
        let mut url = match &self.group_id {
            Some(group) => self.api(&["groups", group, "users"]),
            None => self.api(&["users"]),
        };
        url.query_pairs_mut().append_pair("limit", PAGE_SIZE);
        self.user_listing.list(url.as_str(), url.clone(), MAX_PAGES, "user listing", |u| self.user_page(u)).await
    }

    async fn user_page(&self, url: url::Url) -> Result<paging::Page<url::Url, User>, Failure> {
        let response = self.rest.send(&Call::get(url)).await?;
        if !ok(&response) {
            return Err(failure(&response));
        }
        let page: Vec<User> = decode(&response, "user listing")?;
        match next_link(&response) {
            Some(next) if same_origin(&self.base, &next) => Ok((page, Some(next))),
            Some(next) => {
                Err(Failure::Malformed(format!("paging link to another host: {}", next.origin().ascii_serialization())))
            }
            None => Ok((page, None)),
        }
    }

    async fn factors(&self, user_id: &str) -> Result<Vec<Factor>, Failure> {
        let response = self.rest.send(&Call::get(self.api(&["users", user_id, "factors"]))).await?;
        if !ok(&response) {
            return Err(failure(&response));
        }
        decode(&response, &format!("factors of user {user_id}"))
    }

    /// The enrolments of one user. `links_known`: `user` came from a single-user read, which
    /// carries the full `_links` (a listing carries only `self`).
    async fn user_enrolments(&self, name: String, user: User, links_known: bool) -> Result<ProviderUser, Failure> {
        let email = user.profile.email.as_deref().unwrap_or_default();
        let aliases = ProviderUser::aliases_of(&name, &[&user.profile.login, email, &user.id]);
        if user_deprovisioned(&user.status) == Some(true) {
            // A deactivated user can neither sign in nor have factors unenrolled; Okta answers
            // 404 to its factor listing.
            return Ok(ProviderUser { name, in_directory: false, enrolments: Vec::new(), aliases });
        }
        let factors = self.factors(&user.id).await?;
        let mut enrolments: Vec<Enrolment> = factors
            .iter()
            .filter(|f| factor_state(&f.status) != FactorState::NotEnrolled)
            .map(|f| {
                let kind = kind_of(&f.factor_type, &f.provider);
                let active = factor_state(&f.status) == FactorState::Active;
                // Unenrolling push or FastPass unenrolls the user's TOTP and Okta Verify factors.
                let cascades = if mapping::cascades(kind.as_str()) {
                    factors.iter().filter(|other| cascaded(other)).map(|other| other.id.clone()).collect()
                } else {
                    Vec::new()
                };
                Enrolment::new(f.id.clone(), kind, active).cascading(cascades)
            })
            .collect();
        if enrolments.is_empty() {
            let offers_reset = if links_known {
                user.links.reset_factors.is_some()
            } else {
                self.fetch_user(&user.id).await?.is_some_and(|u| u.links.reset_factors.is_some())
            };
            if offers_reset {
                enrolments.push(Enrolment::new(RESET_FACTORS, FactorKind::new(UNLISTED_KIND), true));
            }
        }
        Ok(ProviderUser { name, in_directory: true, enrolments, aliases })
    }

    async fn read_users(&self, query: &UserQuery) -> Result<Inventory, Failure> {
        let mut users = Vec::new();
        if query.all {
            let declared = declared_set(&query.declared);
            for user in self.list_users().await? {
                let email = user.profile.email.clone().unwrap_or_default();
                let name = declared_name(&declared, &[&user.profile.login, &email]);
                self.remember(&[&name, &user.profile.login], &user);
                users.push(self.user_enrolments(name, user, false).await?);
            }
        } else {
            for login in &query.declared {
                if let Some(user) = self.get_user(login).await? {
                    users.push(self.user_enrolments(login.clone(), user, true).await?);
                }
            }
        }
        Ok(Inventory { users })
    }

    async fn unenrol(&self, user: &str, enrolment: &Enrolment) -> Result<Revoked, Failure> {
        let Some(known) = self.known(user).await? else {
            return Ok(Revoked::AlreadyGone); // the user itself is gone
        };
        if known.deprovisioned {
            return Ok(Revoked::AlreadyGone);
        }
        if enrolment.kind.as_str() == UNLISTED_KIND {
            let call = Call::post(self.api(&["users", &known.id, "lifecycle", "reset_factors"]));
            let response = self.rest.send(&call).await?;
            return match response.status {
                404 => Ok(Revoked::AlreadyGone),
                _ if ok(&response) => Ok(Revoked::Done),
                _ => Err(failure(&response)),
            };
        }
        let cascaded = self
            .cascaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&known.id)
            .is_some_and(|s| s.contains(&enrolment.id));
        if cascaded {
            return Ok(Revoked::AlreadyGone);
        }
        // What the user holds before unenrolling a cascading factor, to tell afterwards what
        // the cascade took along.
        let before = if mapping::cascades(enrolment.kind.as_str()) {
            let factors = self.factors(&known.id).await?;
            if !factors.iter().any(|f| f.id == enrolment.id) {
                return Ok(Revoked::AlreadyGone);
            }
            Some(factors)
        } else {
            None
        };
        let mut url = self.api(&["users", &known.id, "factors", &enrolment.id]);
        if mapping::has_recovery_phone(enrolment.kind.as_str()) {
            // Otherwise the number stays a recovery method: a leaver could still reset the
            // password by SMS or call.
            url.query_pairs_mut().append_pair("removeRecoveryEnrollment", "true");
        }
        let response = self.rest.send(&Call::delete(url)).await?;
        let result = match response.status {
            // E0000007: already unenrolled, by an earlier attempt or a cascade.
            404 => Revoked::AlreadyGone,
            _ if ok(&response) => Revoked::Done,
            _ => return Err(failure(&response)),
        };
        if let Some(before) = before {
            // Unenrolling push or FastPass also unenrolls TOTP and Okta Verify's factors: list
            // again, remember what went, and say so (the audit names only what was planned).
            let after: HashSet<String> = self.factors(&known.id).await?.into_iter().map(|f| f.id).collect();
            let gone: Vec<&Factor> = before.iter().filter(|f| f.id != enrolment.id && !after.contains(&f.id)).collect();
            if !gone.is_empty() {
                tracing::warn!(
                    provider = %self.name, user,
                    factor = %enrolment.id,
                    cascaded = ?gone.iter().map(|f| format!("{} ({})", f.id, f.factor_type)).collect::<Vec<_>>(),
                    "Okta also unenrolled the user's TOTP and other Okta Verify factors"
                );
                let mut cascaded = self.cascaded.lock().unwrap_or_else(|p| p.into_inner());
                cascaded.entry(known.id.clone()).or_default().extend(gone.iter().map(|f| f.id.clone()));
            }
        }
        Ok(result)
    }

    async fn enrol_email(&self, user: &str) -> Result<(), Failure> {
        let known = self.known(user).await?.ok_or_else(|| Failure::Status {
            status: 404,
            code: None,
            message: format!("no Okta user {user}"),
        })?;
        let email = match known.email {
            Some(email) if !email.is_empty() => email,
            _ => return Err(Failure::Malformed(format!("Okta user {user} has no primary e-mail"))),
        };
        // Okta e-mails the user a code; the factor stays PENDING_ACTIVATION until they enter
        // it. Nothing secret comes back to keyward.
        let body = json!({"factorType": "email", "provider": "OKTA", "profile": {"email": email}});
        let response = self.rest.send(&Call::post(self.api(&["users", &known.id, "factors"])).json(&body)).await?;
        if ok(&response) { Ok(()) } else { Err(failure(&response)) }
    }
}

#[async_trait]
impl crate::providers::TestUsers for Okta {
    /// `createUser` with a password and `activate=true`: an active user, no activation e-mail.
    async fn create_user(&self, name: &str) -> Result<(), Failure> {
        let password = format!("Kw-{:032x}!Aa1", rand::random::<u128>());
        let body = json!({
            "profile": {"login": name, "email": name, "firstName": "keyward", "lastName": "conformance"},
            "credentials": {"password": {"value": password}},
        });
        let mut url = self.api(&["users"]);
        url.query_pairs_mut().append_pair("activate", "true");
        let response = self.rest.send(&Call::post(url).json(&body)).await?;
        if ok(&response) { Ok(()) } else { Err(failure(&response)) }
    }

    /// A TOTP factor (`token:software:totp`, Google Authenticator), enrolled pending
    /// activation and activated with a passcode computed from the shared secret Okta returns.
    async fn enrol(&self, name: &str) -> Result<FactorKind, Failure> {
        let known = self.known(name).await?.ok_or_else(|| Failure::Status {
            status: 404,
            code: None,
            message: format!("no Okta user {name}"),
        })?;
        let body = json!({"factorType": "token:software:totp", "provider": "GOOGLE"});
        let mut url = self.api(&["users", &known.id, "factors"]);
        url.query_pairs_mut().append_pair("activate", "false");
        let response = self.rest.send(&Call::post(url).json(&body)).await?;
        if !ok(&response) {
            return Err(failure(&response));
        }
        let enrolled: serde_json::Value = decode(&response, "the TOTP enrolment")?;
        let activation = &enrolled["_embedded"]["activation"];
        let (Some(id), Some(secret)) = (enrolled["id"].as_str(), activation["sharedSecret"].as_str()) else {
            return Err(Failure::Malformed("the TOTP enrolment has no id or sharedSecret".into()));
        };
        let key = super::totp::base32_decode(secret)
            .ok_or_else(|| Failure::Malformed("the TOTP sharedSecret is not Base32".into()))?;
        let step = activation["timeStep"].as_u64().unwrap_or(30);
        let digits = activation["keyLength"].as_u64().unwrap_or(6) as u32;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let pass_code = super::totp::code(&key, now, step, digits);
        let url = self.api(&["users", &known.id, "factors", id, "lifecycle", "activate"]);
        let response = self.rest.send(&Call::post(url).json(&json!({"passCode": pass_code}))).await?;
        if ok(&response) { Ok(kind_of("token:software:totp", "GOOGLE")) } else { Err(failure(&response)) }
    }

    /// `deactivateUser`, then `deleteUser`: Okta deletes only deactivated users.
    async fn delete_user(&self, name: &str) -> Result<(), Failure> {
        let Some(user) = self.get_user(name).await? else {
            return Err(Failure::Status { status: 404, code: None, message: format!("no Okta user {name}") });
        };
        let response = self
            .rest
            .send(&Call::post(self.api(&["users", &user.id, "lifecycle", "deactivate"])).json(&json!({})))
            .await?;
        if !ok(&response) {
            return Err(failure(&response));
        }
        let response = self.rest.send(&Call::delete(self.api(&["users", &user.id]))).await?;
        self.users.forget(name);
        if ok(&response) { Ok(()) } else { Err(failure(&response)) }
    }
}

/// The OAuth 2.0 scopes a service app needs, per Okta's specification (`security` of each
/// operation used): users read and manage, and groups read when the users come from a group.
pub fn scopes(spec: &OktaSpec) -> Vec<&'static str> {
    let mut scopes = vec!["okta.users.read", "okta.users.manage"];
    if spec.group_id.as_deref().is_some_and(|g| !g.is_empty()) {
        scopes.push("okta.groups.read");
    }
    scopes
}

/// Whether `GET /users/{name}` fetches the user `name` names. Not for:
/// - `me`: Okta substitutes "the current user linked to an API token" — keyward's own admin.
///   An Employee named (or mapped to) `me` would otherwise read, and revoke, the admin's
///   factors. It is searched for instead of refused: a user whose login or e-mail is `me` (a
///   custom login pattern) is found, and anyone else is no such user, which is the truth.
/// - a login with `/` or `?`: "can only be fetched by id" (Okta's Users API reference);
/// - `.`, `..` and the empty name: a URL resolves them to another path.
fn fetchable_by_path(name: &str) -> bool {
    !(name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '?'])
        || name.eq_ignore_ascii_case(CURRENT_USER))
}

/// The `{id}` Okta reads as "the user linked to the API token or session".
const CURRENT_USER: &str = "me";

/// A `search` expression for the user whose login or primary e-mail is `name`. String values
/// are quoted; `"` and `\` inside them escaped.
fn search_by_name(name: &str) -> String {
    let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!("profile.login eq \"{quoted}\" or profile.email eq \"{quoted}\"")
}

/// The `rel="next"` target among a response's `Link` headers.
fn next_link(response: &super::http::Response) -> Option<url::Url> {
    response
        .headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';')?;
            let is_next = params.split(';').any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            if is_next { url::Url::parse(target).ok() } else { None }
        })
}

#[async_trait]
impl ProviderApi for Okta {
    fn capabilities(&self) -> Capabilities {
        // Only the e-mail factor can be enrolled by an admin without a secret coming back to
        // the caller (TOTP and Okta Verify enrolments return the shared secret / activation
        // token).
        Capabilities { disable: false, invite: vec![FactorKind::new("email")] }
    }

    async fn check(&self) -> Result<(), Failure> {
        let mut url = self.api(&["users"]);
        url.query_pairs_mut().append_pair("limit", "1");
        let response = self.rest.send(&Call::get(url)).await?;
        if ok(&response) { Ok(()) } else { Err(failure(&response)) }
    }

    async fn inventory(&self, query: &UserQuery) -> Result<Inventory, Failure> {
        self.read_users(query).await
    }

    /// Each user read by login (`GET /users/{login}`) and its factors: what a `scope:
    /// Declared` sweep reads. With `groupId` the full listing sees the group's members only,
    /// and a per-user read cannot tell membership without a request per group: not targeted.
    async fn inventory_of(&self, users: &[String]) -> Result<Option<Inventory>, Failure> {
        if self.group_id.is_some() {
            return Ok(None);
        }
        let query = UserQuery { declared: users.to_vec(), all: false };
        self.read_users(&query).await.map(Some)
    }

    async fn revoke(&self, user: &str, enrolment: &Enrolment, _: RevocationMode) -> Result<Revoked, Failure> {
        self.unenrol(user, enrolment).await
    }

    /// E-mail: the factor enrolled pending activation; Okta mails the code.
    async fn invite(&self, user: &str, _: &FactorKind) -> Result<(), Failure> {
        self.enrol_email(user).await
    }

    fn requests(&self) -> u64 {
        self.rest.requests()
    }

    fn test_users(&self) -> Option<&dyn crate::providers::TestUsers> {
        Some(self)
    }
}
