//! Microsoft Entra ID (docs/providers.md): Microsoft Graph v1.0 authentication methods, app-only
//! token by client credentials (client secret or certificate).
//!
//! Graph lists methods per user (no tenant-wide listing of methods), so a sweep is one user
//! lookup or one paged user listing (a group's with its nested groups'), then one method
//! listing per user. Deletes go through the type's own collection (or singleton) as the v1.0
//! metadata declares it ([`mapping`], checked by `tests/contracts/entra.rs`). Graph refuses the
//! default method while others remain and the mobile phone while the alternate one remains:
//! a refused method waits for the sweep's other deletions of that user and goes after them.

pub mod mapping;
pub mod spec;

pub use mapping::{KINDS, METHODS, MethodType, Removal, method};

use super::api::ProviderApi;
use super::error::{Failure, ProviderError};
use super::jwt::{SigningKey, certificate_thumbprints};
use super::oauth::{Grant, TokenSource};
use super::paging;
use super::rest::{
    Backoff, Call, Rest, base_url, declared_name, declared_set, decode, join, same_origin, snippet, status_failure,
    throttle_429,
};
use super::user_ids::{Names, UserIds};
use super::{Revoked, UserQuery};
use crate::crd::FactorKind;
use crate::crd::mfa_provider::{EntraIdSpec, RevocationMode};
use crate::engine::{Capabilities, Enrolment, Inventory, ProviderUser};
use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::time::{Duration, Instant};

/// Default pace; Graph throttles per app and tenant well above this.
const DEFAULT_RPS: u32 = 10;
const MAX_PAGES: usize = 10_000;
/// The user properties keyward selects (and reads: [`User`]).
pub const USER_FIELDS: &[&str] = &["id", "userPrincipalName", "mail"];
/// The largest page of users (and of group members) Graph serves.
pub const PAGE_SIZE: &str = "999";

/// How keyward authenticates to Entra ID.
pub enum EntraAuth {
    ClientSecret { client_id: String, client_secret: String },
    Certificate { client_id: String, certificate: String, private_key: String },
}

/// Where Entra ID is, unless the block says otherwise (national clouds, tests).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";

pub struct Entra {
    name: String,
    graph: url::Url,
    group_id: Option<String>,
    rest: Rest,
    /// Lower-cased UPN (or mail) → object ids, rebuilt by every listing.
    users: UserIds,
    /// The user listing of `scope: All`, resumed from the page where it last failed.
    user_listing: paging::Resumable<url::Url, User>,
    /// How long a refused default method waits for the user's other methods to go.
    default_wait: Duration,
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    #[serde(rename = "userPrincipalName", default)]
    upn: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    /// Members of a group listing may be of other types; the OData cast asks for users only.
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Method {
    id: String,
    #[serde(rename = "@odata.type")]
    odata_type: String,
    #[serde(rename = "phoneType", default)]
    phone_type: Option<String>,
}

/// A method of a user as listed: the enrolment, and for a phone its `phoneType` (the order
/// in which Graph lets phones go depends on it).
#[derive(Debug)]
struct Listed {
    enrolment: Enrolment,
    phone_type: Option<String>,
}

impl Listed {
    /// Whether Graph refuses to delete `self` while `other` remains, apart from the default
    /// method: the mobile phone goes only after the user's alternate mobile and office phones.
    fn waits_for(&self, other: &Listed) -> bool {
        let mobile =
            |p: &Option<String>| p.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(mapping::PRIMARY_PHONE_TYPE));
        mobile(&self.phone_type) && other.phone_type.is_some() && !mobile(&other.phone_type)
    }
}

/// Where an enrolment id (`{collection or singleton}/{method id}`) is deleted, relative to
/// `/users/{id}/authentication/`.
fn delete_path(enrolment_id: &str) -> Result<Vec<&str>, Failure> {
    let (prefix, id) = enrolment_id.split_once('/').unwrap_or(("", enrolment_id));
    let removal = METHODS.iter().map(|m| m.removal).find(|r| match r {
        Removal::Collection(c) | Removal::Singleton(c) => *c == prefix,
        Removal::NotManaged => false,
    });
    match removal {
        Some(Removal::Collection(collection)) => Ok(vec![collection, id]),
        Some(Removal::Singleton(singleton)) => Ok(vec![singleton]),
        _ => Err(Failure::Configuration(format!(
            "Graph v1.0 has no delete path for method {enrolment_id:?} (type {prefix:?}, unknown to this keyward or not in v1.0)"
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct GraphError {
    error: GraphErrorBody,
}

#[derive(Debug, Deserialize)]
struct GraphErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn failure(response: &super::http::Response) -> Failure {
    let message = match serde_json::from_slice::<GraphError>(&response.body) {
        Ok(e) => format!("{}: {}", e.error.code, e.error.message),
        _ => snippet(&response.body),
    };
    status_failure(response, message)
}

/// The `$filter` of the user whose `mail` is `address` or one of whose `proxyAddresses` is
/// `smtp:address`, a string literal quoted as OData wants it: a single quote doubled.
pub fn mail_filter(address: &str) -> String {
    let quoted = address.replace('\'', "''");
    format!("mail eq '{quoted}' or proxyAddresses/any(p:p eq 'smtp:{quoted}')")
}

/// Graph's refusal to delete the default method while others remain (docs/providers.md,
/// "Entra ID").
fn refuses_default(failure: &Failure) -> bool {
    matches!(failure, Failure::Status { status: 400, message, .. } if message.to_lowercase().contains("default"))
}

impl Entra {
    pub fn new(
        name: &str,
        spec: &EntraIdSpec,
        settings: &super::rest::TransportSettings,
        auth: EntraAuth,
        backoff: Backoff,
    ) -> Result<Self, ProviderError> {
        let configure = |message: String| ProviderError::Configure { provider: name.to_string(), message };
        let authority = base_url(spec.authority_url.as_deref().unwrap_or(DEFAULT_AUTHORITY)).map_err(configure)?;
        let graph_root = base_url(spec.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH)).map_err(configure)?;
        let transport = super::rest::provider_transport(name, spec.timeout.as_deref(), settings, Some(DEFAULT_RPS))?;
        let token_url = join(&authority, &[&spec.tenant_id, "oauth2", "v2.0", "token"]);
        let scope = format!("{}/.default", graph_root.as_str().trim_end_matches('/'));
        let grant = match auth {
            EntraAuth::ClientSecret { client_id, client_secret } => {
                Grant::ClientSecret { client_id, client_secret, scope: Some(scope) }
            }
            EntraAuth::Certificate { client_id, certificate, private_key } => {
                let secret = format!(
                    "Secret {}/{}",
                    name.split_once('/').map(|(namespace, _)| namespace).unwrap_or_default(),
                    spec.credentials.secret_ref.name
                );
                let key =
                    SigningKey::from_pem(&private_key).map_err(|e| configure(format!("{secret}: privateKey: {e}")))?;
                // Entra ID verifies client assertions signed with RS256 only: an EC key would
                // be accepted here and refused at every token request.
                if let SigningKey::Ec(_) = key {
                    return Err(configure(format!(
                        "{secret}: privateKey is an EC key; Entra ID certificate credentials must use an RSA key (2048 bits or more)"
                    )));
                }
                let (x5t, x5t_s256) = certificate_thumbprints(&certificate)
                    .map_err(|e| configure(format!("{secret}: certificate: {e}")))?;
                let header = vec![("x5t", json!(x5t)), ("x5t#S256", json!(x5t_s256))];
                Grant::ClientAssertion { client_id, key, header, scope }
            }
        };
        let mut rest = Rest::new(transport, Box::new(TokenSource::new(token_url, grant)), throttle_429);
        rest.backoff = backoff;
        Ok(Entra {
            name: name.to_string(),
            graph: join(&graph_root, &["v1.0"]),
            group_id: spec.group_id.clone().filter(|g| !g.is_empty()),
            rest,
            users: UserIds::default(),
            user_listing: paging::Resumable::default(),
            default_wait: Duration::from_secs(20),
        })
    }

    /// Shortens the wait of a refused default method (tests).
    pub fn set_default_wait(&mut self, wait: Duration) {
        self.default_wait = wait;
    }

    fn api(&self, segments: &[&str]) -> url::Url {
        join(&self.graph, segments)
    }

    async fn get<T: DeserializeOwned>(&self, url: url::Url, what: &str) -> Result<Option<T>, Failure> {
        let response = self.rest.send(&Call::get(url)).await?;
        match response.status {
            404 => Ok(None),
            200..=299 => decode(&response, what).map(Some),
            _ => Err(failure(&response)),
        }
    }

    /// One page of a collection and the link to the next one. A collection that is not there
    /// (a deleted user, an unknown group) is a 404 failure.
    async fn page<T: DeserializeOwned>(&self, url: url::Url, what: &str) -> Result<paging::Page<url::Url, T>, Failure> {
        let page = self.get::<Page<T>>(url, what).await?.ok_or_else(|| Failure::Status {
            status: 404,
            code: None,
            message: format!("{what}: not found"),
        })?;
        let next = match page.next {
            None => None,
            Some(next) => {
                let next = url::Url::parse(&next).map_err(|e| Failure::Malformed(format!("{what}: nextLink: {e}")))?;
                if !same_origin(&self.graph, &next) {
                    return Err(Failure::Malformed(format!("{what}: nextLink to another host")));
                }
                Some(next)
            }
        };
        Ok((page.value, next))
    }

    /// The users `name` names, asked of Graph (not the cache). `GET /users/{name}` takes an
    /// object id or a UPN and matches one user at most. A name that is an address may instead
    /// be a user's `mail` or one of its SMTP `proxyAddresses` (the default `userMapping:
    /// email`, where mail and UPN differ): on a 404 it is looked up with [`mail_filter`].
    /// Empty only when Graph answered both that no user goes by it; a failure of either is
    /// the lookup's failure, never "no such user".
    async fn fetch(&self, name: &str) -> Result<Vec<User>, Failure> {
        let mut url = self.api(&["users", name]);
        url.query_pairs_mut().append_pair("$select", &USER_FIELDS.join(","));
        if let Some(user) = self.get::<User>(url, &format!("user {name}")).await? {
            return Ok(vec![user]);
        }
        if !name.contains('@') {
            return Ok(Vec::new());
        }
        let mut url = self.api(&["users"]);
        // `eq` on `mail` and `any(p:p eq …)` on `proxyAddresses` are default queries: no
        // `ConsistencyLevel: eventual` and no `$count` (tests/contracts/entra.rs).
        url.query_pairs_mut().append_pair("$filter", &mail_filter(name)).append_pair("$select", &USER_FIELDS.join(","));
        let what = format!("lookup of user {name} by mail and SMTP address");
        // A 404 here is a failure (`page`): the collection itself is always there.
        let mut users = paging::all(url, MAX_PAGES, &what, |u| self.page::<User>(u, &what)).await?;
        let mut seen = std::collections::HashSet::new();
        users.retain(|u| seen.insert(u.id.clone()));
        if users.is_empty() {
            tracing::info!(provider = %self.name, user = name, "no Entra ID user has this UPN, mail or SMTP address");
        }
        Ok(users)
    }

    /// The one user `name` names: cached, else asked of Graph. Several users under one name
    /// (one's mail another's SMTP alias) are an identity conflict.
    async fn lookup(&self, name: &str) -> Result<Option<String>, Failure> {
        self.users.resolve(name, async || Ok(self.fetch(name).await?.into_iter().map(|u| u.id).collect())).await
    }

    /// The user's methods (password excluded); `None` when Graph has no such user.
    async fn methods(&self, user_id: &str) -> Result<Option<Vec<Listed>>, Failure> {
        let url = self.api(&["users", user_id, "authentication", "methods"]);
        let what = format!("methods of user {user_id}");
        let methods = match paging::all(url, MAX_PAGES, &what, |u| self.page::<Method>(u, &what)).await {
            Err(Failure::Status { status: 404, .. }) => return Ok(None),
            other => other?,
        };
        Ok(Some(
            methods
                .into_iter()
                .filter_map(|m| {
                    let (kind, removal) = method(&m.odata_type, m.phone_type.as_deref())?;
                    // The id names where the method is deleted; a type with no delete path
                    // keeps its own name, and its revocation fails naming it.
                    let prefix = match removal {
                        Some(Removal::Collection(c) | Removal::Singleton(c)) => c.to_string(),
                        _ => m.odata_type.trim_start_matches("#microsoft.graph.").to_string(),
                    };
                    let phone = m.odata_type.ends_with(".phoneAuthenticationMethod");
                    Some(Listed {
                        enrolment: Enrolment::new(format!("{prefix}/{}", m.id), kind.clone(), true)
                            .providing(mapping::also(&kind)),
                        phone_type: if phone { Some(m.phone_type.unwrap_or_default()) } else { None },
                    })
                })
                .collect(),
        ))
    }

    /// `scope: All`: every user of the tenant, or of the group with its nested groups' members
    /// (`transitiveMembers`; `members` lists direct members only, and the people of a nested
    /// group would be missed — or, listed elsewhere, be taken for undeclared).
    async fn list_users(&self) -> Result<Vec<User>, Failure> {
        let mut url = match &self.group_id {
            Some(group) => self.api(&["groups", group, "transitiveMembers", "microsoft.graph.user"]),
            None => self.api(&["users"]),
        };
        url.query_pairs_mut().append_pair("$select", &USER_FIELDS.join(",")).append_pair("$top", PAGE_SIZE);
        // Tens of thousands of users take minutes: a page that fails is where the next
        // sweep's listing goes on from.
        let what = "user listing";
        let users: Vec<User> =
            self.user_listing.list(url.as_str(), url.clone(), MAX_PAGES, what, |u| self.page::<User>(u, what)).await?;
        let users: Vec<User> = users
            .into_iter()
            .filter(|u| u.odata_type.as_deref().is_none_or(|t| t == "#microsoft.graph.user"))
            .collect();
        // Without User.Read.All, Graph lists a group's users with their id and type only: a
        // user with no name would be taken for an undeclared one and lose its methods.
        if let Some(user) = users.iter().find(|u| u.upn.as_deref().is_none_or(str::is_empty)) {
            return Err(Failure::Forbidden(format!(
                "{what}: user {} has no userPrincipalName (Graph gives only ids for objects the app may not read: grant User.Read.All)",
                user.id
            )));
        }
        Ok(users)
    }

    async fn read_users(&self, query: &UserQuery) -> Result<Inventory, Failure> {
        self.read_users_refreshing(query, false).await
    }

    /// [`Self::read_users`]; `targeted`: only the queried users were read, and only their
    /// cached ids are replaced.
    async fn read_users_refreshing(&self, query: &UserQuery, targeted: bool) -> Result<Inventory, Failure> {
        let mut found: Vec<(String, String, Vec<String>)> = Vec::new(); // (name, id, every name)
        // Every listing starts from nothing: ids cached by an earlier sweep may belong to users
        // deleted (and re-created) since.
        let mut fresh = Names::default();
        if query.all {
            let declared = declared_set(&query.declared);
            for user in self.list_users().await? {
                let upn = user.upn.unwrap_or_default();
                let mail = user.mail.unwrap_or_default();
                let name = declared_name(&declared, &[&upn, &mail]);
                fresh.add(&[&name, &upn, &mail], &user.id);
                let known = vec![upn, mail, user.id.clone()];
                // Two users under one name are both listed under it: the planner sees the
                // conflict instead of one of them.
                found.push((name, user.id, known));
            }
        } else {
            for name in &query.declared {
                // Several users found under one name are each listed under it: the planner
                // sees the identity conflict and leaves them alone.
                for user in self.fetch(name).await? {
                    fresh.add(&[name], &user.id);
                    let known = [Some(name.clone()), user.upn, user.mail, Some(user.id.clone())];
                    found.push((name.clone(), user.id, known.into_iter().flatten().collect()));
                }
            }
        }
        if targeted {
            self.users.refresh(&query.declared, fresh);
        } else {
            self.users.replace(fresh);
        }
        let mut users = Vec::new();
        for (name, id, known) in found {
            // A user deleted between the listing and here has no methods left to revoke.
            let Some(methods) = self.methods(&id).await? else { continue };
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            users.push(ProviderUser {
                aliases: ProviderUser::aliases_of(&name, &known),
                name,
                in_directory: true,
                enrolments: methods.into_iter().map(|m| m.enrolment).collect(),
            });
        }
        Ok(Inventory { users })
    }

    async fn delete(&self, user_id: &str, enrolment_id: &str) -> Result<Revoked, Failure> {
        let mut segments = vec!["users", user_id, "authentication"];
        segments.extend(delete_path(enrolment_id)?);
        let response = self.rest.send(&Call::delete(self.api(&segments))).await?;
        match response.status {
            404 => Ok(Revoked::AlreadyGone),
            200..=299 => Ok(Revoked::Done),
            _ => Err(failure(&response)),
        }
    }

    /// A delete answered 404 is "already gone" only if the user's listing agrees: a 404 for a
    /// path Graph does not serve must not be recorded as a revocation.
    async fn confirm_gone(&self, user_id: &str, enrolment: &Enrolment) -> Result<Revoked, Failure> {
        match self.methods(user_id).await? {
            Some(methods) if methods.iter().any(|m| m.enrolment.id == enrolment.id) => {
                Err(Failure::Malformed(format!(
                    "Graph answered 404 to deleting method {} but still lists it; nothing was revoked",
                    enrolment.id
                )))
            }
            _ => Ok(Revoked::AlreadyGone),
        }
    }

    async fn remove(&self, user: &str, enrolment: &Enrolment) -> Result<Revoked, Failure> {
        let (lookup, remove) =
            (|| self.lookup(user), |id: String| async move { self.remove_from(&id, enrolment).await });
        self.users.remove_fresh(user, lookup, remove).await
    }

    /// Deletes one method. Graph refuses (400) some deletions while other methods remain: the
    /// default method while any other does, the mobile phone while the alternate mobile or
    /// office phone does. A refused method waits while this sweep deletes those (up to
    /// `default_wait`), then goes; if they stay (they are entitled), the revocation fails
    /// naming them.
    async fn remove_from(&self, user_id: &str, enrolment: &Enrolment) -> Result<Revoked, Failure> {
        let mut refused = match self.delete(user_id, &enrolment.id).await {
            Err(f @ Failure::Status { status: 400, .. }) => f,
            Ok(Revoked::AlreadyGone) => return self.confirm_gone(user_id, enrolment).await,
            other => return other,
        };
        let mut last = refuses_default(&refused);
        let deadline = Instant::now() + self.default_wait;
        let mut pause = Duration::from_millis(250);
        loop {
            let Some(methods) = self.methods(user_id).await? else {
                return Ok(Revoked::AlreadyGone);
            };
            let Some(this) = methods.iter().find(|m| m.enrolment.id == enrolment.id) else {
                return Ok(Revoked::AlreadyGone);
            };
            let first: Vec<String> = methods
                .iter()
                .filter(|m| m.enrolment.id != enrolment.id && (last || this.waits_for(m)))
                .map(|m| format!("{} ({})", m.enrolment.id, m.enrolment.kind))
                .collect();
            if first.is_empty() {
                match self.delete(user_id, &enrolment.id).await {
                    // Now refused as the default method: it waits for all the others.
                    Err(f) if !last && refuses_default(&f) => {
                        (refused, last) = (f, true);
                        continue;
                    }
                    Ok(Revoked::AlreadyGone) => return self.confirm_gone(user_id, enrolment).await,
                    other => return other,
                }
            }
            if Instant::now() >= deadline {
                let why = if last {
                    "it is the user's default method and can only be deleted last"
                } else {
                    "Graph deletes the mobile phone only after the user's alternate mobile and office phones"
                };
                return Err(Failure::Status {
                    status: 400,
                    code: None,
                    message: format!("{refused}; {why}, while these remain: {}", first.join(", ")),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

impl Entra {
    fn created(&self, response: &super::http::Response) -> Result<(), Failure> {
        if (200..300).contains(&response.status) { Ok(()) } else { Err(failure(response)) }
    }

    async fn test_user_id(&self, name: &str) -> Result<String, Failure> {
        self.lookup(name).await?.ok_or_else(|| Failure::Status {
            status: 404,
            code: None,
            message: format!("no Entra ID user {name}"),
        })
    }
}

#[async_trait]
impl crate::providers::TestUsers for Entra {
    /// `POST /users`: a disabled account (nobody signs in with it) named by its UPN.
    async fn create_user(&self, name: &str) -> Result<(), Failure> {
        let nickname: String =
            name.split('@').next().unwrap_or(name).chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let body = serde_json::json!({
            "accountEnabled": false,
            "displayName": "keyward conformance",
            "mailNickname": nickname,
            "userPrincipalName": name,
            "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": format!("Kw-{:032x}!Aa1", rand::random::<u128>())},
        });
        let response = self.rest.send(&Call::post(self.api(&["users"])).json(&body)).await?;
        self.created(&response)
    }

    /// A mobile phone method (`POST /users/{id}/authentication/phoneMethods`), a number from
    /// the 555-01xx range kept for fiction; listed as SMS that also takes voice calls.
    async fn enrol(&self, name: &str) -> Result<FactorKind, Failure> {
        let id = self.test_user_id(name).await?;
        let number = format!("+1 555010{:04}", rand::random::<u16>() % 10_000);
        let body = serde_json::json!({"phoneNumber": number, "phoneType": mapping::PRIMARY_PHONE_TYPE});
        let url = self.api(&["users", &id, "authentication", "phoneMethods"]);
        let response = self.rest.send(&Call::post(url).json(&body)).await?;
        self.created(&response)?;
        Ok(FactorKind::new("sms"))
    }

    async fn delete_user(&self, name: &str) -> Result<(), Failure> {
        let id = self.test_user_id(name).await?;
        let response = self.rest.send(&Call::delete(self.api(&["users", &id]))).await?;
        self.users.forget(name);
        self.created(&response)
    }
}

#[async_trait]
impl ProviderApi for Entra {
    fn capabilities(&self) -> Capabilities {
        // Graph v1.0 has no invitation that leaves the secret with the user (a Temporary
        // Access Pass is itself a credential returned to the caller): Required kinds stay
        // EnrolmentPending.
        Capabilities { disable: false, invite: Vec::new() }
    }

    async fn check(&self) -> Result<(), Failure> {
        let mut url = self.api(&["users"]);
        url.query_pairs_mut().append_pair("$top", "1").append_pair("$select", "id");
        self.get::<serde_json::Value>(url, "user listing").await.map(|_| ())
    }

    async fn inventory(&self, query: &UserQuery) -> Result<Inventory, Failure> {
        self.read_users(query).await
    }

    /// Each user read by UPN and its authentication methods: what a `scope: Declared` sweep
    /// reads. With `groupId` the full listing sees the group's transitive members only, which
    /// a per-user read cannot tell: not targeted.
    async fn inventory_of(&self, users: &[String]) -> Result<Option<Inventory>, Failure> {
        if self.group_id.is_some() {
            return Ok(None);
        }
        let query = UserQuery { declared: users.to_vec(), all: false };
        self.read_users_refreshing(&query, true).await.map(Some)
    }

    async fn revoke(&self, user: &str, enrolment: &Enrolment, _: RevocationMode) -> Result<Revoked, Failure> {
        self.remove(user, enrolment).await
    }

    fn requests(&self) -> u64 {
        self.rest.requests()
    }

    fn test_users(&self) -> Option<&dyn crate::providers::TestUsers> {
        Some(self)
    }
}
