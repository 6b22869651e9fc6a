//! `[bos]` of `crus.toml`: where BOS is and how to authenticate to it (the
//! keys every Cray service has, as in `[hsm]`), and what only booting
//! needs: the tenant and the boot timeout. Read with serde and turned into
//! a [`ServiceConfig`].
//!
//! Its own type rather than [`ServiceSettings`] with extra keys, so
//! `[hsm] tenant = ...` is refused by name as an unknown key (serde's
//! `deny_unknown_fields` cannot be combined with a flattened part).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::service::{ServiceConfig, ServiceSettings};
use crate::settings::{InvalidSetting, check_positive, humantime_duration};

/// `[bos]`: BOS v2 (`backends.boot = "bos"`) or v1 (`"bos-v1"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BosSettings {
    /// Base URL, with the gateway prefix (e.g. `https://api-gw-service-nmn.local/apis/bos`).
    pub base_url: String,
    /// A file holding the bearer token (read at every call, so rotation works).
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// OAuth2 client-credentials token endpoint (Keycloak).
    pub oauth2_token_url: Option<String>,
    /// OAuth2 client id.
    pub oauth2_client_id: Option<String>,
    /// A file holding the OAuth2 client secret.
    pub oauth2_client_secret_file: Option<PathBuf>,
    /// A PEM bundle of CAs to trust (a site CA).
    pub ca_file: Option<PathBuf>,
    /// Timeout of each call.
    #[serde(default = "default_timeout", with = "humantime_duration")]
    pub timeout: Duration,
    /// Retries of a call that met a 5xx or no answer.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The tenant whose session templates and sessions crus uses, sent as
    /// `Cray-Tenant-Name` (BOS v2 only: v1 rejects tenants).
    #[serde(default)]
    pub tenant: Option<String>,
    /// The boot timeout of sessions whose policy sets none, unless
    /// `rollout.boot_timeout` is set; absent:
    /// [`BosSettings::DEFAULT_BOOT_TIMEOUT`].
    #[serde(default, with = "crate::settings::humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
}

/// The transport's own defaults, which the section's follow.
fn default_timeout() -> Duration {
    ServiceConfig::new("").timeout
}

fn default_retries() -> u32 {
    ServiceConfig::new("").retries
}

impl BosSettings {
    /// BOS (v2 and v1): its `max_boot_wait_time` of 20 minutes from
    /// power-on, after a graceful then forceful power-off of up to several
    /// minutes, and then the CFS configuration of the node (commonly 10 to
    /// 15 minutes). A shorter timeout fails nodes BOS is still booting.
    pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(40 * 60);

    /// The boot timeout of sessions whose policy sets none (unless the
    /// server sets one for all): `boot_timeout`, or the default.
    pub fn boot_timeout(&self) -> Duration {
        self.boot_timeout.unwrap_or(Self::DEFAULT_BOOT_TIMEOUT)
    }

    /// Checks what the types alone do not, for BOS v2; no file is read here.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        self.service_settings().check("bos")?;
        if let Some(tenant) = &self.tenant
            && !tenant.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(InvalidSetting::new(
                "bos.tenant",
                "must be a tenant name (letters, digits and punctuation, no spaces): it is sent as the Cray-Tenant-Name header",
            ));
        }
        if let Some(timeout) = self.boot_timeout {
            check_positive("bos", &[("boot_timeout", timeout)])?;
        }
        Ok(())
    }

    /// [`BosSettings::check`], and what BOS v1 (`backends.boot = "bos-v1"`)
    /// adds: it rejects every request that names a tenant.
    pub fn check_v1(&self) -> Result<(), InvalidSetting> {
        self.check()?;
        if self
            .tenant
            .as_deref()
            .is_some_and(|tenant| !tenant.is_empty())
        {
            return Err(InvalidSetting::new(
                "bos.tenant",
                "BOS v1 rejects requests that name a tenant (multi-tenancy is BOS v2 only): remove bos.tenant, or use backends.boot = \"bos\"",
            ));
        }
        Ok(())
    }

    /// The transport settings (see [`ServiceSettings::to_config`]); the
    /// tenant is given to the orchestrator
    /// ([`BosOrchestrator::with_tenant`](super::BosOrchestrator::with_tenant)).
    pub fn to_config(&self) -> Result<ServiceConfig, InvalidSetting> {
        self.service_settings().to_config("bos")
    }

    /// The keys every Cray service has, as `[hsm]` has them.
    pub fn service_settings(&self) -> ServiceSettings {
        ServiceSettings {
            base_url: self.base_url.clone(),
            token_file: self.token_file.clone(),
            token_env: self.token_env.clone(),
            oauth2_token_url: self.oauth2_token_url.clone(),
            oauth2_client_id: self.oauth2_client_id.clone(),
            oauth2_client_secret_file: self.oauth2_client_secret_file.clone(),
            ca_file: self.ca_file.clone(),
            timeout: self.timeout,
            retries: self.retries,
        }
    }
}
