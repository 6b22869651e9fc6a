//! The lines of `crus plan`'s text output for what a plan leaves out and
//! holds to (issue 21): the nodes it would skip with why, the capacity
//! floor with its effective numbers, and the boot rate. Each is printed
//! only when the server's answer has it (older servers and CRUS do not).

use serde_json::Value;

/// How many skipped nodes are listed before the rest are counted.
const LISTED: usize = 20;

/// The lines for `plan`'s `skipped`, `floor` and `max_boots_per_minute`,
/// each ending with a newline; empty when it has none of them.
pub fn left_out_lines(plan: &Value) -> String {
    let mut out = String::new();
    if let Some(skipped) = plan["skipped"].as_array().filter(|list| !list.is_empty()) {
        out.push_str(&format!("skipped: {} node(s)\n", skipped.len()));
        for node in skipped.iter().take(LISTED) {
            out.push_str(&format!(
                "  {}  {}\n",
                node["node"].as_str().unwrap_or("?"),
                node["reason"].as_str().unwrap_or("")
            ));
        }
        if skipped.len() > LISTED {
            out.push_str(&format!("  … and {} more\n", skipped.len() - LISTED));
        }
    }
    if let Some(effective) = plan["floor"]["effective"].as_str() {
        out.push_str(&format!(
            "floor: min_available {}: {effective}\n",
            plan["floor"]["requested"].as_str().unwrap_or("?")
        ));
    }
    if let Some(rate) = plan["max_boots_per_minute"].as_u64() {
        out.push_str(&format!("boot rate: at most {rate} boot(s) a minute\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skipped_nodes_the_floor_and_the_rate_are_printed_when_given() {
        let plan = json!({
            "skipped": [
                {"node": "n2", "reason": "out of service by someone else, drained (\"bad DIMM\"): left alone"},
                {"node": "n4", "reason": "already on the target image"}
            ],
            "floor": {"min_in_service": 3, "group": 5, "may_be_out": 2, "requested": "70%",
                      "effective": "70% of 5 nodes is 3.5, rounded down to 3 in service: at most 2 nodes out of service at a time, for any reason"},
            "max_boots_per_minute": 3
        });
        let lines = left_out_lines(&plan);
        assert!(lines.starts_with("skipped: 2 node(s)\n"), "{lines}");
        assert!(
            lines.contains("  n2  out of service by someone else"),
            "{lines}"
        );
        assert!(
            lines.contains("  n4  already on the target image\n"),
            "{lines}"
        );
        assert!(
            lines.contains("floor: min_available 70%: 70% of 5 nodes is 3.5, rounded down to 3"),
            "{lines}"
        );
        assert!(
            lines.ends_with("boot rate: at most 3 boot(s) a minute\n"),
            "{lines}"
        );
        assert_eq!(left_out_lines(&json!({"steps": []})), "");
    }
}
