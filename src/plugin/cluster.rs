//! The plugin's requests to the API server, each failure named as kubectl names it.

use super::PluginError;
use super::view::{self, Request};
use crate::audit::Memory;
use crate::crd::{AccessGrant, Employee, MfaProvider, ProviderKey, RevocationApproval};
use crate::engine::{ApprovalOffer, budget};
use crate::sweep::{self, Declared, Execution, SweepReport};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// The field manager of what the plugin writes: who suspended a provider or created an
/// approval shows in managedFields (and in keyward's approval records) as this.
const FIELD_MANAGER: &str = "kubectl-keyward";

pub struct Cluster {
    client: Client,
    namespace: String,
}

/// A plan computed from the cluster, with the MfaProvider it is for.
pub struct Planned {
    pub provider: MfaProvider,
    pub report: SweepReport,
}

impl Cluster {
    /// The client kubectl would use: KUBECONFIG (or in-cluster), the context's namespace
    /// unless `-n` names one.
    pub async fn connect(namespace: Option<String>) -> Result<Cluster, PluginError> {
        let client = Client::try_default().await.map_err(PluginError::Connect)?;
        let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
        Ok(Cluster { client, namespace })
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn failed<'a>(
        &'a self,
        verb: &'a str,
        resource: &'a str,
        name: Option<&'a str>,
    ) -> impl Fn(kube::Error) -> PluginError + 'a {
        move |error| {
            PluginError::Api(view::api_error(&Request { verb, resource, name, namespace: &self.namespace }, &error))
        }
    }

    pub async fn provider(&self, name: &str) -> Result<MfaProvider, PluginError> {
        self.api().get(name).await.map_err(self.failed("get", "mfaproviders", Some(name)))
    }

    /// One MfaProvider, or all of the namespace sorted by name.
    pub async fn providers(&self, name: Option<&str>) -> Result<Vec<MfaProvider>, PluginError> {
        if let Some(name) = name {
            return Ok(vec![self.provider(name).await?]);
        }
        let mut items = self.list::<MfaProvider>("mfaproviders").await?;
        items.sort_by_key(kube::ResourceExt::name_any);
        Ok(items)
    }

    async fn list<K>(&self, resource: &str) -> Result<Vec<K>, PluginError>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let list = self.api::<K>().list(&ListParams::default()).await.map_err(self.failed("list", resource, None))?;
        Ok(list.items)
    }

    /// The provider's credentials Secrets, by name.
    async fn secrets(&self, provider: &MfaProvider) -> Result<BTreeMap<String, Secret>, PluginError> {
        let mut secrets = BTreeMap::new();
        for name in crate::providers::secret_names(provider) {
            let secret = self.api::<Secret>().get(&name).await.map_err(self.failed("get", "secrets", Some(&name)))?;
            secrets.insert(name, secret);
        }
        Ok(secrets)
    }

    /// What the operator would do now on `name`: its sweep in plan-only mode, with the
    /// budget already spent in the window (from status) and the RevocationApprovals on offer,
    /// as the operator counts them.
    pub async fn plan(&self, name: &str) -> Result<Planned, PluginError> {
        let provider = self.provider(name).await?;
        let employees = self.list::<Employee>("employees").await?;
        let grants = self.list::<AccessGrant>("accessgrants").await?;
        let approvals = self.list::<RevocationApproval>("revocationapprovals").await?;
        let secrets = self.secrets(&provider).await?;
        let lookup = |secret: &str, key: &str| secrets.get(secret).and_then(|s| view::secret_value(s, key));
        let now = chrono::Utc::now();
        let guard = ClusterView {
            revoked_in_window: provider
                .status
                .as_ref()
                .map_or(0, |s| budget::used(&s.recent_revocations, now, provider.spec.policy.budget.window())),
            approvals: budget::object_offers(&provider, &approvals),
        };
        let declared = Declared { provider: &provider, employees: &employees, grants: &grants };
        let report = match crate::providers::connect(&provider, &lookup) {
            Ok(connected) => {
                sweep::sweep_guarded(&connected, &declared, now, Execution::PlanOnly, &Memory::default(), &guard).await
            }
            Err(e) => return Err(PluginError::Api(format!("error: MfaProvider {}: {e}", ProviderKey::of(&provider)))),
        };
        Ok(Planned { provider, report })
    }

    /// The user name the API server authenticates this client as (a SelfSubjectReview): what
    /// the chart's admission policy requires in `keyward.dev/approved-by`.
    pub async fn who_am_i(&self) -> Result<String, PluginError> {
        use k8s_openapi::api::authentication::v1::SelfSubjectReview;
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        let review = api.create(&PostParams::default(), &SelfSubjectReview::default()).await.map_err(self.failed(
            "create",
            "selfsubjectreviews",
            None,
        ))?;
        review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| PluginError::Api("error: the API server did not say who you are (SelfSubjectReview)".into()))
    }

    pub async fn create_approval(&self, approval: &RevocationApproval) -> Result<RevocationApproval, PluginError> {
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
        let name = approval.metadata.name.as_deref();
        self.api().create(&params, approval).await.map_err(self.failed("create", "revocationapprovals", name))
    }

    /// Sets or clears spec.suspend with a merge patch (nothing else of the object touched).
    pub async fn set_suspend(&self, name: &str, suspend: bool) -> Result<(), PluginError> {
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
        let patch = Patch::Merge(serde_json::json!({"spec": {"suspend": suspend}}));
        let patched: MfaProvider =
            self.api().patch(name, &params, &patch).await.map_err(self.failed("patch", "mfaproviders", Some(name)))?;
        println!("{}", view::suspended(&patched));
        Ok(())
    }
}

/// What the operator vouches for in its sweep, read from the cluster: the plugin never acts,
/// so only the budget spent and the approvals matter.
struct ClusterView {
    revoked_in_window: usize,
    approvals: Vec<ApprovalOffer>,
}

impl sweep::Guard for ClusterView {
    fn may_act(&self) -> bool {
        // Plan-only: nothing is carried out whatever this says; no for safety all the same.
        false
    }
    fn revoked_in_window(&self) -> usize {
        self.revoked_in_window
    }
    fn approvals(&self) -> Vec<ApprovalOffer> {
        self.approvals.clone()
    }
}
