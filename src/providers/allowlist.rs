//! The hosts keyward may send provider credentials to, as the operator's installer (chart
//! value `providerHosts`) or the CLI's caller (`--allow-host`) sets them.
//!
//! An MfaProvider names its own URL, and whoever may edit one (or open a pull request that a
//! CI `plan` runs with the admin Secret) could otherwise point it at a host of their own and
//! receive the credentials. With a list set, a request to any other host is refused before it
//! is sent — the token endpoint, a paging link and a service-account key's `token_uri`
//! included — and `connect` refuses a block whose URL is not on the list, so the MfaProvider's
//! status says why. No list set: every host is allowed (and the operator says so at start).

use std::sync::OnceLock;

/// `None`: any host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostAllowlist(Option<Vec<Pattern>>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    /// Lower-case host, without a leading `*.`.
    host: String,
    /// `*.acme.example`: any subdomain (not the domain itself).
    subdomains: bool,
    port: Option<u16>,
}

impl HostAllowlist {
    pub fn any() -> Self {
        HostAllowlist(None)
    }

    /// Entries such as `acme.okta.com`, `*.okta.com`, `127.0.0.1:5000`, `[::1]:8443`. An empty
    /// list allows no host at all.
    pub fn only<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for entry in entries.iter().map(|e| e.as_ref().trim()).filter(|e| !e.is_empty()) {
            let (subdomains, rest) = match entry.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, entry),
            };
            // Parsed as a URL's authority, so that IPv6 brackets and ports read as they do there.
            let url = url::Url::parse(&format!("https://{rest}/"))
                .map_err(|e| format!("allowed host {entry:?} is not a host[:port]: {e}"))?;
            let host = url.host_str().ok_or_else(|| format!("allowed host {entry:?} has no host"))?;
            if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
                return Err(format!("allowed host {entry:?} must be a host[:port], nothing else"));
            }
            patterns.push(Pattern { host: host.to_ascii_lowercase(), subdomains, port: url.port() });
        }
        Ok(HostAllowlist(Some(patterns)))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    pub fn allows(&self, url: &url::Url) -> bool {
        let Some(patterns) = &self.0 else { return true };
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else { return false };
        patterns.iter().any(|p| {
            let host_ok = if p.subdomains { host.ends_with(&format!(".{}", p.host)) } else { host == p.host };
            host_ok && p.port.is_none_or(|port| url.port_or_known_default() == Some(port))
        })
    }

    /// The refusal of a request to `url`.
    pub fn refusal(url: &url::Url) -> String {
        format!(
            "{} is not on the provider host allowlist (--allow-host, chart value providerHosts): no request sent, no credentials",
            url.host_str()
                .map(|h| match url.port() {
                    Some(port) => format!("{h}:{port}"),
                    None => h.to_string(),
                })
                .unwrap_or_else(|| url.to_string())
        )
    }
}

static INSTALLED: OnceLock<HostAllowlist> = OnceLock::new();

/// Sets the process's allowlist, once, before any provider is connected.
pub fn install(list: HostAllowlist) -> Result<(), String> {
    INSTALLED.set(list).map_err(|_| "the provider host allowlist is already set".to_string())
}

/// The process's allowlist (any host when none was installed).
pub fn current() -> HostAllowlist {
    INSTALLED.get().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).expect("url")
    }

    #[test]
    fn hosts_subdomains_and_ports() {
        let list =
            HostAllowlist::only(&["acme.okta.com", "*.duosecurity.com", "127.0.0.1:5000", "[::1]"]).expect("list");
        assert!(list.allows(&url("https://acme.okta.com/api/v1/users")));
        assert!(list.allows(&url("https://ACME.okta.com/oauth2/v1/token")));
        assert!(!list.allows(&url("https://acme.okta.com.evil.example/")), "a suffix is not a subdomain");
        assert!(!list.allows(&url("https://evil.example/?h=acme.okta.com")));
        assert!(list.allows(&url("https://api-1.duosecurity.com/admin/v1/users")));
        assert!(!list.allows(&url("https://duosecurity.com/")), "`*.` means subdomains only");
        assert!(list.allows(&url("http://127.0.0.1:5000/auth")));
        assert!(!list.allows(&url("http://127.0.0.1:5001/auth")), "another port");
        assert!(list.allows(&url("http://[::1]:9999/")), "no port in the entry: any port");
        assert!(HostAllowlist::any().allows(&url("https://anything.example/")));
        assert!(!HostAllowlist::only::<&str>(&[]).expect("empty").allows(&url("https://acme.okta.com/")));
        assert!(HostAllowlist::only(&["https://acme.okta.com/path"]).is_err());
        assert!(!HostAllowlist::any().is_set() && list.is_set());
    }
}
