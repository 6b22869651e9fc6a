//! BOS session names from idempotency keys.

/// The longest BOS session name (`^[a-zA-Z0-9](?:[-._a-zA-Z0-9]{0,125}[a-zA-Z0-9])?$`).
const MAX_LENGTH: usize = 127;

/// The BOS session name for idempotency key `key`.
///
/// A key that is already a valid name is used as it is. Otherwise characters
/// BOS does not allow become `-`, the name is trimmed to start and end with
/// a letter or digit and to fit, and a hash of the whole key is appended, so
/// two keys that differ only in dropped characters still get different names.
/// The same key always gives the same name (the hash is FNV-1a, stable
/// across builds), which is what makes `start_boot` idempotent.
pub fn session_name(key: &str) -> String {
    if is_valid(key) {
        return key.to_string();
    }
    let hash = format!("{:016x}", fnv1a(key.as_bytes()));
    let cleaned: String = key
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || matches!(character, '-' | '.' | '_') {
                character
            } else {
                '-'
            }
        })
        .collect();
    let mut stem: String = cleaned
        .trim_matches(|character: char| !character.is_ascii_alphanumeric())
        .chars()
        .take(MAX_LENGTH - hash.len() - 1)
        .collect();
    stem.truncate(
        stem.trim_end_matches(|character: char| !character.is_ascii_alphanumeric())
            .len(),
    );
    if stem.is_empty() {
        format!("crus-{hash}")
    } else {
        format!("{stem}-{hash}")
    }
}

fn is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= MAX_LENGTH
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_'))
        }
        _ => false,
    }
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys_are_kept_and_others_are_sanitised_distinctly() {
        assert_eq!(session_name("crus-abc.1_2"), "crus-abc.1_2");
        let first = session_name("session/3 step:1");
        let second = session_name("session/3 step/1");
        assert!(is_valid(&first), "{first}");
        assert!(first.starts_with("session-3-step-1-"), "{first}");
        assert_ne!(first, second);
        assert_eq!(first, session_name("session/3 step:1"));
        for key in ["", "///", &"a/".repeat(200), "-x-"] {
            let name = session_name(key);
            assert!(is_valid(&name), "{key:?} -> {name:?}");
        }
    }
}
