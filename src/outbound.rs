//! Where keyward posts what it says to the outside — notifications (Slack, webhooks) and audit
//! CloudEvents — and what it refuses to post to.
//!
//! A notification URL comes from a Secret in a tenant's namespace, so whoever may edit that
//! namespace chooses it. Unchecked, the operator would POST wherever they say — the node's
//! metadata service (`169.254.169.254`), an in-cluster service over plain http — and record
//! the answer's status in the audit log: a port scanner with the operator's network position.
//! So: https only (plain http for loopback alone), no redirects, no link-local, unspecified or
//! multicast address (as written or as the name resolves), and the hosts of the
//! notification allowlist (`--notification-host`), or of the provider allowlist when no
//! notification list is set.

pub use crate::providers::allowlist::HostAllowlist;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use thiserror::Error;

static NOTIFICATION_HOSTS: OnceLock<HostAllowlist> = OnceLock::new();

/// Sets the process's notification allowlist, once, before anything is posted.
pub fn install_notification_hosts(list: HostAllowlist) -> Result<(), String> {
    NOTIFICATION_HOSTS.set(list).map_err(|_| "the notification host allowlist is already set".to_string())
}

/// The hosts notifications may go to: the notification list, else the provider list (any host
/// when neither is set).
pub fn allowed_hosts() -> HostAllowlist {
    NOTIFICATION_HOSTS.get().cloned().unwrap_or_else(crate::providers::allowlist::current)
}

/// An address nothing of keyward's is ever posted to: the link-local range (cloud metadata
/// services), the unspecified address and multicast.
fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            let mapped = v6.to_ipv4_mapped().is_some_and(|v4| forbidden(IpAddr::V4(v4)));
            link_local || mapped || v6.is_unspecified() || v6.is_multicast()
        }
    }
}

fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `url` may be posted to under `hosts`; the refusal says why, naming the host only
/// (a webhook URL's path is its credential).
pub fn check_with(url: &url::Url, hosts: &HostAllowlist) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default().to_string();
    match url.scheme() {
        "https" => {}
        "http" if loopback(url) => {}
        scheme => return Err(format!("{scheme}://{host}: only https is posted to (plain http on loopback alone)")),
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    if literal.is_some_and(forbidden) {
        return Err(format!("{host}: a link-local, unspecified or multicast address is never posted to"));
    }
    if !hosts.allows(url) {
        return Err(format!(
            "{host} is not on the notification host allowlist (--notification-host, or the provider allowlist when that is not set)"
        ));
    }
    Ok(())
}

/// [`check_with`] the process's allowlist.
pub fn check(url: &url::Url) -> Result<(), String> {
    check_with(url, &allowed_hosts())
}

/// Resolves names as the system does and drops the addresses [`forbidden`] names, so that a
/// name pointing at the metadata service (or rebinding to it) is refused like its address.
struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| !forbidden(a.ip())).collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{host} resolves only to addresses keyward never posts to (link-local, unspecified, multicast)"
                )
                .into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// A client that could not be built, said with its causes: reqwest's own message is only
/// "builder error".
#[derive(Debug, Error)]
#[error("{}", with_causes(.0))]
pub struct ClientError(#[from] reqwest::Error);

fn with_causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The client every notification and audit event is posted with: a timeout, no redirects (the
/// URL goes where it was checked, nowhere else), and the resolver above. A client that cannot
/// be built is an error for the caller to stop on: any other client would post without these
/// rules.
pub fn client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    with_rules(reqwest::Client::builder(), timeout)
}

/// `builder` with the rules of [`client`], built.
fn with_rules(builder: reqwest::ClientBuilder, timeout: Duration) -> Result<reqwest::Client, ClientError> {
    let client = builder
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(PublicResolver))
        .build()?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).expect("url")
    }

    #[test]
    fn https_anywhere_allowed_http_on_loopback_only_never_link_local() {
        let any = HostAllowlist::any();
        assert!(check_with(&url("https://hooks.slack.com/services/T0/B0/x"), &any).is_ok());
        assert!(check_with(&url("http://127.0.0.1:8080/hook"), &any).is_ok());
        assert!(check_with(&url("http://[::1]:8080/hook"), &any).is_ok());
        for refused in [
            "http://169.254.169.254/latest/meta-data/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[fe80::1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://0.0.0.0/",
            "http://events.kube-system.svc:8080/",
            "ftp://hooks.example/",
        ] {
            let said = check_with(&url(refused), &any).expect_err(refused);
            assert!(!said.contains("/latest"), "the path is never said: {said}");
        }
        let list = HostAllowlist::only(&["hooks.slack.com"]).expect("list");
        assert!(check_with(&url("https://hooks.slack.com/services/x"), &list).is_ok());
        let said = check_with(&url("https://collector.evil.example/x"), &list).expect_err("off the list");
        assert!(said.contains("collector.evil.example") && said.contains("allowlist"), "{said}");
    }

    #[test]
    fn a_client_that_cannot_be_built_is_an_error_not_a_client_without_the_rules() {
        assert!(client(Duration::from_secs(10)).is_ok());
        // No TLS version is both at least 1.3 and at most 1.2: the build fails.
        let impossible = reqwest::Client::builder()
            .min_tls_version(reqwest::tls::Version::TLS_1_3)
            .max_tls_version(reqwest::tls::Version::TLS_1_2);
        let error = with_rules(impossible, Duration::from_secs(10)).expect_err("an unbuildable client is an error");
        // The cause is said, not only reqwest's "builder error".
        let said = error.to_string();
        assert!(said.starts_with("builder error: ") && said.contains("tls"), "{said}");
    }

    #[tokio::test]
    async fn names_resolving_to_link_local_addresses_are_refused() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "169.254.169.254".parse().expect("name");
        let refused = PublicResolver.resolve(name).await.err().expect("a link-local address is refused");
        assert!(refused.to_string().contains("never posts to"), "{refused}");
        let name: reqwest::dns::Name = "localhost".parse().expect("name");
        assert!(PublicResolver.resolve(name).await.is_ok(), "loopback resolves");
    }
}
