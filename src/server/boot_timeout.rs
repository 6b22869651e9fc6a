//! How long a node may take to come back from its boot, when the session's
//! policy does not say: a default that fits the boot service.
//!
//! A boot service takes as long as it takes: BOS waits up to its own
//! `max_boot_wait_time` (20 minutes) for a node to boot, then configures it
//! with CFS; a Kadeploy deployment reboots each node twice around an image
//! copy; CycleCloud terminates and starts a fresh virtual machine. A single
//! server-wide default shorter than that fails nodes the service is still
//! booting. So each boot backend's section has a `boot_timeout`, with a
//! default chosen for that service, and a session's boot timeout is, first
//! that applies:
//!
//! 1. the session's own `policy.boot_timeout`; then the runtime options
//!    (`PATCH /options`): `default_policy.boot_timeout`, then
//!    `boot_timeouts.<backend>` (changed live, so they win over the file);
//! 2. `rollout.boot_timeout` (or `--boot-timeout`), when set: an explicit
//!    server-wide choice wins over the backends' defaults;
//! 3. the boot backend's section's `boot_timeout`;
//! 4. that backend's default (`DEFAULT_BOOT_TIMEOUT` of its settings type,
//!    e.g. [`BosSettings::DEFAULT_BOOT_TIMEOUT`]).
//!
//! Each section checks its own `boot_timeout`; this file only picks the
//! one that applies.
//!
//! `GET /session/{id}` shows the one applied, in `policy.boot_timeout`.

use std::time::Duration;

use crus_backends::bos::BosSettings;
use crus_backends::cyclecloud::CycleCloudSettings;
use crus_backends::kadeploy::KadeploySettings;

use super::config::{BootBackend, Config};

impl Config {
    /// The boot timeout of sessions whose policy sets none (see the module
    /// documentation for the order); each backend's settings hold its own
    /// default.
    pub fn default_boot_timeout(&self) -> Duration {
        if let Some(timeout) = self.rollout.boot_timeout {
            return timeout;
        }
        match self.backends.boot {
            BootBackend::Bos | BootBackend::BosV1 => self
                .bos
                .as_ref()
                .map_or(BosSettings::DEFAULT_BOOT_TIMEOUT, BosSettings::boot_timeout),
            BootBackend::Kadeploy => self.kadeploy.as_ref().map_or(
                KadeploySettings::DEFAULT_BOOT_TIMEOUT,
                KadeploySettings::boot_timeout,
            ),
            BootBackend::CycleCloud => self.cyclecloud.as_ref().map_or(
                CycleCloudSettings::DEFAULT_BOOT_TIMEOUT,
                CycleCloudSettings::boot_timeout,
            ),
            BootBackend::SlurmReboot => self.slurm_reboot.boot_timeout(),
            BootBackend::Sim => self.sim.boot_timeout(),
        }
    }

    /// The name the server options (`boot_timeouts` of `PATCH /options`)
    /// give the boot backend in use: its section's name (BOS v1 shares `bos`).
    pub fn boot_backend_option_name(&self) -> &'static str {
        match self.backends.boot {
            BootBackend::Bos | BootBackend::BosV1 => "bos",
            BootBackend::Kadeploy => "kadeploy",
            BootBackend::CycleCloud => "cyclecloud",
            BootBackend::SlurmReboot => "slurm_reboot",
            BootBackend::Sim => "sim",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ConfigError;
    use crus_backends::sim::SimSettings;
    use crus_backends::slurm::SlurmRebootSettings;

    const BOS_DEFAULT: Duration = BosSettings::DEFAULT_BOOT_TIMEOUT;
    const KADEPLOY_DEFAULT: Duration = KadeploySettings::DEFAULT_BOOT_TIMEOUT;
    const CYCLECLOUD_DEFAULT: Duration = CycleCloudSettings::DEFAULT_BOOT_TIMEOUT;
    const SLURM_REBOOT_DEFAULT: Duration = SlurmRebootSettings::DEFAULT_BOOT_TIMEOUT;
    const SIM_DEFAULT: Duration = SimSettings::DEFAULT_BOOT_TIMEOUT;

    fn config(text: &str) -> Config {
        let config: Config = toml::from_str(text).unwrap();
        config.check().unwrap();
        config
    }

    const BOS: &str = "[bos]\nbase_url = \"https://api-gw/apis/bos\"\n";
    const KADEPLOY: &str = "[kadeploy]\nbase_url = \"https://kadeploy\"\nuser = \"crus\"\n";
    const CYCLECLOUD: &str = "[cyclecloud]\nbase_url = \"https://cc\"\ncluster = \"hpc\"\nusername = \"crus\"\npassword_env = \"P\"\n";

    #[test]
    fn each_boot_backend_has_its_default() {
        for (text, expected) in [
            (String::new(), SIM_DEFAULT),
            (format!("[backends]\nboot = \"bos\"\n{BOS}"), BOS_DEFAULT),
            (format!("[backends]\nboot = \"bos-v1\"\n{BOS}"), BOS_DEFAULT),
            (
                format!("[backends]\nboot = \"kadeploy\"\n{KADEPLOY}"),
                KADEPLOY_DEFAULT,
            ),
            (
                format!("[backends]\nboot = \"cyclecloud\"\n{CYCLECLOUD}"),
                CYCLECLOUD_DEFAULT,
            ),
            (
                "[backends]\nboot = \"slurm-reboot\"\n".to_string(),
                SLURM_REBOOT_DEFAULT,
            ),
        ] {
            assert_eq!(config(&text).default_boot_timeout(), expected, "{text}");
        }
        // Longer than what BOS itself waits for a boot.
        assert!(BOS_DEFAULT > Duration::from_secs(20 * 60));
    }

    #[test]
    fn each_section_sets_its_backends_timeout_and_only_that_one() {
        for (text, minutes) in [
            (
                format!("[backends]\nboot = \"bos\"\n{BOS}boot_timeout = \"45m\"\n"),
                45,
            ),
            (
                format!("[backends]\nboot = \"bos-v1\"\n{BOS}boot_timeout = \"50m\"\n"),
                50,
            ),
            (
                format!("[backends]\nboot = \"kadeploy\"\n{KADEPLOY}boot_timeout = \"25m\"\n"),
                25,
            ),
            (
                format!("[backends]\nboot = \"cyclecloud\"\n{CYCLECLOUD}boot_timeout = \"20m\"\n"),
                20,
            ),
            (
                "[backends]\nboot = \"slurm-reboot\"\n[slurm_reboot]\nboot_timeout = \"15m\"\n"
                    .to_string(),
                15,
            ),
            ("[sim]\nboot_timeout = \"7m\"\n".to_string(), 7),
            // Another backend's section does not count.
            (
                format!("[sim]\nboot_timeout = \"7m\"\n[backends]\nboot = \"bos\"\n{BOS}"),
                40,
            ),
        ] {
            assert_eq!(
                config(&text).default_boot_timeout(),
                Duration::from_secs(minutes * 60),
                "{text}"
            );
        }
    }

    #[test]
    fn an_explicit_rollout_boot_timeout_wins_over_the_backends() {
        let text = format!(
            "[rollout]\nboot_timeout = \"12m\"\n[backends]\nboot = \"bos\"\n{BOS}boot_timeout = \"45m\"\n"
        );
        assert_eq!(
            config(&text).default_boot_timeout(),
            Duration::from_secs(12 * 60)
        );
    }

    #[test]
    fn bad_boot_timeouts_and_misplaced_bos_keys_name_the_key() {
        for (text, key) in [
            (
                "[rollout]\nboot_timeout = \"0s\"\n".to_string(),
                "rollout.boot_timeout",
            ),
            (format!("{BOS}boot_timeout = \"0s\"\n"), "bos.boot_timeout"),
            (
                format!("{KADEPLOY}boot_timeout = \"0s\"\n"),
                "kadeploy.boot_timeout",
            ),
            (
                format!("{CYCLECLOUD}boot_timeout = \"0s\"\n"),
                "cyclecloud.boot_timeout",
            ),
            (
                "[slurm_reboot]\nboot_timeout = \"0s\"\n".to_string(),
                "slurm_reboot.boot_timeout",
            ),
            (
                "[sim]\nboot_timeout = \"0s\"\n".to_string(),
                "sim.boot_timeout",
            ),
            (
                format!("[backends]\nboot = \"bos-v1\"\n{BOS}tenant = \"vcluster-blue\"\n"),
                "bos.tenant",
            ),
            (format!("{BOS}tenant = \"blue team\"\n"), "bos.tenant"),
            ("[backends]\nboot = \"bos-v1\"\n".to_string(), "bos"),
        ] {
            let parsed: Config = toml::from_str(&text).unwrap();
            match parsed.check() {
                Err(ConfigError::Invalid { key: named, .. }) => assert_eq!(named, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        // `[hsm]` has no tenant and boots nothing: both keys are refused by
        // name as keys HSM does not have.
        for key in ["tenant = \"blue\"", "boot_timeout = \"1h\""] {
            let text = format!("[hsm]\nbase_url = \"https://h\"\n{key}\n");
            let error = toml::from_str::<Config>(&text).unwrap_err().to_string();
            let name = key.split(' ').next().unwrap();
            assert!(
                error.contains(&format!("unknown field `{name}`")) && error.contains("base_url"),
                "{text}: {error}"
            );
        }
        // A tenant with BOS v2, and an empty one with v1 (BOS's "no tenant").
        let v2 = config(&format!(
            "[backends]\nboot = \"bos\"\n{BOS}tenant = \"vcluster-blue\"\n"
        ));
        assert_eq!(v2.bos.unwrap().tenant.as_deref(), Some("vcluster-blue"));
        config(&format!(
            "[backends]\nboot = \"bos-v1\"\n{BOS}tenant = \"\"\n"
        ));
    }
}
