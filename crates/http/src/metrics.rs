//! Prometheus metrics: sessions and nodes (read from the store at scrape
//! time), HTTP requests, and calls to the ports through the [`Instrumented`]
//! decorator that [`instrument_ports`] wraps around every backend.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crus_core::ports::{
    AlertGate, BootHandle, BootOrchestrator, BootRequest, GateCheck, HookRequest, HookRunner,
    Inventory, NodeBootStatus, NodeImage, Ports, PowerControl, PowerOperation, PowerState,
    WorkloadManager, WorkloadNode,
};
use crus_core::rollout::{Hook, NodePhase};
use crus_core::session::SessionPhase;
use crus_core::store::{StatusView, StoreHealth};
use crus_core::{Error, NodeFacts, NodeId, SessionState, SessionStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::leadership::Leadership;
use crate::problem::AppError;
use crate::state::AppState;

/// Content type of the exposition (OpenMetrics text, which Prometheus scrapes).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every session state served, so each has a `crus_sessions` series even
/// at zero (`CREATED` is never served: see [`SessionState::served`]).
const SESSION_STATES: [SessionState; 3] = [
    SessionState::Updating,
    SessionState::Ready,
    SessionState::Deleting,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    url: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortCallLabels {
    port: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortOperationLabels {
    port: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionStateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodePhaseLabels {
    phase: &'static str,
}

/// A histogram family whose buckets suit request and backend latencies (1 ms to ~65 s).
type LatencyFamily<Labels> = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The server's metrics and the registry they are exposed from.
pub struct Metrics {
    /// Every metric below, for encoding.
    registry: Registry,
    /// `crus_http_requests_total{method,route,status}`.
    http_requests: Family<HttpRequestLabels, Counter>,
    /// `crus_http_request_duration_seconds{method,route}`.
    http_request_duration: LatencyFamily<HttpRouteLabels>,
    /// `crus_port_calls_total{port,operation,outcome}`.
    port_calls: Family<PortCallLabels, Counter>,
    /// `crus_port_call_duration_seconds{port,operation}`.
    port_call_duration: LatencyFamily<PortOperationLabels>,
    /// `crus_sessions{state}`, set from the store at each scrape.
    sessions: Family<SessionStateLabels, Gauge>,
    /// `crus_nodes{phase}` over unfinished sessions, set at each scrape.
    nodes: Family<NodePhaseLabels, Gauge>,
    /// `crus_sessions_gated`: unfinished sessions its alert gates hold now
    /// (their phase is `gated`: not paused, halted or being deleted), set
    /// at each scrape.
    sessions_gated: Gauge,
    /// `crus_sessions_reverting`: unfinished halted sessions booting the
    /// nodes they upgraded back to the rollback template
    /// (`revert_upgraded_on_halt`), set at each scrape.
    sessions_reverting: Gauge,
    /// `crus_webhook_events_total{url,outcome}`: delivered, failed, dropped.
    webhook_events: Family<WebhookLabels, Counter>,
    /// `crus_leader`: 1 while this replica leads, set at each scrape.
    leader: Gauge,
    /// `crus_leadership_changes_total`: times this replica became or stopped
    /// being the leader, brought up to date at each scrape.
    leadership_changes: Counter,
    /// `crus_store_refusing_writes`: 1 while the session store's last write
    /// failed (sessions wait), set at each scrape.
    store_refusing_writes: Gauge,
    /// `crus_store_refused_writes_total`: writes the session store refused,
    /// brought up to date at each scrape.
    store_refused_writes: Counter,
    /// One scrape at a time, so two concurrent scrapes do not interleave
    /// their gauge updates and one expose a mix of both.
    scrape: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every crus metric, registered and at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpRequestLabels, Counter>::default();
        registry.register(
            "crus_http_requests",
            "HTTP requests answered, by method, route and status code",
            http_requests.clone(),
        );
        let http_request_duration: LatencyFamily<HttpRouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "crus_http_request_duration",
            "Time to answer HTTP requests, by method and route",
            Unit::Seconds,
            http_request_duration.clone(),
        );
        let port_calls = Family::<PortCallLabels, Counter>::default();
        registry.register(
            "crus_port_calls",
            "Calls to the backends (ports), by port, operation and outcome",
            port_calls.clone(),
        );
        let port_call_duration: LatencyFamily<PortOperationLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "crus_port_call_duration",
            "Time taken by calls to the backends (ports), by port and operation",
            Unit::Seconds,
            port_call_duration.clone(),
        );
        let sessions = Family::<SessionStateLabels, Gauge>::default();
        registry.register(
            "crus_sessions",
            "Stored sessions, by state",
            sessions.clone(),
        );
        let nodes = Family::<NodePhaseLabels, Gauge>::default();
        registry.register(
            "crus_nodes",
            "Nodes of unfinished sessions, by phase of their upgrade",
            nodes.clone(),
        );
        let sessions_gated = Gauge::default();
        registry.register(
            "crus_sessions_gated",
            "Unfinished sessions held by their alert gates (no new node is taken)",
            sessions_gated.clone(),
        );
        let sessions_reverting = Gauge::default();
        registry.register(
            "crus_sessions_reverting",
            "Unfinished halted sessions booting the nodes they upgraded back to the rollback template",
            sessions_reverting.clone(),
        );
        let webhook_events = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "crus_webhook_events",
            "Rollout events for webhooks, by URL and outcome (delivered, failed, dropped)",
            webhook_events.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "crus_leader",
            "1 while this replica leads (drives the sessions), 0 while another does",
            leader.clone(),
        );
        let leadership_changes = Counter::default();
        registry.register(
            "crus_leadership_changes",
            "Times this replica became or stopped being the leader",
            leadership_changes.clone(),
        );
        let store_refusing_writes = Gauge::default();
        registry.register(
            "crus_store_refusing_writes",
            "1 while the session store refuses writes (sessions do nothing until it takes them again)",
            store_refusing_writes.clone(),
        );
        let store_refused_writes = Counter::default();
        registry.register(
            "crus_store_refused_writes",
            "Writes the session store refused",
            store_refused_writes.clone(),
        );
        Metrics {
            store_refusing_writes,
            store_refused_writes,
            sessions_gated,
            sessions_reverting,
            webhook_events,
            leader,
            leadership_changes,
            registry,
            http_requests,
            http_request_duration,
            port_calls,
            port_call_duration,
            sessions,
            nodes,
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts one answered HTTP request. `route` is the route template
    /// (`/session/{upgrade_id}`), never the raw path, to keep the series few.
    pub fn record_http(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.http_requests
            .get_or_create(&HttpRequestLabels {
                method,
                route: route.to_string(),
                status,
            })
            .inc();
        self.http_request_duration
            .get_or_create(&HttpRouteLabels {
                method,
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts `count` webhook events for `url` that ended in `outcome`
    /// (`delivered`, `failed` or `dropped`).
    pub fn record_webhook(&self, url: &str, outcome: &'static str, count: u64) {
        self.webhook_events
            .get_or_create(&WebhookLabels {
                url: url.to_string(),
                outcome,
            })
            .inc_by(count);
    }

    /// Counts one call to a port.
    pub fn record_port_call(
        &self,
        port: &'static str,
        operation: &'static str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        self.port_calls
            .get_or_create(&PortCallLabels {
                port,
                operation,
                outcome,
            })
            .inc();
        self.port_call_duration
            .get_or_create(&PortOperationLabels { port, operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Reads the sessions' statuses from `statuses` (the read model), the role from `leadership` and
    /// whether the store takes writes from `health` into the gauges, then
    /// encodes every metric in the OpenMetrics text format.
    pub async fn render(
        &self,
        statuses: &dyn StatusView,
        leadership: &Leadership,
        health: &StoreHealth,
    ) -> Result<String, AppError> {
        let _one_scrape_at_a_time = self.scrape.lock().await;
        self.store_refusing_writes
            .set(i64::from(health.failure().is_some()));
        let refused = health.refused_writes();
        let counted = self.store_refused_writes.get();
        if refused > counted {
            self.store_refused_writes.inc_by(refused - counted);
        }
        self.leader.set(i64::from(leadership.is_leader()));
        // Counters only go up: add what changed since the last scrape.
        let changes = leadership.changes();
        let counted = self.leadership_changes.get();
        if changes > counted {
            self.leadership_changes.inc_by(changes - counted);
        }
        // The read model's statuses (a few hundred bytes each, kept by the
        // store beside its records), not the records: a scrape decodes no
        // node, however large the sessions (issue 25).
        let statuses = statuses.list_statuses().await?;
        let mut sessions: BTreeMap<&'static str, i64> = SESSION_STATES
            .iter()
            .map(|state| (state.as_str(), 0))
            .collect();
        let mut nodes: BTreeMap<NodePhase, i64> =
            NodePhase::ALL.iter().map(|phase| (*phase, 0)).collect();
        let mut gated = 0;
        let mut reverting = 0;
        for json in &statuses {
            let status: SessionStatus = serde_json::from_str(json).map_err(|error| {
                AppError::Internal(format!(
                    "a stored session status does not decode ({error}); the session store may be damaged"
                ))
            })?;
            *sessions.entry(status.state.as_str()).or_default() += 1;
            if !status.completed {
                gated += i64::from(status.phase == Some(SessionPhase::Gated));
                reverting += i64::from(
                    status.reverting.is_some() && status.phase != Some(SessionPhase::Cancelling),
                );
                for phase in NodePhase::ALL {
                    let count = status
                        .nodes
                        .as_ref()
                        .and_then(|counts| counts.get(phase.as_str()))
                        .copied()
                        .unwrap_or_default();
                    *nodes.entry(phase).or_default() += i64::try_from(count).unwrap_or(i64::MAX);
                }
            }
        }
        self.sessions_gated.set(gated);
        self.sessions_reverting.set(reverting);
        for (state, count) in sessions {
            self.sessions
                .get_or_create(&SessionStateLabels { state })
                .set(count);
        }
        for (phase, count) in nodes {
            self.nodes
                .get_or_create(&NodePhaseLabels {
                    phase: phase.as_str(),
                })
                .set(count);
        }
        self.encode()
    }

    /// Every metric in the OpenMetrics text format, as they stand.
    pub fn encode(&self) -> Result<String, AppError> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|error| AppError::Internal(format!("encoding metrics: {error}")))?;
        Ok(text)
    }
}

/// The method as a label; unusual methods share one value so clients cannot
/// create series at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Middleware: counts and times every request by its route template.
pub(crate) async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    // Unmatched paths share one label: raw paths would let clients create series at will.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record_http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /metrics`: Prometheus scrape endpoint.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "get_metrics",
    summary = "Prometheus metrics",
    description = "Sessions by state, nodes of unfinished sessions by phase, HTTP requests and backend calls, in the OpenMetrics text format.",
    responses(
        (status = 200, description = "The metrics", content_type = "application/openmetrics-text", body = String),
    )
)]
pub(crate) async fn get_metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let text = state
        .metrics()
        .render(
            state.statuses().as_ref(),
            state.leadership(),
            state.controller().store_health(),
        )
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

/// The outcome label of a port call.
fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::NotFound { .. }) => "not_found",
        Err(Error::Conflict { .. }) => "conflict",
        Err(Error::Invalid { .. }) => "invalid",
        Err(Error::Unavailable { .. }) => "unavailable",
        Err(_) => "other",
    }
}

/// A port wrapped to count and time its calls in [`Metrics`]; it implements
/// whichever of the four port traits `T` implements, forwarding every method
/// (provided ones too, so a backend's own versions keep being used).
pub struct Instrumented<T: ?Sized> {
    /// The wrapped port.
    inner: Arc<T>,
    /// Where calls are counted.
    metrics: Arc<Metrics>,
}

impl<T: ?Sized> Instrumented<T> {
    /// `inner`, counted in `metrics`.
    pub fn new(inner: Arc<T>, metrics: Arc<Metrics>) -> Self {
        Instrumented { inner, metrics }
    }

    /// Awaits `call`, recording its outcome and duration.
    async fn observe<R>(
        &self,
        port: &'static str,
        operation: &'static str,
        call: impl Future<Output = Result<R, Error>>,
    ) -> Result<R, Error> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .record_port_call(port, operation, outcome(&result), started.elapsed());
        result
    }
}

impl<T: ?Sized> fmt::Debug for Instrumented<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Instrumented")
            .finish_non_exhaustive()
    }
}

/// `ports` with every port wrapped in [`Instrumented`], counting into `metrics`.
pub fn instrument_ports(ports: Ports, metrics: &Arc<Metrics>) -> Ports {
    Ports {
        inventory: Arc::new(Instrumented::new(ports.inventory, metrics.clone())),
        workload_manager: Arc::new(Instrumented::new(ports.workload_manager, metrics.clone())),
        boot_orchestrator: Arc::new(Instrumented::new(ports.boot_orchestrator, metrics.clone())),
        power_control: ports.power_control.map(|power_control| {
            Arc::new(Instrumented::new(power_control, metrics.clone())) as Arc<dyn PowerControl>
        }),
        health_probe: ports.health_probe,
        alert_gate: ports.alert_gate.map(|alert_gate| {
            Arc::new(Instrumented::new(alert_gate, metrics.clone())) as Arc<dyn AlertGate>
        }),
        hook_runner: ports.hook_runner.map(|hook_runner| {
            Arc::new(Instrumented::new(hook_runner, metrics.clone())) as Arc<dyn HookRunner>
        }),
    }
}

const INVENTORY: &str = "inventory";
const WORKLOAD_MANAGER: &str = "workload_manager";
const BOOT_ORCHESTRATOR: &str = "boot_orchestrator";
const POWER_CONTROL: &str = "power_control";
const ALERT_GATE: &str = "alert_gate";
const HOOK_RUNNER: &str = "hook_runner";

#[async_trait]
impl<T: Inventory + ?Sized> Inventory for Instrumented<T> {
    async fn group_members(&self, label: &str) -> crus_core::Result<Vec<NodeId>> {
        self.observe(INVENTORY, "group_members", self.inner.group_members(label))
            .await
    }

    async fn create_group(&self, label: &str) -> crus_core::Result<()> {
        self.observe(INVENTORY, "create_group", self.inner.create_group(label))
            .await
    }

    async fn add_members(&self, label: &str, nodes: &[NodeId]) -> crus_core::Result<()> {
        self.observe(
            INVENTORY,
            "add_members",
            self.inner.add_members(label, nodes),
        )
        .await
    }

    async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> crus_core::Result<()> {
        self.observe(
            INVENTORY,
            "remove_members",
            self.inner.remove_members(label, nodes),
        )
        .await
    }

    async fn node_facts(&self, nodes: &[NodeId]) -> crus_core::Result<Vec<NodeFacts>> {
        self.observe(INVENTORY, "node_facts", self.inner.node_facts(nodes))
            .await
    }

    async fn ensure_group(&self, label: &str) -> crus_core::Result<()> {
        self.observe(INVENTORY, "ensure_group", self.inner.ensure_group(label))
            .await
    }

    async fn clear_group(&self, label: &str) -> crus_core::Result<Vec<NodeId>> {
        self.observe(INVENTORY, "clear_group", self.inner.clear_group(label))
            .await
    }
}

#[async_trait]
impl<T: WorkloadManager + ?Sized> WorkloadManager for Instrumented<T> {
    async fn drain(&self, nodes: &[NodeId], reason: &str) -> crus_core::Result<()> {
        self.observe(WORKLOAD_MANAGER, "drain", self.inner.drain(nodes, reason))
            .await
    }

    async fn resume(&self, nodes: &[NodeId]) -> crus_core::Result<()> {
        self.observe(WORKLOAD_MANAGER, "resume", self.inner.resume(nodes))
            .await
    }

    async fn fail(&self, nodes: &[NodeId], reason: &str) -> crus_core::Result<()> {
        self.observe(WORKLOAD_MANAGER, "fail", self.inner.fail(nodes, reason))
            .await
    }

    // Forwarded, not left to the port's default: the backend's own restore
    // (Slurm's State=DOWN) must not become a FAIL behind the metrics.
    async fn restore(
        &self,
        nodes: &[NodeId],
        state: crus_core::ports::WorkloadState,
        reason: &str,
    ) -> crus_core::Result<()> {
        self.observe(
            WORKLOAD_MANAGER,
            "restore",
            self.inner.restore(nodes, state, reason),
        )
        .await
    }

    async fn node_states(&self, nodes: &[NodeId]) -> crus_core::Result<Vec<WorkloadNode>> {
        self.observe(
            WORKLOAD_MANAGER,
            "node_states",
            self.inner.node_states(nodes),
        )
        .await
    }

    async fn requeue_jobs(&self, nodes: &[NodeId]) -> crus_core::Result<()> {
        self.observe(
            WORKLOAD_MANAGER,
            "requeue_jobs",
            self.inner.requeue_jobs(nodes),
        )
        .await
    }

    async fn queue(&self) -> crus_core::Result<crus_core::ports::WorkloadQueue> {
        self.observe(WORKLOAD_MANAGER, "queue", self.inner.queue())
            .await
    }

    async fn node_weights(&self, nodes: &[NodeId]) -> crus_core::Result<Vec<u32>> {
        self.observe(
            WORKLOAD_MANAGER,
            "node_weights",
            self.inner.node_weights(nodes),
        )
        .await
    }

    async fn set_weights(&self, weights: &[(NodeId, u32)]) -> crus_core::Result<()> {
        self.observe(
            WORKLOAD_MANAGER,
            "set_weights",
            self.inner.set_weights(weights),
        )
        .await
    }

    fn availability_supported(&self) -> crus_core::Result<()> {
        self.inner.availability_supported()
    }

    fn features_supported(&self) -> crus_core::Result<()> {
        self.inner.features_supported()
    }

    async fn node_features(&self, nodes: &[NodeId]) -> crus_core::Result<Vec<Vec<String>>> {
        self.observe(
            WORKLOAD_MANAGER,
            "node_features",
            self.inner.node_features(nodes),
        )
        .await
    }

    async fn set_features(&self, features: &[(NodeId, Vec<String>)]) -> crus_core::Result<()> {
        self.observe(
            WORKLOAD_MANAGER,
            "set_features",
            self.inner.set_features(features),
        )
        .await
    }

    fn reservations_supported(&self) -> crus_core::Result<()> {
        self.inner.reservations_supported()
    }

    async fn reserve_from(
        &self,
        reservations: &[(NodeId, crus_core::Timestamp)],
    ) -> crus_core::Result<()> {
        self.observe(
            WORKLOAD_MANAGER,
            "reserve_from",
            self.inner.reserve_from(reservations),
        )
        .await
    }

    async fn reserved_nodes(&self, nodes: &[NodeId]) -> crus_core::Result<Vec<NodeId>> {
        self.observe(
            WORKLOAD_MANAGER,
            "reserved_nodes",
            self.inner.reserved_nodes(nodes),
        )
        .await
    }

    async fn unreserve(&self, nodes: &[NodeId]) -> crus_core::Result<()> {
        self.observe(WORKLOAD_MANAGER, "unreserve", self.inner.unreserve(nodes))
            .await
    }
}

#[async_trait]
impl<T: BootOrchestrator + ?Sized> BootOrchestrator for Instrumented<T> {
    async fn template_exists(&self, template: &str) -> crus_core::Result<bool> {
        self.observe(
            BOOT_ORCHESTRATOR,
            "template_exists",
            self.inner.template_exists(template),
        )
        .await
    }

    async fn start_boot(&self, request: &BootRequest) -> crus_core::Result<BootHandle> {
        self.observe(
            BOOT_ORCHESTRATOR,
            "start_boot",
            self.inner.start_boot(request),
        )
        .await
    }

    async fn boot_status(&self, handle: &BootHandle) -> crus_core::Result<Vec<NodeBootStatus>> {
        self.observe(
            BOOT_ORCHESTRATOR,
            "boot_status",
            self.inner.boot_status(handle),
        )
        .await
    }

    async fn cancel_boot(&self, handle: &BootHandle) -> crus_core::Result<()> {
        self.observe(
            BOOT_ORCHESTRATOR,
            "cancel_boot",
            self.inner.cancel_boot(handle),
        )
        .await
    }

    fn current_images_supported(&self) -> crus_core::Result<()> {
        self.inner.current_images_supported()
    }

    async fn current_images(
        &self,
        nodes: &[NodeId],
        template: &str,
    ) -> crus_core::Result<Vec<NodeImage>> {
        self.observe(
            BOOT_ORCHESTRATOR,
            "current_images",
            self.inner.current_images(nodes, template),
        )
        .await
    }
}

#[async_trait]
impl<T: PowerControl + ?Sized> PowerControl for Instrumented<T> {
    async fn power_state(&self, nodes: &[NodeId]) -> crus_core::Result<Vec<PowerState>> {
        self.observe(POWER_CONTROL, "power_state", self.inner.power_state(nodes))
            .await
    }

    async fn power(&self, nodes: &[NodeId], operation: PowerOperation) -> crus_core::Result<()> {
        self.observe(POWER_CONTROL, "power", self.inner.power(nodes, operation))
            .await
    }
}

/// Alert gates by kind (`prometheus`, `alertmanager`): the outcome says
/// whether the monitoring answered, not whether it blocked.
#[async_trait]
impl<T: AlertGate + ?Sized> AlertGate for Instrumented<T> {
    async fn blocking(&self, gate: &GateCheck) -> crus_core::Result<Vec<String>> {
        let kind = match gate {
            GateCheck::Prometheus { .. } => "prometheus",
            GateCheck::Alertmanager { .. } => "alertmanager",
        };
        self.observe(ALERT_GATE, kind, self.inner.blocking(gate))
            .await
    }

    fn refuses(&self, gate: &GateCheck) -> Option<String> {
        self.inner.refuses(gate)
    }
}

/// Hook runs by point (`pre_drain`, `pre_boot`, `post_boot`): `ok` when the
/// hook succeeded, `failed` when it failed or timed out, an error's label
/// when it could not be run at all.
#[async_trait]
impl<T: HookRunner + ?Sized> HookRunner for Instrumented<T> {
    async fn run(&self, request: &HookRequest) -> crus_core::Result<Option<String>> {
        let started = Instant::now();
        let result = self.inner.run(request).await;
        let label = match &result {
            Ok(Some(_)) => "failed",
            other => outcome(other),
        };
        self.metrics.record_port_call(
            HOOK_RUNNER,
            request.hook.at.as_str(),
            label,
            started.elapsed(),
        );
        result
    }

    fn refuses(&self, hook: &Hook) -> Option<String> {
        self.inner.refuses(hook)
    }
}
