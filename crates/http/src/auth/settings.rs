//! `[auth]` of `crus.toml`: who may call the API (static tokens, JWTs),
//! read with serde and checked; the server reads the files it names into an
//! [`AuthConfig`](super::AuthConfig).

use std::path::PathBuf;
use std::time::Duration;

use crus_backends::settings::{InvalidSetting, humantime_duration_option};
use serde::Deserialize;

/// `[auth]`: the keys, each a way a request may be authenticated.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Static bearer tokens (prefer `tokens_file`, which keeps them out of this file).
    pub tokens: Vec<String>,
    /// A file with one static token per line (`#` comments and blank lines ignored).
    pub tokens_file: Option<PathBuf>,
    /// A file holding the HS256 secret of accepted JWTs.
    pub jwt_secret_file: Option<PathBuf>,
    /// A PEM public key (RS256 or ES256) of accepted JWTs.
    pub jwt_public_key_file: Option<PathBuf>,
    /// A JWKS document with the keys of accepted JWTs (chosen by `kid`).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL publishing the keys of accepted JWTs (Keycloak:
    /// `…/realms/<realm>/protocol/openid-connect/certs`): fetched at start,
    /// kept, and fetched again when a token names a `kid` they lack.
    pub jwks_url: Option<String>,
    /// PEM file of the CA that signed the JWKS URL's TLS certificate.
    pub jwks_ca_file: Option<PathBuf>,
    /// How long one fetch of the JWKS URL may take [default: 10s].
    #[serde(default, with = "humantime_duration_option")]
    pub jwks_timeout: Option<Duration>,
    /// The shortest time between two fetches of the JWKS URL for tokens
    /// naming an unknown `kid` [default: 1m].
    #[serde(default, with = "humantime_duration_option")]
    pub jwks_min_refetch_interval: Option<Duration>,
    /// Required `aud` of JWTs.
    pub audience: Option<String>,
    /// Required `iss` of JWTs.
    pub issuer: Option<String>,
    /// Accept every request without a token (a warning is logged at each start).
    pub no_auth: bool,
}

impl AuthSettings {
    /// Checks the JWKS URL settings; errors name the key.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let invalid =
            |key: &str, message: String| InvalidSetting::new(format!("auth.{key}"), message);
        match &self.jwks_url {
            Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                return Err(invalid(
                    "jwks_url",
                    format!("{url:?} is not an https:// (or http://) URL"),
                ));
            }
            Some(_) => {}
            None => {
                for (key, given) in [
                    ("jwks_ca_file", self.jwks_ca_file.is_some()),
                    ("jwks_timeout", self.jwks_timeout.is_some()),
                    (
                        "jwks_min_refetch_interval",
                        self.jwks_min_refetch_interval.is_some(),
                    ),
                ] {
                    if given {
                        return Err(invalid(
                            key,
                            "applies to auth.jwks_url, which is not given".to_string(),
                        ));
                    }
                }
            }
        }
        if self.jwks_timeout.is_some_and(|timeout| timeout.is_zero()) {
            return Err(invalid(
                "jwks_timeout",
                "must be longer than 0s".to_string(),
            ));
        }
        Ok(())
    }
}
