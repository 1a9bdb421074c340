//! Duo Admin API (docs/providers.md): HMAC-SHA512 request signing (canonical string v5), one paged
//! user listing that embeds each user's phones, hardware tokens, WebAuthn credentials and U2F
//! tokens, one paged listing of bypass codes, and per-device removal. A user in `bypass`
//! status and a bypass code are enrolments too: either lets a leaver through Duo.

mod mapping;
mod signing;
pub mod spec;

pub use mapping::{
    BYPASS, BYPASS_CODE, KIND_PREFIXES, KINDS, UserStatus, group_in_bypass, phone_also, phone_kind, token_kind,
    user_status,
};
pub use signing::{Signer, canonical_json, canonical_params};

use super::api::ProviderApi;
use super::error::{Failure, ProviderError};
use super::paging;
use super::rest::{Backoff, Call, Rest, declared_name, declared_set, decode, join, snippet, status_failure};
use super::user_ids::{self, Names, UserIds};
use super::{Revoked, UserQuery};
use crate::crd::FactorKind;
use crate::crd::mfa_provider::{DuoSpec, RevocationMode};
use crate::engine::{Capabilities, Enrolment, Inventory, ProviderUser};
use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Default pace: Duo's documented limits for object reads and writes are 200–300 a minute.
const DEFAULT_RPS: u32 = 3;
/// Users per page; Duo's user listing accepts up to 300.
const PAGE_SIZE: u32 = 300;
const MAX_PAGES: usize = 10_000;
/// How long an enrolment e-mail stays valid (7 days).
const ENROL_VALID_SECS: &str = "604800";

pub struct Duo {
    name: String,
    base: url::Url,
    group: Option<String>,
    rest: Rest,
    /// Lower-cased user name (or e-mail, alias) → Duo `user_id`s, rebuilt by every listing.
    users: UserIds,
    /// The user listing, resumed from the page where it last failed.
    user_listing: paging::Resumable<u64, User>,
    /// The bypass-code listing, likewise.
    code_listing: paging::Resumable<u64, BypassCode>,
    /// `keyward conformance`: the phone made for each test user, deleted with the user (a
    /// revocation only takes the phone from its user; the phone object stays in Duo).
    test_phones: std::sync::Mutex<HashMap<String, String>>,
}

/// Whether removing the enrolment `id` goes through its user's path (phones, tokens), so that a
/// stale user id would read as "already gone".
fn user_bound(id: &str) -> bool {
    id.starts_with(PHONE) || id.starts_with(TOKEN) || id == BYPASS_STATUS || id.starts_with(GROUP_BYPASS)
}

/// `{"stat": "OK", "response": …, "metadata": {…}}`
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    stat: String,
    response: Option<T>,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    message_detail: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    next_offset: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct User {
    user_id: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    alias1: Option<String>,
    #[serde(default)]
    alias2: Option<String>,
    #[serde(default)]
    alias3: Option<String>,
    #[serde(default)]
    alias4: Option<String>,
    /// Every alias (`alias1` … `alias8`): the four fields above are the older form and stop at
    /// four, so an Employee mapped through `alias5` or later would be read as undeclared.
    #[serde(default)]
    aliases: std::collections::BTreeMap<String, Option<String>>,
    #[serde(default)]
    phones: Vec<Phone>,
    #[serde(default)]
    tokens: Vec<Token>,
    #[serde(default)]
    webauthncredentials: Vec<WebAuthn>,
    #[serde(default)]
    u2ftokens: Vec<U2f>,
    #[serde(default)]
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
struct Phone {
    phone_id: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    activated: bool,
    #[serde(default)]
    capabilities: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Token {
    token_id: String,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct WebAuthn {
    webauthnkey: String,
}

#[derive(Debug, Deserialize)]
struct U2f {
    registration_id: String,
}

/// `GET /admin/v1/bypass_codes`: each code with the user it belongs to.
#[derive(Debug, Deserialize)]
struct BypassCode {
    bypass_code_id: String,
    user: CodeOwner,
}

#[derive(Debug, Deserialize)]
struct CodeOwner {
    user_id: String,
}

#[derive(Debug, Deserialize)]
struct Group {
    #[serde(default)]
    group_id: String,
    #[serde(default)]
    name: String,
    /// `active`, `disabled` or `bypass`: in `bypass`, every member passes Duo without a
    /// second factor, whatever its own status and devices.
    #[serde(default)]
    status: String,
}

impl Group {
    /// The id of the enrolment a member holds through this group's `bypass` status.
    fn bypass_enrolment_id(&self) -> String {
        let key = if self.group_id.is_empty() { &self.name } else { &self.group_id };
        format!("{GROUP_BYPASS}{key}")
    }
}

/// Duo sends no rate-limit headers: a bare 429 (code 42901) is backed off 1 s doubling to
/// 32 s, as its official clients do.
fn throttle(response: &super::http::Response) -> Option<Option<Duration>> {
    (response.status == 429).then(|| response.retry_after())
}

fn failure(response: &super::http::Response) -> Failure {
    let message = match serde_json::from_slice::<Envelope<serde_json::Value>>(&response.body) {
        Ok(e) if e.stat == "FAIL" => {
            let mut m = e.message.unwrap_or_else(|| "no message".into());
            if let Some(detail) = e.message_detail {
                m = format!("{m} ({detail})");
            }
            if let Some(code) = e.code {
                m = format!("{code} {m}");
            }
            m
        }
        _ => snippet(&response.body),
    };
    status_failure(response, message)
}

/// Enrolment ids carry the device collection, so a revocation knows which endpoint to call.
const PHONE: &str = "phone:";
const TOKEN: &str = "token:";
const WEBAUTHN: &str = "webauthn:";
const U2F: &str = "u2f:";
const CODE: &str = "bypass-code:";
/// The id of the `bypass` status enrolment (one per user).
const BYPASS_STATUS: &str = "status:bypass";
/// The prefix of a group's `bypass` status held by a member (`group-bypass:<group_id>`):
/// distinct from the user's own status, which keyward can end; a group's it cannot.
const GROUP_BYPASS: &str = "group-bypass:";

impl Duo {
    pub fn new(
        name: &str,
        spec: &DuoSpec,
        settings: &super::rest::TransportSettings,
        integration_key: String,
        secret_key: String,
        backoff: Backoff,
    ) -> Result<Self, ProviderError> {
        let base = super::rest::url_field(name, &spec.url)?;
        let transport = super::rest::provider_transport(name, spec.timeout.as_deref(), settings, Some(DEFAULT_RPS))?;
        let signer = Signer::new(integration_key.trim().to_string(), secret_key.trim().to_string());
        let mut rest = Rest::new(transport, Box::new(signer), throttle);
        rest.backoff = backoff;
        Ok(Duo {
            name: name.to_string(),
            base,
            group: spec.group.clone().filter(|g| !g.is_empty()),
            rest,
            users: UserIds::default(),
            user_listing: paging::Resumable::default(),
            code_listing: paging::Resumable::default(),
            test_phones: Default::default(),
        })
    }

    fn admin(&self, segments: &[&str]) -> url::Url {
        let mut all = vec!["admin", "v1"];
        all.extend_from_slice(segments);
        join(&self.base, &all)
    }

    /// Sends a signed call and unwraps `response`, with `metadata`.
    async fn call<T: DeserializeOwned>(&self, call: &Call, what: &str) -> Result<(T, Metadata), Failure> {
        let response = self.rest.send(call).await?;
        if !(200..300).contains(&response.status) {
            return Err(failure(&response));
        }
        let envelope: Envelope<T> = decode(&response, what)?;
        match (envelope.stat.as_str(), envelope.response) {
            ("OK", Some(value)) => Ok((value, envelope.metadata)),
            _ => Err(Failure::Malformed(format!("{what}: stat {:?} without a response", envelope.stat))),
        }
    }

    /// Every user, all pages (`limit`/`offset`, following `metadata.next_offset`); a listing
    /// that failed on a page goes on from that offset next time.
    async fn list_users(&self) -> Result<Vec<User>, Failure> {
        let mut users = self.user_listing.list("users", 0, MAX_PAGES, "user listing", |o| self.user_page(o)).await?;
        // Offsets shift when users are added or removed between a failed listing and its
        // resumption: a user seen twice is kept once (one missed shows up in the next sweep,
        // and a user not listed is never revoked from).
        let mut seen = HashSet::new();
        users.retain(|u| seen.insert(u.user_id.clone()));
        Ok(users)
    }

    async fn user_page(&self, offset: u64) -> Result<paging::Page<u64, User>, Failure> {
        self.page(&["users"], offset, "user listing").await
    }

    /// Every bypass code of the account, grouped by the user's id.
    async fn list_codes(&self) -> Result<HashMap<String, Vec<String>>, Failure> {
        let codes = self
            .code_listing
            .list("bypass_codes", 0, MAX_PAGES, "bypass code listing", |o| {
                self.page(&["bypass_codes"], o, "bypass code listing")
            })
            .await?;
        let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
        for code in codes {
            let ids = by_user.entry(code.user.user_id).or_default();
            if !ids.contains(&code.bypass_code_id) {
                ids.push(code.bypass_code_id);
            }
        }
        Ok(by_user)
    }

    /// One page of a `limit`/`offset` listing, and the offset of the next.
    async fn page<T: DeserializeOwned>(
        &self,
        collection: &[&str],
        offset: u64,
        what: &str,
    ) -> Result<paging::Page<u64, T>, Failure> {
        let mut url = self.admin(collection);
        url.query_pairs_mut().append_pair("limit", &PAGE_SIZE.to_string()).append_pair("offset", &offset.to_string());
        let (page, metadata): (Vec<T>, Metadata) = self.call(&Call::get(url), what).await?;
        let next = match metadata.next_offset {
            None | Some(serde_json::Value::Null) => return Ok((page, None)),
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            Some(_) => None,
        };
        match next {
            Some(next) if next > offset => Ok((page, Some(next))),
            _ => Err(Failure::Malformed(format!("{what}: next_offset does not advance past {offset}"))),
        }
    }

    /// The one Duo user `user` names: cached by the last listing, else asked of Duo. Several
    /// users under one name (one's alias another's user name) are an identity conflict.
    async fn user_id(&self, user: &str) -> Result<Option<String>, Failure> {
        self.users
            .resolve(user, async || {
                let mut url = self.admin(&["users"]);
                url.query_pairs_mut().append_pair("username", user);
                let (found, _): (Vec<User>, _) = self.call(&Call::get(url), &format!("user {user}")).await?;
                Ok(found.into_iter().map(|u| u.user_id).collect())
            })
            .await
    }

    async fn read_users(&self, query: &UserQuery) -> Result<Inventory, Failure> {
        let declared = declared_set(&query.declared);
        let mut users = Vec::new();
        // Every listing starts from nothing: ids cached by an earlier sweep may belong to users
        // deleted (and re-created) since.
        let mut fresh = Names::default();
        let listed = self.list_users().await?;
        // Read after the users: a code made in between belongs to a user listed without it,
        // and shows up with the next sweep.
        let mut codes = self.list_codes().await?;
        for user in listed {
            if let Some(group) = &self.group
                && !user.groups.iter().any(|g| g.name.eq_ignore_ascii_case(group))
            {
                continue;
            }
            let aliases: Vec<String> = [&user.email, &user.alias1, &user.alias2, &user.alias3, &user.alias4]
                .into_iter()
                .chain(user.aliases.values())
                .flatten()
                .filter(|a| !a.is_empty())
                .cloned()
                .collect();
            let mut names = vec![user.username.as_str()];
            names.extend(aliases.iter().map(String::as_str));
            let name = declared_name(&declared, &names);
            fresh.add(&names, &user.user_id);
            let status = user_status(&user.status);
            // A disabled user cannot authenticate; its devices stay until removed.
            let active = status != UserStatus::Disabled;
            let mut enrolments = Vec::new();
            if status == UserStatus::Bypass {
                enrolments.push(Enrolment::new(BYPASS_STATUS, FactorKind::new(BYPASS), true));
            }
            // A group in bypass lets its members through without a device: held by each
            // member, as its own enrolment (the user's own status may be `active`).
            for group in user.groups.iter().filter(|g| group_in_bypass(&g.status)) {
                enrolments.push(Enrolment::new(group.bypass_enrolment_id(), FactorKind::new(BYPASS), active));
            }
            for code in codes.remove(&user.user_id).unwrap_or_default() {
                enrolments.push(Enrolment::new(format!("{CODE}{code}"), FactorKind::new(BYPASS_CODE), active));
            }
            for phone in &user.phones {
                let kind = phone_kind(&phone.kind, phone.activated, &phone.capabilities);
                let also = phone_also(&phone.kind, phone.activated, &phone.capabilities);
                enrolments.push(Enrolment::new(format!("{PHONE}{}", phone.phone_id), kind, active).providing(also));
            }
            for token in &user.tokens {
                enrolments.push(Enrolment::new(format!("{TOKEN}{}", token.token_id), token_kind(&token.kind), active));
            }
            for credential in &user.webauthncredentials {
                enrolments.push(Enrolment::new(
                    format!("{WEBAUTHN}{}", credential.webauthnkey),
                    FactorKind::new("webauthn"),
                    active,
                ));
            }
            for token in &user.u2ftokens {
                enrolments.push(Enrolment::new(
                    format!("{U2F}{}", token.registration_id),
                    FactorKind::new("u2f"),
                    active,
                ));
            }
            let mut known = names.clone();
            known.push(&user.user_id);
            let aliases = ProviderUser::aliases_of(&name, &known);
            users.push(ProviderUser { name, in_directory: true, enrolments, aliases });
        }
        self.users.replace(fresh);
        Ok(Inventory { users })
    }

    async fn remove(&self, user: &str, enrolment: &Enrolment) -> Result<Revoked, Failure> {
        // WebAuthn and U2F paths do not name the user; a name of several users still means
        // that whose device this is was decided on a guess.
        if let Some(ids) = self.users.get(user) {
            user_ids::one(user, &ids)?;
        }
        let stale = match self.remove_once(user, enrolment).await? {
            Revoked::AlreadyGone if !user_bound(&enrolment.id) => return Ok(Revoked::AlreadyGone),
            Revoked::AlreadyGone => self.users.get(user),
            done => return Ok(done),
        };
        // A phone or token path names the user: a 404 may come from a stale id (the user
        // deleted and re-created under the same name). Ask Duo again before calling it gone.
        self.users.forget(user);
        match self.user_id(user).await? {
            Some(fresh) if stale.is_some_and(|ids| !ids.contains(&fresh)) => self.remove_once(user, enrolment).await,
            _ => Ok(Revoked::AlreadyGone),
        }
    }

    async fn remove_once(&self, user: &str, enrolment: &Enrolment) -> Result<Revoked, Failure> {
        let id = enrolment.id.as_str();
        let url = if let Some(key) = id.strip_prefix(WEBAUTHN) {
            self.admin(&["webauthncredentials", key])
        } else if let Some(registration) = id.strip_prefix(U2F) {
            self.admin(&["u2ftokens", registration])
        } else if let Some(code) = id.strip_prefix(CODE) {
            self.admin(&["bypass_codes", code])
        } else {
            let Some(user_id) = self.user_id(user).await? else {
                return Ok(Revoked::AlreadyGone); // the user is gone, and its devices with it
            };
            if id == BYPASS_STATUS {
                return self.end_bypass(&user_id).await;
            }
            if id.starts_with(GROUP_BYPASS) {
                return self.group_bypass(user, &user_id, id).await;
            }
            if let Some(phone) = id.strip_prefix(PHONE) {
                // Disassociates the phone from this user only: it may be shared with others.
                self.admin(&["users", &user_id, "phones", phone])
            } else if let Some(token) = id.strip_prefix(TOKEN) {
                self.admin(&["users", &user_id, "tokens", token])
            } else {
                return Err(Failure::Configuration(format!("{id:?} is not a Duo enrolment id")));
            }
        };
        let response = self.rest.send(&Call::delete(url)).await?;
        match response.status {
            // Duo's own clients: "if already deleted, does nothing" (200); a 404 means the same.
            404 => Ok(Revoked::AlreadyGone),
            200..=299 => Ok(Revoked::Done),
            _ => Err(failure(&response)),
        }
    }

    /// The user `user_id` as Duo has it now (`GET /admin/v1/users/{id}`); `None` on 404.
    async fn current_user(&self, user_id: &str) -> Result<Option<User>, Failure> {
        let response = self.rest.send(&Call::get(self.admin(&["users", user_id]))).await?;
        if response.status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&response.status) {
            return Err(failure(&response));
        }
        let envelope: Envelope<User> = decode(&response, &format!("user {user_id}"))?;
        Ok(envelope.response)
    }

    /// Sets a user in `bypass` back to `active`, so that Duo asks for a device again. The
    /// status is read first: a user an admin disabled since the sweep read it must not be
    /// re-enabled by keyward.
    async fn end_bypass(&self, user_id: &str) -> Result<Revoked, Failure> {
        let current = self.current_user(user_id).await?.map(|u| user_status(&u.status));
        if current != Some(UserStatus::Bypass) {
            return Ok(Revoked::AlreadyGone);
        }
        let url = self.admin(&["users", user_id]);
        let mut call = Call::post(url);
        call.body = super::rest::Body::Json(canonical_json(&json!({"status": "active"})).into_bytes());
        let response = self.rest.send(&call).await?;
        match response.status {
            404 => Ok(Revoked::AlreadyGone),
            200..=299 => Ok(Revoked::Done),
            _ => Err(failure(&response)),
        }
    }

    /// A member's bypass through a group (`id`): keyward cannot end it. Setting the group
    /// `active` would change every member's sign-in, and taking the user out of the group may
    /// be undone by a directory sync or drop its other policies: that is an admin's decision.
    /// The revocation fails, naming the group, on every sweep until the group is no longer in
    /// bypass (or the user no longer in it), which the user as Duo has it now tells.
    async fn group_bypass(&self, user: &str, user_id: &str, id: &str) -> Result<Revoked, Failure> {
        let Some(current) = self.current_user(user_id).await? else {
            return Ok(Revoked::AlreadyGone);
        };
        let Some(group) = current.groups.iter().find(|g| g.bypass_enrolment_id() == id && group_in_bypass(&g.status))
        else {
            return Ok(Revoked::AlreadyGone);
        };
        Err(Failure::Configuration(format!(
            "group {:?} ({}) is in bypass: {user} and every other member pass Duo without a second factor; \
             keyward cannot revoke that for one member: change the group in Duo (its status, or the user's membership)",
            group.name, group.group_id
        )))
    }

    async fn enrol(&self, user: &str) -> Result<(), Failure> {
        if self.user_id(user).await?.is_some() {
            // Duo's enrolment e-mail creates the user: a user who exists without a device is
            // prompted to enrol at the next Duo login (or already had the e-mail).
            tracing::info!(provider = %self.name, user, "Duo user exists without a device; Duo prompts enrolment at login");
            return Ok(());
        }
        if !user.contains('@') {
            return Err(Failure::Configuration(format!(
                "the enrolment e-mail needs an address, and {user:?} is not one (use userMapping: email)"
            )));
        }
        let body = json!({"username": user, "email": user, "valid_secs": ENROL_VALID_SECS});
        // Sent exactly as signed: compact JSON with sorted keys, as Duo's clients send it.
        let mut call = Call::post(self.admin(&["users", "enroll"]));
        call.body = super::rest::Body::Json(canonical_json(&body).into_bytes());
        // The response is the enrolment code, which is the user's to use: it is not read.
        let response = self.rest.send(&call).await?;
        if (200..300).contains(&response.status) { Ok(()) } else { Err(failure(&response)) }
    }
}

impl Duo {
    /// A signed POST with a JSON body, exactly as signed (compact, sorted keys).
    fn post(&self, segments: &[&str], body: &serde_json::Value) -> Call {
        let mut call = Call::post(self.admin(segments));
        call.body = super::rest::Body::Json(canonical_json(body).into_bytes());
        call
    }
}

#[async_trait]
impl crate::providers::TestUsers for Duo {
    /// `add_user`; a user of that name is refused first (Duo would answer 400 "duplicate").
    async fn create_user(&self, name: &str) -> Result<(), Failure> {
        if self.user_id(name).await?.is_some() {
            return Err(Failure::Configuration(format!("a Duo user {name} already exists")));
        }
        let mut body = json!({"username": name, "realname": "keyward conformance"});
        if name.contains('@') {
            body["email"] = json!(name);
        }
        let created = self.call::<serde_json::Value>(&self.post(&["users"], &body), "the new user").await;
        // The lookup above remembered that no user goes by the name.
        self.users.forget(name);
        created.map(|_| ())
    }

    /// A mobile phone (`add_phone`, a number from the 555-01xx range kept for fiction),
    /// associated with the user (`add_user_phone`); it is listed as Duo describes it.
    async fn enrol(&self, name: &str) -> Result<FactorKind, Failure> {
        let user_id = self.user_id(name).await?.ok_or_else(|| Failure::Status {
            status: 404,
            code: None,
            message: format!("no Duo user {name}"),
        })?;
        let number = format!("+1555010{:04}", rand::random::<u16>() % 10_000);
        let body = json!({"number": number, "type": "mobile", "platform": "generic smartphone"});
        let (phone, _): (Phone, _) = self.call(&self.post(&["phones"], &body), "the new phone").await?;
        lock(&self.test_phones).insert(name.to_string(), phone.phone_id.clone());
        let link = json!({"phone_id": phone.phone_id});
        self.call::<serde_json::Value>(&self.post(&["users", &user_id, "phones"], &link), "the phone's user").await?;
        Ok(mapping::phone_kind(&phone.kind, phone.activated, &phone.capabilities))
    }

    async fn delete_user(&self, name: &str) -> Result<(), Failure> {
        let phone = lock(&self.test_phones).remove(name);
        if let Some(phone_id) = phone {
            let call = Call::delete(self.admin(&["phones", &phone_id]));
            self.call::<serde_json::Value>(&call, "the test phone").await?;
        }
        let user_id = self.user_id(name).await?.ok_or_else(|| Failure::Status {
            status: 404,
            code: None,
            message: format!("no Duo user {name}"),
        })?;
        self.call::<serde_json::Value>(&Call::delete(self.admin(&["users", &user_id])), "the test user").await?;
        self.users.forget(name);
        Ok(())
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl ProviderApi for Duo {
    fn capabilities(&self) -> Capabilities {
        Capabilities { disable: false, invite: vec![FactorKind::new("push")] }
    }

    async fn check(&self) -> Result<(), Failure> {
        let mut url = self.admin(&["users"]);
        url.query_pairs_mut().append_pair("limit", "1").append_pair("offset", "0");
        self.call::<serde_json::Value>(&Call::get(url), "user listing").await.map(|_| ())
    }

    async fn inventory(&self, query: &UserQuery) -> Result<Inventory, Failure> {
        self.read_users(query).await
    }

    async fn revoke(&self, user: &str, enrolment: &Enrolment, _: RevocationMode) -> Result<Revoked, Failure> {
        self.remove(user, enrolment).await
    }

    /// Push: Duo's enrolment e-mail (the only invitation Duo has).
    async fn invite(&self, user: &str, _: &FactorKind) -> Result<(), Failure> {
        self.enrol(user).await
    }

    fn requests(&self) -> u64 {
        self.rest.requests()
    }

    fn test_users(&self) -> Option<&dyn crate::providers::TestUsers> {
        Some(self)
    }
}
