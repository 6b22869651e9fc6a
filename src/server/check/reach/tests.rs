//! Which backends the online check reaches, and with which TLS settings:
//! each section's own `insecure` switch and CA file, as `crus serve` uses.

use super::*;

fn config(text: &str) -> Config {
    toml::from_str(text).unwrap()
}

/// The TLS settings of the target at `key`.
fn tls_of(config: &Config, key: &str) -> Tls {
    let target = targets(config)
        .into_iter()
        .find(|target| target.key == key)
        .unwrap_or_else(|| panic!("no target {key}"));
    match target.how {
        Reach::Http { tls, .. } => tls,
        other => panic!("{key} is not reached over HTTP: {other:?}"),
    }
}

const CYCLECLOUD: &str = "[backends]\ninventory = \"cyclecloud\"\nworkload_manager = \"none\"\nboot = \"cyclecloud\"\n\
     [cyclecloud]\nbase_url = \"https://cc\"\ncluster = \"c\"\nusername = \"u\"\n\
     password_file = \"/p\"\nstate_file = \"/s\"\n";

#[test]
fn cyclecloud_insecure_is_passed_to_the_client() {
    let insecure = config(&format!("{CYCLECLOUD}insecure = true\n"));
    assert_eq!(
        tls_of(&insecure, "cyclecloud.base_url"),
        Tls {
            ca_key: "cyclecloud.ca_file".to_string(),
            ca_file: None,
            insecure: true,
        }
    );
    let checked = config(&format!("{CYCLECLOUD}ca_file = \"/etc/crus/ca.pem\"\n"));
    assert_eq!(
        tls_of(&checked, "cyclecloud.base_url"),
        Tls {
            ca_key: "cyclecloud.ca_file".to_string(),
            ca_file: Some(PathBuf::from("/etc/crus/ca.pem")),
            insecure: false,
        }
    );
}

#[test]
fn redfish_insecure_and_ca_file_are_passed_to_the_client() {
    let config = config(
        "[backends]\npower = \"redfish\"\n\
         [redfish]\nbmc_url = \"https://{bmc}\"\nusername = \"u\"\npassword_file = \"/p\"\n\
         insecure = true\nca_file = \"/ca\"\n\
         [redfish.nodes]\nn1 = { bmc_url = \"https://bmc1\" }\n",
    );
    assert_eq!(
        tls_of(&config, "redfish.nodes.n1.bmc_url"),
        Tls {
            ca_key: "redfish.ca_file".to_string(),
            ca_file: Some(PathBuf::from("/ca")),
            insecure: true,
        }
    );
}

#[tokio::test]
async fn an_unreadable_ca_file_names_its_key() {
    let config = config(&format!(
        "{CYCLECLOUD}ca_file = \"/nonexistent/crus-site-ca.pem\"\n"
    ));
    let target = targets(&config)
        .into_iter()
        .find(|target| target.key == "cyclecloud.base_url")
        .unwrap();
    let error = reach(&target).await.unwrap_err();
    assert!(
        error.contains("cyclecloud.ca_file") && error.contains("/nonexistent/crus-site-ca.pem"),
        "{error}"
    );
}
