//! `GET /options` and `PATCH /options`: the server-wide options an operator
//! changes while the server runs (as BOS has `/options`), kept in the
//! session store so every replica reads the same ones. A change applies to
//! sessions created afterwards; the log level applies at once on the replica
//! that answers (and on the others at their next start).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use crus_core::controller::OptionsRefusal;
use crus_core::options::ServerOptions;
use crus_core::session::PolicyRequest;
use serde::Serialize;

use crate::json::JsonBody;
use crate::problem::AppError;
use crate::state::AppState;

/// What `PATCH /options` says besides the options: to what the change applies.
pub(crate) const APPLIES_TO: &str = "Sessions created from now on start from these options; \
     sessions created before keep the policy they were created with. The log level applies at \
     once on the server that answered.";

/// The body of `PATCH /options`: a merge patch of the options. A member
/// given replaces the option, `null` unsets it (the server's configuration
/// applies again); `default_policy` and `boot_timeouts` are merged member by
/// member the same way.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // Documentation only: the body is read as JSON and checked by crus-core.
pub(crate) struct OptionsPatch {
    /// Fields of the default policy of new sessions (a session's `policy`
    /// fields), each replacing the stored one; `null` unsets them all.
    default_policy: Option<PolicyRequest>,
    /// The log level, as `RUST_LOG` takes it (`debug`,
    /// `crus_core=debug,info`); `null`: as the server was started.
    #[schema(example = "debug")]
    log_level: Option<String>,
    /// The most boots started in any minute over all sessions (1 to
    /// 100000); `null`: no server-wide limit.
    #[schema(minimum = 1, maximum = 100_000)]
    max_boots_per_minute: Option<u32>,
    /// Default boot timeouts by boot backend (`bos`, `kadeploy`,
    /// `cyclecloud`, `slurm_reboot`, `sim`), e.g. `{"bos": "45m"}`; a
    /// member `null` unsets that backend's.
    boot_timeouts: Option<BTreeMap<String, Option<String>>>,
}

/// The answer of `PATCH /options`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OptionsChanged {
    /// The options now in force.
    options: ServerOptions,
    /// To what the change applies: sessions created from now on.
    applies_to: &'static str,
}

/// `GET /options`: the server-wide options.
#[utoipa::path(
    get,
    path = "/options",
    tag = "options",
    operation_id = "get_options",
    summary = "Read the server-wide options",
    description = "The options an operator may change while the server runs, as stored (shared by every replica): the default policy of new sessions, the log level, the server-wide boot rate and the default boot timeout of each boot backend. An option that is null or absent leaves the server's configuration in force.",
    responses(
        (status = 200, description = "The options", body = ServerOptions, content_type = "application/json"),
    )
)]
pub(crate) async fn get_options(
    State(state): State<AppState>,
) -> Result<Json<ServerOptions>, AppError> {
    let options = state.controller().options().await?;
    Ok(Json(options))
}

/// `PATCH /options`: changes some options; nothing changes when a value is refused.
#[utoipa::path(
    patch,
    path = "/options",
    tag = "options",
    operation_id = "patch_options",
    summary = "Change server-wide options",
    description = "A merge patch of the options: each member given replaces that option, null unsets it; `default_policy` and `boot_timeouts` are merged member by member. The policy is checked as a session's is (422 naming the field, nothing changed). A change applies to sessions created afterwards; sessions created before keep their policy. The log level applies at once on the server that answered.",
    request_body(
        content = OptionsPatch,
        content_type = "application/json",
        description = "The options to change"
    ),
    responses(
        (status = 200, description = "The options now in force, and to what they apply", body = OptionsChanged, content_type = "application/json"),
        (status = 400, description = "The body is not JSON, or not sent as application/json", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "An option is not valid; `errors` lists the problems by field, and nothing was changed", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn patch_options(
    State(state): State<AppState>,
    JsonBody(patch): JsonBody,
) -> Result<Json<OptionsChanged>, AppError> {
    let options =
        state
            .controller()
            .update_options(&patch)
            .await
            .map_err(|refusal| match refusal {
                OptionsRefusal::Invalid(errors) => AppError::Invalid(errors),
                OptionsRefusal::Store(error) => AppError::Store(error),
            })?;
    tracing::info!(options = ?options, "server options changed");
    if patch.get("log_level").is_some() {
        state.apply_log_level(options.log_level.as_deref());
    }
    Ok(Json(OptionsChanged {
        options,
        applies_to: APPLIES_TO,
    }))
}
