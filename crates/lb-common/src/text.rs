//! Text from elsewhere, made safe to show: the one sanitiser for what a
//! peer (a builder's daemon, a remote error, a file being parsed) sent.
//!
//! - [`escape_controls`]: control characters (C0, DEL, C1: the terminal's
//!   escape sequences, newlines that would forge an output line) become
//!   visible escapes (`\e`, `\n`, `\u{9b}`); everything else is kept;
//! - [`excerpt`]: the same, cut to a bounded number of characters, for
//!   quoting input in an error message (an 8 MB line must not become an
//!   8 MB message).
//!
//! JSON output needs neither: serde escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write as _;

/// How many characters of input an error message quotes at most.
pub const EXCERPT_CHARS: usize = 80;

/// Is `c` a character a terminal would act on rather than print?
fn is_control(c: char) -> bool {
    c.is_control()
        // Unicode line and paragraph separators and the bidirectional
        // overrides reorder or split what is shown.
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x1b' => out.push_str("\\e"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `s` with every control character written as a visible escape, and a
/// backslash doubled only where it would otherwise be read as one of
/// those escapes, so ordinary paths and messages read as they are.
#[must_use]
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_control(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// At most [`EXCERPT_CHARS`] characters of `s`, control characters
/// escaped, with `...` and the full length when cut: the form in which an
/// error message quotes input.
#[must_use]
pub fn excerpt(s: &str) -> String {
    excerpt_n(s, EXCERPT_CHARS)
}

/// [`excerpt`] with a chosen bound.
#[must_use]
pub fn excerpt_n(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (shown, c) in s.chars().enumerate() {
        if shown == max_chars {
            let _ = write!(out, "... ({} bytes in all)", s.len());
            return out;
        }
        if is_control(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// [`excerpt`] of bytes that may not be UTF-8 (invalid sequences shown as
/// U+FFFD). Only the first bytes are looked at.
#[must_use]
pub fn excerpt_bytes(b: &[u8]) -> String {
    // 4 bytes per character at most: enough for the excerpt, never the whole.
    let head = &b[..b.len().min(EXCERPT_CHARS * 4 + 4)];
    let text = String::from_utf8_lossy(head);
    let mut e = excerpt(&text);
    if head.len() < b.len() {
        // Say the length of the whole, not of the head looked at.
        if let Some(i) = e.rfind("... (") {
            e.truncate(i);
        }
        let _ = write!(e, "... ({} bytes in all)", b.len());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(
            escape_controls("2.8.0 /a b/c\\d"),
            Cow::Borrowed("2.8.0 /a b/c\\d")
        ));
    }

    #[test]
    fn terminal_sequences_and_newlines_are_visible() {
        assert_eq!(
            escape_controls("\x1b]0;pwned\x07\x1b[2J2.8\nok"),
            "\\e]0;pwned\\x07\\e[2J2.8\\nok"
        );
        assert_eq!(
            escape_controls("a\u{9b}b\u{202e}c\0"),
            "a\\u{9b}b\\u{202e}c\\x00"
        );
        assert_eq!(escape_controls("tab\there\r"), "tab\\there\\r");
    }

    #[test]
    fn excerpts_are_bounded_and_escaped() {
        let long = "x".repeat(8 << 20);
        let e = excerpt(&long);
        assert!(e.len() < 120, "{}", e.len());
        assert!(e.ends_with("... (8388608 bytes in all)"), "{e}");
        assert_eq!(excerpt("a\nb"), "a\\nb");
        assert_eq!(excerpt_n("abcdef", 3), "abc... (6 bytes in all)");
        let b = excerpt_bytes(&vec![b'y'; 1 << 20]);
        assert!(
            b.len() < 120 && b.ends_with("(1048576 bytes in all)"),
            "{b}"
        );
        assert_eq!(excerpt_bytes(b"ok\xff"), "ok\u{fffd}");
    }
}
