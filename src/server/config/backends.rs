//! `[backends]` of `crus.toml`: which backend serves each port, as typed
//! kinds. Each key is written flat (`boot = "bos"`) or as a table
//! (`[backends.boot]` with `kind = "bos"`); an unknown kind is refused while
//! the file is read, naming the key and listing the kinds.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// A port's backend kinds: their names in `crus.toml` and the key that
/// chooses among them.
pub trait BackendKind: Copy + Sized + 'static {
    /// The key, e.g. `backends.boot`.
    const KEY: &'static str;
    /// Every kind, with its name in `crus.toml`.
    const KINDS: &'static [(&'static str, Self)];

    /// The name of this kind in `crus.toml`.
    fn name(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::KINDS
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("", |(name, _)| name)
    }
}

/// Declares a kind enum, its names and its key.
macro_rules! backend_kind {
    ($(#[$meta:meta])* $name:ident, $key:literal, { $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl BackendKind for $name {
            const KEY: &'static str = $key;
            const KINDS: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(KindVisitor(PhantomData))
            }
        }
    };
}

backend_kind!(
    /// `backends.inventory`: where groups and node facts come from.
    InventoryBackend, "backends.inventory", {
        /// The simulated cluster.
        Sim = "sim",
        /// The inventory file crus owns (`[file]`).
        File = "file",
        /// Cray HSM (`[hsm]`).
        Hsm = "hsm",
        /// Azure CycleCloud's node arrays (`[cyclecloud]`).
        CycleCloud = "cyclecloud",
    }
);

backend_kind!(
    /// `backends.workload_manager`: who drains and resumes nodes.
    WorkloadManagerBackend, "backends.workload_manager", {
        /// The simulated cluster.
        Sim = "sim",
        /// Slurm (`[slurm]`).
        Slurm = "slurm",
        /// None: nodes reboot without draining.
        None = "none",
    }
);

backend_kind!(
    /// `backends.boot`: who boots nodes into a new image.
    BootBackend, "backends.boot", {
        /// The simulated cluster.
        Sim = "sim",
        /// Cray BOS v2 sessions (`[bos]`).
        Bos = "bos",
        /// Cray BOS v1 sessions (`[bos]`).
        BosV1 = "bos-v1",
        /// `scontrol reboot` (`[slurm]`, `[slurm_reboot]`).
        SlurmReboot = "slurm-reboot",
        /// Kadeploy3 deployments (`[kadeploy]`).
        Kadeploy = "kadeploy",
        /// CycleCloud reimages (`[cyclecloud]`).
        CycleCloud = "cyclecloud",
    }
);

backend_kind!(
    /// `backends.power`: who powers nodes off and on, for escalation.
    PowerBackend, "backends.power", {
        /// No power control.
        None = "none",
        /// The simulated cluster.
        Sim = "sim",
        /// Redfish BMCs (`[redfish]`).
        Redfish = "redfish",
        /// CycleCloud node power (`[cyclecloud]`).
        CycleCloud = "cyclecloud",
        /// Kadeploy3's power and reboot operations (`[kadeploy]`).
        Kadeploy = "kadeploy",
    }
);

/// Reads a kind written as a name or as a table with only `kind`.
struct KindVisitor<K>(PhantomData<K>);

impl<'de, K: BackendKind> Visitor<'de> for KindVisitor<K> {
    type Value = K;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "a backend name or a table with `kind`, for {}",
            K::KEY
        )
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<K, E> {
        match K::KINDS.iter().find(|(known, _)| *known == name) {
            Some((_, kind)) => Ok(*kind),
            None => {
                let names: Vec<&str> = K::KINDS.iter().map(|(known, _)| *known).collect();
                Err(E::custom(format!(
                    "{}: {name:?} is not one of {}",
                    K::KEY,
                    names.join(", ")
                )))
            }
        }
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<K, M::Error> {
        let mut kind = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "kind" {
                return Err(de::Error::unknown_field(&key, &["kind"]));
            }
            let name = map.next_value::<String>()?;
            kind = Some(KindVisitor::<K>(PhantomData).visit_str::<M::Error>(&name)?);
        }
        kind.ok_or_else(|| de::Error::missing_field("kind"))
    }
}

/// `[backends]`: which implementation serves each port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendsSection {
    /// Groups and node facts: `sim`, `file`, `hsm` or `cyclecloud`.
    pub inventory: InventoryBackend,
    /// Drain and resume: `sim`, `slurm` or `none`.
    pub workload_manager: WorkloadManagerBackend,
    /// Booting: `sim`, `bos`, `bos-v1`, `slurm-reboot`, `kadeploy` or `cyclecloud`.
    pub boot: BootBackend,
    /// Power control, for escalation: `none`, `sim`, `redfish`,
    /// `cyclecloud` or `kadeploy`; absent:
    /// the simulator's when `boot` is `sim`, none otherwise.
    pub power: Option<PowerBackend>,
}

impl Default for BackendsSection {
    fn default() -> Self {
        BackendsSection {
            inventory: InventoryBackend::Sim,
            workload_manager: WorkloadManagerBackend::Sim,
            boot: BootBackend::Sim,
            power: None,
        }
    }
}

impl BackendsSection {
    /// Whether any port is the simulated cluster's.
    pub fn uses_sim(&self) -> bool {
        self.inventory == InventoryBackend::Sim
            || self.workload_manager == WorkloadManagerBackend::Sim
            || self.boot == BootBackend::Sim
            || self.power == Some(PowerBackend::Sim)
    }

    /// Whether a Slurm backend is used (`[slurm]` then applies).
    pub fn uses_slurm(&self) -> bool {
        self.workload_manager == WorkloadManagerBackend::Slurm
            || self.boot == BootBackend::SlurmReboot
    }

    /// The keys set to `cyclecloud`, e.g. `backends.inventory`.
    pub fn cyclecloud_ports(&self) -> Vec<&'static str> {
        [
            (
                InventoryBackend::KEY,
                self.inventory == InventoryBackend::CycleCloud,
            ),
            (
                PowerBackend::KEY,
                self.power == Some(PowerBackend::CycleCloud),
            ),
            (BootBackend::KEY, self.boot == BootBackend::CycleCloud),
        ]
        .into_iter()
        .filter(|(_, chosen)| *chosen)
        .map(|(key, _)| key)
        .collect()
    }
}
