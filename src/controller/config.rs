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
    /// Rotate the audit log file once it holds this many bytes (`100Mi`, `1Gi`, `500M` or a
    /// plain number): it is renamed `<file>.<next sequence number>` and the chain goes on in a
    /// new file. `0`: never.
    #[arg(long, env = "KEYWARD_AUDIT_ROTATE_SIZE", default_value = "0", value_parser = parse_size)]
    pub audit_rotate_size: u64,
    /// The other replicas' audit logs (comma-separated; a `*` stands for any run of
    /// characters within one path component), read when this replica resolves an intent a
    /// crash left open: an enrolment another replica revoked meanwhile keeps that replica's
    /// record as its only final one. The chart sets it with `audit.file.persistence`.
    #[arg(long, env = "KEYWARD_AUDIT_PEER_LOGS", value_delimiter = ',')]
    pub audit_peer_logs: Vec<PathBuf>,
    /// Deliver every audit record to this URL as a CloudEvent (structured mode), from a spool
    /// beside the audit log (`<audit-log>.spool/`); needs `--audit-log FILE`.
    #[arg(long, env = "KEYWARD_AUDIT_ENDPOINT")]
    pub audit_endpoint: Option<String>,
    /// A file holding a bearer token for `--audit-endpoint`, read before every attempt.
    #[arg(long, env = "KEYWARD_AUDIT_ENDPOINT_TOKEN_FILE", requires = "audit_endpoint")]
    pub audit_endpoint_token_file: Option<std::path::PathBuf>,
    /// Where notifications (an MfaProvider's `spec.notifications`) wait until their receiver
    /// accepts them. Default: `<audit-log>.notify/` beside an audit file (on its volume), else
    /// `keyward-notify-<identity>/` in the temporary directory.
    #[arg(long, env = "KEYWARD_NOTIFICATION_SPOOL")]
    pub notification_spool: Option<PathBuf>,
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
    /// How often the leader reads each provider's event log (privacyIDEA's audit log) for
    /// enrolments made past keyward, which it then sweeps at once; `0s` turns following off
    /// (the resync still finds them).
    #[arg(long, env = "KEYWARD_EVENT_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub event_poll_interval: Duration,
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

    /// The notification spool: `--notification-spool`, else beside the audit file, else in
    /// the temporary directory (the chart mounts an emptyDir there), under this replica's
    /// identity: two operators on one machine must not drain one spool twice.
    pub fn notification_spool(&self) -> PathBuf {
        if let Some(dir) = &self.notification_spool {
            return dir.clone();
        }
        if self.audit_log.as_os_str() == "-" {
            return std::env::temp_dir().join(format!("keyward-notify-{}", self.identity()));
        }
        let mut name = self.audit_log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".notify");
        self.audit_log.with_file_name(name)
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

/// A size in bytes: a plain number, or one with a Kubernetes-style suffix (`Ki`, `Mi`, `Gi`,
/// `K`, `M`, `G`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size (say 100Mi)"))?;
    let factor: u64 = match unit {
        "" => 1,
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (Ki, Mi, Gi, K, M, G)")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn sizes_read_as_kubernetes_quantities() {
        assert_eq!(super::parse_size("0"), Ok(0));
        assert_eq!(super::parse_size("100Mi"), Ok(100 << 20));
        assert_eq!(super::parse_size("5M"), Ok(5_000_000));
        assert!(super::parse_size("1Ti").is_err());
        assert!(super::parse_size("Mi").is_err());
    }
}
