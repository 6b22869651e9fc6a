//! Printing sessions: the server's JSON unchanged, or tables for people.

use crus::client::Answer;
use crus_core::SessionStatus;
use crus_core::session::NodeStatus;
use serde_json::Value;

use super::Format;

/// Prints one session.
pub fn print_session(answer: &Answer<SessionStatus>, format: Format) {
    match format {
        Format::Json => println!("{}", answer.raw.trim_end()),
        Format::Table => print!("{}", session_table(&answer.value)),
    }
}

/// Prints how a watched session ended: its JSON, or one line for people (the
/// messages were printed while watching).
pub fn print_watch_end(answer: &Answer<SessionStatus>, format: Format) {
    match format {
        Format::Json => println!("{}", answer.raw.trim_end()),
        Format::Table => {
            let session = &answer.value;
            let count = |phase: &str| node_count(session, phase).unwrap_or(0);
            println!(
                "session {} {}: {} of {} nodes upgraded, {} failed",
                session.upgrade_id,
                session.state,
                count("done"),
                count("total"),
                count("failed")
            );
        }
    }
}

/// How many of `session`'s nodes are in `phase` (or `total`), when it says.
pub fn node_count(session: &SessionStatus, phase: &str) -> Option<u64> {
    session.nodes.as_ref()?.get(phase).copied()
}

/// Prints the nodes of a session.
pub fn print_nodes(answer: &Answer<Vec<NodeStatus>>, format: Format) {
    match format {
        Format::Json => println!("{}", answer.raw.trim_end()),
        Format::Table => print!("{}", nodes_table(&answer.value)),
    }
}

/// Prints a dry run's plan.
pub fn print_plan(answer: &Answer<Value>, format: Format) {
    match format {
        Format::Json => println!("{}", answer.raw.trim_end()),
        Format::Table => print!("{}", plan_table(&answer.value)),
    }
}

/// A plan for people: one line a step, then the estimate and its rationale.
pub fn plan_table(plan: &Value) -> String {
    let empty = Vec::new();
    let steps = plan["steps"].as_array().unwrap_or(&empty);
    let mut out = format!(
        "{:<5} {:>5}  {:<24} {:<24} NODES\n",
        "STEP", "COUNT", "STARTS", "DONE"
    );
    for step in steps {
        let nodes: Vec<String> = step["nodes"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(text)
            .collect();
        let shown = if nodes.len() > 6 {
            format!("{} … (+{})", nodes[..6].join(","), nodes.len() - 6)
        } else {
            nodes.join(",")
        };
        out.push_str(&format!(
            "{:<5} {:>5}  {:<24} {:<24} {shown}\n",
            text(&step["step"]),
            nodes.len(),
            text(&step["starts_at"]),
            text(&step["done_at"]),
        ));
        // The forecast's range and what the step waits for, when the
        // server gives them (servers before issue 27 do not).
        let mut detail = Vec::new();
        if let (Some(p10), Some(p90)) = (step["done_at_p10"].as_str(), step["done_at_p90"].as_str())
        {
            detail.push(format!("done between {p10} and {p90}"));
        }
        if let Some(dominated_by) = step["dominated_by"].as_str() {
            detail.push(dominated_by.to_string());
        }
        if !detail.is_empty() {
            out.push_str(&format!("{:<5} {}\n", "", detail.join("; ")));
        }
    }
    out.push_str(&format!(
        "\n{} nodes, {} step(s) of at most {}; estimated duration {}",
        text(&plan["nodes"]),
        steps.len(),
        text(&plan["step_size"]),
        text(&plan["estimated_duration"]),
    ));
    if let (Some(p10), Some(p90)) = (plan["p10"].as_str(), plan["p90"].as_str()) {
        out.push_str(&format!(" (p10 {p10}, p90 {p90})"));
    }
    out.push('\n');
    if let Some(dominated_by) = plan["dominated_by"]
        .as_str()
        .filter(|text| !text.is_empty())
    {
        out.push_str(&format!("dominated by {dominated_by}\n"));
    }
    out.push_str(&super::plan_left_out::left_out_lines(plan));
    for line in plan["rationale"].as_array().unwrap_or(&empty) {
        out.push_str(&format!("  - {}\n", text(line)));
    }
    // The safety nets, when the server gives them (issue 23).
    if let Some(summary) = plan["rollback"]["summary"].as_str() {
        out.push_str(&format!("rollback: {summary}\n"));
    }
    if let Some(summary) = plan["gates"]["summary"].as_str() {
        out.push_str(&format!("alert gates: {summary}\n"));
    }
    out
}

/// Prints a list of sessions.
pub fn print_sessions(answer: &Answer<Vec<SessionStatus>>, format: Format) {
    match format {
        Format::Json => println!("{}", answer.raw.trim_end()),
        Format::Table => print!("{}", sessions_table(&answer.value)),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// A two-column table of one session's fields, then its messages.
pub fn session_table(session: &SessionStatus) -> String {
    let mut out = String::new();
    let phase = session
        .phase
        .map_or_else(|| "-".to_string(), |phase| phase.as_str().to_string());
    for (field, value) in [
        ("upgrade_id", session.upgrade_id.to_string()),
        ("state", session.state.to_string()),
        ("phase", phase),
        ("completed", session.completed.to_string()),
        ("starting_label", session.starting_label.clone()),
        ("upgrading_label", session.upgrading_label.clone()),
        ("failed_label", session.failed_label.clone()),
        ("upgrade_step_size", session.upgrade_step_size.to_string()),
        ("upgrade_template_id", session.upgrade_template_id.clone()),
        (
            "workload_manager_type",
            session.workload_manager_type.clone(),
        ),
        ("kind", session.kind.clone()),
        ("api_version", session.api_version.clone()),
    ] {
        out.push_str(&format!("{field:<22} {value}\n"));
    }
    if let Some(nodes) = &session.nodes {
        let counts: Vec<String> = nodes
            .iter()
            .filter(|(phase, count)| phase.as_str() != "total" && **count != 0)
            .map(|(phase, count)| format!("{phase} {count}"))
            .collect();
        let total = nodes.get("total").map(u64::to_string).unwrap_or_default();
        out.push_str(&format!(
            "{:<22} {total} total: {}\n",
            "nodes",
            counts.join(", ")
        ));
    }
    out.push_str("messages\n");
    for message in &session.messages {
        out.push_str(&format!("  {message}\n"));
    }
    out
}

/// One line per node of a session.
pub fn nodes_table(nodes: &[NodeStatus]) -> String {
    // What does not apply yet shows as `-`, as JSON's null did.
    fn or_dash<T: ToString>(value: Option<T>) -> String {
        value.map_or_else(|| "-".to_string(), |value| value.to_string())
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| {
            let mut reason = or_dash(node.reason.as_deref());
            if node.forced {
                reason = format!("forced; {reason}");
            }
            // Whose node it is, in their own words: crus puts it back so.
            if let Some(owner) = &node.foreign_reason {
                let held = format!("out of service by someone else: \"{owner}\"");
                reason = match node.reason {
                    Some(_) => format!("{reason}; {held}"),
                    None => held,
                };
            }
            vec![
                node.id.clone(),
                node.phase.as_str().to_string(),
                or_dash(node.step),
                node.attempts.to_string(),
                node.since.to_string(),
                or_dash(node.taken_at),
                or_dash(node.finished_at),
                reason,
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no nodes yet\n".to_string();
    }
    table(
        &[
            "NODE", "PHASE", "STEP", "BOOTS", "SINCE", "TAKEN", "FINISHED", "REASON",
        ],
        &rows,
    )
}

/// Left-aligned columns as wide as their widest cell; the last is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut line = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        line.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// One line per session.
pub fn sessions_table(sessions: &[SessionStatus]) -> String {
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|session| {
            vec![
                session.upgrade_id.to_string(),
                session.state.to_string(),
                session.completed.to_string(),
                session.upgrade_step_size.to_string(),
                session.starting_label.clone(),
                session.messages.last().cloned().unwrap_or_default(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no sessions\n".to_string();
    }
    table(
        &[
            "UPGRADE_ID",
            "STATE",
            "COMPLETED",
            "STEP",
            "STARTING_LABEL",
            "LAST MESSAGE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_show_the_crus_fields() {
        let session = json!({
            "api_version": "0.1.0", "completed": false, "failed_label": "f", "kind": "ComputeUpgradeSession",
            "messages": ["Step 0 started"], "starting_label": "compute", "state": "UPDATING",
            "upgrade_id": "c926acf6-b5c6-411e-ba6c-ea0448cab2ee", "upgrade_step_size": 4,
            "upgrade_template_id": "img", "upgrading_label": "u", "workload_manager_type": "slurm"
        });
        let status: SessionStatus = serde_json::from_value(session.clone()).unwrap();
        let table = session_table(&status);
        assert!(
            table.contains("state                  UPDATING\n"),
            "{table}"
        );
        assert!(table.contains("messages\n  Step 0 started\n"), "{table}");
        let mut counted = session.clone();
        counted["nodes"] = json!({"total": 8, "done": 3, "failed": 0, "draining": 5});
        let counted: SessionStatus = serde_json::from_value(counted).unwrap();
        assert!(
            session_table(&counted)
                .contains("nodes                  8 total: done 3, draining 5\n"),
            "{}",
            session_table(&counted)
        );
        let list = sessions_table(&[status]);
        assert!(list.starts_with("UPGRADE_ID"), "{list}");
        assert!(list.contains("UPDATING"), "{list}");
        assert_eq!(sessions_table(&[]), "no sessions\n");
    }

    #[test]
    fn plans_show_the_forecast_range_and_what_dominates() {
        let plan = json!({
            "steps": [{"step": 0, "nodes": ["n1", "n2"], "starts_at": "t0", "done_at": "t1",
                       "done_at_p10": "t1a", "done_at_p90": "t1b",
                       "dominated_by": "waiting for jobs that end by 2026-12-06 14:20 UTC"}],
            "nodes": 2, "step_size": 2, "estimated_duration": "2h 30m", "p10": "2h",
            "p90": "3h 10m", "samples": 15, "dominated_by": "boot rounds (2 boot(s), 10m of it)",
            "rationale": ["Idle nodes first."]
        });
        let table = plan_table(&plan);
        assert!(
            table.contains("estimated duration 2h 30m (p10 2h, p90 3h 10m)\n"),
            "{table}"
        );
        assert!(table.contains("dominated by boot rounds"), "{table}");
        assert!(
            table.contains(
                "done between t1a and t1b; waiting for jobs that end by 2026-12-06 14:20 UTC"
            ),
            "{table}"
        );
        // The rollback and the gates, when the plan has them.
        let mut guarded = plan.clone();
        guarded["rollback"] = json!({"template": "old", "summary": "Booted back to 'old'."});
        guarded["gates"] =
            json!({"checks": ["alertmanager x"], "summary": "Checked: alertmanager x."});
        let table = plan_table(&guarded);
        assert!(
            table.contains("rollback: Booted back to 'old'.\n"),
            "{table}"
        );
        assert!(
            table.contains("alert gates: Checked: alertmanager x.\n"),
            "{table}"
        );
        assert!(!plan_table(&plan).contains("rollback:"));
        // An answer without a forecast (an older server) still prints.
        let older = json!({"steps": [], "nodes": 0, "step_size": 1, "estimated_duration": "0s"});
        assert!(plan_table(&older).contains("estimated duration 0s\n"));
    }

    #[test]
    fn node_tables_show_one_line_per_node() {
        let (t0, t2, t3) = (
            "2026-11-23T18:31:12.000Z",
            "2026-11-23T18:40:00.000Z",
            "2026-11-23T18:45:00.000Z",
        );
        // As the server sends them.
        let nodes: Vec<NodeStatus> = serde_json::from_value(json!([
            {"id": "x1000c0s0b0n0", "phase": "done", "since": t2, "step": 0, "attempts": 1,
             "taken_at": t0, "finished_at": t2, "reason": null, "forced": false},
            {"id": "x1000c0s0b0n1", "phase": "failed", "since": t3, "step": 0, "attempts": 2,
             "taken_at": t0, "finished_at": t3, "reason": "boot timed out", "forced": true},
            {"id": "x1000c0s0b0n2", "phase": "done", "since": t3, "step": 1, "attempts": 1,
             "taken_at": t2, "finished_at": t3, "reason": null, "forced": false,
             "foreign_reason": "bad DIMM"}
        ]))
        .unwrap();
        let table = nodes_table(&nodes);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(
            lines[3].ends_with("out of service by someone else: \"bad DIMM\""),
            "{table}"
        );
        assert!(lines[0].starts_with("NODE"), "{table}");
        assert!(lines[1].starts_with("x1000c0s0b0n0  done"), "{table}");
        assert!(lines[2].ends_with("forced; boot timed out"), "{table}");
        assert!(table.contains(&format!("{t2}  {t0}  {t2}")), "{table}");
        assert_eq!(nodes_table(&[]), "no nodes yet\n");
    }
}
