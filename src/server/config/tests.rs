//! The configuration file: defaults, checks that name the key, and the
//! annotated example's blocks.

use super::*;
use std::path::Path;

#[test]
fn the_example_file_is_valid() {
    let text = include_str!("../../../docs/crus.example.toml");
    let config: Config = toml::from_str(text).unwrap();
    config.check().unwrap();
    assert_eq!(config.server.listen.port(), 8080);
    // No server-wide boot timeout: the boot backend's (here the
    // simulator's 10 minutes) applies.
    assert_eq!(config.rollout.boot_timeout, None);
    assert_eq!(config.default_boot_timeout(), Duration::from_secs(600));
}

#[test]
fn an_empty_file_means_the_defaults() {
    let config: Config = toml::from_str("").unwrap();
    assert_eq!(config, Config::default());
    config.check().unwrap();
}

#[test]
fn mistakes_name_their_key() {
    let unknown = toml::from_str::<Config>("[server]\nlisten_on = \"0.0.0.0:1\"\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("listen_on"), "{unknown}");
    let bad_duration = toml::from_str::<Config>("[rollout]\nboot_timeout = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        bad_duration.contains("boot_timeout") || bad_duration.contains("soon"),
        "{bad_duration}"
    );
    // An unknown backend is refused as the file is read, naming the key and
    // listing the kinds.
    let error = toml::from_str::<Config>("[backends]\nboot = \"pxe\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "backends.boot: \"pxe\" is not one of sim, bos, bos-v1, slurm-reboot, kadeploy, cyclecloud"
        ),
        "{error}"
    );
}

#[test]
fn a_backend_is_chosen_by_its_name_or_by_a_table_with_its_kind() {
    let flat: Config = toml::from_str("[backends]\nboot = \"bos\"\npower = \"none\"\n").unwrap();
    let tables: Config =
        toml::from_str("[backends.boot]\nkind = \"bos\"\n[backends.power]\nkind = \"none\"\n")
            .unwrap();
    assert_eq!(flat, tables);
    assert_eq!(tables.backends.boot, BootBackend::Bos);
    assert_eq!(tables.backends.power, Some(PowerBackend::None));
    let inline: Config = toml::from_str("[backends]\ninventory = { kind = \"file\" }\n").unwrap();
    assert_eq!(inline.backends.inventory, InventoryBackend::File);
    for (text, wanted) in [
        (
            "[backends.boot]\nkind = \"pxe\"\n",
            "backends.boot: \"pxe\" is not one of sim, bos, bos-v1, slurm-reboot, kadeploy, cyclecloud",
        ),
        (
            "[backends.workload_manager]\nkind = \"pbs\"\n",
            "backends.workload_manager: \"pbs\" is not one of sim, slurm, none",
        ),
        (
            "[backends.boot]\nkind = \"bos\"\ntenant = \"x\"\n",
            "tenant",
        ),
        ("[backends.boot]\n", "kind"),
    ] {
        let error = toml::from_str::<Config>(text).unwrap_err().to_string();
        assert!(error.contains(wanted), "{text}: {error}");
    }
}

#[test]
fn server_limits_and_allowed_probe_hosts_are_read_and_checked() {
    let defaults = Config::default();
    assert_eq!(defaults.server.max_connections, 1024);
    assert_eq!(defaults.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(defaults.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(defaults.server.dry_runs_at_once, 2);
    assert_eq!(defaults.health.allowed_http_hosts, ["{node}"]);
    let config: Config = toml::from_str(
        "[server]\nmax_connections = 50\nheader_read_timeout = \"2s\"\nidle_timeout = \"5s\"\n\
         request_timeout = \"20s\"\ndry_runs_at_once = 4\ndry_run_timeout = \"3s\"\n\
         [health]\nallowed_http_hosts = [\"{node}\", \"*.mgmt.example.org\", \"monitor.example.org\"]\n",
    )
    .unwrap();
    config.check().unwrap();
    let limits = config.server.limits();
    assert_eq!(limits.max_connections, 50);
    assert_eq!(limits.header_read_timeout, Duration::from_secs(2));
    assert_eq!(limits.idle_timeout, Duration::from_secs(5));
    assert_eq!(limits.request_timeout, Duration::from_secs(20));
    assert_eq!(limits.dry_runs_at_once, 4);
    assert_eq!(limits.dry_run_timeout, Duration::from_secs(3));
    for (text, key) in [
        ("[server]\nmax_connections = 0\n", "server.max_connections"),
        (
            "[server]\ndry_runs_at_once = 0\n",
            "server.dry_runs_at_once",
        ),
        ("[server]\nidle_timeout = \"0s\"\n", "server.idle_timeout"),
        (
            "[server]\nheader_read_timeout = \"0s\"\n",
            "server.header_read_timeout",
        ),
        (
            "[health]\nallowed_http_hosts = [\"http://monitor.example.org/\"]\n",
            "health.allowed_http_hosts",
        ),
        (
            "[health]\nallowed_http_hosts = [\"mon*.example.org\"]\n",
            "health.allowed_http_hosts",
        ),
    ] {
        let config: Config = toml::from_str(text).unwrap();
        let error = config.check().unwrap_err().to_string();
        assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
    }
}

#[test]
fn jwks_url_settings_are_read_and_checked() {
    let config: Config = toml::from_str(
        "[auth]\njwks_url = \"https://keycloak.local/realms/shasta/protocol/openid-connect/certs\"\n\
         jwks_ca_file = \"/etc/crus/ca.pem\"\njwks_timeout = \"5s\"\n\
         jwks_min_refetch_interval = \"2m\"\n",
    )
    .unwrap();
    config.check().unwrap();
    assert_eq!(config.auth.jwks_timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        config.auth.jwks_min_refetch_interval,
        Some(Duration::from_secs(120))
    );
    for (text, key) in [
        (
            "[auth]\njwks_url = \"keycloak.local/certs\"\n",
            "auth.jwks_url",
        ),
        (
            "[auth]\njwks_ca_file = \"/etc/crus/ca.pem\"\n",
            "auth.jwks_ca_file",
        ),
        (
            "[auth]\njwks_url = \"https://k/certs\"\njwks_timeout = \"0s\"\n",
            "auth.jwks_timeout",
        ),
    ] {
        let config: Config = toml::from_str(text).unwrap();
        let error = config.check().unwrap_err().to_string();
        assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
    }
}

#[test]
fn the_simulated_port_fault_rate_is_read_and_checked() {
    let config: Config = toml::from_str("[sim]\nport_fault_rate = 0.2\n").unwrap();
    config.check().unwrap();
    assert_eq!(config.sim.port_fault_rate, 0.2);
    let config: Config = toml::from_str("[sim]\nport_fault_rate = 1.5\n").unwrap();
    let error = config.check().unwrap_err().to_string();
    assert_eq!(error, "sim.port_fault_rate: 1.5 is not between 0 and 1");
}

#[test]
fn the_simulated_hang_rate_is_read_and_checked_with_the_failure_rate() {
    let config: Config = toml::from_str("[sim]\nnever_return_rate = 0.1\n").unwrap();
    config.check().unwrap();
    assert_eq!(config.sim.never_return_rate, 0.1);
    let config: Config =
        toml::from_str("[sim]\nfail_rate = 0.6\nnever_return_rate = 0.5\n").unwrap();
    let error = config.check().unwrap_err().to_string();
    assert!(
        error.starts_with("sim.never_return_rate: sim.fail_rate + sim.never_return_rate is 1.1"),
        "{error}"
    );
}

#[test]
fn slurm_reboot_settings_are_read_and_checked() {
    let config: Config = toml::from_str(
        "[backends]\nboot = \"slurm-reboot\"\n\
         [slurm_reboot]\ntemplates = [\"compute-2.5\"]\nclock_skew = \"5s\"\n",
    )
    .unwrap();
    config.check().unwrap();
    assert_eq!(config.slurm_reboot.templates, ["compute-2.5"]);
    assert_eq!(config.slurm_reboot.clock_skew, Duration::from_secs(5));
    assert_eq!(
        Config::default().slurm_reboot.clock_skew,
        Duration::from_secs(10)
    );

    let unknown = toml::from_str::<Config>("[slurm_reboot]\nimage = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("image"), "{unknown}");
    let config: Config = toml::from_str("[slurm_reboot]\ntemplates = [\"compute 2.5\"]\n").unwrap();
    let error = config.check().unwrap_err().to_string();
    assert!(error.starts_with("slurm_reboot.templates: "), "{error}");
}

#[test]
fn power_and_redfish_settings_are_read_and_checked() {
    let config: Config = toml::from_str(
        "[backends]\npower = \"redfish\"\n\
         [redfish]\nbmc_url = \"https://{bmc}\"\nsystem = \"Node{n}\"\n\
         username = \"root\"\npassword_file = \"/etc/crus/bmc\"\ntimeout = \"5s\"\n\
         [redfish.nodes]\nx1n0 = { bmc_url = \"https://10.0.0.1\", system = \"Self\" }\n",
    )
    .unwrap();
    config.check().unwrap();
    let redfish = config.redfish.unwrap();
    assert_eq!(redfish.auth.name(), "basic");
    assert_eq!(redfish.timeout, Duration::from_secs(5));
    assert_eq!(redfish.nodes["x1n0"].system.as_deref(), Some("Self"));
    assert_eq!(Config::default().backends.power, None);

    let unknown = toml::from_str::<Config>("[backends]\npower = \"ipmi\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains(
            "backends.power: \"ipmi\" is not one of none, sim, redfish, cyclecloud, kadeploy"
        ),
        "{unknown}"
    );
    for (text, key) in [
        ("[backends]\npower = \"redfish\"\n", "redfish"),
        ("[redfish]\nbmc_url = \"https://{bmc}\"\n", "redfish.auth"),
        ("[redfish]\nauth = \"none\"\n", "redfish.bmc_url"),
        (
            "[redfish]\nauth = \"none\"\nbmc_url = \"bmc\"\n",
            "redfish.bmc_url",
        ),
    ] {
        let config: Config = toml::from_str(text).unwrap();
        let error = config.check().unwrap_err().to_string();
        assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
    }
    // The example's [redfish] block, uncommented, is valid too.
    let example = include_str!("../../../docs/crus.example.toml");
    let block: String = example
        .lines()
        .skip_while(|line| *line != "# [redfish]")
        .take_while(|line| line.starts_with('#'))
        .map(|line| format!("{}\n", line.trim_start_matches("# ")))
        .collect();
    assert!(block.contains("[redfish.nodes]"), "{block}");
    let config: Config = toml::from_str(&block).unwrap();
    config.check().unwrap();
    assert_eq!(config.redfish.unwrap().nodes.len(), 1);

    let unknown = toml::from_str::<Config>("[redfish]\npassword = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("password"), "{unknown}");
}

/// The example's commented-out block that starts at the line `# [{section}]`,
/// one level of comment off (its notes stay comments).
fn example_block(section: &str) -> String {
    let example = include_str!("../../../docs/crus.example.toml");
    let header = format!("# [{section}]");
    let block: String = example
        .lines()
        .skip_while(|line| *line != header)
        .take_while(|line| line.starts_with('#'))
        .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
        .collect();
    assert!(!block.is_empty(), "no {header} in the example");
    block
}

#[test]
fn the_examples_hsm_and_bos_blocks_are_valid() {
    // The [hsm] block runs on into the [bos] block.
    let text = format!(
        "[backends]\ninventory = \"hsm\"\nboot = \"bos\"\n{}",
        example_block("hsm")
    );
    let config: Config = toml::from_str(&text).unwrap();
    config.check().unwrap();
    let bos = config.bos.as_ref().unwrap();
    assert_eq!(bos.tenant.as_deref(), Some("vcluster-blue"));
    assert_eq!(bos.boot_timeout, Some(Duration::from_secs(40 * 60)));
    assert_eq!(config.default_boot_timeout(), Duration::from_secs(40 * 60));
    // `[hsm]` has no tenant key at all (`HsmSettings` refuses one by name).
    assert!(config.hsm.is_some());
}

#[test]
fn the_examples_kadeploy_and_cyclecloud_blocks_are_valid() {
    let text = format!(
        "[backends]\ninventory = \"cyclecloud\"\nboot = \"kadeploy\"\n{}{}",
        example_block("kadeploy"),
        example_block("cyclecloud")
    );
    let config: Config = toml::from_str(&text).unwrap();
    config.check().unwrap();
    let kadeploy = config.kadeploy.unwrap();
    assert_eq!(
        kadeploy.ssh_authorized_keys.as_deref(),
        Some("/home/crus/.ssh/authorized_keys")
    );
    assert_eq!(kadeploy.block_device.as_deref(), Some("/dev/sda"));
    let cyclecloud = config.cyclecloud.unwrap();
    assert!(cyclecloud.password_file.is_some() && cyclecloud.password_env.is_none());
    assert!(cyclecloud.state_file.is_some());
}

#[test]
fn kadeploy_settings_are_read_and_checked() {
    let config: Config = toml::from_str(
        "[backends]\nboot = \"kadeploy\"\n\
         [kadeploy]\nbase_url = \"https://api.grid5000.fr/4.0/sites/nantes\"\nuser = \"crus\"\n\
         username = \"jdoe\"\npassword_file = \"/etc/crus/g5k\"\ntimeout = \"1m\"\n\
         host_domain = \"nantes.grid5000.fr\"\ndeploy_partition = \"3\"\n",
    )
    .unwrap();
    config.check().unwrap();
    let kadeploy = config.kadeploy.unwrap();
    assert_eq!(kadeploy.timeout, Duration::from_secs(60));
    assert_eq!(kadeploy.retries, 3);
    assert_eq!(kadeploy.deploy_partition.as_deref(), Some("3"));

    for (text, key) in [
        ("[backends]\nboot = \"kadeploy\"\n", "kadeploy"),
        ("[kadeploy]\nbase_url = \"api\"\n", "kadeploy.base_url"),
        (
            "[kadeploy]\nbase_url = \"http://k\"\nusername = \"jdoe\"\n",
            "kadeploy.username",
        ),
        (
            "[kadeploy]\nbase_url = \"http://k\"\ntimeout = \"0s\"\n",
            "kadeploy.timeout",
        ),
        // The keys themselves rather than where they are.
        (
            "[kadeploy]\nbase_url = \"http://k\"\nssh_authorized_keys = \"ssh-ed25519 AAAA crus@f\"\n",
            "kadeploy.ssh_authorized_keys",
        ),
        (
            "[kadeploy]\nbase_url = \"http://k\"\nssh_authorized_keys = \"ftp://f/keys\"\n",
            "kadeploy.ssh_authorized_keys",
        ),
        (
            "[kadeploy]\nbase_url = \"http://k\"\npower_base_url = \"k/kadeploy\"\n",
            "kadeploy.power_base_url",
        ),
        ("[backends]\npower = \"kadeploy\"\n", "kadeploy"),
    ] {
        let config: Config = toml::from_str(text).unwrap();
        let error = config.check().unwrap_err().to_string();
        assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
        if key == "kadeploy" {
            let port = if text.contains("power") {
                "backends.power"
            } else {
                "backends.boot"
            };
            assert!(error.contains(port), "{error}");
        }
    }
    // The authorized_keys location is kept as it is, under its name or
    // its earlier one, and no file is read: Kadeploy fetches it.
    for key in ["ssh_authorized_keys", "ssh_authorized_keys_file"] {
        for location in [
            "/home/crus/.ssh/authorized_keys",
            "server:///etc/kadeploy3/keys/crus",
            "https://frontend.nantes.grid5000.fr/~crus/authorized_keys",
        ] {
            let config: Config = toml::from_str(&format!(
                "[kadeploy]\nbase_url = \"http://k\"\n{key} = \"{location}\"\n"
            ))
            .unwrap();
            config.check().unwrap();
            assert_eq!(
                config.kadeploy.unwrap().ssh_authorized_keys.as_deref(),
                Some(location)
            );
        }
    }
    // Kadeploy's power for escalation, with the boots of another backend.
    let config: Config = toml::from_str(
        "[backends]\npower = \"kadeploy\"\n\
         [kadeploy]\nbase_url = \"https://api.grid5000.fr/4.0/sites/nantes\"\n\
         power_base_url = \"https://api.grid5000.fr/4.0/sites/nantes/kadeploy\"\n",
    )
    .unwrap();
    config.check().unwrap();
    let unknown =
        toml::from_str::<Config>("[kadeploy]\nbase_url = \"http://k\"\npassword = \"x\"\n")
            .unwrap_err()
            .to_string();
    assert!(unknown.contains("password"), "{unknown}");
}

#[test]
fn cyclecloud_settings_are_read_checked_and_default_the_state_file() {
    let config: Config = toml::from_str(
        "[server]\ndb = \"/var/lib/crus/crus.db\"\n\
         [backends]\ninventory = \"cyclecloud\"\npower = \"cyclecloud\"\nboot = \"cyclecloud\"\n\
         [cyclecloud]\nbase_url = \"https://cc.example.com\"\ncluster = \"hpc\"\n\
         username = \"crus\"\npassword_env = \"CC_PASSWORD\"\npoll_interval = \"2s\"\n",
    )
    .unwrap();
    config.check().unwrap();
    assert_eq!(
        config.cyclecloud_ports(),
        ["backends.inventory", "backends.power", "backends.boot"]
    );
    let cyclecloud = config.cyclecloud.as_ref().unwrap();
    assert_eq!(cyclecloud.poll_interval, Duration::from_secs(2));
    assert_eq!(cyclecloud.poll_timeout, Duration::from_secs(15 * 60));
    assert!(!cyclecloud.insecure);
    assert_eq!(
        cyclecloud.state_file_beside(&config.server.db),
        Path::new("/var/lib/crus/cyclecloud-groups.json")
    );

    let section =
        "[cyclecloud]\nbase_url = \"https://cc\"\ncluster = \"hpc\"\nusername = \"crus\"\n";
    for (text, key) in [
        (
            "[backends]\npower = \"cyclecloud\"\n".to_string(),
            "cyclecloud",
        ),
        (section.to_string(), "cyclecloud.password_file"),
        (
            format!("{section}password_file = \"/p\"\npassword_env = \"P\"\n"),
            "cyclecloud.password_file",
        ),
        (
            format!("{section}password_env = \"P\"\npoll_timeout = \"0s\"\n"),
            "cyclecloud.poll_timeout",
        ),
        (
            "[cyclecloud]\nbase_url = \"https://cc\"\ncluster = \"\"\nusername = \"crus\"\npassword_env = \"P\"\n".to_string(),
            "cyclecloud.cluster",
        ),
    ] {
        let config: Config = toml::from_str(&text).unwrap();
        let error = config.check().unwrap_err().to_string();
        assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
        if key == "cyclecloud" {
            assert!(error.contains("backends.power"), "{error}");
        }
    }
    let error = toml::from_str::<Config>("[backends]\npower = \"ipmi\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("cyclecloud"), "{error}");
}

#[test]
fn store_and_etcd_settings_are_read_and_checked() {
    assert_eq!(Config::default().store.kind, StoreKind::Sqlite);
    let config: Config = toml::from_str(
        "[store]\nkind = \"etcd\"\n\
         [etcd]\nendpoints = [\"http://10.0.0.1:2379\", \"https://10.0.0.2:2379\"]\n\
         lease_ttl = \"3s\"\nuser = \"crus\"\npassword_file = \"/etc/crus/etcd\"\n",
    )
    .unwrap();
    assert_eq!(config.store.kind, StoreKind::Etcd);
    assert_eq!(config.etcd.prefix, "/crus/");
    assert_eq!(config.etcd.keep_alive_interval(), Duration::from_secs(1));
    #[cfg(feature = "etcd")]
    {
        config.check().unwrap();
        for (text, key) in [
            ("[store]\nkind = \"etcd\"\n", "etcd.endpoints"),
            (
                "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"10.0.0.1:2379\"]\n",
                "etcd.endpoints",
            ),
            (
                "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"http://a:1\"]\nlease_ttl = \"1500ms\"\n",
                "etcd.lease_ttl",
            ),
            (
                "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"http://a:1\"]\nkeep_alive = \"10s\"\n",
                "etcd.keep_alive",
            ),
            (
                "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"http://a:1\"]\ncert_file = \"c.pem\"\n",
                "etcd.cert_file",
            ),
            (
                "[store]\nkind = \"etcd\"\n[etcd]\nendpoints = [\"http://a:1\"]\nuser = \"crus\"\n",
                "etcd.user",
            ),
        ] {
            let config: Config = toml::from_str(text).unwrap();
            let error = config.check().unwrap_err().to_string();
            assert!(error.starts_with(&format!("{key}: ")), "{text}: {error}");
        }
    }
    #[cfg(not(feature = "etcd"))]
    {
        let error = config.check().unwrap_err().to_string();
        assert!(error.starts_with("store.kind: "), "{error}");
        assert!(error.contains("--features etcd"), "{error}");
    }
    // The [etcd] section is only checked when it is used.
    let unused: Config = toml::from_str("[etcd]\nendpoints = []\n").unwrap();
    unused.check().unwrap();
    let unknown = toml::from_str::<Config>("[store]\nkind = \"redis\"\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("redis"), "{unknown}");
    let unknown = toml::from_str::<Config>("[etcd]\npassword = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("password"), "{unknown}");
    // The example's [etcd] block, uncommented, is valid too.
    let block = example_block("etcd");
    let config: Config = toml::from_str(&format!("[store]\nkind = \"etcd\"\n{block}")).unwrap();
    assert_eq!(config.etcd.endpoints.len(), 3);
    assert_eq!(config.etcd.keep_alive, Some(Duration::from_secs(1)));
    #[cfg(feature = "etcd")]
    config.check().unwrap();
}

#[test]
fn the_slurm_cluster_example_is_valid() {
    let text = include_str!("../../../docs/examples/slurm-cluster.toml");
    let config: Config = toml::from_str(text).unwrap();
    config.check().unwrap();
    assert_eq!(config.backends.inventory.name(), "file");
    assert_eq!(config.backends.workload_manager.name(), "slurm");
    assert_eq!(config.backends.boot.name(), "slurm-reboot");
    assert_eq!(config.slurm.node_names.name(), "identity");
    assert!(config.slurm.conf.is_some());
    assert!(!config.slurm_reboot.templates.is_empty());
    assert!(config.auth.tokens_file.is_some());
    // The boot timeout is the reboot backend's, not a server-wide one.
    assert_eq!(config.rollout.boot_timeout, None);
    assert_eq!(
        config.slurm_reboot.boot_timeout,
        Some(Duration::from_secs(20 * 60))
    );
    assert_eq!(config.default_boot_timeout(), Duration::from_secs(20 * 60));
}

#[test]
fn each_backends_settings_become_its_configuration_naming_the_key_that_cannot() {
    use crus_backends::redfish::RedfishAuth;
    use crus_backends::service::TokenSource;

    let hsm = |keys: &str| -> HsmSettings {
        let config: Config =
            toml::from_str(&format!("[hsm]\nbase_url = \"https://h\"\n{keys}")).unwrap();
        config.hsm.unwrap()
    };
    let file = hsm("token_file = \"/run/token\"\n")
        .to_config("hsm")
        .unwrap();
    assert_eq!(file.token, TokenSource::File("/run/token".into()));
    assert_eq!(file.timeout, Duration::from_secs(30));
    let none = hsm("").to_config("hsm").unwrap();
    assert_eq!(none.token, TokenSource::None);
    for (keys, key) in [
        ("token_file = \"/t\"\ntoken_env = \"T\"\n", "hsm"),
        (
            "oauth2_token_url = \"https://k/token\"\n",
            "hsm.oauth2_client_id",
        ),
        (
            "oauth2_token_url = \"https://k/token\"\noauth2_client_id = \"c\"\n",
            "hsm.oauth2_client_secret_file",
        ),
        (
            "oauth2_token_url = \"https://k/token\"\noauth2_client_id = \"c\"\n\
             oauth2_client_secret_file = \"/nonexistent/secret\"\n",
            "hsm.oauth2_client_secret_file",
        ),
    ] {
        let error = hsm(keys).to_config("hsm").unwrap_err();
        assert_eq!(error.key, key, "{keys}: {error}");
    }

    let redfish: Config =
        toml::from_str("[redfish]\nauth = \"none\"\nbmc_url = \"https://{bmc}\"\n").unwrap();
    let redfish = redfish.redfish.unwrap().to_config().unwrap();
    assert_eq!(redfish.auth, RedfishAuth::None);
    assert!(redfish.rule.is_some());
    let missing: Config = toml::from_str(
        "[redfish]\nauth = \"session\"\nbmc_url = \"https://{bmc}\"\nusername = \"root\"\n\
         password_file = \"/nonexistent/bmc\"\n",
    )
    .unwrap();
    let error = missing.redfish.unwrap().to_config().unwrap_err();
    assert_eq!(error.key, "redfish.password_file");

    let cyclecloud: Config = toml::from_str(
        "[cyclecloud]\nbase_url = \"https://cc\"\ncluster = \"hpc\"\nusername = \"crus\"\n\
         password_env = \"CC_PASSWORD\"\n",
    )
    .unwrap();
    let cyclecloud = cyclecloud
        .cyclecloud
        .unwrap()
        .to_config(Path::new("/var/lib/crus/crus.db"))
        .unwrap();
    assert_eq!(
        cyclecloud.state_file.as_deref(),
        Some(Path::new("/var/lib/crus/cyclecloud-groups.json"))
    );

    let slurm: Config = toml::from_str("[slurm]\nnode_names = \"nid\"\n").unwrap();
    let error = slurm.slurm.to_config(None).unwrap_err();
    assert_eq!(error.key, "slurm.node_names");
}

#[test]
fn server_wide_gates_are_read_and_a_bad_one_names_its_mistake() {
    let config: Config = toml::from_str(
        r#"
[alert_gates]
timeout = "5s"
allowed_hosts = ["*.example.org"]

[[gates]]
alertmanager = "http://am.example.org:9093"
filter = ["severity=critical"]

[[gates]]
prometheus = "http://prom.example.org:9090"
query = "up == 0"
"#,
    )
    .unwrap();
    config.check().unwrap();
    assert_eq!(config.gates.len(), 2);
    assert_eq!(config.alert_gates.timeout, Duration::from_secs(5));
    let policy = super::super::controller_config(&config).default_policy;
    assert_eq!(policy.gates, config.gates);

    let both = toml::from_str::<Config>(
        "[[gates]]\nalertmanager = \"http://a\"\nprometheus = \"http://p\"\nquery = \"x\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        both.contains("not both") && both.contains("gates"),
        "{both}"
    );
    // No server-wide max_hold by default: a hold lasts while a gate blocks.
    assert_eq!(policy.max_hold, None);
    let bounded: Config = toml::from_str("[rollout]\nmax_hold = \"4h\"\n").unwrap();
    bounded.check().unwrap();
    let policy = super::super::controller_config(&bounded).default_policy;
    assert_eq!(policy.max_hold, Some(Duration::from_secs(4 * 3600)));
    let never: Config = toml::from_str("[rollout]\nmax_hold = \"0s\"\n").unwrap();
    let error = never.check().unwrap_err().to_string();
    assert!(error.contains("rollout.max_hold"), "{error}");

    let zero: Config = toml::from_str("[alert_gates]\ntimeout = \"0s\"\n").unwrap();
    let error = zero.check().unwrap_err().to_string();
    assert!(error.contains("alert_gates.timeout"), "{error}");
}

#[test]
fn an_unknown_redfish_auth_or_slurm_node_names_is_refused_while_the_file_is_read() {
    // Refused by serde, naming the key and listing what it takes, before any
    // check runs (they were strings checked afterwards).
    for (text, wanted) in [
        (
            "[redfish]\nauth = \"digest\"\n",
            "redfish.auth: \"digest\" is not one of none, basic, session",
        ),
        (
            "[slurm]\nnode_names = \"xname\"\n",
            "slurm.node_names: \"xname\" is not one of identity, nid",
        ),
    ] {
        let error = toml::from_str::<Config>(text).unwrap_err().to_string();
        assert!(error.contains(wanted), "{text}: {error}");
    }
    // Every spelling the keys took still reads.
    for auth in ["none", "basic", "session"] {
        let config: Config = toml::from_str(&format!("[redfish]\nauth = {auth:?}\n")).unwrap();
        assert_eq!(config.redfish.unwrap().auth.name(), auth);
    }
    for names in ["identity", "nid"] {
        let config: Config = toml::from_str(&format!("[slurm]\nnode_names = {names:?}\n")).unwrap();
        assert_eq!(config.slurm.node_names.name(), names);
    }
}

#[test]
fn every_sim_trace_spelling_reads_as_its_kind() {
    use crus_backends::sim::SimTrace;
    for (name, wanted) in [
        ("none", SimTrace::None),
        ("nasa", SimTrace::Nasa),
        ("synthetic", SimTrace::Synthetic),
        (
            "/var/lib/traces/site.swf",
            SimTrace::SwfFile("/var/lib/traces/site.swf".into()),
        ),
    ] {
        let config: Config = toml::from_str(&format!("[sim]\ntrace = {name:?}\n")).unwrap();
        assert_eq!(config.sim.trace, wanted, "{name}");
    }
    assert_eq!(Config::default().sim.trace, SimTrace::Synthetic);
}

#[test]
fn hook_commands_are_off_unless_the_site_allows_them() {
    assert!(!Config::default().hooks.allow_commands);
    let example: Config = toml::from_str(include_str!("../../../docs/crus.example.toml")).unwrap();
    assert!(!example.hooks.allow_commands);
    let allowed: Config = toml::from_str("[hooks]\nallow_commands = true\n").unwrap();
    assert!(allowed.hooks.allow_commands);
    let unknown = toml::from_str::<Config>("[hooks]\nallow_command = true\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("allow_command"), "{unknown}");
}

#[test]
fn the_boot_rate_in_crus_toml_is_every_sessions_default_and_zero_is_refused() {
    let unset: Config = toml::from_str("").unwrap();
    let policy = super::super::controller_config(&unset).default_policy;
    assert_eq!(policy.max_boots_per_minute, None, "no rate unless asked");
    let paced: Config = toml::from_str("[rollout]\nmax_boots_per_minute = 20\n").unwrap();
    paced.check().unwrap();
    let policy = super::super::controller_config(&paced).default_policy;
    assert_eq!(policy.max_boots_per_minute, Some(20));
    let zero: Config = toml::from_str("[rollout]\nmax_boots_per_minute = 0\n").unwrap();
    let error = zero.check().unwrap_err().to_string();
    assert!(error.contains("rollout.max_boots_per_minute"), "{error}");
    let misspelt = toml::from_str::<Config>("[rollout]\nmax_boot_per_minute = 20\n")
        .unwrap_err()
        .to_string();
    assert!(misspelt.contains("max_boot_per_minute"), "{misspelt}");
}
