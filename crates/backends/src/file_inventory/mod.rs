//! [`FileInventory`]: node groups and node facts kept in a JSON file that
//! crus owns, the [`Inventory`] of sites without HSM (a plain Slurm cluster).
//!
//! # The file
//!
//! ```json
//! {
//!   "nodes": [
//!     {"id": "node001", "nid": 1, "enabled": true},
//!     {"id": "node002", "nid": 2},
//!     {"id": "node003", "enabled": false, "state": "Off"}
//!   ],
//!   "groups": {
//!     "compute": ["node001", "node002", "node003"]
//!   }
//! }
//! ```
//!
//! - `nodes`: every node crus may act on, each once. `id` is whatever the site
//!   names its nodes by (xnames, or Slurm names such as `node001`), taken as
//!   written: non-empty, no white space. `nid` (the numeric node id) and
//!   `state` (a free-form hardware state) are optional; `enabled` defaults to
//!   `true`. No two nodes may share a `nid`.
//! - `groups`: labels and their members, in order. Labels follow HSM's rules:
//!   `[-a-z0-9:._]+`, compared lower-cased (a label written `Compute` is the
//!   group `compute`; two labels that differ only in case are an error).
//!   Members must be nodes of `nodes`, each at most once per group. `groups`
//!   may be left out.
//!
//! Unknown keys are refused, so a misspelt field is reported rather than ignored.
//!
//! # Ownership and durability
//!
//! The server owns the file while it runs: every change made through the
//! [`Inventory`] port (create a group, add or remove members) rewrites the
//! whole file before the call returns, atomically (a temporary file in the
//! same directory, fsync, rename over the file, fsync the directory), so a
//! call that returned is on disk and a crash at any moment leaves either the
//! old file or the new one. Rewrites are pretty-printed JSON with groups in
//! label order; a call that changes nothing (adding a member again) does not
//! rewrite the file. Edit the file only while the server is stopped: a running
//! server overwrites outside edits with its own state at its next change (and
//! logs a warning when it does).
//!
//! The state in memory is always what is on disk: a change is applied to a
//! copy, the copy is written, and only then does it replace the state in
//! memory. A write that fails ([`Error::Unavailable`], retryable) changes
//! nothing, and repeating the (idempotent) call writes again.
//!
//! # Blocking
//!
//! [`FileInventory::open`] reads the file synchronously; call it at startup.
//! Changes are written on tokio's blocking pool (`spawn_blocking`), since an
//! fsync can take a while; reads never touch the disk. Changes are serialised
//! by a writer lock taken on the blocking pool; the state itself sits behind a
//! [`std::sync::Mutex`] held only for short, synchronous moments, never across
//! an `.await` or during file IO, so reads are not held up by a slow disk.
//!
//! One process at a time may use a file: two would overwrite each other's changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::atomic_file::replace_atomically;
use async_trait::async_trait;
use crus_core::ports::Inventory;
use crus_core::{Error, NodeFacts, NodeId, Result};

mod settings;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
pub use settings::FileInventorySettings;

/// The backend name in errors.
const BACKEND: &str = "file-inventory";

/// The example shown when there is no file, or it cannot be parsed.
const EXAMPLE: &str = r#"{"nodes": [{"id": "node001", "nid": 1, "enabled": true}, {"id": "node002", "nid": 2, "enabled": true}], "groups": {"compute": ["node001", "node002"]}}"#;

/// At most this many problems are listed when a file is refused.
const MAX_PROBLEMS: usize = 20;

/// Node groups and node facts kept in a JSON file (see the [module
/// documentation](self) for the format and the durability guarantees).
///
/// Cheap to clone: clones share the state and the file.
#[derive(Clone)]
pub struct FileInventory {
    /// The state and the file, shared with the blocking tasks that write it.
    inner: Arc<Inner>,
}

/// What [`FileInventory`] shares.
struct Inner {
    /// The inventory file.
    path: PathBuf,
    /// Where each rewrite goes first: same directory (so the rename is
    /// atomic), hidden, reused (an interrupted rewrite leaves at most one).
    temp_path: PathBuf,
    /// The state, as on disk. Locked briefly; never across IO or `.await`.
    state: Mutex<State>,
    /// The file's contents as last read or written. Held for the whole of a
    /// change (copy, write, swap), so changes are applied one at a time, in
    /// the order they are written. Only taken on the blocking pool.
    writer: Mutex<Vec<u8>>,
}

/// The inventory in memory.
#[derive(Debug, Clone)]
struct State {
    /// Every node, in file order.
    nodes: Vec<NodeFacts>,
    /// Index into `nodes` by id.
    index: HashMap<NodeId, usize>,
    /// Groups by (lower-case) label, members in order.
    groups: BTreeMap<String, Vec<NodeId>>,
}

impl fmt::Debug for FileInventory {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock_state();
        formatter
            .debug_struct("FileInventory")
            .field("path", &self.inner.path)
            .field("nodes", &state.nodes.len())
            .field("groups", &state.groups.len())
            .finish()
    }
}

impl FileInventory {
    /// The inventory in the file at `path` (see the [module
    /// documentation](self) for its format). The file must exist; it is read
    /// and checked here and only written by later changes.
    ///
    /// Blocks on file IO; call it at startup.
    ///
    /// [`Error::Invalid`] when the file is not valid JSON of the expected
    /// shape, or breaks a rule (unknown or repeated member, repeated node id
    /// or nid, bad label or node id), naming the path and each offending
    /// entry; [`Error::Other`] when it does not exist (saying how to create
    /// one) or cannot be read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                FileError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                FileError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let file: InventoryFile =
            serde_json::from_slice(&bytes).map_err(|error| FileError::Damaged {
                path: path.to_path_buf(),
                problem: error.to_string(),
            })?;
        let state = State::from_file(file).map_err(|problems| FileError::Invalid {
            path: path.to_path_buf(),
            problems: summarise(&problems),
        })?;
        let name = path
            .file_name()
            .map_or_else(|| "inventory".into(), |name| name.to_string_lossy());
        Ok(FileInventory {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                temp_path: path.with_file_name(format!(".{name}.tmp")),
                state: Mutex::new(state),
                writer: Mutex::new(bytes),
            }),
        })
    }

    /// The inventory file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Every node's facts, in file order.
    pub fn nodes(&self) -> Vec<NodeFacts> {
        self.inner.lock_state().nodes.clone()
    }

    /// Every group's label (lower-case), in label order.
    pub fn groups(&self) -> Vec<String> {
        self.inner.lock_state().groups.keys().cloned().collect()
    }

    /// Applies `change` to a copy of the state; if it changed anything,
    /// writes the copy to the file and then makes it the state. Runs on the
    /// blocking pool.
    async fn change<F>(&self, change: F) -> Result<()>
    where
        F: FnOnce(&mut State) -> Result<bool> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || inner.change(change))
                .await
                .map_err(|source| {
                    Error::from(FileError::Worker {
                        path: self.inner.path.clone(),
                        source,
                    })
                })?,
            // Port calls run on tokio; should one not, block instead.
            Err(_) => inner.change(change),
        }
    }
}

impl Inner {
    /// The state; a panic elsewhere cannot leave it half-changed (changes
    /// replace it whole), so a poisoned lock is still good.
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// See [`FileInventory::change`]. Blocking.
    fn change(&self, change: impl FnOnce(&mut State) -> Result<bool>) -> Result<()> {
        let mut on_disk = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = self.lock_state().clone();
        if !change(&mut next)? {
            return Ok(());
        }
        let mut bytes = serde_json::to_vec_pretty(&next.to_file()).map_err(FileError::Encode)?;
        bytes.push(b'\n');
        self.warn_if_edited(&on_disk);
        replace_atomically(&self.path, &self.temp_path, &bytes).map_err(|source| {
            // Best effort: do not leave a partial temporary file behind.
            let _ = fs::remove_file(&self.temp_path);
            FileError::Write {
                path: self.path.clone(),
                source,
            }
        })?;
        *on_disk = bytes;
        *self.lock_state() = next;
        Ok(())
    }

    /// Warns when the file no longer holds `expected`, what crus last read or
    /// wrote: someone edited it while the server ran, and the rewrite about
    /// to happen replaces those edits.
    fn warn_if_edited(&self, expected: &[u8]) {
        let edited = match fs::read(&self.path) {
            Ok(current) => current != expected,
            Err(error) => error.kind() == io::ErrorKind::NotFound,
        };
        if edited {
            tracing::warn!(
                path = %self.path.display(),
                "the inventory file was changed or removed outside crus while it ran; \
                 rewriting it from crus's state, which drops those changes \
                 (stop the server before editing the file)"
            );
        }
    }
}

#[async_trait]
impl Inventory for FileInventory {
    async fn group_members(&self, label: &str) -> Result<Vec<NodeId>> {
        let label = normalise_label(label)?;
        self.inner
            .lock_state()
            .groups
            .get(&label)
            .cloned()
            .ok_or_else(|| group_not_found(&label))
    }

    async fn create_group(&self, label: &str) -> Result<()> {
        let label = normalise_label(label)?;
        self.change(move |state| {
            if state.groups.contains_key(&label) {
                return Err(Error::conflict(format!("group '{label}' exists already")));
            }
            state.groups.insert(label, Vec::new());
            Ok(true)
        })
        .await
    }

    async fn add_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        let label = normalise_label(label)?;
        let nodes = nodes.to_vec();
        let path = self.inner.path.clone();
        self.change(move |state| {
            if !state.groups.contains_key(&label) {
                return Err(group_not_found(&label));
            }
            // Every node is checked before anything changes.
            if let Some(unknown) = nodes.iter().find(|node| !state.index.contains_key(*node)) {
                return Err(node_not_found(unknown, &path));
            }
            let members = state
                .groups
                .get_mut(&label)
                .ok_or_else(|| group_not_found(&label))?;
            let before = members.len();
            for node in nodes {
                if !members.contains(&node) {
                    members.push(node);
                }
            }
            Ok(members.len() != before)
        })
        .await
    }

    async fn remove_members(&self, label: &str, nodes: &[NodeId]) -> Result<()> {
        let label = normalise_label(label)?;
        let nodes: HashSet<NodeId> = nodes.iter().cloned().collect();
        self.change(move |state| {
            let members = state
                .groups
                .get_mut(&label)
                .ok_or_else(|| group_not_found(&label))?;
            let before = members.len();
            members.retain(|member| !nodes.contains(member));
            Ok(members.len() != before)
        })
        .await
    }

    async fn node_facts(&self, nodes: &[NodeId]) -> Result<Vec<NodeFacts>> {
        let state = self.inner.lock_state();
        nodes
            .iter()
            .map(|node| match state.index.get(node) {
                Some(&index) => Ok(state.nodes[index].clone()),
                None => Err(node_not_found(node, &self.inner.path)),
            })
            .collect()
    }
}

fn group_not_found(label: &str) -> Error {
    Error::not_found(format!("group '{label}'"))
}

fn node_not_found(node: &NodeId, path: &Path) -> Error {
    Error::not_found(format!(
        "node '{node}' in the inventory file {}",
        path.display()
    ))
}

/// `label` lower-cased, or [`Error::Invalid`] if it is not a label HSM would accept.
fn normalise_label(label: &str) -> Result<String> {
    let label = label.to_ascii_lowercase();
    match label_problem(&label) {
        None => Ok(label),
        Some(problem) => Err(Error::invalid(format!("group label {label:?} {problem}"))),
    }
}

/// Why a lower-cased `label` is not a valid label, if it is not.
fn label_problem(label: &str) -> Option<&'static str> {
    if label.is_empty() {
        Some("is empty")
    } else if !label.chars().all(|character| {
        character.is_ascii_lowercase()
            || character.is_ascii_digit()
            || matches!(character, '-' | ':' | '.' | '_')
    }) {
        Some("may only hold letters, digits and '-', ':', '.', '_'")
    } else {
        None
    }
}

/// Why `id` is not a usable node id, if it is not.
fn node_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id
        .chars()
        .any(|character| character.is_whitespace() || character.is_control())
    {
        Some("holds white space or control characters")
    } else {
        None
    }
}

/// `problems` joined, at most [`MAX_PROBLEMS`] of them.
fn summarise(problems: &[String]) -> String {
    let mut summary = problems
        .iter()
        .take(MAX_PROBLEMS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > MAX_PROBLEMS {
        summary.push_str(&format!(
            "; and {} more problems",
            problems.len() - MAX_PROBLEMS
        ));
    }
    summary
}

impl State {
    /// The checked state of `file`, or every problem found, each naming its entry.
    fn from_file(file: InventoryFile) -> std::result::Result<State, Vec<String>> {
        let mut problems = Vec::new();
        let mut nodes = Vec::with_capacity(file.nodes.len());
        let mut index = HashMap::with_capacity(file.nodes.len());
        let mut nids: HashMap<u32, String> = HashMap::new();
        for (position, entry) in file.nodes.into_iter().enumerate() {
            if let Some(problem) = node_id_problem(&entry.id) {
                problems.push(format!(
                    "node #{} has id {:?}, which {problem}",
                    position + 1,
                    entry.id
                ));
                continue;
            }
            let id = NodeId::new(entry.id);
            if index.contains_key(&id) {
                problems.push(format!("node '{id}' is listed more than once"));
                continue;
            }
            if let Some(nid) = entry.nid {
                if let Some(other) = nids.insert(nid, id.to_string()) {
                    problems.push(format!("nodes '{other}' and '{id}' both have nid {nid}"));
                }
            }
            index.insert(id.clone(), nodes.len());
            nodes.push(NodeFacts {
                id,
                nid: entry.nid,
                enabled: entry.enabled,
                state: entry.state,
            });
        }
        let mut groups: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        let mut written_as: HashMap<String, String> = HashMap::new();
        for (written, members) in file.groups.0 {
            let label = written.to_ascii_lowercase();
            if let Some(problem) = label_problem(&label) {
                problems.push(format!("group label {written:?} {problem}"));
                continue;
            }
            if let Some(earlier) = written_as.insert(label.clone(), written.clone()) {
                problems.push(if earlier == written {
                    format!("group '{written}' is listed more than once")
                } else {
                    format!("groups '{earlier}' and '{written}' are the same group '{label}' (labels are not case-sensitive)")
                });
                continue;
            }
            let mut seen = HashSet::new();
            let mut checked = Vec::with_capacity(members.len());
            for member in members {
                let member = NodeId::new(member);
                if !index.contains_key(&member) {
                    problems.push(format!(
                        "group '{written}' lists node '{member}', which is not among the file's nodes"
                    ));
                } else if !seen.insert(member.clone()) {
                    problems.push(format!(
                        "group '{written}' lists node '{member}' more than once"
                    ));
                } else {
                    checked.push(member);
                }
            }
            groups.insert(label, checked);
        }
        if problems.is_empty() {
            Ok(State {
                nodes,
                index,
                groups,
            })
        } else {
            Err(problems)
        }
    }

    /// The state as the file holds it.
    fn to_file(&self) -> InventoryFile {
        InventoryFile {
            nodes: self
                .nodes
                .iter()
                .map(|facts| NodeEntry {
                    id: facts.id.to_string(),
                    nid: facts.nid,
                    enabled: facts.enabled,
                    state: facts.state.clone(),
                })
                .collect(),
            groups: Groups(
                self.groups
                    .iter()
                    .map(|(label, members)| {
                        (
                            label.clone(),
                            members.iter().map(NodeId::to_string).collect(),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

/// The file's layout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    /// Every node.
    nodes: Vec<NodeEntry>,
    /// The groups.
    #[serde(default)]
    groups: Groups,
}

/// One node in the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    /// [`NodeFacts::id`].
    id: String,
    /// [`NodeFacts::nid`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nid: Option<u32>,
    /// [`NodeFacts::enabled`], `true` when left out.
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    /// [`NodeFacts::state`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}

/// The `groups` object, as label–members pairs in file order, keeping
/// repeated labels so they can be reported rather than silently merged.
#[derive(Debug, Default)]
struct Groups(Vec<(String, Vec<String>)>);

impl Serialize for Groups {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(label, members)| (label, members)))
    }
}

impl<'de> Deserialize<'de> for Groups {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct GroupsVisitor;

        impl<'de> Visitor<'de> for GroupsVisitor {
            type Value = Groups;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object mapping group labels to lists of node ids")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Groups, A::Error> {
                let mut groups = Vec::new();
                while let Some(entry) = map.next_entry::<String, Vec<String>>()? {
                    groups.push(entry);
                }
                Ok(Groups(groups))
            }
        }

        deserializer.deserialize_map(GroupsVisitor)
    }
}

/// What can go wrong with the file. Private: callers see [`crus_core::Error`].
#[derive(Debug, thiserror::Error)]
enum FileError {
    /// There is no file.
    #[error(
        "there is no inventory file at {}; create it, listing the cluster's nodes and groups, for example: {EXAMPLE}",
        path.display()
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },

    /// The file exists but could not be read.
    #[error("cannot read the inventory file {}: {source}; check its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// The file is not JSON of the expected shape.
    #[error(
        "the inventory file {} is not a valid inventory ({problem}); it should look like: {EXAMPLE}",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with line and column.
        problem: String,
    },

    /// The file breaks a rule of the format.
    #[error("the inventory file {} is invalid: {problems}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, each naming its entry.
        problems: String,
    },

    /// A change could not be written.
    #[error(
        "cannot write the inventory file {}: {source}; nothing was changed, check that its directory is writable and the disk has free space",
        path.display()
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// The blocking task writing a change panicked or was cancelled.
    #[error("the task writing the inventory file {} stopped: {source}", path.display())]
    Worker {
        /// The file.
        path: PathBuf,
        /// tokio's error.
        source: tokio::task::JoinError,
    },

    /// The state could not be serialised (a bug, not a file problem).
    #[error("cannot serialise the inventory: {0}")]
    Encode(serde_json::Error),
}

impl From<FileError> for Error {
    fn from(error: FileError) -> Self {
        match error {
            FileError::Damaged { .. } | FileError::Invalid { .. } => {
                Error::invalid(error.to_string())
            }
            // Retryable: nothing changed, and the calls are idempotent.
            FileError::Write { .. } => Error::unavailable(BACKEND, error.to_string()),
            FileError::Missing { .. }
            | FileError::Read { .. }
            | FileError::Worker { .. }
            | FileError::Encode(_) => Error::Other {
                backend: BACKEND,
                source: Box::new(error),
            },
        }
    }
}

#[cfg(test)]
mod tests;
