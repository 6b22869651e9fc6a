//! The annotated configurations under `docs/examples/` parse and pass
//! [`Config::check`], so they cannot drift from the keys the parser accepts.
//! One test per file, each also pinning the choices its comments explain.

use std::time::Duration;

use super::config::{BackendKind, Config};

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
        include_str!("../../docs/examples/cray-ex.toml"),
    );
    assert_eq!(config.backends.inventory.name(), "hsm");
    assert_eq!(config.backends.workload_manager.name(), "slurm");
    assert_eq!(config.backends.boot.name(), "bos");
    assert_eq!(config.slurm.node_names.name(), "nid");
    let token_url =
        "https://api-gw-service-nmn.local/keycloak/realms/shasta/protocol/openid-connect/token";
    // [bos]'s keys shared with [hsm], to check both alike.
    let bos_service = config.bos.as_ref().map(|bos| bos.service_settings());
    for (section, base_url) in [
        (&config.hsm, "https://api-gw-service-nmn.local/apis/smd"),
        (&bos_service, "https://api-gw-service-nmn.local/apis/bos"),
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
    // BOS's own wait (20 minutes) and CFS fit in the boot timeout, which is
    // [bos]'s, not a server-wide one that would also bind other backends.
    assert_eq!(config.rollout.boot_timeout, None);
    let bos = config.bos.as_ref().map(|bos| bos.boot_timeout);
    assert_eq!(bos, Some(Some(Duration::from_secs(45 * 60))));
    assert!(config.default_boot_timeout() > Duration::from_secs(30 * 60));
    // Keycloak's keys from the realm's JWKS URL, so a rotation needs no edit.
    assert_eq!(
        config.auth.jwks_url.as_deref(),
        Some(
            "https://api-gw-service-nmn.local/keycloak/realms/shasta/protocol/openid-connect/certs"
        )
    );
    assert!(config.auth.jwks_ca_file.is_some() && config.auth.jwks_file.is_none());
}

#[test]
fn grid5000_kadeploy_example_is_valid() {
    let config = parsed(
        "grid5000-kadeploy.toml",
        include_str!("../../docs/examples/grid5000-kadeploy.toml"),
    );
    assert_eq!(config.backends.inventory.name(), "file");
    // No OAR backend: the nodes are reserved for the upgrade, nothing to drain.
    assert_eq!(config.backends.workload_manager.name(), "none");
    assert_eq!(config.backends.boot.name(), "kadeploy");
    // Restarts of nodes that do not come back go through Kadeploy too.
    assert_eq!(
        config.backends.power.map(BackendKind::name),
        Some("kadeploy")
    );
    let Some(kadeploy) = &config.kadeploy else {
        panic!("the [kadeploy] section is needed");
    };
    assert_eq!(
        kadeploy.base_url,
        "https://api.grid5000.fr/4.0/sites/nantes"
    );
    assert_eq!(kadeploy.user.as_deref(), Some("crus"));
    assert!(kadeploy.username.is_some() && kadeploy.password_file.is_some());
    // A location Kadeploy fetches, sent as it is; not the keys themselves.
    assert_eq!(
        kadeploy.ssh_authorized_keys.as_deref(),
        Some("/home/crus/.ssh/authorized_keys")
    );
    assert_eq!(
        kadeploy.power_base_url.as_deref(),
        Some("https://api.grid5000.fr/4.0/sites/nantes/kadeploy")
    );
    assert_eq!(kadeploy.host_domain.as_deref(), Some("nantes.grid5000.fr"));
    // A deployment reboots each node twice and copies an image; the timeout
    // is [kadeploy]'s.
    assert_eq!(config.rollout.boot_timeout, None);
    assert_eq!(kadeploy.boot_timeout, Some(Duration::from_secs(30 * 60)));
    assert!(config.default_boot_timeout() >= Duration::from_secs(20 * 60));
    assert!(config.auth.tokens_file.is_some());
    assert!(config.cyclecloud.is_none() && config.bos.is_none());
}

#[test]
fn cyclecloud_example_is_valid() {
    let config = parsed(
        "cyclecloud.toml",
        include_str!("../../docs/examples/cyclecloud.toml"),
    );
    assert_eq!(
        config.cyclecloud_ports(),
        ["backends.inventory", "backends.power", "backends.boot"]
    );
    assert_eq!(config.backends.workload_manager.name(), "slurm");
    assert_eq!(config.slurm.node_names.name(), "identity");
    let Some(cyclecloud) = &config.cyclecloud else {
        panic!("the [cyclecloud] section is needed");
    };
    assert_eq!(cyclecloud.cluster, "hpc");
    // The password stays out of the file, and the certificate is checked.
    assert!(cyclecloud.password_file.is_some() && cyclecloud.password_env.is_none());
    assert!(!cyclecloud.insecure && cyclecloud.ca_file.is_some());
    assert_eq!(
        cyclecloud.state_file_beside(&config.server.db),
        std::path::Path::new("/var/lib/crus/cyclecloud-groups.json")
    );
    // A reimage's timeout is [cyclecloud]'s.
    assert_eq!(config.rollout.boot_timeout, None);
    assert_eq!(cyclecloud.boot_timeout, Some(Duration::from_secs(25 * 60)));
    assert_eq!(config.default_boot_timeout(), Duration::from_secs(25 * 60));
    assert!(config.auth.tokens_file.is_some());
    assert!(config.kadeploy.is_none());
}
