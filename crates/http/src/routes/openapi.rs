//! `GET /openapi.json`: the OpenAPI document of this server, built from the
//! handlers' annotations and completed here with what they cannot say
//! (responses every protected route shares, the gateway copies of the
//! paths, constraints the Rust types do not carry).

use std::sync::LazyLock;

use axum::Json;
use crus_core::rollout::RolloutEvent;
use crus_core::session::{KIND, SUPPORTED_WORKLOAD_MANAGERS};
use crus_core::{SessionSpec, SessionState, SessionStatus};
use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, RefOr, Type};

use crate::problem::{PROBLEM_JSON, Problem};
use crate::routes::controls::ResumeRequest;
use crate::routes::health::{ProbeStatus, ReadyStatus};
use crate::routes::options::{OptionsChanged, OptionsPatch};
use crate::routes::{GATEWAY_PREFIX, PUBLIC_PATHS};
use crus_core::options::ServerOptions;
use crus_core::session::NodeStatus;

/// Name of the bearer security scheme, as CRUS's document named it.
const BEARER_AUTH: &str = "bearerAuth";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "crus: Compute Rolling Upgrade Service",
        description = "Rolling upgrades of the boot image or configuration of HPC compute nodes, a few nodes at a time. Compatible with the Cray/HPE CRUS API; every path is served both at the root and under the API gateway prefix /apis/crus.",
    ),
    paths(
        crate::routes::session::create_session,
        crate::routes::session::list_sessions,
        crate::routes::session::get_session,
        crate::routes::session::delete_session,
        crate::routes::controls::pause_session,
        crate::routes::controls::resume_session,
        crate::routes::nodes::list_session_nodes,
        crate::routes::events::stream_session_events,
        crate::routes::events::stream_events,
        crate::routes::options::get_options,
        crate::routes::options::patch_options,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        openapi_json,
        crate::metrics::get_metrics,
    ),
    components(schemas(
        SessionSpec,
        SessionStatus,
        SessionState,
        Problem,
        ProbeStatus,
        ReadyStatus,
        ResumeRequest,
        NodeStatus,
        RolloutEvent,
        ServerOptions,
        OptionsPatch,
        OptionsChanged,
    )),
    tags(
        (name = "session", description = "CRUS sessions: rolling upgrades of the nodes of a group"),
        (name = "controls", description = "crus additions: pause and resume a session, its nodes, live events"),
        (name = "options", description = "crus additions: server-wide options changed while the server runs"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

/// The OpenAPI document (3.1) of every route of [`crate::app`].
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(build);
    &DOCUMENT
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi_json",
    summary = "This OpenAPI document",
    responses(
        (status = 200, description = "The OpenAPI document of this server", body = Object, content_type = "application/json"),
    )
)]
pub(crate) async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}

fn build() -> utoipa::openapi::OpenApi {
    let mut api = ApiDoc::openapi();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();

    let components = api.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER_AUTH.to_string(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A static token configured on the server, or a JWT it can verify.",
                ))
                .build(),
        ),
    );
    for (name, response) in shared_responses() {
        components
            .responses
            .insert(name.to_string(), RefOr::T(response));
    }
    tighten_schemas(&mut components.schemas);
    api.security = Some(vec![SecurityRequirement::new(
        BEARER_AUTH,
        Vec::<String>::new(),
    )]);

    for (path, item) in api.paths.paths.iter_mut() {
        let public = PUBLIC_PATHS.contains(&path.as_str());
        for operation in operations_mut(item) {
            if public {
                // An empty list overrides the document's bearer requirement.
                operation.security = Some(Vec::new());
            } else {
                for (status, name) in [
                    ("401", "Unauthorized"),
                    ("500", "InternalServerError"),
                    ("503", "ServiceUnavailable"),
                ] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }

    // The gateway copies: same operations, distinct operation ids (they must be unique).
    let root_paths: Vec<(String, PathItem)> = api
        .paths
        .paths
        .iter()
        .map(|(path, item)| (path.clone(), item.clone()))
        .collect();
    for (path, mut item) in root_paths {
        for operation in operations_mut(&mut item) {
            operation.operation_id = operation
                .operation_id
                .take()
                .map(|id| format!("{id}_via_gateway"));
        }
        api.paths
            .paths
            .insert(format!("{GATEWAY_PREFIX}{path}"), item);
    }
    api
}

/// Responses every protected operation may give, by component name.
fn shared_responses() -> [(&'static str, Response); 3] {
    let problem = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build()
    };
    [
        (
            "Unauthorized",
            ResponseBuilder::new()
                .description("No bearer token was sent, or it was rejected")
                .header(
                    "WWW-Authenticate",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some(
                            "`Bearer`, with `error=\"invalid_token\"` when a token was rejected",
                        ))
                        .build(),
                )
                .content(PROBLEM_JSON, problem())
                .build(),
        ),
        (
            "InternalServerError",
            ResponseBuilder::new()
                .description("The server failed; its log has the details under the request's x-request-id")
                .content(PROBLEM_JSON, problem())
                .build(),
        ),
        (
            "ServiceUnavailable",
            ResponseBuilder::new()
                .description("The session store or a backend is unavailable, or the request took too long; retry later")
                .content(PROBLEM_JSON, problem())
                .build(),
        ),
    ]
}

/// Descriptions of the `Session` schema and its fields, from the CRUS API document.
const SESSION_DESCRIPTIONS: [(&str, &str); 7] = [
    ("", "A CRUS Session object."),
    (
        "failed_label",
        "An empty Hardware State Manager (HSM) group which CRUS will populate with any nodes that fail their upgrades.",
    ),
    (
        "starting_label",
        "A Hardware State Manager (HSM) group which contains the total set of nodes to be upgraded.",
    ),
    (
        "upgrade_step_size",
        "The desired number of nodes for each discrete upgrade step. This quantity will not be exceeded but some steps may use fewer nodes.",
    ),
    (
        "upgrade_template_id",
        "The name of the Boot Orchestration Service (BOS) session template to use for the upgrades.",
    ),
    (
        "upgrading_label",
        "An empty Hardware State Manager (HSM) group which CRUS will use to boot and configure the discrete sets of nodes.",
    ),
    (
        "workload_manager_type",
        "The name of the workload manager. Currently only slurm is supported.",
    ),
];

/// Descriptions of the `SessionStatus` schema and its fields, from the CRUS API document.
const STATUS_DESCRIPTIONS: [(&str, &str); 13] = [
    ("", "The status for a CRUS Session."),
    (
        "api_version",
        "Version of the API that created the session.",
    ),
    (
        "completed",
        "Whether or not the CRUS session has completed.",
    ),
    (
        "failed_label",
        "A Hardware State Manager (HSM) group which CRUS will populate with any nodes that fail their upgrades.",
    ),
    (
        "kind",
        "The kind of CRUS session. Currently only ComputeUpgradeSession.",
    ),
    (
        "messages",
        "Status messages describing the progress of the session.",
    ),
    (
        "starting_label",
        "A Hardware State Manager (HSM) group which contains the total set of nodes to be upgraded.",
    ),
    ("state", "Current state of the session."),
    ("upgrade_id", "The ID of the CRUS session."),
    (
        "upgrade_step_size",
        "The desired number of nodes for each discrete upgrade step. This quantity will not be exceeded but some steps may use fewer nodes.",
    ),
    (
        "upgrade_template_id",
        "The name of the Boot Orchestration Service (BOS) session template for the CRUS session upgrades.",
    ),
    (
        "upgrading_label",
        "A Hardware State Manager (HSM) group which the CRUS session will use to boot and configure the discrete sets of nodes.",
    ),
    ("workload_manager_type", "The name of the workload manager."),
];

/// The CRUS schemas as CRUS documented them: its descriptions (the Rust
/// docs speak to Rust readers), and constraints the Rust types cannot
/// express: the `Session` body accepts no other field and one workload
/// manager; a status is always of one kind.
fn tighten_schemas(schemas: &mut std::collections::BTreeMap<String, RefOr<Schema>>) {
    let workload_managers: Vec<Value> = SUPPORTED_WORKLOAD_MANAGERS
        .iter()
        .map(|name| Value::from(*name))
        .collect();
    if let Some(RefOr::T(Schema::Object(session))) = schemas.get_mut("Session") {
        session.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        set_enum(session, "workload_manager_type", workload_managers.clone());
        describe(session, &SESSION_DESCRIPTIONS);
    }
    if let Some(RefOr::T(Schema::Object(status))) = schemas.get_mut("SessionStatus") {
        set_enum(status, "workload_manager_type", workload_managers);
        set_enum(status, "kind", vec![Value::from(KIND)]);
        describe(status, &STATUS_DESCRIPTIONS);
    }
}

/// Sets the descriptions of `object` (key "") and of its properties.
fn describe(object: &mut utoipa::openapi::schema::Object, descriptions: &[(&str, &str)]) {
    for (property, description) in descriptions {
        if property.is_empty() {
            object.description = Some(description.to_string());
            continue;
        }
        match object.properties.get_mut(*property) {
            Some(RefOr::T(Schema::Object(property))) => {
                property.description = Some(description.to_string());
            }
            Some(RefOr::T(Schema::Array(array))) => {
                array.description = Some(description.to_string());
            }
            Some(RefOr::Ref(reference)) => reference.description = description.to_string(),
            _ => {}
        }
    }
}

fn set_enum(object: &mut utoipa::openapi::schema::Object, property: &str, values: Vec<Value>) {
    if let Some(RefOr::T(Schema::Object(property))) = object.properties.get_mut(property) {
        property.enum_values = Some(values);
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
