//! `keyward run` configuration, read once at start from flags and environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated; empty watches all namespaces.
    #[arg(long, env = "KEYWARD_NAMESPACES", value_delimiter = ',', default_value = "")]
    pub namespaces: Vec<String>,
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoint.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Name of the leader-election Lease.
    #[arg(long, env = "KEYWARD_LEASE_NAME", default_value = "keyward-leader")]
    pub lease_name: String,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else the service account's, else `default`).
    #[arg(long, env = "KEYWARD_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Lease (default: $POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long a leader's Lease is valid without renewal; a standby takes over after it.
    #[arg(long, env = "KEYWARD_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// Audit log: `-` for stdout (JSON lines), or a file to append to.
    #[arg(long, env = "KEYWARD_AUDIT_LOG", default_value = "-")]
    pub audit_log: PathBuf,
    /// A file holding a signer key (`keyward audit keygen`): every checkpoint of the audit
    /// log is signed with it, and copied to the ConfigMap `<lease-name>-audit-checkpoint`.
    #[arg(long, env = "KEYWARD_AUDIT_SIGNING_KEY_FILE")]
    pub audit_signing_key: Option<PathBuf>,
    /// Deliver every audit record to this URL as a CloudEvent (structured mode), from a spool
    /// beside the audit log (`<audit-log>.spool/`); needs `--audit-log FILE`.
    #[arg(long, env = "KEYWARD_AUDIT_ENDPOINT")]
    pub audit_endpoint: Option<String>,
    /// A file holding a bearer token for `--audit-endpoint`, read before every attempt.
    #[arg(long, env = "KEYWARD_AUDIT_ENDPOINT_TOKEN_FILE", requires = "audit_endpoint")]
    pub audit_endpoint_token_file: Option<std::path::PathBuf>,
    /// The longest a revocation may take from its trigger; longer ones count in
    /// `keyward_sla_breaches_total`.
    #[arg(long, env = "KEYWARD_REVOCATION_SLA", default_value = "1h", value_parser = humantime::parse_duration)]
    pub revocation_sla: Duration,
    /// Sweep no provider and revoke nothing: every MfaProvider is Suspended until the operator
    /// runs without it (an incident stop for the whole installation; `spec.suspend` is per
    /// provider).
    #[arg(long, env = "KEYWARD_PAUSED")]
    pub paused: bool,
    /// Also honour the annotation `keyward.dev/approve-revocations` on an MfaProvider as an
    /// approval. Off by default: whoever may edit an MfaProvider may set it, so only
    /// RevocationApprovals let RBAC keep approvers apart from editors.
    #[arg(long, env = "KEYWARD_APPROVAL_ANNOTATION")]
    pub approval_annotation: bool,
}

impl RunArgs {
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect()
    }

    pub fn lease_namespace(&self) -> String {
        if let Some(ns) = self.lease_namespace.clone().filter(|n| !n.is_empty()) {
            return ns;
        }
        if let Ok(ns) = std::env::var("POD_NAMESPACE")
            && !ns.is_empty()
        {
            return ns;
        }
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string())
    }

    pub fn identity(&self) -> String {
        if let Some(id) = self.identity.clone().filter(|i| !i.is_empty()) {
            return id;
        }
        let host =
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
        format!("{}-{}", if host.is_empty() { "keyward" } else { &host }, std::process::id())
    }
}
