//! `setting_choice!`: a key of `crus.toml` that takes one of a few names
//! (`redfish.auth = "session"`, `slurm.node_names = "nid"`) as a typed enum,
//! so an unknown name is refused while the file is read, naming the key and
//! listing the names it takes, and code matches variants, not strings.

/// Declares an enum whose variants are the names a key of `crus.toml`
/// takes, deserialized from those names: any other is refused with
/// `<key>: "<name>" is not one of <names>`.
macro_rules! setting_choice {
    ($(#[$meta:meta])* $name:ident, $key:literal, { $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// The key of `crus.toml` that takes these names.
            pub const KEY: &'static str = $key;
            /// Every variant, with its name in `crus.toml`.
            pub const NAMES: &'static [(&'static str, $name)] = &[$(($text, $name::$variant)),+];

            /// This variant's name in `crus.toml`.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::settings::InvalidSetting;

            /// The variant named `name`; an unknown name is refused naming
            /// the key and listing the names.
            fn from_str(name: &str) -> Result<Self, Self::Err> {
                $name::NAMES
                    .iter()
                    .find(|(known, _)| *known == name)
                    .map(|(_, choice)| *choice)
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::NAMES.iter().map(|(known, _)| *known).collect();
                        $crate::settings::InvalidSetting::new(
                            $key,
                            format!("{name:?} is not one of {}", names.join(", ")),
                        )
                    })
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <String as serde::Deserialize>::deserialize(deserializer)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use setting_choice;
