//! Which BMC and which system a node is: the explicit map first, then the
//! naming rule (pure functions, no IO).

use crus_core::node::NodeId;

use super::config::{NamingRule, RedfishConfig, SystemLocation};

/// The system of `node`, or why there is none (in words, naming what to set).
pub(crate) fn locate(config: &RedfishConfig, node: &NodeId) -> Result<SystemLocation, String> {
    if let Some(location) = config.nodes.get(node) {
        return Ok(location.clone());
    }
    let Some(rule) = &config.rule else {
        return Err(format!(
            "node {node} has no Redfish system: add it to [redfish.nodes] or set redfish.bmc_url"
        ));
    };
    apply_rule(rule, node)
}

fn apply_rule(rule: &NamingRule, node: &NodeId) -> Result<SystemLocation, String> {
    let xname = split_xname(node.as_str());
    let fill = |template: &str| -> Result<String, String> {
        let needs_xname = template.contains("{bmc}") || template.contains("{n}");
        let filled = template.replace("{node}", node.as_str());
        match xname {
            Some((bmc, number)) => Ok(filled.replace("{bmc}", bmc).replace("{n}", number)),
            None if needs_xname => Err(format!(
                "node {node} is not a node xname (like x1000c0s0b0n0), so the template {template:?} \
                 cannot place it: use {{node}} in the template or add the node to [redfish.nodes]"
            )),
            None => Ok(filled),
        }
    };
    Ok(SystemLocation {
        bmc_url: fill(&rule.bmc_url)?,
        system: rule.system.as_deref().map(fill).transpose()?,
    })
}

/// A node xname `x<cab>c<chassis>s<slot>b<bmc>n<node>` as (its BMC's
/// xname, its node number); `None` for any other name.
fn split_xname(name: &str) -> Option<(&str, &str)> {
    let at = name.rfind('n')?;
    let (bmc, number) = (&name[..at], &name[at + 1..]);
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(number) {
        return None;
    }
    // x<d>c<d>s<d>b<d>, each part digits.
    let mut rest = bmc.strip_prefix('x')?;
    for marker in ['c', 's', 'b'] {
        let (part, tail) = rest.split_once(marker)?;
        if !digits(part) {
            return None;
        }
        rest = tail;
    }
    digits(rest).then_some((bmc, number))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(bmc_url: &str, system: Option<&str>) -> RedfishConfig {
        RedfishConfig {
            rule: Some(NamingRule {
                bmc_url: bmc_url.into(),
                system: system.map(str::to_string),
            }),
            ..RedfishConfig::new()
        }
    }

    #[test]
    fn xnames_give_their_bmc_and_node_number() {
        let config = rule("https://{bmc}", Some("Node{n}"));
        let location = locate(&config, &NodeId::from("x1000c0s3b1n1")).unwrap();
        assert_eq!(location.bmc_url, "https://x1000c0s3b1");
        assert_eq!(location.system.as_deref(), Some("Node1"));
        assert_eq!(split_xname("x1000c0s3b1"), None);
        assert_eq!(split_xname("nid000001"), None);
    }

    #[test]
    fn other_names_use_node_only() {
        let config = rule("http://127.0.0.1:8000", Some("{node}"));
        let location = locate(&config, &NodeId::from("node001")).unwrap();
        assert_eq!(location.bmc_url, "http://127.0.0.1:8000");
        assert_eq!(location.system.as_deref(), Some("node001"));
        let error = locate(&rule("https://{bmc}", None), &NodeId::from("node001")).unwrap_err();
        assert!(error.contains("not a node xname"), "{error}");
    }

    #[test]
    fn the_explicit_map_wins_and_unplaced_nodes_say_what_to_set() {
        let mut config = rule("https://{bmc}", None);
        config.nodes.insert(
            NodeId::from("x1n0"),
            SystemLocation {
                bmc_url: "https://bmc-a".into(),
                system: Some("Self".into()),
            },
        );
        assert_eq!(
            locate(&config, &NodeId::from("x1n0")).unwrap().bmc_url,
            "https://bmc-a"
        );
        let error = locate(&RedfishConfig::new(), &NodeId::from("x1n0")).unwrap_err();
        assert!(error.contains("[redfish.nodes]"), "{error}");
    }
}
