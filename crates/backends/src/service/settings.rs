//! `[hsm]` of `crus.toml`, and the keys `[bos]` shares with it: where a
//! Cray service is and how to authenticate to it, read with serde and
//! turned into a [`ServiceConfig`]. `[bos]`'s own keys (the tenant, the boot
//! timeout) are `crate::bos::BosSettings`'s.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::config::{ServiceConfig, TokenSource};
use crate::settings::{InvalidSetting, check_http_url, humantime_duration, read_secret};

/// `[hsm]`: where a Cray service is and how to authenticate to it. Any
/// other key is refused by name (a `tenant` or `boot_timeout` belongs in
/// `[bos]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// Base URL, with the gateway prefix (e.g. `https://api-gw-service-nmn.local/apis/smd`).
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
}

/// The transport's own defaults, which the section's follow.
fn default_timeout() -> Duration {
    ServiceConfig::new("").timeout
}

fn default_retries() -> u32 {
    ServiceConfig::new("").retries
}

impl ServiceSettings {
    /// Checks what the types alone do not; `section` is `hsm` or `bos`. No
    /// file is read here.
    pub fn check(&self, section: &str) -> Result<(), InvalidSetting> {
        check_http_url(&format!("{section}.base_url"), &self.base_url)
    }

    /// The transport settings, with the token source chosen from the keys
    /// given (one of `token_file`, `token_env`, `oauth2_token_url`, or none)
    /// and the OAuth2 client secret read from its file.
    pub fn to_config(&self, section: &str) -> Result<ServiceConfig, InvalidSetting> {
        let token = match (&self.token_file, &self.token_env, &self.oauth2_token_url) {
            (Some(path), None, None) => TokenSource::File(path.clone()),
            (None, Some(variable), None) => TokenSource::Env(variable.clone()),
            (None, None, Some(token_url)) => {
                let client_id = self.oauth2_client_id.clone().ok_or_else(|| {
                    InvalidSetting::new(
                        format!("{section}.oauth2_client_id"),
                        format!("is required with {section}.oauth2_token_url"),
                    )
                })?;
                let secret_file = self.oauth2_client_secret_file.as_ref().ok_or_else(|| {
                    InvalidSetting::new(
                        format!("{section}.oauth2_client_secret_file"),
                        format!("is required with {section}.oauth2_token_url"),
                    )
                })?;
                let key = format!("{section}.oauth2_client_secret_file");
                TokenSource::OAuth2ClientCredentials {
                    token_url: token_url.clone(),
                    client_id,
                    client_secret: read_secret(secret_file, &key)?.trim().to_string(),
                }
            }
            (None, None, None) => TokenSource::None,
            _ => {
                return Err(InvalidSetting::new(
                    section,
                    "give one of token_file, token_env or oauth2_token_url",
                ));
            }
        };
        let mut config = ServiceConfig::new(self.base_url.clone()).with_token(token);
        config.ca_file = self.ca_file.clone();
        config.timeout = self.timeout;
        config.retries = self.retries;
        Ok(config)
    }
}
