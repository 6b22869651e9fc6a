//! The API's authentication, from `[auth]`: tokens and keys read from
//! their files.

use std::path::Path;

use crus_http::{Auth, AuthConfig, AuthSettings, JwksUrlConfig};

use super::ServerError;

/// The file `path`, the `what` of `[auth]`.
fn read_file(path: &Path, what: &'static str) -> Result<String, ServerError> {
    std::fs::read_to_string(path).map_err(|source| ServerError::AuthFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The API's authentication; `jwt_secret` (given outside the file, e.g.
/// `CRUS_JWT_SECRET`) wins over `auth.jwt_secret_file`.
pub fn build(section: &AuthSettings, jwt_secret: Option<String>) -> Result<Auth, ServerError> {
    let mut tokens = section.tokens.clone();
    if let Some(path) = &section.tokens_file {
        let text = read_file(path, "tokens file")?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_string),
        );
    }
    let mut secret = jwt_secret.map(String::into_bytes);
    if secret.is_none()
        && let Some(path) = &section.jwt_secret_file
    {
        secret = Some(
            read_file(path, "JWT secret file")?
                .trim_end()
                .as_bytes()
                .to_vec(),
        );
    }
    let config = AuthConfig {
        tokens,
        jwt_hs256_secret: secret,
        jwt_public_key_pem: match &section.jwt_public_key_file {
            Some(path) => Some(read_file(path, "JWT public key")?.into_bytes()),
            None => None,
        },
        jwks_json: match &section.jwks_file {
            Some(path) => Some(read_file(path, "JWKS file")?),
            None => None,
        },
        jwks_url: section.jwks_url.as_ref().map(|url| {
            let mut jwks_url = JwksUrlConfig::new(url.clone());
            jwks_url.ca_file.clone_from(&section.jwks_ca_file);
            if let Some(timeout) = section.jwks_timeout {
                jwks_url.timeout = timeout;
            }
            if let Some(interval) = section.jwks_min_refetch_interval {
                jwks_url.min_refetch_interval = interval;
            }
            jwks_url
        }),
        audience: section.audience.clone(),
        issuer: section.issuer.clone(),
        no_auth: section.no_auth,
    };
    Ok(Auth::new(config)?)
}
