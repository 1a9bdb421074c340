//! Keycloak (docs/providers.md): Admin REST API with a token from a service-account client or an
//! admin user; credentials per user; enrolment requested through required actions.

pub mod spec;
use super::api::ProviderApi;
use super::error::{Failure, ProviderError};
use super::oauth::{Grant, TokenSource};
use super::paging;
use super::rest::{
    Backoff, Call, Rest, declared_name, declared_set, decode, join, snippet, status_failure, throttle_429,
};
use super::user_ids::{Names, UserIds};
use super::{Revoked, UserQuery};
use crate::crd::FactorKind;
use crate::crd::mfa_provider::{KeycloakSpec, RevocationMode};
use crate::engine::{Capabilities, Enrolment, Inventory, ProviderUser};
use async_trait::async_trait;
use serde::Deserialize;

const DEFAULT_RPS: u32 = 20;
const PAGE_SIZE: usize = 100;
const MAX_PAGES: usize = 10_000;

/// How keyward authenticates to Keycloak.
pub enum KeycloakAuth {
    ClientCredentials { client_id: String, client_secret: String },
    Password { client_id: String, username: String, password: String },
}

pub struct Keycloak {
    realm_url: url::Url,
    rest: Rest,
    /// Lower-cased user name (or e-mail) → user ids, rebuilt by every listing.
    users: UserIds,
    /// The user listing of `scope: All`, resumed from the page where it last failed.
    user_listing: paging::Resumable<usize, User>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: Option<String>,
    /// The user storage (LDAP, Kerberos, a custom provider) the user comes from; absent for
    /// users held in Keycloak's own database.
    #[serde(rename = "federationLink", default)]
    federation_link: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Credential {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "credentialData", default)]
    data: Option<String>,
}

#[derive(Debug, Deserialize)]
struct KeycloakError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(rename = "errorMessage", default)]
    error_message: Option<String>,
}

fn failure(response: &super::http::Response) -> Failure {
    // The Admin REST API answers `{"error": "Credential not found"}` (Keycloak 26), the token
    // endpoint `{"error": …, "error_description": …}`, older versions `{"errorMessage": …}`.
    let message = match serde_json::from_slice::<KeycloakError>(&response.body) {
        Ok(KeycloakError { error_message: Some(m), .. }) => m,
        Ok(KeycloakError { error: Some(e), error_description: Some(d), .. }) => format!("{e}: {d}"),
        Ok(KeycloakError { error: Some(e), .. }) => e,
        _ => snippet(&response.body),
    };
    status_failure(response, message)
}

/// Every kind [`kind_of`] gives.
pub const KINDS: &[&str] = &["totp", "hotp", "webauthn", "recovery-codes"];

/// Credential `type` to a kind, for the second-factor types Keycloak ships; `None` for every
/// other type. A user's credentials also hold what is not a second factor and must never be
/// deleted as one: `password`, the old passwords a `passwordHistory` policy keeps
/// (`password-history`, listed beside the others), `kerberos` (what an LDAP or Kerberos user
/// storage reports), and the types of custom authenticators, whose purpose keyward cannot know.
/// OTP credentials say in `credentialData.subType` whether they are TOTP or HOTP.
pub fn kind_of(credential_type: &str, data: Option<&str>) -> Option<FactorKind> {
    Some(FactorKind::new(match credential_type.to_ascii_lowercase().as_str() {
        "otp" => {
            let sub = data
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|v| v.get("subType").and_then(|s| s.as_str()).map(str::to_ascii_lowercase));
            return Some(FactorKind::new(match sub.as_deref() {
                Some("hotp") => "hotp",
                _ => "totp",
            }));
        }
        "webauthn" | "webauthn-passwordless" => "webauthn",
        "recovery-authn-codes" => "recovery-codes",
        _ => return None,
    }))
}

/// The id keyward gives a second factor held in a user's user storage (LDAP, a custom user
/// storage provider): Keycloak reports only its type, and `/credentials` does not list it.
const STORAGE_PREFIX: &str = "user-storage:";

/// The required action that makes Keycloak ask the user to enrol `kind` at the next login.
pub fn required_action(kind: &str) -> Option<&'static str> {
    match kind {
        "totp" => Some("CONFIGURE_TOTP"),
        "webauthn" => Some("webauthn-register"),
        "recovery-codes" => Some("CONFIGURE_RECOVERY_AUTHN_CODES"),
        _ => None,
    }
}

impl Keycloak {
    pub fn new(
        name: &str,
        spec: &KeycloakSpec,
        settings: &super::rest::TransportSettings,
        auth: KeycloakAuth,
        backoff: Backoff,
    ) -> Result<Self, ProviderError> {
        let base = super::rest::url_field(name, &spec.url)?;
        let transport = super::rest::provider_transport(name, spec.timeout.as_deref(), settings, Some(DEFAULT_RPS))?;
        let auth_realm = spec.auth_realm.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "master".into());
        let token_url = join(&base, &["realms", &auth_realm, "protocol", "openid-connect", "token"]);
        let grant = match auth {
            KeycloakAuth::ClientCredentials { client_id, client_secret } => {
                Grant::ClientSecret { client_id, client_secret, scope: None }
            }
            KeycloakAuth::Password { client_id, username, password } => {
                Grant::Password { client_id, username, password }
            }
        };
        // Master-realm tokens live 60 s by default: the token source renews them early.
        let mut rest = Rest::new(transport, Box::new(TokenSource::new(token_url, grant)), throttle_429);
        rest.backoff = backoff;
        Ok(Keycloak {
            realm_url: join(&base, &["admin", "realms", &spec.realm]),
            rest,
            users: UserIds::default(),
            user_listing: paging::Resumable::default(),
        })
    }

    fn api(&self, segments: &[&str]) -> url::Url {
        join(&self.realm_url, segments)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: url::Url, what: &str) -> Result<Option<T>, Failure> {
        let response = self.rest.send(&Call::get(url)).await?;
        match response.status {
            404 => Ok(None),
            200..=299 => decode(&response, what).map(Some),
            _ => Err(failure(&response)),
        }
    }

    /// The ids of the users `name` stands for, asked of Keycloak (not the cache): the user
    /// with that user name and, for an address, the users with that e-mail. A realm with
    /// `duplicateEmailsAllowed`, or one user's login equal to another's e-mail, gives several:
    /// all are returned, so that the conflict shows instead of a guess.
    async fn fetch(&self, name: &str) -> Result<Vec<User>, Failure> {
        let mut fields = vec!["username"];
        if name.contains('@') {
            fields.push("email");
        }
        let mut found: Vec<User> = Vec::new();
        for field in fields {
            let mut url = self.api(&["users"]);
            url.query_pairs_mut().append_pair(field, name).append_pair("exact", "true");
            // A lookup that matches nobody is `[]`; a 404 is the realm missing ("Realm not
            // found."), which must not read as "no such user, so no enrolments".
            let users: Vec<User> = self
                .get_json(url, &format!("user {name}"))
                .await?
                .ok_or_else(|| Failure::Configuration("realm not found".into()))?;
            // `exact` is ignored by some versions for some fields: match here too.
            let hits = users.into_iter().filter(|u| {
                u.username.eq_ignore_ascii_case(name)
                    || u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(name))
            });
            for user in hits {
                if !found.iter().any(|u| u.id == user.id) {
                    found.push(user);
                }
            }
        }
        Ok(found)
    }

    /// The one user `name` stands for: cached, else asked of Keycloak.
    async fn lookup(&self, name: &str) -> Result<Option<String>, Failure> {
        self.users.resolve(name, async || Ok(self.fetch(name).await?.into_iter().map(|u| u.id).collect())).await
    }

    /// Every user of the realm, `first`/`max` pages; a listing that failed on a page goes on
    /// from that offset next time.
    async fn list_users(&self) -> Result<Vec<User>, Failure> {
        let mut users =
            self.user_listing.list("users", 0, MAX_PAGES, "user listing", |first| self.user_page(first)).await?;
        // Offsets shift when users are added or removed between a failed listing and its
        // resumption: a user seen twice is kept once (one missed shows up in the next sweep,
        // and a user not listed is never revoked from).
        let mut seen = std::collections::HashSet::new();
        users.retain(|u| seen.insert(u.id.clone()));
        Ok(users)
    }

    async fn user_page(&self, first: usize) -> Result<paging::Page<usize, User>, Failure> {
        let mut url = self.api(&["users"]);
        url.query_pairs_mut()
            .append_pair("first", &first.to_string())
            .append_pair("max", &PAGE_SIZE.to_string())
            // The full representation: the brief one leaves out `federationLink` in some
            // Keycloak versions, and without it a user storage's factors go unasked for.
            .append_pair("briefRepresentation", "false");
        let batch: Vec<User> = self
            .get_json(url, "user listing")
            .await?
            .ok_or_else(|| Failure::Configuration("realm not found".into()))?;
        let next = (batch.len() >= PAGE_SIZE).then_some(first + PAGE_SIZE);
        Ok((batch, next))
    }

    /// The user's second factors; `None` when the user is gone. For a user from a user storage
    /// (`federationLink`), also the credential types that storage holds for it: they are not in
    /// `/credentials`, and reading their absence there as "no second factor" would keep a
    /// leaver's factor unseen.
    async fn credentials(&self, user: &User) -> Result<Option<Vec<Enrolment>>, Failure> {
        let credentials: Option<Vec<Credential>> = self
            .get_json(self.api(&["users", &user.id, "credentials"]), &format!("credentials of user {}", user.id))
            .await?;
        let Some(list) = credentials else { return Ok(None) };
        let mut enrolments: Vec<Enrolment> = list
            .into_iter()
            .filter_map(|c| {
                let kind = kind_of(&c.kind, c.data.as_deref())?;
                Some(Enrolment::new(c.id, kind, true))
            })
            .collect();
        if user.federation_link.is_some() {
            let what = format!("user storage credential types of user {}", user.id);
            let url = self.api(&["users", &user.id, "configured-user-storage-credential-types"]);
            let Some(types) = self.get_json::<Vec<String>>(url, &what).await? else { return Ok(None) };
            for storage_type in types {
                // The storage's `otp` says nothing of TOTP or HOTP: `totp`, as kind_of reads it.
                let Some(kind) = kind_of(&storage_type, None) else { continue };
                // Listed beside a local credential of the same kind: revoking that one leaves
                // this one in place.
                enrolments.push(Enrolment::new(format!("{STORAGE_PREFIX}{storage_type}"), kind, true));
            }
        }
        Ok(Some(enrolments))
    }

    async fn read_users(&self, query: &UserQuery) -> Result<Inventory, Failure> {
        self.read_users_refreshing(query, false).await
    }

    /// [`Self::read_users`]; `targeted`: only the queried users were read, and only their
    /// cached ids are replaced.
    async fn read_users_refreshing(&self, query: &UserQuery, targeted: bool) -> Result<Inventory, Failure> {
        let mut found: Vec<(String, User)> = Vec::new();
        // Every listing starts from nothing: ids cached by an earlier sweep may belong to users
        // deleted (and re-created) since. Several users under one name are all listed under it.
        let mut fresh = Names::default();
        if query.all {
            let declared = declared_set(&query.declared);
            for user in self.list_users().await? {
                let email = user.email.clone().unwrap_or_default();
                let name = declared_name(&declared, &[&user.username, &email]);
                fresh.add(&[&name, &user.username, &email], &user.id);
                found.push((name, user));
            }
        } else {
            for name in &query.declared {
                for user in self.fetch(name).await? {
                    fresh.add(&[name], &user.id);
                    found.push((name.clone(), user));
                }
            }
        }
        if targeted {
            self.users.refresh(&query.declared, fresh);
        } else {
            self.users.replace(fresh);
        }
        let mut users = Vec::new();
        for (name, user) in found {
            let Some(enrolments) = self.credentials(&user).await? else { continue };
            let email = user.email.as_deref().unwrap_or_default();
            let aliases = ProviderUser::aliases_of(&name, &[&user.username, email, &user.id]);
            users.push(ProviderUser { name, in_directory: true, enrolments, aliases });
        }
        Ok(Inventory { users })
    }

    async fn remove(&self, user: &str, enrolment: &Enrolment) -> Result<Revoked, Failure> {
        if let Some(storage_type) = enrolment.id.strip_prefix(STORAGE_PREFIX) {
            // Keycloak has no call that removes a credential from a user storage (its
            // disable-credential-types only asks the storage to, and LDAP ignores it): keyward
            // says so on every sweep instead of calling it revoked.
            return Err(Failure::Configuration(format!(
                "the {storage_type} credential of {user} is held in the user's user storage (federationLink), \
                 not in Keycloak: keyward cannot revoke it; remove it in that user store"
            )));
        }
        // "User not found" and "Credential not found" are both 404: `remove_fresh` asks for the
        // id again before the credential is called gone.
        let (lookup, remove) =
            (|| self.lookup(user), |id: String| async move { self.remove_from(&id, enrolment).await });
        self.users.remove_fresh(user, lookup, remove).await
    }

    async fn remove_from(&self, user_id: &str, enrolment: &Enrolment) -> Result<Revoked, Failure> {
        let response =
            self.rest.send(&Call::delete(self.api(&["users", user_id, "credentials", &enrolment.id]))).await?;
        match response.status {
            // "User not found" or "Credential not found" (current versions; very old ones
            // answered 204).
            404 => self.confirm_gone(user_id, enrolment).await,
            200..=299 => Ok(Revoked::Done),
            _ => Err(failure(&response)),
        }
    }

    /// After a 404 to deleting `enrolment`: gone, unless the user comes from a user storage
    /// (`federationLink`) and `/credentials` still lists it. For such a user the listing may
    /// show a credential its storage holds, which the delete does not find among Keycloak's
    /// own (`removeCredential` looks the id up with `getStoredCredentialById`): it stays
    /// usable, and calling it revoked would hide a leaver's factor. A missing user is gone
    /// (`remove_fresh` then asks for the name's id again).
    async fn confirm_gone(&self, user_id: &str, enrolment: &Enrolment) -> Result<Revoked, Failure> {
        let Some(user) = self.get_json::<User>(self.api(&["users", user_id]), &format!("user {user_id}")).await? else {
            return Ok(Revoked::AlreadyGone);
        };
        let Some(link) = user.federation_link else { return Ok(Revoked::AlreadyGone) };
        let url = self.api(&["users", user_id, "credentials"]);
        let listed: Option<Vec<Credential>> = self.get_json(url, &format!("credentials of user {user_id}")).await?;
        if listed.is_some_and(|list| list.iter().any(|c| c.id == enrolment.id)) {
            return Err(Failure::Configuration(format!(
                "Keycloak answered 404 (Credential not found) to deleting credential {} of user {} and still lists it: \
                 it is held in the user's user storage (federationLink {link}), where it stays usable; \
                 keyward cannot revoke it: remove it in that user store",
                enrolment.id, user.username
            )));
        }
        Ok(Revoked::AlreadyGone)
    }

    async fn require(&self, user: &str, action: &str) -> Result<(), Failure> {
        let user_id = self.lookup(user).await?.ok_or_else(|| Failure::Status {
            status: 404,
            code: None,
            message: format!("no Keycloak user {user}"),
        })?;
        let url = self.api(&["users", &user_id]);
        // PUT merges (Keycloak 26: fields absent from the body are kept), but a
        // `requiredActions` it carries replaces the list: read the list, add the action, and
        // send only the list. Sending the whole representation back would write every other
        // field too — undoing a concurrent edit, or failing on attributes the user profile makes
        // read-only.
        let Some(representation) = self.get_json::<serde_json::Value>(url.clone(), &format!("user {user}")).await?
        else {
            self.users.forget(user); // a stale id: the next attempt asks again
            return Err(Failure::Status { status: 404, code: None, message: format!("no Keycloak user {user}") });
        };
        let mut list = match representation.get("requiredActions") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(list)) => list.clone(),
            Some(_) => return Err(Failure::Malformed("requiredActions is not a list".into())),
        };
        if list.iter().any(|a| a.as_str() == Some(action)) {
            return Ok(()); // already asked: no need to write again
        }
        list.push(serde_json::json!(action));
        let call = Call::new(reqwest::Method::PUT, url).json(&serde_json::json!({ "requiredActions": list }));
        let response = self.rest.send(&call).await?;
        if (200..300).contains(&response.status) { Ok(()) } else { Err(failure(&response)) }
    }
}

impl Keycloak {
    /// Creates `name` from `representation`; an existing user of that name is an error (409).
    async fn post_user(&self, name: &str, representation: serde_json::Value) -> Result<(), Failure> {
        let response = self.rest.send(&Call::post(self.api(&["users"])).json(&representation)).await?;
        match response.status {
            201 | 204 => Ok(()),
            409 => Err(Failure::Configuration(format!("a Keycloak user {name} already exists"))),
            _ => Err(failure(&response)),
        }
    }

    /// The id of the one user named `name`, asked of Keycloak (never the cache: the test user
    /// is created and re-created under one name).
    async fn fresh_id(&self, name: &str) -> Result<String, Failure> {
        let ids: Vec<String> = self.fetch(name).await?.into_iter().map(|u| u.id).collect();
        match ids.as_slice() {
            [id] => Ok(id.clone()),
            [] => Err(Failure::Status { status: 404, code: None, message: format!("no Keycloak user {name}") }),
            _ => Err(Failure::IdentityConflict(format!("{} Keycloak users go by {name}", ids.len()))),
        }
    }
}

#[async_trait]
impl crate::providers::TestUsers for Keycloak {
    async fn create_user(&self, name: &str) -> Result<(), Failure> {
        self.post_user(name, serde_json::json!({"username": name, "enabled": true})).await
    }

    /// Keycloak's admin API stores a credential given as data (an OTP secret) only when it
    /// creates the user (`createCredentials`); `PUT` takes passwords alone. So the disposable
    /// user is made again, under the same name, with a TOTP credential.
    async fn enrol(&self, name: &str) -> Result<FactorKind, Failure> {
        let id = self.fresh_id(name).await?;
        let response = self.rest.send(&Call::delete(self.api(&["users", &id]))).await?;
        if !(200..300).contains(&response.status) {
            return Err(failure(&response));
        }
        self.users.forget(name);
        let secret = format!("{:032x}", rand::random::<u128>());
        let credential = serde_json::json!({
            "type": "otp",
            "userLabel": "keyward conformance",
            "secretData": serde_json::json!({"value": secret}).to_string(),
            "credentialData": serde_json::json!(
                {"subType": "totp", "digits": 6, "counter": 0, "period": 30, "algorithm": "HmacSHA1"}).to_string(),
        });
        self.post_user(name, serde_json::json!({"username": name, "enabled": true, "credentials": [credential]}))
            .await?;
        Ok(FactorKind::new("totp"))
    }

    async fn delete_user(&self, name: &str) -> Result<(), Failure> {
        let id = self.fresh_id(name).await?;
        let response = self.rest.send(&Call::delete(self.api(&["users", &id]))).await?;
        self.users.forget(name);
        if (200..300).contains(&response.status) { Ok(()) } else { Err(failure(&response)) }
    }
}

#[async_trait]
impl ProviderApi for Keycloak {
    fn capabilities(&self) -> Capabilities {
        let invite = ["totp", "webauthn", "recovery-codes"].iter().map(|k| FactorKind::new(k)).collect();
        Capabilities { disable: false, invite }
    }

    async fn check(&self) -> Result<(), Failure> {
        match self.get_json::<serde_json::Value>(self.realm_url.clone(), "realm").await? {
            Some(_) => Ok(()),
            None => Err(Failure::Configuration("realm not found".into())),
        }
    }

    async fn inventory(&self, query: &UserQuery) -> Result<Inventory, Failure> {
        self.read_users(query).await
    }

    /// Each user found by exact user name and its credentials: what a `scope: Declared`
    /// sweep reads.
    async fn inventory_of(&self, users: &[String]) -> Result<Option<Inventory>, Failure> {
        let query = UserQuery { declared: users.to_vec(), all: false };
        self.read_users_refreshing(&query, true).await.map(Some)
    }

    async fn revoke(&self, user: &str, enrolment: &Enrolment, _: RevocationMode) -> Result<Revoked, Failure> {
        self.remove(user, enrolment).await
    }

    /// The kind's required action: Keycloak asks the user at the next login.
    async fn invite(&self, user: &str, kind: &FactorKind) -> Result<(), Failure> {
        match required_action(kind.as_str()) {
            Some(action) => self.require(user, action).await,
            None => Err(Failure::Configuration(format!("Keycloak has no required action for {kind}"))),
        }
    }

    fn requests(&self) -> u64 {
        self.rest.requests()
    }

    fn test_users(&self) -> Option<&dyn crate::providers::TestUsers> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_types_map_to_kinds() {
        assert_eq!(kind_of("password", None), None);
        assert_eq!(kind_of("kerberos", None), None, "an LDAP/Kerberos storage's type, not a factor");
        assert_eq!(kind_of("password-history", None), None, "old passwords a passwordHistory policy keeps");
        assert_eq!(kind_of("secret", None), None, "a custom authenticator's type: its purpose is unknown");
        assert_eq!(kind_of("otp", Some(r#"{"subType":"totp","digits":6}"#)), Some(FactorKind::new("totp")));
        assert_eq!(kind_of("otp", Some(r#"{"subType":"hotp"}"#)), Some(FactorKind::new("hotp")));
        assert_eq!(kind_of("otp", Some("garbage")), Some(FactorKind::new("totp")));
        assert_eq!(kind_of("webauthn", None), Some(FactorKind::new("webauthn")));
        assert_eq!(kind_of("webauthn-passwordless", None), Some(FactorKind::new("webauthn")));
        assert_eq!(kind_of("recovery-authn-codes", None), Some(FactorKind::new("recovery-codes")));
        for t in ["otp", "webauthn", "webauthn-passwordless", "recovery-authn-codes"] {
            assert!(KINDS.contains(&kind_of(t, None).expect("kind").as_str()), "{t}");
        }
        assert_eq!(kind_of("otp", Some(r#"{"subType":"hotp"}"#)).map(|k| KINDS.contains(&k.as_str())), Some(true));
        assert_eq!(required_action("totp"), Some("CONFIGURE_TOTP"));
        assert_eq!(required_action("webauthn"), Some("webauthn-register"));
        assert_eq!(required_action("sms"), None);
    }
}
