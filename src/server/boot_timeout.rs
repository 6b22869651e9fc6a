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
//! 4. that backend's default below.
//!
//! `GET /session/{id}` shows the one applied, in `policy.boot_timeout`.

use std::time::Duration;

use super::config::{BootBackend, Config, ConfigError};

/// BOS (v2 and v1): its `max_boot_wait_time` of 20 minutes from power-on,
/// after a graceful then forceful power-off of up to several minutes, and
/// then the CFS configuration of the node (commonly 10 to 15 minutes).
pub const BOS_DEFAULT: Duration = Duration::from_secs(40 * 60);

/// Kadeploy: a deployment reboots the node into the deployment environment,
/// writes the image, and reboots it into the image; Kadeploy's own step
/// timeouts allow several minutes per reboot and image copies of large
/// environments take minutes more.
pub const KADEPLOY_DEFAULT: Duration = Duration::from_secs(30 * 60);

/// CycleCloud: a reimage terminates the virtual machine and starts a fresh one;
/// the allocation, the boot and CycleCloud's node preparation (cluster-init)
/// commonly take 10 to 20 minutes.
pub const CYCLECLOUD_DEFAULT: Duration = Duration::from_secs(30 * 60);

/// Slurm's reboot: slurmctld marks a node DOWN ("reboot timed out") when it
/// has not come back within slurm.conf's `ResumeTimeout` (checked on a coarse
/// timer). crus's timeout should end later, so the node fails with Slurm's
/// verdict rather than crus's; sites that reboot through Slurm commonly set
/// `ResumeTimeout` between 10 and 30 minutes.
pub const SLURM_REBOOT_DEFAULT: Duration = Duration::from_secs(35 * 60);

/// The simulated cluster: its boots take `sim.boot_time` (4 minutes by
/// default, ±25%); this is what every session had before backends had their
/// own defaults.
pub const SIM_DEFAULT: Duration = Duration::from_secs(10 * 60);

impl Config {
    /// The boot timeout of sessions whose policy sets none (see the module
    /// documentation for the order).
    pub fn default_boot_timeout(&self) -> Duration {
        if let Some(timeout) = self.rollout.boot_timeout {
            return timeout;
        }
        let (configured, default) = match self.backends.boot {
            BootBackend::Bos | BootBackend::BosV1 => (
                self.bos.as_ref().and_then(|bos| bos.boot_timeout),
                BOS_DEFAULT,
            ),
            BootBackend::Kadeploy => (
                self.kadeploy
                    .as_ref()
                    .and_then(|kadeploy| kadeploy.boot_timeout),
                KADEPLOY_DEFAULT,
            ),
            BootBackend::CycleCloud => (
                self.cyclecloud
                    .as_ref()
                    .and_then(|cyclecloud| cyclecloud.boot_timeout),
                CYCLECLOUD_DEFAULT,
            ),
            BootBackend::SlurmReboot => (self.slurm_reboot.boot_timeout, SLURM_REBOOT_DEFAULT),
            BootBackend::Sim => (self.sim.boot_timeout, SIM_DEFAULT),
        };
        configured.unwrap_or(default)
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

    /// Every boot timeout key that is set is longer than zero.
    pub(super) fn check_boot_timeouts(&self) -> Result<(), ConfigError> {
        let keys = [
            ("rollout.boot_timeout", self.rollout.boot_timeout),
            (
                "bos.boot_timeout",
                self.bos.as_ref().and_then(|bos| bos.boot_timeout),
            ),
            (
                "kadeploy.boot_timeout",
                self.kadeploy
                    .as_ref()
                    .and_then(|kadeploy| kadeploy.boot_timeout),
            ),
            (
                "cyclecloud.boot_timeout",
                self.cyclecloud
                    .as_ref()
                    .and_then(|cyclecloud| cyclecloud.boot_timeout),
            ),
            ("slurm_reboot.boot_timeout", self.slurm_reboot.boot_timeout),
            ("sim.boot_timeout", self.sim.boot_timeout),
        ];
        match keys
            .into_iter()
            .find(|(_, timeout)| timeout.is_some_and(|timeout| timeout.is_zero()))
        {
            Some((key, _)) => Err(ConfigError::Invalid {
                key: key.into(),
                message: "must be longer than zero".into(),
            }),
            None => Ok(()),
        }
    }

    /// `[bos]`'s own keys are used where they can work: `tenant` and
    /// `boot_timeout` belong to `[bos]` (not `[hsm]`, which shares its
    /// type), and BOS v1 rejects every request that names a tenant.
    pub(super) fn check_bos_keys(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        if let Some(hsm) = &self.hsm {
            if hsm.tenant.is_some() {
                return Err(invalid(
                    "hsm.tenant",
                    "HSM has no tenant here; the tenant belongs in [bos]",
                ));
            }
            if hsm.boot_timeout.is_some() {
                return Err(invalid(
                    "hsm.boot_timeout",
                    "HSM does not boot nodes; set boot_timeout in the boot backend's section ([bos])",
                ));
            }
        }
        let tenant = self.bos.as_ref().and_then(|bos| bos.tenant.as_deref());
        if self.backends.boot == BootBackend::BosV1
            && tenant.is_some_and(|tenant| !tenant.is_empty())
        {
            return Err(invalid(
                "bos.tenant",
                "BOS v1 rejects requests that name a tenant (multi-tenancy is BOS v2 only): remove bos.tenant, or use backends.boot = \"bos\"",
            ));
        }
        if let Some(tenant) = tenant
            && !tenant.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(invalid(
                "bos.tenant",
                "must be a tenant name (letters, digits and punctuation, no spaces): it is sent as the Cray-Tenant-Name header",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "[hsm]\nbase_url = \"https://h\"\ntenant = \"blue\"\n".to_string(),
                "hsm.tenant",
            ),
            (
                "[hsm]\nbase_url = \"https://h\"\nboot_timeout = \"1h\"\n".to_string(),
                "hsm.boot_timeout",
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
