//! A scripted API server for the reconcilers' unit tests (kube-rs's controller-rs
//! `ApiServerVerifier` pattern): the [`Context`]'s client talks to a verifier that expects
//! exactly the listed requests, in order, answers each, and fails on any other. No network
//! and no provider: a reconcile that got as far as a provider would need its credentials
//! Secret, which the tests leave out.

use super::caches::Cache;
use super::claim::Claims;
use super::config::RunArgs;
use super::context::{Caches, Context, Leading, Outputs, SweepState};
use crate::crd::{AccessGrant, Employee, MfaProvider, RevocationApproval};
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// How long a reconcile, and the verifier after it, may take: a scripted reconcile needs
/// milliseconds; a stuck one fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(2);

/// The content types of the three kinds of PATCH the reconcilers send.
pub const APPLY: &str = "application/apply-patch+yaml";
pub const MERGE: &str = "application/merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";

/// One expected request and the API server's answer to it.
pub struct Exchange {
    method: Method,
    /// Path and query, exactly as the client sends them.
    uri: String,
    content_type: &'static str,
    /// Checks the request's JSON body (panics on a mismatch).
    check: Box<dyn FnOnce(Value) + Send>,
    answer: Value,
}

impl Exchange {
    pub fn patch(
        uri: impl Into<String>,
        content_type: &'static str,
        check: impl FnOnce(Value) + Send + 'static,
        answer: impl serde::Serialize,
    ) -> Self {
        Exchange {
            method: Method::PATCH,
            uri: uri.into(),
            content_type,
            check: Box::new(check),
            answer: serde_json::to_value(answer).expect("a JSON answer"),
        }
    }
}

/// The objects the test's caches hold, all listed (synced).
#[derive(Default)]
pub struct World {
    pub providers: Vec<MfaProvider>,
    pub employees: Vec<Employee>,
    pub grants: Vec<AccessGrant>,
    pub secrets: Vec<Secret>,
}

/// A [`Context`] whose client is scripted, leading, with the claims a test settles.
pub struct Scripted {
    pub ctx: Arc<Context>,
    handle: Handle,
    /// The notifier's spool: empty, and gone with the test.
    _spool: tempfile::TempDir,
    _shutdown: watch::Sender<bool>,
    _leader: watch::Sender<bool>,
}

/// The flags `keyward run` gets when none is given.
#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    run: RunArgs,
}

pub fn scripted(world: World) -> Scripted {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let args = <Flags as clap::Parser>::parse_from(["keyward"]).run;
    let caches = Caches {
        providers: Cache::holding("MfaProvider", world.providers),
        employees: Cache::holding("Employee", world.employees),
        grants: Cache::holding("AccessGrant", world.grants),
        secrets: Cache::holding("Secret", world.secrets),
        approvals: Cache::<RevocationApproval>::holding("RevocationApproval", []),
    };
    let (leader_tx, leader) = watch::channel(true);
    let lease = super::leader::Leadership::default();
    lease.set(Some(tokio::time::Instant::now() + Duration::from_secs(3600)));
    let leading = Leading {
        leader,
        lease,
        epoch: 1.into(),
        claims: Claims::new(format!("{}/{}", args.lease_namespace(), args.lease_name), args.lease_duration),
    };
    let metrics = crate::metrics::Metrics::new();
    let audit: Arc<dyn crate::audit::AuditSink> = Arc::new(crate::audit::Memory::default());
    let spool = tempfile::tempdir().expect("a spool directory");
    let (shutdown_tx, shutdown) = watch::channel(false);
    let settings = crate::notify::Settings {
        spool: spool.path().to_path_buf(),
        audit: audit.clone(),
        secrets: Arc::new(caches.secrets.clone()),
        backoff: crate::notify::Settings::backoff(),
        backlog: metrics.notification_backlog.clone(),
        failures: metrics.notification_failures.clone(),
    };
    let outputs = Outputs {
        recorder: Recorder::new(client.clone(), Reporter { controller: "keyward".into(), instance: None }),
        notifier: crate::notify::Notifier::start(settings, shutdown).expect("a notifier"),
        metrics,
        audit,
        employee_trigger: futures::channel::mpsc::unbounded().0,
        provider_trigger: futures::channel::mpsc::unbounded().0,
    };
    let ctx = Arc::new(Context { client, args, caches, leading, sweep: SweepState::default(), outputs });
    Scripted { ctx, handle, _spool: spool, _shutdown: shutdown_tx, _leader: leader_tx }
}

impl Scripted {
    /// Settles the claim on `provider`: held by this installation (`None`) or by `holder`.
    pub fn claim(&self, provider: &MfaProvider, holder: Option<&str>) {
        self.ctx.leading.claims.settle(&self.ctx.client, provider, holder);
    }

    /// Runs `reconcile` (given the only handle on the context) against the script: exactly
    /// `exchanges`, in order, and no other request until the reconcile has dropped the
    /// context. Returns what the reconcile returned.
    pub async fn run<T, F>(self, exchanges: Vec<Exchange>, reconcile: impl FnOnce(Arc<Context>) -> F) -> T
    where
        F: Future<Output = T>,
    {
        let Scripted { ctx, handle, _spool, _shutdown, _leader } = self;
        let verifier = tokio::spawn(verify(handle, exchanges));
        let outcome = tokio::time::timeout(BOUND, reconcile(ctx)).await;
        // The verifier's verdict first: a wrong request is the cause of a failed reconcile.
        match tokio::time::timeout(BOUND, verifier).await {
            Err(_) => panic!("the scripted API server still waits: a request did not come, or the client lives on"),
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("verifier: {e}"),
            Ok(Ok(())) => {}
        }
        outcome.expect("the reconcile finished in time")
    }
}

async fn verify(mut handle: Handle, exchanges: Vec<Exchange>) {
    for (i, expected) in exchanges.into_iter().enumerate() {
        let Some((request, send)) = handle.next_request().await else {
            panic!("request {i} ({} {}) never came", expected.method, expected.uri);
        };
        let uri = request.uri().to_string();
        assert_eq!((request.method(), uri.as_str()), (&expected.method, expected.uri.as_str()), "request {i}");
        let content_type = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(content_type, expected.content_type, "request {i}: {uri}");
        let bytes = request.into_body().collect_bytes().await.expect("a request body");
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") };
        (expected.check)(body);
        let answer = serde_json::to_vec(&expected.answer).expect("an answer");
        send.send_response(Response::builder().body(Body::from(answer)).expect("a response"));
    }
    // Ends when the reconcile has dropped the context (and with it every client).
    if let Some((request, _)) = handle.next_request().await {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
}

/// The condition of `type_` in a status as sent.
pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    let conditions = status["conditions"].as_array().unwrap_or_else(|| panic!("no conditions in {status}"));
    conditions.iter().find(|c| c["type"] == type_).unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}
