//! The annotated configurations under `docs/examples/` parse and pass
//! [`Config::check`], so they cannot drift from the keys the parser accepts.
//! One test per file, each also pinning the choices its comments explain.

use std::time::Duration;

use super::config::Config;

/// The example's text parsed and checked; a failure names the file.
fn parsed(name: &str, text: &str) -> Config {
    let config: Config = match toml::from_str(text) {
        Ok(config) => config,
        Err(error) => panic!("docs/examples/{name} does not parse: {error}"),
    };
    if let Err(error) = config.check() {
        panic!("docs/examples/{name} fails the check: {error}");
    }
    config
}

#[test]
fn cray_ex_example_is_valid() {
    let config = parsed(
        "cray-ex.toml",
        include_str!("../../../../docs/examples/cray-ex.toml"),
    );
    assert_eq!(config.backends.inventory, "hsm");
    assert_eq!(config.backends.workload_manager, "slurm");
    assert_eq!(config.backends.boot, "bos");
    assert_eq!(config.slurm.node_names, "nid");
    let token_url =
        "https://api-gw-service-nmn.local/keycloak/realms/shasta/protocol/openid-connect/token";
    for (section, base_url) in [
        (&config.hsm, "https://api-gw-service-nmn.local/apis/smd"),
        (&config.bos, "https://api-gw-service-nmn.local/apis/bos"),
    ] {
        let Some(section) = section else {
            panic!("the [hsm] and [bos] sections are both needed");
        };
        assert_eq!(section.base_url, base_url);
        assert_eq!(section.oauth2_token_url.as_deref(), Some(token_url));
        assert_eq!(section.oauth2_client_id.as_deref(), Some("admin-client"));
        assert!(section.oauth2_client_secret_file.is_some());
        assert!(section.token_file.is_none() && section.token_env.is_none());
        assert!(section.ca_file.is_some());
        assert!(section.timeout >= Duration::from_secs(30));
    }
}
