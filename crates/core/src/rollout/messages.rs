//! The session's `messages`, bounded: the first few and the latest many are
//! kept, and the ones between are folded into one message that says how many
//! there were.
//!
//! Without a bound, a session paused and resumed thousands of times, or one
//! of a large machine, grew a record (and every `GET /session/{id}`) without
//! end. The full history stays in the event stream
//! (`GET /session/{id}/events`) and the per-node status. Folding never
//! touches the latest messages, so whatever a session says last (its final
//! "Upgrade Session Completed" and the summary before it) stays last.

/// How many of the first messages are always kept: they say what the session
/// set out to do.
pub const KEPT_FIRST: usize = 10;

/// How many of the latest messages are always kept.
pub const KEPT_LAST: usize = 200;

/// How the message standing for `folded` folded messages reads.
pub fn fold_notice(folded: usize) -> String {
    format!(
        "({folded} earlier message{} folded; the session's events (GET /session/{{upgrade_id}}/events) and node states have the full history)",
        if folded == 1 { " was" } else { "s were" }
    )
}

/// Appends `message` to `messages`, folding the oldest message after the
/// first [`KEPT_FIRST`] once more than [`KEPT_LAST`] follow them. `folded`
/// counts the messages folded so far (the fold notice stands at index
/// [`KEPT_FIRST`] whenever it is above 0).
pub fn push(messages: &mut Vec<String>, folded: &mut usize, message: String) {
    messages.push(message);
    let notice = usize::from(*folded > 0);
    if messages.len() <= KEPT_FIRST + notice + KEPT_LAST {
        return;
    }
    // The oldest message after the first ones (and the notice, if any) goes.
    // Removing one entry from a list of about KEPT_LAST is cheap enough at the
    // rate messages are posted.
    messages.remove(KEPT_FIRST + notice);
    *folded += 1;
    let text = fold_notice(*folded);
    if notice == 1 {
        messages[KEPT_FIRST] = text;
    } else {
        messages.insert(KEPT_FIRST, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_and_latest_messages_are_kept_and_the_rest_counted() {
        let mut messages = Vec::new();
        let mut folded = 0;
        let total = KEPT_FIRST + KEPT_LAST + 1_000;
        for number in 0..total {
            push(&mut messages, &mut folded, format!("m{number}"));
            assert!(messages.len() <= KEPT_FIRST + 1 + KEPT_LAST);
        }
        assert_eq!(folded, 1_000);
        assert_eq!(messages.len(), KEPT_FIRST + 1 + KEPT_LAST);
        assert_eq!(messages[0], "m0");
        assert_eq!(messages[KEPT_FIRST - 1], format!("m{}", KEPT_FIRST - 1));
        assert_eq!(messages[KEPT_FIRST], fold_notice(1_000));
        assert_eq!(messages[KEPT_FIRST + 1], format!("m{}", KEPT_FIRST + 1_000));
        assert_eq!(messages.last().unwrap(), &format!("m{}", total - 1));
    }

    #[test]
    fn nothing_is_folded_below_the_bound() {
        let mut messages = Vec::new();
        let mut folded = 0;
        for number in 0..KEPT_FIRST + KEPT_LAST {
            push(&mut messages, &mut folded, format!("m{number}"));
        }
        assert_eq!(folded, 0);
        assert_eq!(messages.len(), KEPT_FIRST + KEPT_LAST);
        push(&mut messages, &mut folded, "last".to_string());
        assert_eq!(folded, 1);
        assert_eq!(messages[KEPT_FIRST], fold_notice(1));
        assert_eq!(messages.last().unwrap(), "last");
    }
}
