//! crus template strings as Kadeploy environments: a registered environment
//! `name[:version][@user]`, or an image given by its location
//! (`http://…/debian-base.tgz`), which Kadeploy deploys as an anonymous
//! environment with `image.file`, `image.kind` and `image.compression`.

use serde::{Deserialize, Serialize};

use super::error::KadeployError;

/// The URL schemes Kadeploy fetches images from.
const IMAGE_SCHEMES: [&str; 4] = ["http://", "https://", "file://", "server://"];

/// Image file suffixes crus understands, with Kadeploy's `kind` and
/// `compression` for each; longest first so `.tar.gz` wins over `.gz`.
const IMAGE_SUFFIXES: [(&str, &str, &str); 9] = [
    (".tar.bz2", "tar", "bzip2"),
    (".tar.gz", "tar", "gzip"),
    (".tar.xz", "tar", "xz"),
    (".dd.bz2", "dd", "bzip2"),
    (".dd.gz", "dd", "gzip"),
    (".dd.xz", "dd", "xz"),
    (".tbz2", "tar", "bzip2"),
    (".tgz", "tar", "gzip"),
    (".txz", "tar", "xz"),
];

/// What a crus template names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Template {
    /// An environment registered in Kadeploy's database.
    Registered {
        name: String,
        /// `None`: the latest version.
        version: Option<u64>,
        /// The owner; `None`: whatever Kadeploy finds for the caller
        /// (their own, then public ones).
        user: Option<String>,
    },
    /// An image at a location, deployed as an anonymous environment.
    Image {
        /// The environment's name: the file name without its suffix, which
        /// Kadeploy reports back in the deployment's `environment.name`.
        name: String,
        file: String,
        kind: &'static str,
        compression: &'static str,
    },
}

impl Template {
    /// Parses `template`; [`KadeployError::Template`] says what is wrong.
    pub(crate) fn parse(template: &str) -> Result<Self, KadeployError> {
        let malformed = |problem: String| KadeployError::Template {
            template: template.to_string(),
            problem,
        };
        if template.trim().is_empty() {
            return Err(malformed(
                "it is empty; give name[:version][@user] or an image URL".to_string(),
            ));
        }
        if template.chars().any(char::is_whitespace) {
            return Err(malformed("it contains white space".to_string()));
        }
        if IMAGE_SCHEMES
            .iter()
            .any(|scheme| template.starts_with(scheme))
        {
            return Self::parse_image(template).map_err(malformed);
        }
        if template.contains("://") {
            return Err(malformed(format!(
                "an image location must start with one of {}",
                IMAGE_SCHEMES.join(", ")
            )));
        }
        Self::parse_registered(template).map_err(malformed)
    }

    fn parse_image(location: &str) -> Result<Self, String> {
        let file_name = location.rsplit('/').next().unwrap_or_default();
        let Some((name, kind, compression)) =
            IMAGE_SUFFIXES
                .iter()
                .find_map(|(suffix, kind, compression)| {
                    file_name
                        .strip_suffix(suffix)
                        .map(|name| (name, *kind, *compression))
                })
        else {
            let known: Vec<&str> = IMAGE_SUFFIXES.iter().map(|(suffix, ..)| *suffix).collect();
            return Err(format!(
                "the image file {file_name:?} should end with one of {} so that its kind \
                 and compression are known",
                known.join(", ")
            ));
        };
        if name.is_empty() {
            return Err(format!(
                "the image file {file_name:?} has no name before its suffix"
            ));
        }
        Ok(Template::Image {
            name: name.to_string(),
            file: location.to_string(),
            kind,
            compression,
        })
    }

    fn parse_registered(template: &str) -> Result<Self, String> {
        const FORM: &str = "expected name[:version][@user], e.g. debian11-min:2023011315@deploy";
        let (rest, user) = match template.split_once('@') {
            Some((rest, user)) => (rest, Some(user)),
            None => (template, None),
        };
        let (name, version) = match rest.split_once(':') {
            Some((name, version)) => (name, Some(version)),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(format!("the environment name is empty; {FORM}"));
        }
        if name.contains('/') {
            return Err(format!(
                "an environment name has no '/'; for an image give its URL; {FORM}"
            ));
        }
        let version = match version {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .map_err(|_| format!("the version {text:?} is not a whole number; {FORM}"))?,
            ),
        };
        let user = match user {
            None => None,
            Some(user) if user.is_empty() || user.contains(['@', ':']) => {
                return Err(format!("the user {user:?} is not a user name; {FORM}"));
            }
            Some(user) => Some(user.to_string()),
        };
        Ok(Template::Registered {
            name: name.to_string(),
            version,
            user,
        })
    }

    /// The `environment` of a `POST /deployment`.
    pub(crate) fn to_request(&self) -> EnvironmentRequest<'_> {
        match self {
            Template::Registered {
                name,
                version,
                user,
            } => EnvironmentRequest {
                kind: "database",
                name,
                user: user.as_deref(),
                version: *version,
                image: None,
            },
            Template::Image {
                name,
                file,
                kind,
                compression,
            } => EnvironmentRequest {
                kind: "anonymous",
                name,
                user: None,
                version: None,
                image: Some(ImageRequest {
                    file,
                    kind,
                    compression,
                }),
            },
        }
    }

    /// Whether a deployment or a listed environment named `listed` is of
    /// this template: same name, and same owner and version where the
    /// template gives them.
    pub(crate) fn matches(&self, listed: &ListedEnvironment) -> bool {
        match self {
            Template::Registered {
                name,
                version,
                user,
            } => {
                listed.name == *name
                    && user
                        .as_ref()
                        .is_none_or(|user| listed.user.as_ref() == Some(user))
                    && version.is_none_or(|version| listed.version == Some(version))
            }
            Template::Image { name, .. } => listed.name == *name,
        }
    }
}

/// The `environment` object of a `POST /deployment`.
#[derive(Debug, Serialize)]
pub(crate) struct EnvironmentRequest<'a> {
    kind: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<ImageRequest<'a>>,
}

#[derive(Debug, Serialize)]
struct ImageRequest<'a> {
    file: &'a str,
    kind: &'a str,
    compression: &'a str,
}

/// An environment as `GET /environments` lists it and as a deployment
/// names it; only what crus compares.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ListedEnvironment {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) version: Option<u64>,
    #[serde(default)]
    pub(crate) user: Option<String>,
}

/// The query of `GET /environments` that lists `template`'s candidates:
/// the owner (`username`) and the latest version (`last`, unless a version
/// is asked for), on which Kadeploy filters, plus `name` and `version`, which
/// crus checks again itself so that a server ignoring a filter cannot make
/// it answer wrong.
pub(crate) fn listing_query(
    name: &str,
    version: Option<u64>,
    user: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut query = vec![("name", name.to_string())];
    if let Some(user) = user {
        query.push(("username", user.to_string()));
    }
    match version {
        Some(version) => query.push(("version", version.to_string())),
        None => query.push(("last", "true".to_string())),
    }
    query
}
