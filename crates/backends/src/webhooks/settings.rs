//! `[[webhooks]]` of `crus.toml`: one URL receiving rollout events, read
//! with serde and turned into a [`WebhookConfig`] (its secret read from its
//! file).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::WebhookConfig;
use crate::settings::{InvalidSetting, humantime_duration};

/// `[[webhooks]]`: one URL that receives rollout events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where events are POSTed.
    pub url: String,
    /// Event names to send; all when left out.
    #[serde(default)]
    pub events: Vec<String>,
    /// File holding the HMAC-SHA256 key of the `X-Crus-Signature-256`
    /// header (kept out of the configuration file, which is often readable).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// How long one POST may take.
    #[serde(default = "default_timeout", with = "humantime_duration")]
    pub timeout: Duration,
    /// Tries per event before it is given up.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Events waiting for this URL at most; older ones are dropped beyond.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

/// The backend's own defaults, which the section's follow.
fn default_timeout() -> Duration {
    WebhookConfig::new("").timeout
}

fn default_attempts() -> u32 {
    WebhookConfig::new("").max_attempts
}

fn default_queue() -> usize {
    WebhookConfig::new("").queue
}

impl WebhookSettings {
    /// Checks the hook, the `index`th of `[[webhooks]]`; no file is read.
    pub fn check(&self, index: usize) -> Result<(), InvalidSetting> {
        self.hook(None)
            .validate()
            .map_err(|message| InvalidSetting::new(format!("webhooks[{index}]"), message))
    }

    /// The hook, with its secret read from `secret_file`.
    pub fn to_config(&self) -> Result<WebhookConfig, String> {
        let secret = match &self.secret_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    format!(
                        "webhooks: cannot read the secret_file {} of {}: {error}",
                        path.display(),
                        self.url
                    )
                })?;
                let secret = text.trim().to_string();
                if secret.is_empty() {
                    return Err(format!(
                        "webhooks: the secret_file {} of {} is empty",
                        path.display(),
                        self.url
                    ));
                }
                Some(secret)
            }
        };
        Ok(self.hook(secret))
    }

    /// The hook, signing with `secret`.
    fn hook(&self, secret: Option<String>) -> WebhookConfig {
        WebhookConfig {
            url: self.url.clone(),
            events: self.events.clone(),
            secret,
            timeout: self.timeout,
            max_attempts: self.max_attempts,
            queue: self.queue,
        }
    }
}
