//! The site-hook flags of `crus session create` and `crus plan`:
//! `--hook 'AT[:step]=PROGRAM ARGS…'` (or `=URL` for an HTTP call) for the
//! common case, `--hooks-file PATH` for every option (a JSON list of hooks
//! exactly as the API's `policy.hooks` takes them).

use std::path::Path;

use crus_core::rollout::{
    DEFAULT_HOOK_TIMEOUT, Hook, HookHttp, HookOnFailure, HookPoint, HookScope,
};

/// `--hook`'s value: `pre_drain`, `pre_boot` or `post_boot`, optionally
/// `:step` (once per step; `:node`, the default, once per node), `=`, then
/// a program and its arguments split on spaces (no shell, no quoting) or an
/// http(s) URL to POST to. Runs with a 5m timeout, not idempotent, failing
/// its node when it fails; use `--hooks-file` for other choices.
pub fn parse_hook(text: &str) -> Result<Hook, String> {
    let (place, what) = text.split_once('=').ok_or(
        "write AT[:step]=COMMAND or AT[:step]=URL, e.g. 'pre_boot=/opt/site/fw.sh --quick'",
    )?;
    let (at, per) = match place.trim().split_once(':') {
        Some((at, per)) => (at, per),
        None => (place.trim(), "node"),
    };
    let at = match at {
        "pre_drain" => HookPoint::PreDrain,
        "pre_boot" => HookPoint::PreBoot,
        "post_boot" => HookPoint::PostBoot,
        other => {
            return Err(format!(
                "{other:?} is not a hook point: write pre_drain, pre_boot or post_boot"
            ));
        }
    };
    let per = match per {
        "node" => HookScope::Node,
        "step" => HookScope::Step,
        other => return Err(format!("{other:?} is neither node nor step")),
    };
    let what = what.trim();
    let (command, http) = if what.starts_with("http://") || what.starts_with("https://") {
        let http = HookHttp {
            url: what.to_string(),
            method: "POST".to_string(),
        };
        (None, Some(http))
    } else {
        let argv: Vec<String> = what.split_whitespace().map(str::to_string).collect();
        if argv.is_empty() {
            return Err("name the program to run after '='".to_string());
        }
        (Some(argv), None)
    };
    Ok(Hook {
        at,
        per,
        command,
        http,
        timeout: DEFAULT_HOOK_TIMEOUT,
        idempotent: false,
        on_failure: HookOnFailure::FailNode,
    })
}

/// The hooks of `--hooks-file`: a JSON list of hook objects.
pub fn read_hooks_file(path: &Path) -> Result<Vec<Hook>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("--hooks-file: cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| {
        format!(
            "--hooks-file: {} is not a JSON list of hooks ({error}); each is \
             {{\"at\": \"pre_boot\", \"per\": \"node\", \"command\": [\"/opt/site/fw.sh\"], \
             \"timeout\": \"10m\", \"idempotent\": false, \"on_failure\": \"fail_node\"}} or \
             has \"http\": {{\"url\": \"https://...\"}} instead of a command",
            path.display()
        )
    })
}

/// The hooks of both flags, the file's first; `None` when neither was given.
pub fn hooks_of(flags: &[Hook], file: Option<&Path>) -> Result<Option<Vec<Hook>>, String> {
    let mut hooks = match file {
        Some(path) => read_hooks_file(path)?,
        None => Vec::new(),
    };
    hooks.extend(flags.iter().cloned());
    Ok((!hooks.is_empty() || file.is_some()).then_some(hooks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hook_flags_name_the_point_the_scope_and_what_runs() {
        let hook = parse_hook("pre_boot=/opt/site/fw.sh --quick").unwrap();
        assert_eq!(
            serde_json::to_value(&hook).unwrap(),
            json!({"at": "pre_boot", "per": "node", "command": ["/opt/site/fw.sh", "--quick"],
                   "timeout": "5m", "on_failure": "fail_node"})
        );
        let hook = parse_hook("post_boot:step=https://site.example/hooks/crus").unwrap();
        assert_eq!(hook.per, HookScope::Step);
        assert_eq!(hook.http.unwrap().url, "https://site.example/hooks/crus");
        for bad in ["pre_boot", "boot=/x", "pre_boot:chassis=/x", "pre_boot= "] {
            assert!(parse_hook(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_hooks_file_gives_every_option() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hooks.json");
        std::fs::write(
            &path,
            r#"[{"at": "pre_drain", "command": ["/opt/umount.sh"], "idempotent": true,
                 "timeout": "30s", "on_failure": "halt"}]"#,
        )
        .unwrap();
        let flag = parse_hook("post_boot=/opt/check.sh").unwrap();
        let hooks = hooks_of(&[flag], Some(&path)).unwrap().unwrap();
        assert_eq!(hooks.len(), 2);
        assert!(hooks[0].idempotent);
        assert_eq!(hooks[0].on_failure, HookOnFailure::Halt);
        assert_eq!(hooks[1].at, HookPoint::PostBoot);
        std::fs::write(&path, "{}").unwrap();
        let error = hooks_of(&[], Some(&path)).unwrap_err();
        assert!(error.starts_with("--hooks-file: "), "{error}");
        assert_eq!(hooks_of(&[], None), Ok(None));
    }
}
