//! Slurm's `sinfo --json` and `squeue --json` documents, reduced to what the
//! formatted parsers (`parse.rs`) give, so both read paths feed the same
//! state mapping.
//!
//! Slurm 22.05 prints OpenAPI v0.0.38 (captured samples in `testdata/`):
//!
//! - `sinfo --json` has `nodes`, each with a lower-case base `state`
//!   (`"mixed"`), the flags apart in `state_flags` (`["DRAIN",
//!   "NOT_RESPONDING"]`) and `reason` (`""` when none, without scontrol's
//!   `[user@time]` suffix).
//! - `squeue --json` has `jobs`, each with `job_state` (`"RUNNING"`), `nodes`
//!   (a compressed host list) and `end_time` (epoch seconds), and
//!   `time_limit` in minutes or `null` for no limit. It also lists finished
//!   jobs (`CANCELLED`, `COMPLETED`) for a while, and node filters (`-w`) are
//!   ignored, so jobs are filtered here.
//! - A controller that cannot be reached still exits 0, with an entry in
//!   `errors` and no nodes or jobs.
//!
//! Later Slurm versions change shapes, and the types here accept those as
//! well: a state may be a list (`["IDLE", "DRAIN"]`), numbers may be objects
//! (`{"set": true, "infinite": false, "number": 5}`), and from 23.02 `sinfo`
//! prints per-node records under `sinfo` (`node.state`, `nodes.nodes`,
//! `reason.description`) instead of `nodes`. Unknown fields are ignored.

use std::collections::HashSet;

use crus_core::time::Timestamp;
use serde::Deserialize;

use super::hostlist::{self, HostlistError};
use super::parse::{JobEnd, ShownNode};

/// Why a JSON document gave no nodes or jobs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JsonError {
    /// Not JSON, or not a shape this module knows: this Slurm's JSON cannot
    /// be read, so its formatted output must be.
    #[error("unreadable {document} JSON from Slurm: {source}")]
    Unreadable {
        document: &'static str,
        source: serde_json::Error,
    },
    /// A known shape whose `errors` say the command failed (typically the
    /// controller could not be reached).
    #[error("Slurm reported errors in its {document} JSON: {errors}")]
    Reported {
        document: &'static str,
        errors: String,
    },
    /// A job's node list could not be expanded, so it cannot be charged to
    /// its nodes.
    #[error(transparent)]
    Hostlist(#[from] HostlistError),
}

impl JsonError {
    /// Whether the document was Slurm's JSON in a shape understood here,
    /// i.e. whether this Slurm's JSON output is usable at all (the error was
    /// about this one answer).
    pub(crate) fn shape_understood(&self) -> bool {
        !matches!(self, JsonError::Unreadable { .. })
    }
}

/// A string, or a list of strings in versions that split flags out.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Words {
    One(String),
    Many(Vec<String>),
}

impl Words {
    fn into_vec(self) -> Vec<String> {
        match self {
            Words::One(word) => vec![word],
            Words::Many(words) => words,
        }
    }
}

/// A reason: a string, or `{"description": ...}` in sinfo's later records.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Reason {
    Text(String),
    Described {
        #[serde(default)]
        description: String,
    },
}

/// A number, or the `{set, infinite, number}` object of later versions.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Number {
    Plain(i64),
    Object {
        #[serde(default)]
        set: bool,
        #[serde(default)]
        infinite: bool,
        #[serde(default)]
        number: i64,
    },
}

/// `errors` entries differ by command and version; only their text is kept.
#[derive(Debug, Deserialize)]
struct ReportedError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

fn reported(document: &'static str, errors: &[ReportedError]) -> Result<(), JsonError> {
    if errors.is_empty() {
        return Ok(());
    }
    let errors = errors
        .iter()
        .map(|error| {
            [error.description.as_deref(), error.error.as_deref()]
                .into_iter()
                .flatten()
                .filter(|text| !text.is_empty())
                .collect::<Vec<_>>()
                .join(": ")
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(JsonError::Reported { document, errors })
}

#[derive(Debug, Deserialize)]
struct NodesDocument {
    #[serde(default)]
    errors: Vec<ReportedError>,
    /// 22.05 (OpenAPI v0.0.38) and the node documents of later versions.
    #[serde(default)]
    nodes: Option<Vec<Node>>,
    /// sinfo's own records, from 23.02.
    #[serde(default)]
    sinfo: Option<Vec<SinfoRecord>>,
}

#[derive(Debug, Deserialize)]
struct Node {
    name: String,
    state: Words,
    #[serde(default)]
    state_flags: Vec<String>,
    #[serde(default)]
    reason: Option<Reason>,
}

#[derive(Debug, Deserialize)]
struct SinfoRecord {
    node: SinfoNode,
    nodes: SinfoNodes,
    #[serde(default)]
    reason: Option<Reason>,
}

#[derive(Debug, Deserialize)]
struct SinfoNode {
    state: Words,
}

#[derive(Debug, Deserialize)]
struct SinfoNodes {
    #[serde(default)]
    nodes: Vec<String>,
}

/// The base states of Slurm's `node_state_string`; everything else is a flag.
const NODE_BASE_STATES: &[&str] = &[
    "IDLE",
    "ALLOCATED",
    "MIXED",
    "DOWN",
    "ERROR",
    "FUTURE",
    "UNKNOWN",
];

/// The state as scontrol writes it (`MIXED+DRAIN+NOT_RESPONDING`), so
/// `parse::map_state` and `parse::needs_resume` read both paths alike.
fn scontrol_state(state: Words, flags: Vec<String>) -> String {
    let mut words: Vec<String> = state
        .into_vec()
        .into_iter()
        .chain(flags)
        .map(|word| word.trim().to_ascii_uppercase())
        .filter(|word| !word.is_empty())
        .collect();
    // map_state takes the first word as the base; lists in later versions
    // are not promised to put it first.
    if let Some(base) = words
        .iter()
        .position(|word| NODE_BASE_STATES.contains(&word.as_str()))
    {
        let base = words.remove(base);
        words.insert(0, base);
    }
    if words.is_empty() {
        return "UNKNOWN".to_string();
    }
    words.join("+")
}

/// The reason as `parse::parse_show_node` gives it: none when empty, and
/// `none` is no reason either (scontrol prints it for a node without one).
fn reason_text(reason: Option<Reason>) -> Option<String> {
    let text = match reason? {
        Reason::Text(text) => text,
        Reason::Described { description } => description,
    };
    let text = text.trim();
    (!text.is_empty() && text != "none").then(|| text.to_string())
}

/// Every node in `sinfo --json` output.
///
/// A node listed twice (later versions print one record per partition)
/// is kept once, as first listed: its state and reason are the same.
pub(crate) fn parse_nodes(text: &str) -> Result<Vec<ShownNode>, JsonError> {
    let document: NodesDocument =
        serde_json::from_str(text).map_err(|source| JsonError::Unreadable {
            document: "sinfo",
            source,
        })?;
    reported("sinfo", &document.errors)?;
    if let Some(nodes) = document.nodes {
        return Ok(nodes
            .into_iter()
            .map(|node| ShownNode {
                name: node.name,
                state: scontrol_state(node.state, node.state_flags),
                reason: reason_text(node.reason),
            })
            .collect());
    }
    let Some(records) = document.sinfo else {
        return Err(JsonError::Unreadable {
            document: "sinfo",
            source: serde::de::Error::custom("neither `nodes` nor `sinfo` is present"),
        });
    };
    let mut shown: Vec<ShownNode> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for record in records {
        let state = scontrol_state(record.node.state, Vec::new());
        let reason = reason_text(record.reason);
        for list in &record.nodes.nodes {
            for name in hostlist::expand(list)? {
                if seen.insert(name.clone()) {
                    shown.push(ShownNode {
                        name,
                        state: state.clone(),
                        reason: reason.clone(),
                    });
                }
            }
        }
    }
    Ok(shown)
}

#[derive(Debug, Deserialize)]
struct JobsDocument {
    #[serde(default)]
    errors: Vec<ReportedError>,
    jobs: Vec<Job>,
}

#[derive(Debug, Deserialize)]
struct Job {
    job_state: Words,
    #[serde(default)]
    nodes: Option<String>,
    #[serde(default)]
    end_time: Option<Number>,
    /// `null` in 22.05 means no limit (and a missing field is read alike).
    #[serde(default)]
    time_limit: Option<Number>,
}

/// Slurm's `INFINITE` (`(uint32_t) -1`), which 22.05 prints as a plain number.
const SLURM_INFINITE: i64 = u32::MAX as i64;

/// Whether the job is one `squeue -t RUNNING,COMPLETING,SUSPENDED` lists:
/// exactly running or suspended (squeue compares the whole state, so a
/// running job with a flag such as `CONFIGURING` is not listed), or
/// completing in any base state.
fn listed_by_formatted_squeue(state: Words) -> bool {
    let words: Vec<String> = state
        .into_vec()
        .into_iter()
        .map(|word| word.trim().to_ascii_uppercase())
        .collect();
    words.iter().any(|word| word == "COMPLETING")
        || matches!(words.as_slice(), [only] if only == "RUNNING" || only == "SUSPENDED")
}

/// The end squeue's `%e` prints, as `parse::parse_end_time` reads it: no end
/// when the time is unset (`0`, `Unknown`) or infinite, and none for a job
/// without a time limit whose end is still ahead (squeue prints `NONE`: Slurm
/// then stores a nominal end a year away).
fn job_end(
    end_time: Option<Number>,
    time_limit: Option<Number>,
    now: Timestamp,
) -> Option<Timestamp> {
    let end = match end_time? {
        Number::Plain(seconds) if seconds > 0 && seconds < SLURM_INFINITE => seconds,
        Number::Object {
            set: true,
            infinite: false,
            number,
        } if number > 0 => number,
        Number::Plain(_) | Number::Object { .. } => return None,
    };
    let end = Timestamp::from_secs(end);
    let unlimited = match time_limit {
        None => true,
        Some(Number::Plain(minutes)) => minutes >= SLURM_INFINITE,
        Some(Number::Object { infinite, .. }) => infinite,
    };
    if unlimited && end > now {
        return None;
    }
    Some(end)
}

/// The running, completing and suspended jobs in `squeue --json` output,
/// with their nodes and ends; `now` decides, as squeue does, whether a job
/// without a time limit has an end yet.
pub(crate) fn parse_job_ends(text: &str, now: Timestamp) -> Result<Vec<JobEnd>, JsonError> {
    let document: JobsDocument =
        serde_json::from_str(text).map_err(|source| JsonError::Unreadable {
            document: "squeue",
            source,
        })?;
    reported("squeue", &document.errors)?;
    let mut ends = Vec::new();
    for job in document.jobs {
        if !listed_by_formatted_squeue(job.job_state) {
            continue;
        }
        ends.push(JobEnd {
            nodes: hostlist::expand(job.nodes.as_deref().unwrap_or_default())?,
            end: job_end(job.end_time, job.time_limit, now),
        });
    }
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::slurm::parse::{ends_by_node, parse_job_ends as parse_formatted_job_ends};
    use crate::slurm::parse::{map_state, parse_show_node};
    use crus_core::ports::WorkloadState;

    // Captured from Slurm 22.05.8 (Debian 12) at the same moment as the
    // formatted samples beside them, trimmed to a few fields per entry.
    // "busy": node001 mixed (a 2-node job), node002 allocated and drained
    // (that job plus one without a time limit), node003 drained with its
    // slurmd stopped. "completing": the 2-node job cancelled, its epilog
    // still running.
    const SINFO_BUSY: &str = include_str!("testdata/sinfo-22.05-busy.json");
    const SQUEUE_BUSY: &str = include_str!("testdata/squeue-22.05-busy.json");
    const SHOW_BUSY: &str = include_str!("testdata/scontrol-show-node-22.05-busy.txt");
    const ENDS_BUSY: &str = include_str!("testdata/squeue-ends-22.05-busy.txt");
    const BUSY_NOW: Timestamp = Timestamp::from_secs(1_795_469_935);
    const SINFO_COMPLETING: &str = include_str!("testdata/sinfo-22.05-completing.json");
    const SQUEUE_COMPLETING: &str = include_str!("testdata/squeue-22.05-completing.json");
    const SHOW_COMPLETING: &str = include_str!("testdata/scontrol-show-node-22.05-completing.txt");
    const ENDS_COMPLETING: &str = include_str!("testdata/squeue-ends-22.05-completing.txt");
    const COMPLETING_NOW: Timestamp = Timestamp::from_secs(1_795_469_941);
    // What 22.05.8 printed with its controller unreachable, exit status 0.
    const SINFO_UNREACHABLE: &str = include_str!("testdata/sinfo-22.05-unreachable.json");
    const SQUEUE_UNREACHABLE: &str = include_str!("testdata/squeue-22.05-unreachable.json");

    fn by_name(nodes: Vec<ShownNode>) -> HashMap<String, ShownNode> {
        nodes
            .into_iter()
            .map(|node| (node.name.clone(), node))
            .collect()
    }

    #[test]
    fn sinfo_json_gives_what_scontrol_gives() {
        for (json, show) in [(SINFO_BUSY, SHOW_BUSY), (SINFO_COMPLETING, SHOW_COMPLETING)] {
            let from_json = by_name(parse_nodes(json).unwrap());
            let from_show = by_name(parse_show_node(show));
            assert_eq!(from_json.len(), 3);
            for (name, shown) in &from_show {
                let json_node = &from_json[name];
                assert_eq!(json_node.reason, shown.reason, "{name}");
                assert_eq!(
                    map_state(&json_node.state),
                    map_state(&shown.state),
                    "{name}: {} / {}",
                    json_node.state,
                    shown.state
                );
            }
        }
    }

    #[test]
    fn sinfo_json_states_and_flags_combine() {
        let nodes = by_name(parse_nodes(SINFO_BUSY).unwrap());
        assert_eq!(nodes["node001"].state, "MIXED");
        assert_eq!(nodes["node002"].state, "ALLOCATED+DRAIN");
        assert_eq!(nodes["node002"].reason.as_deref(), Some("upgrade busy"));
        assert_eq!(nodes["node003"].state, "DOWN+DRAIN+NOT_RESPONDING");
        let mapped = map_state(&nodes["node003"].state);
        assert_eq!(mapped.state, WorkloadState::Down);
        assert!(!mapped.responding);
        assert_eq!(nodes["node001"].reason, None);

        let nodes = by_name(parse_nodes(SINFO_COMPLETING).unwrap());
        assert_eq!(nodes["node001"].state, "IDLE+COMPLETING");
        assert_eq!(
            map_state(&nodes["node002"].state).state,
            WorkloadState::Draining
        );
    }

    #[test]
    fn squeue_json_gives_what_formatted_squeue_gives() {
        for (json, formatted, now) in [
            (SQUEUE_BUSY, ENDS_BUSY, BUSY_NOW),
            (SQUEUE_COMPLETING, ENDS_COMPLETING, COMPLETING_NOW),
        ] {
            let from_json = parse_job_ends(json, now).unwrap();
            let from_formatted = parse_formatted_job_ends(formatted).unwrap();
            assert_eq!(from_json, from_formatted);
            assert_eq!(ends_by_node(&from_json), ends_by_node(&from_formatted));
        }
    }

    #[test]
    fn squeue_json_skips_finished_and_pending_jobs() {
        // The busy sample lists four cancelled jobs and a pending one too.
        let ends = parse_job_ends(SQUEUE_BUSY, BUSY_NOW).unwrap();
        assert_eq!(ends.len(), 2);
        let by_node = ends_by_node(&ends);
        assert_eq!(
            by_node["node001"],
            Some(Timestamp::from_secs(1_795_470_531))
        );
        // The job without a time limit has a nominal end a year away: none.
        assert_eq!(by_node["node002"], None);
        assert!(!by_node.contains_key("node003"));
    }

    #[test]
    fn an_unlimited_job_past_its_nominal_end_keeps_it() {
        let limit = Some(Number::Plain(5));
        let end = Some(Number::Plain(1000));
        assert_eq!(
            job_end(end, limit, Timestamp::from_secs(2000)),
            Some(Timestamp::from_secs(1000))
        );
        assert_eq!(job_end(end, None, Timestamp::from_secs(500)), None);
        assert_eq!(
            job_end(end, None, Timestamp::from_secs(2000)),
            Some(Timestamp::from_secs(1000))
        );
        assert_eq!(job_end(Some(Number::Plain(0)), limit, BUSY_NOW), None);
        assert_eq!(
            job_end(Some(Number::Plain(SLURM_INFINITE)), limit, BUSY_NOW),
            None
        );
    }

    #[test]
    fn an_unreachable_controller_is_a_reported_error_in_a_known_shape() {
        for error in [
            parse_nodes(SINFO_UNREACHABLE).map(drop).unwrap_err(),
            parse_job_ends(SQUEUE_UNREACHABLE, BUSY_NOW)
                .map(drop)
                .unwrap_err(),
        ] {
            assert!(matches!(error, JsonError::Reported { .. }), "{error:?}");
            assert!(error.shape_understood());
            assert!(error.to_string().contains("Unspecified error"), "{error}");
        }
    }

    #[test]
    fn text_that_is_not_slurms_json_is_unreadable() {
        for text in [
            "",
            "NodeName=node001 State=IDLE",
            "{}",
            r#"{"nodes": [{"state": "idle"}]}"#,
            r#"{"meta": {}, "errors": []}"#,
        ] {
            let error = parse_nodes(text).unwrap_err();
            assert!(!error.shape_understood(), "{text}: {error:?}");
        }
        let error = parse_job_ends(r#"{"errors": []}"#, BUSY_NOW).unwrap_err();
        assert!(!error.shape_understood(), "{error:?}");
    }

    // Not captured (only 22.05 is installed here): the shapes later versions
    // document, written by hand to pin down the tolerance for them.

    #[test]
    fn node_states_as_lists_and_sinfo_records_are_read() {
        let nodes = by_name(
            parse_nodes(
                r#"{"nodes": [
                    {"name": "n1", "state": ["DRAIN", "MIXED"], "reason": "upgrade"},
                    {"name": "n2", "state": ["IDLE", "NOT_RESPONDING"], "new_field": {"x": 1}}
                ], "warnings": [], "errors": []}"#,
            )
            .unwrap(),
        );
        assert_eq!(nodes["n1"].state, "MIXED+DRAIN");
        assert_eq!(map_state(&nodes["n1"].state).state, WorkloadState::Draining);
        assert_eq!(nodes["n1"].reason.as_deref(), Some("upgrade"));
        assert!(!map_state(&nodes["n2"].state).responding);

        let nodes = by_name(
            parse_nodes(
                r#"{"sinfo": [
                    {"node": {"state": ["IDLE", "DRAIN"]}, "nodes": {"nodes": ["cs11"]},
                     "reason": {"description": "upgrade", "time": 0, "user": "root"}},
                    {"node": {"state": ["IDLE", "DRAIN"]}, "nodes": {"nodes": ["cs11"]},
                     "reason": {"description": "upgrade", "time": 0, "user": "root"}},
                    {"node": {"state": ["ALLOCATED"]}, "nodes": {"nodes": ["cs[12-13]"]},
                     "reason": {"description": ""}}
                ], "errors": []}"#,
            )
            .unwrap(),
        );
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes["cs11"].state, "IDLE+DRAIN");
        assert_eq!(nodes["cs11"].reason.as_deref(), Some("upgrade"));
        assert_eq!(nodes["cs13"].state, "ALLOCATED");
        assert_eq!(nodes["cs13"].reason, None);
    }

    #[test]
    fn job_states_as_lists_and_numbers_as_objects_are_read() {
        let now = Timestamp::from_secs(1_000);
        let ends = parse_job_ends(
            r#"{"jobs": [
                {"job_state": ["RUNNING"], "nodes": "n[1-2]",
                 "end_time": {"set": true, "infinite": false, "number": 5000},
                 "time_limit": {"set": true, "infinite": false, "number": 60}},
                {"job_state": ["RUNNING"], "nodes": "n3",
                 "end_time": {"set": true, "infinite": false, "number": 9000},
                 "time_limit": {"set": false, "infinite": true, "number": 0}},
                {"job_state": ["COMPLETED", "COMPLETING"], "nodes": "n4",
                 "end_time": {"set": true, "infinite": false, "number": 900},
                 "time_limit": {"set": false, "infinite": true, "number": 0}},
                {"job_state": ["RUNNING", "CONFIGURING"], "nodes": "n5",
                 "end_time": 7000, "time_limit": {"set": true, "infinite": false, "number": 60}},
                {"job_state": ["PENDING"], "nodes": "",
                 "end_time": {"set": false, "infinite": false, "number": 0}}
            ], "errors": []}"#,
            now,
        )
        .unwrap();
        let by_node = ends_by_node(&ends);
        assert_eq!(by_node["n1"], Some(Timestamp::from_secs(5000)));
        assert_eq!(by_node["n2"], Some(Timestamp::from_secs(5000)));
        assert_eq!(by_node["n3"], None);
        assert_eq!(by_node["n4"], Some(Timestamp::from_secs(900)));
        assert!(!by_node.contains_key("n5"));
        assert_eq!(by_node.len(), 4);
    }

    #[test]
    fn a_bad_node_list_is_an_error_of_a_known_shape() {
        let error = parse_job_ends(
            r#"{"jobs": [{"job_state": "RUNNING", "nodes": "n[1-", "end_time": 5}]}"#,
            Timestamp::EPOCH,
        )
        .unwrap_err();
        assert!(matches!(error, JsonError::Hostlist(_)), "{error:?}");
        assert!(error.shape_understood());
    }
}
