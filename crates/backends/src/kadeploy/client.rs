//! [`KadeployClient`]: JSON requests to the Kadeploy API with its credentials,
//! a timeout on each, and retries of only what is safe to send again.

use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config::{KadeployBasicAuth, KadeployConfig};
use super::error::KadeployError;
use crate::transport::{HttpClientSettings, Repeat, Retries, send_with_retries};

/// The header in which a trusted front end names the user to kadeploy-server.
const IDENTITY_HEADER: &str = "X-Remote-Ident";

/// An HTTP client for one Kadeploy API root.
#[derive(Debug)]
pub(crate) struct KadeployClient {
    http: reqwest::Client,
    /// The API root; request paths are pushed onto it as segments, so ids
    /// are percent-encoded.
    base_url: Url,
    user: Option<String>,
    basic_auth: Option<KadeployBasicAuth>,
    retries: Retries,
}

impl KadeployClient {
    pub(crate) fn new(config: &KadeployConfig) -> Result<Self, KadeployError> {
        let base_url = Url::parse(config.base_url.trim_end_matches('/')).map_err(|error| {
            KadeployError::Config {
                message: format!(
                    "kadeploy.base_url {:?} is not a URL: {error}",
                    config.base_url
                ),
            }
        })?;
        if base_url.cannot_be_a_base() {
            return Err(KadeployError::Config {
                message: format!(
                    "kadeploy.base_url {:?} cannot hold API paths; give an http(s) URL",
                    config.base_url
                ),
            });
        }
        let http = HttpClientSettings::new(config.timeout)
            .connect_timeout(config.timeout)
            .ca_file("kadeploy.ca_file", config.ca_file.as_deref())
            .build()
            .map_err(|error| KadeployError::Config {
                message: error.to_string(),
            })?;
        Ok(KadeployClient {
            http,
            base_url,
            user: config.user.clone(),
            basic_auth: config.basic_auth.clone(),
            retries: Retries::new(config.retries, config.retry_base_delay),
        })
    }

    /// `GET segments?query` and its JSON body.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, KadeployError> {
        let body = self
            .send(Method::GET, segments, query, None, Repeat::Safe)
            .await?;
        decode(Method::GET, segments, &body)
    }

    /// `POST segments` with `body` as JSON, and the answer's JSON body; sent
    /// again only when it cannot have reached the server.
    pub(crate) async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, KadeployError> {
        let json = serde_json::to_value(body).map_err(|error| KadeployError::Decode {
            method: Method::POST,
            path: display_path(segments),
            message: format!("cannot encode the request: {error}"),
        })?;
        let answer = self
            .send(
                Method::POST,
                segments,
                &[],
                Some(&json),
                Repeat::OnlyIfNotSent,
            )
            .await?;
        decode(Method::POST, segments, &answer)
    }

    /// `PUT segments` with `body` as JSON, and the answer's JSON body; for
    /// requests a second copy of which changes nothing more (power on, power
    /// off), so sent again after no answer or a 5xx.
    pub(crate) async fn put_json<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, KadeployError> {
        let json = serde_json::to_value(body).map_err(|error| KadeployError::Decode {
            method: Method::PUT,
            path: display_path(segments),
            message: format!("cannot encode the request: {error}"),
        })?;
        let answer = self
            .send(Method::PUT, segments, &[], Some(&json), Repeat::Safe)
            .await?;
        decode(Method::PUT, segments, &answer)
    }

    /// `GET segments` answered as text, whatever its status below 500: what
    /// `/error` of a failed run answers (its error as plain text, with a 4xx
    /// status). A 5xx or no answer is retried, then an error.
    pub(crate) async fn get_text(&self, segments: &[&str]) -> Result<TextAnswer, KadeployError> {
        match self
            .send(Method::GET, segments, &[], None, Repeat::Safe)
            .await
        {
            Ok(body) => Ok(TextAnswer {
                status: 200,
                text: String::from_utf8_lossy(&body).into_owned(),
            }),
            Err(KadeployError::Status {
                status, message, ..
            }) if status < 500 => Ok(TextAnswer {
                status,
                text: message,
            }),
            Err(error) => Err(error),
        }
    }

    /// `DELETE segments`; the answer's body is ignored.
    pub(crate) async fn delete(&self, segments: &[&str]) -> Result<(), KadeployError> {
        self.send(Method::DELETE, segments, &[], None, Repeat::Safe)
            .await
            .map(drop)
    }

    /// Sends the request, retrying what `repeat` allows, and returns the
    /// body of a 2xx answer.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<Vec<u8>, KadeployError> {
        send_with_retries("kadeploy", &self.retries, repeat, || {
            self.send_once(&method, segments, query, body)
        })
        .await
    }

    async fn send_once(
        &self,
        method: &Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Vec<u8>, KadeployError> {
        let transport = |source: reqwest::Error| KadeployError::Transport {
            method: method.clone(),
            path: display_path(segments),
            source,
        };
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        // An empty query adds nothing to the URL; a JSON body brings its
        // own content type.
        let mut request = self
            .http
            .request(method.clone(), url)
            .query(query)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(user) = &self.user {
            request = request.header(IDENTITY_HEADER, user);
        }
        if let Some(auth) = &self.basic_auth {
            request = request.basic_auth(&auth.username, Some(&auth.password));
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let text = String::from_utf8_lossy(&bytes);
        let message = match first_meaningful_line(&text) {
            Some(line) => line.chars().take(MAX_MESSAGE_CHARS).collect(),
            None => status.canonical_reason().unwrap_or("error").to_string(),
        };
        Err(KadeployError::Status {
            method: method.clone(),
            path: display_path(segments),
            status: status.as_u16(),
            message,
        })
    }
}

/// An answer read as text: its status and body (for an error status, its
/// first line that says something).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextAnswer {
    pub(crate) status: u16,
    pub(crate) text: String,
}

/// The longest part of an error body quoted in a message.
const MAX_MESSAGE_CHARS: usize = 500;

/// What an error body says. Kadeploy answers its own errors as one line of
/// text (`KadeployError.to_msg` and the message, `httpd.rb` `do_METHOD`),
/// and any other exception as `---- Class ----`, the message, then a stack
/// trace: the framing lines say nothing, the line after the first is the
/// message.
fn first_meaningful_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !is_framing(line))
}

/// Whether `line` is one of the `---- … ----` lines around a Ruby exception.
fn is_framing(line: &str) -> bool {
    line.starts_with("----") && line.ends_with("----")
}

fn decode<T: DeserializeOwned>(
    method: Method,
    segments: &[&str],
    body: &[u8],
) -> Result<T, KadeployError> {
    serde_json::from_slice(body).map_err(|error| KadeployError::Decode {
        method,
        path: display_path(segments),
        message: error.to_string(),
    })
}

/// `/deployment/D-…`, as errors show a request.
fn display_path(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|segment| format!("/{segment}"))
        .collect()
}
