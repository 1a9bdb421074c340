//! Prometheus metrics of the operator. Labels are small fixed sets (provider key, reason,
//! outcome, error category), never free text.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevocationLabels {
    pub provider: String,
    pub reason: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

/// One notification target of one provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub provider: String,
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub provider: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub provider: String,
    pub category: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub revocations: Family<RevocationLabels, Counter>,
    pub blocked_plans: Family<ProviderLabels, Counter>,
    pub reconcile_seconds: Family<ProviderLabels, Histogram>,
    pub provider_requests: Family<ProviderLabels, Counter>,
    pub provider_errors: Family<ErrorLabels, Counter>,
    pub change_to_revocation_seconds: Family<ProviderLabels, Histogram>,
    /// From the audit record's trigger (the window or validity that ended, the deletion, or
    /// the change observed) to the revocation: what an auditor measures.
    pub revocation_latency_seconds: Family<ReasonLabels, Histogram>,
    /// Revocations whose latency exceeded `--revocation-sla`.
    pub sla_breaches: Family<ReasonLabels, Counter>,
    /// Audit records that could not be written (a failed intent also stops its revocation).
    pub audit_write_failures: Family<ProviderLabels, Counter>,
    /// Audit records spooled for the collector and not yet acknowledged by it.
    pub audit_delivery_backlog: Gauge,
    /// Failed attempts to spool or deliver an audit record to the collector.
    pub audit_delivery_failures: Counter,
    /// Notifications spooled for a target and not yet delivered (or given up).
    pub notification_backlog: Family<TargetLabels, Gauge>,
    /// Failed attempts to spool or deliver a notification.
    pub notification_failures: Family<TargetLabels, Counter>,
    /// 1 while another installation holds the provider's claim Lease: this one acts on it no
    /// more. Anyone who may create Leases in the namespace can take the claim first, so it is
    /// alerted on, not only shown in status.
    pub claimed_elsewhere: Family<ProviderLabels, Gauge>,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keyward");
        let revocations = Family::<RevocationLabels, Counter>::default();
        let blocked_plans = Family::<ProviderLabels, Counter>::default();
        let reconcile_seconds = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let provider_requests = Family::<ProviderLabels, Counter>::default();
        let provider_errors = Family::<ErrorLabels, Counter>::default();
        let change_to_revocation_seconds = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.05, 2.0, 14))
        });
        let revocation_latency_seconds = Family::<ReasonLabels, Histogram>::new_with_constructor(|| {
            // 0.1 s … about 3.6 days: seconds for the operator, days for a window that ended
            // while nothing ran.
            Histogram::new(exponential_buckets(0.1, 4.0, 12))
        });
        let sla_breaches = Family::<ReasonLabels, Counter>::default();
        let audit_write_failures = Family::<ProviderLabels, Counter>::default();
        let audit_delivery_backlog = Gauge::default();
        let audit_delivery_failures = Counter::default();
        let notification_backlog = Family::<TargetLabels, Gauge>::default();
        let notification_failures = Family::<TargetLabels, Counter>::default();
        let claimed_elsewhere = Family::<ProviderLabels, Gauge>::default();
        let leader = Gauge::default();
        registry.register("revocations", "Revocations by provider, reason and outcome", revocations.clone());
        registry.register("blocked_plans", "Sweeps whose revocations waited for approval", blocked_plans.clone());
        registry.register("reconcile_duration_seconds", "Duration of one provider sweep", reconcile_seconds.clone());
        registry.register("provider_requests", "HTTP requests made to providers", provider_requests.clone());
        registry.register("provider_errors", "Failed provider reads and revocations", provider_errors.clone());
        registry.register(
            "change_to_revocation_seconds",
            "Time from a declared change being observed to its revocation at the provider",
            change_to_revocation_seconds.clone(),
        );
        registry.register(
            "revocation_latency_seconds",
            "Time from the trigger of a revocation (the end of a window or grant, a deletion, the observed change) to the revocation",
            revocation_latency_seconds.clone(),
        );
        registry.register(
            "sla_breaches",
            "Revocations that took longer than the revocation SLA (--revocation-sla)",
            sla_breaches.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit records that could not be written",
            audit_write_failures.clone(),
        );
        registry.register(
            "audit_delivery_backlog",
            "Audit records waiting for the CloudEvents collector to acknowledge them",
            audit_delivery_backlog.clone(),
        );
        registry.register(
            "audit_delivery_failures",
            "Failed attempts to spool or deliver an audit record to the CloudEvents collector",
            audit_delivery_failures.clone(),
        );
        registry.register(
            "notification_backlog",
            "Notifications waiting for their target to accept them",
            notification_backlog.clone(),
        );
        registry.register(
            "notification_failures",
            "Failed attempts to spool or deliver a notification",
            notification_failures.clone(),
        );
        registry.register(
            "claimed_elsewhere",
            "1 while another installation holds the provider's claim Lease (this one does not act on it)",
            claimed_elsewhere.clone(),
        );
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        Metrics {
            registry,
            revocations,
            blocked_plans,
            reconcile_seconds,
            provider_requests,
            provider_errors,
            change_to_revocation_seconds,
            revocation_latency_seconds,
            sla_breaches,
            audit_write_failures,
            audit_delivery_backlog,
            audit_delivery_failures,
            notification_backlog,
            notification_failures,
            claimed_elsewhere,
            leader,
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// A timer that records the sweep duration when dropped, whichever way the sweep ends.
    pub fn sweep_timer(&self, provider: &str) -> SweepTimer<'_> {
        SweepTimer { metrics: self, provider: provider.to_string(), start: Instant::now() }
    }
}

pub struct SweepTimer<'a> {
    metrics: &'a Metrics,
    provider: String,
    start: Instant,
}

impl Drop for SweepTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_seconds
            .get_or_create(&ProviderLabels { provider: self.provider.clone() })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_families_with_their_labels() {
        let m = Metrics::new();
        m.revocations
            .get_or_create(&RevocationLabels {
                provider: "acme/corp-pi".into(),
                reason: "EmployeeOffboarded".into(),
                outcome: "revoked".into(),
            })
            .inc();
        drop(m.sweep_timer("acme/corp-pi"));
        let text = m.encode();
        assert!(text.contains(
            r#"keyward_revocations_total{provider="acme/corp-pi",reason="EmployeeOffboarded",outcome="revoked"} 1"#
        ));
        assert!(text.contains(r#"keyward_reconcile_duration_seconds_count{provider="acme/corp-pi"} 1"#));
        m.audit_delivery_backlog.set(3);
        m.audit_delivery_failures.inc();
        let text = m.encode();
        assert!(text.contains("keyward_audit_delivery_backlog 3"), "{text}");
        assert!(text.contains("keyward_audit_delivery_failures_total 1"), "{text}");
        let target = TargetLabels { provider: "acme/corp-pi".into(), target: "siem".into() };
        m.notification_backlog.get_or_create(&target).set(2);
        m.notification_failures.get_or_create(&target).inc();
        let text = m.encode();
        assert!(text.contains(r#"keyward_notification_backlog{provider="acme/corp-pi",target="siem"} 2"#), "{text}");
        assert!(text.contains(r#"keyward_notification_failures_total{provider="acme/corp-pi",target="siem"} 1"#));
    }
}
