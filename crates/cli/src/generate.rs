//! `crus generate man|completions DIR` (hidden): writes the man pages and
//! the shell completion scripts the packages install, both made from the
//! clap definitions so they cannot drift from the flags. A subcommand rather
//! than a build script, so ordinary builds do not pay for it.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

/// What `crus generate` writes.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to write.
    #[command(subcommand)]
    pub what: Generated,
}

/// The generated files.
#[derive(Debug, Subcommand)]
pub enum Generated {
    /// Man pages, section 1: `crus.1` and one `crus-<subcommand>.1` per subcommand.
    Man {
        /// Directory to write them in (created if missing).
        dir: PathBuf,
    },
    /// Completion scripts: `crus.bash`, `_crus` (zsh) and `crus.fish`.
    Completions {
        /// Directory to write them in (created if missing).
        dir: PathBuf,
    },
}

/// Writes what `args` asks for; `command` is the whole `crus` command.
pub fn run(args: GenerateArgs, command: clap::Command) -> Result<(), String> {
    match args.what {
        Generated::Man { dir } => {
            create_dir(&dir)?;
            for (name, page) in man_pages(command)? {
                write(&dir.join(format!("{name}.1")), &page)?;
            }
            Ok(())
        }
        Generated::Completions { dir } => {
            create_dir(&dir)?;
            for (shell, file) in [
                (clap_complete::Shell::Bash, "crus.bash"),
                (clap_complete::Shell::Zsh, "_crus"),
                (clap_complete::Shell::Fish, "crus.fish"),
            ] {
                let mut command = command.clone();
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut command, "crus", &mut script);
                write(&dir.join(file), &script)?;
            }
            Ok(())
        }
    }
}

/// Every man page, by name (`crus`, `crus-serve`, `crus-session-create`, ...):
/// the command and each visible subcommand, nested ones included.
pub fn man_pages(command: clap::Command) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut command = command;
    command.build();
    let mut pages = Vec::new();
    add_pages(&command, "crus", &mut pages)?;
    Ok(pages)
}

fn add_pages(
    command: &clap::Command,
    name: &str,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), String> {
    // The page's title and NAME are its file name: "crus-serve(1)" is how
    // the parent page's SUBCOMMANDS section and `man crus-serve` refer to it;
    // its synopsis keeps the words typed (`crus serve`, set by `build`).
    let titled = command.clone().display_name(name.to_string());
    let mut page = Vec::new();
    clap_mangen::Man::new(titled)
        .title(name.to_uppercase())
        .section("1")
        .source(format!("crus {}", env!("CARGO_PKG_VERSION")))
        .manual("crus manual")
        .render(&mut page)
        .map_err(|error| format!("cannot render the man page {name}(1): {error}"))?;
    pages.push((name.to_string(), page));
    for subcommand in command.get_subcommands() {
        if subcommand.is_hide_set() || subcommand.get_name() == "help" {
            continue;
        }
        add_pages(
            subcommand,
            &format!("{name}-{}", subcommand.get_name()),
            pages,
        )?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create the directory {}: {error}", dir.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|error| format!("cannot write {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_the_subcommands_and_skip_hidden_ones() {
        let command = clap::Command::new("crus")
            .version("1.0")
            .subcommand(clap::Command::new("serve").about("Serve the API"))
            .subcommand(
                clap::Command::new("session")
                    .subcommand(clap::Command::new("create").arg(clap::arg!(--label <LABEL>))),
            )
            .subcommand(clap::Command::new("generate").hide(true));
        let pages = man_pages(command).unwrap();
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            ["crus", "crus-serve", "crus-session", "crus-session-create"]
        );
        let serve = String::from_utf8(pages[1].1.clone()).unwrap();
        assert!(serve.contains(".TH CRUS-SERVE 1"), "{serve}");
        assert!(serve.contains("Serve the API"), "{serve}");
    }

    #[test]
    fn completions_are_written_for_bash_zsh_and_fish() {
        let dir = tempfile::tempdir().unwrap();
        let command = clap::Command::new("crus").subcommand(clap::Command::new("serve"));
        run(
            GenerateArgs {
                what: Generated::Completions {
                    dir: dir.path().to_path_buf(),
                },
            },
            command,
        )
        .unwrap();
        for file in ["crus.bash", "_crus", "crus.fish"] {
            let script = std::fs::read_to_string(dir.path().join(file)).unwrap();
            assert!(script.contains("serve"), "{file}: {script}");
        }
    }
}
