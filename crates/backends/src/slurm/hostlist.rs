//! Slurm's compressed host lists (`node[001-003,007],login1`) expanded into
//! node names, so one `squeue` call for every job can be split by node.
//!
//! The grammar is Slurm's: comma-separated host patterns, each made of
//! literal text and bracketed range lists (`[1-3,7]`); a pattern may hold
//! several bracket groups (`rack[1-2]-node[01-02]`), which expand as their
//! product. A range keeps the width of its lower bound, as Slurm writes it
//! (`[08-10]` is `08 09 10`, `[8-10]` is `8 9 10`).

/// At most this many names come out of one list: Slurm never prints a list
/// larger than its cluster, and a garbled range (`[0-99999999999]`) must not
/// exhaust memory before it is found to be nonsense.
const MAX_NAMES: u64 = 1 << 20;

/// A host list that is not in Slurm's syntax (or expands beyond [`MAX_NAMES`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{list:?} is not a Slurm host list: {why}")]
pub(crate) struct HostlistError {
    list: String,
    why: &'static str,
}

/// One piece of a host pattern.
#[derive(Debug)]
enum Piece<'a> {
    Literal(&'a str),
    /// The numbers of a bracket group, already formatted with their width.
    Choices(Vec<String>),
}

/// Expands a Slurm host list into node names, in the order Slurm lists them.
/// An empty (or blank) list is no names.
pub(crate) fn expand(list: &str) -> Result<Vec<String>, HostlistError> {
    let fail = |why| HostlistError {
        list: list.to_string(),
        why,
    };
    let mut names = Vec::new();
    for pattern in split_top_level(list.trim()).map_err(fail)? {
        if pattern.is_empty() {
            // `a,,b` and a trailing comma are tolerated, as Slurm does.
            continue;
        }
        let pieces = pieces(pattern).map_err(fail)?;
        let count = pieces.iter().try_fold(1_u64, |count, piece| match piece {
            Piece::Literal(_) => Some(count),
            Piece::Choices(choices) => count.checked_mul(choices.len() as u64),
        });
        match count {
            Some(count) if (names.len() as u64).saturating_add(count) <= MAX_NAMES => {}
            _ => return Err(fail("it names too many hosts")),
        }
        product(&pieces, String::new(), &mut names);
    }
    Ok(names)
}

/// Splits on the commas outside brackets: `a[1,2],b` is `a[1,2]` and `b`.
fn split_top_level(list: &str) -> Result<Vec<&str>, &'static str> {
    let mut patterns = Vec::new();
    let mut depth = 0_u32;
    let mut start = 0;
    for (at, character) in list.char_indices() {
        match character {
            '[' if depth == 0 => depth = 1,
            '[' => return Err("brackets nest"),
            ']' if depth == 1 => depth = 0,
            ']' => return Err("a `]` closes nothing"),
            ',' if depth == 0 => {
                patterns.push(list[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a `[` is not closed");
    }
    patterns.push(list[start..].trim());
    Ok(patterns)
}

/// A pattern without top-level commas as literal text and bracket groups.
fn pieces(pattern: &str) -> Result<Vec<Piece<'_>>, &'static str> {
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('[') {
        if open > 0 {
            pieces.push(Piece::Literal(&rest[..open]));
        }
        // split_top_level has checked that every `[` is closed.
        let close = rest[open..].find(']').ok_or("a `[` is not closed")? + open;
        pieces.push(Piece::Choices(choices(&rest[open + 1..close])?));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest));
    }
    Ok(pieces)
}

/// `001-003,7` → `001 002 003 7`.
fn choices(ranges: &str) -> Result<Vec<String>, &'static str> {
    let mut choices = Vec::new();
    for range in ranges.split(',').map(str::trim) {
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        let (low, high) = (low.trim(), high.trim());
        let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        if !digits(low) || !digits(high) {
            return Err("a range is not numeric");
        }
        let first: u64 = low.parse().map_err(|_| "a range bound is too large")?;
        let last: u64 = high.parse().map_err(|_| "a range bound is too large")?;
        if last < first {
            return Err("a range runs backwards");
        }
        if (choices.len() as u64).saturating_add(last - first + 1) > MAX_NAMES {
            return Err("it names too many hosts");
        }
        let width = low.len();
        choices.extend((first..=last).map(|number| format!("{number:0width$}")));
    }
    Ok(choices)
}

/// Appends every name `pieces` spell, after `prefix`, to `names`.
fn product(pieces: &[Piece<'_>], prefix: String, names: &mut Vec<String>) {
    match pieces.split_first() {
        None => names.push(prefix),
        Some((Piece::Literal(text), rest)) => product(rest, prefix + text, names),
        Some((Piece::Choices(choices), rest)) => {
            for choice in choices {
                product(rest, format!("{prefix}{choice}"), names);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Vec<String> {
        match expand(list) {
            Ok(names) => names,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn plain_names_and_empty_lists() {
        assert_eq!(names("node001"), ["node001"]);
        assert_eq!(names("a,b , c"), ["a", "b", "c"]);
        assert!(names("").is_empty());
        assert!(names("  ").is_empty());
        assert_eq!(names("a,,b,"), ["a", "b"]);
    }

    #[test]
    fn ranges_keep_the_lower_bounds_width() {
        assert_eq!(
            names("node[001-003,007]"),
            ["node001", "node002", "node003", "node007"]
        );
        assert_eq!(names("n[8-10]"), ["n8", "n9", "n10"]);
        assert_eq!(names("n[08-10]"), ["n08", "n09", "n10"]);
        assert_eq!(names("nid[000001]"), ["nid000001"]);
    }

    #[test]
    fn lists_mix_patterns_and_suffixes() {
        assert_eq!(
            names("node[001-002],login1,gpu[1-2]-ib"),
            ["node001", "node002", "login1", "gpu1-ib", "gpu2-ib"]
        );
        assert_eq!(names("r[1-2]n[1-2]"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
    }

    #[test]
    fn malformed_lists_are_errors() {
        for bad in [
            "node[1-",
            "node[1-2",
            "node1-2]",
            "node[[1]]",
            "node[a-b]",
            "node[3-1]",
            "node[]",
            "node[1-]",
            "node[99999999999999999999]",
        ] {
            assert!(expand(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn huge_ranges_are_refused_before_they_are_built() {
        let error = expand("n[0-99999999999]").unwrap_err();
        assert!(error.to_string().contains("too many"), "{error}");
        let error = expand("a[0-1023]b[0-1023]c[0-1]").unwrap_err();
        assert!(error.to_string().contains("too many"), "{error}");
    }
}
