//! Managed blocks: marker comments around the lines a tool owns inside a
//! file it does not own (nix.conf, ssh_config).
//!
//! ```text
//! # BEGIN lb-nixconf (managed by lb-nixconf; edits inside are replaced)
//! ...
//! # END lb-nixconf
//! ```
//!
//! Removing a block gives back the file exactly as it was before the block
//! was added: when the file did not end in a newline, the newline added
//! before the block is recorded in the BEGIN marker and taken away again.

use std::ops::Range;
use std::path::Path;

use super::{Error, Location};

/// Where a new block goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// At the start: for ssh_config, where the first value wins and an
    /// `Include` after a `Host` line would be conditional.
    Top,
    /// At the end: for nix.conf, where the last assignment wins.
    Bottom,
}

/// A block identified by its tag.
#[derive(Debug, Clone, Copy)]
pub struct ManagedBlock<'a> {
    /// The name in the BEGIN and END markers: the tool that owns the block
    /// (`lb-nixconf`).
    pub tag: &'a str,
}

const ADDED_NEWLINE: &str = " +newline";

impl ManagedBlock<'_> {
    fn begin(&self) -> String {
        format!(
            "# BEGIN {} (managed by {}; edits inside are replaced)",
            self.tag, self.tag
        )
    }

    fn end(&self) -> String {
        format!("# END {}", self.tag)
    }

    fn is_begin(&self, line: &str) -> bool {
        let l = line.trim_end();
        l == self.begin() || l == format!("{}{ADDED_NEWLINE}", self.begin())
    }

    /// The byte range of the block (markers and their newlines included)
    /// and whether a newline was added before it.
    fn locate(&self, text: &str, file: &Path) -> Result<Option<(Range<usize>, bool)>, Error> {
        let mut start: Option<(usize, bool)> = None;
        let mut found = None;
        let mut offset = 0;
        let err = |line: usize, reason: &str| Error::Block {
            at: Location {
                file: file.to_path_buf(),
                line,
            },
            reason: format!("{reason} for {}", self.tag),
        };
        for (n, line) in text.split_inclusive('\n').enumerate() {
            let end = offset + line.len();
            if self.is_begin(line) {
                if start.is_some() || found.is_some() {
                    return Err(err(n + 1, "a second BEGIN marker"));
                }
                start = Some((offset, line.trim_end().ends_with(ADDED_NEWLINE)));
            } else if line.trim_end() == self.end() {
                match start.take() {
                    Some((s, added)) => found = Some((s..end, added)),
                    None => return Err(err(n + 1, "an END marker without BEGIN")),
                }
            }
            offset = end;
        }
        if start.is_some() {
            return Err(err(0, "a BEGIN marker without END"));
        }
        Ok(found)
    }

    /// The lines between the markers, if the block is present.
    ///
    /// # Errors
    /// Markers that do not pair up ([`Error::Block`]).
    pub fn body<'t>(&self, text: &'t str, file: &Path) -> Result<Option<&'t str>, Error> {
        Ok(self.locate(text, file)?.map(|(r, _)| {
            let block = &text[r];
            let after_begin = block.find('\n').map_or(block.len(), |i| i + 1);
            let before_end = block[..block.len() - 1]
                .rfind('\n')
                .map_or(after_begin, |i| i + 1);
            &block[after_begin..before_end.max(after_begin)]
        }))
    }

    /// `text` with the block holding `body` (which should end in a newline):
    /// replaced in place if present, else inserted at `pos`.
    ///
    /// # Errors
    /// Markers that do not pair up ([`Error::Block`]); nothing is changed.
    pub fn set(&self, text: &str, body: &str, pos: Position, file: &Path) -> Result<String, Error> {
        let located = self.locate(text, file)?;
        let make = |added: bool| {
            let marker = if added { ADDED_NEWLINE } else { "" };
            format!("{}{marker}\n{body}{}\n", self.begin(), self.end())
        };
        Ok(match located {
            Some((r, added)) => format!("{}{}{}", &text[..r.start], make(added), &text[r.end..]),
            None => match pos {
                Position::Top => format!("{}{text}", make(false)),
                Position::Bottom if text.is_empty() || text.ends_with('\n') => {
                    format!("{text}{}", make(false))
                }
                Position::Bottom => format!("{text}\n{}", make(true)),
            },
        })
    }

    /// `text` without the block, as it was before the block was added.
    ///
    /// # Errors
    /// Markers that do not pair up ([`Error::Block`]); nothing is removed.
    pub fn remove(&self, text: &str, file: &Path) -> Result<String, Error> {
        Ok(match self.locate(text, file)? {
            None => text.to_owned(),
            Some((r, added)) => {
                let before = if added && text[..r.start].ends_with('\n') {
                    &text[..r.start - 1]
                } else {
                    &text[..r.start]
                };
                format!("{before}{}", &text[r.end..])
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: ManagedBlock = ManagedBlock { tag: "lb-test" };

    fn f() -> &'static Path {
        Path::new("/etc/x.conf")
    }

    #[test]
    fn insert_replace_remove_roundtrip() {
        for original in ["", "a = 1\n", "a = 1", "# c\n\nb = 2\n"] {
            for pos in [Position::Top, Position::Bottom] {
                let with = B.set(original, "x = 1\n", pos, f()).unwrap();
                assert_eq!(B.body(&with, f()).unwrap(), Some("x = 1\n"));
                let replaced = B.set(&with, "x = 2\ny = 3\n", pos, f()).unwrap();
                assert_eq!(B.body(&replaced, f()).unwrap(), Some("x = 2\ny = 3\n"));
                assert_eq!(
                    B.remove(&replaced, f()).unwrap(),
                    original,
                    "{original:?} {pos:?}"
                );
            }
        }
    }

    #[test]
    fn block_is_replaced_in_place() {
        let text = "a\n# BEGIN lb-test (managed by lb-test; edits inside are replaced)\nold\n# END lb-test\nz\n";
        let out = B.set(text, "new\n", Position::Bottom, f()).unwrap();
        assert_eq!(out, text.replace("old", "new"));
    }

    #[test]
    fn other_tags_are_left_alone() {
        let other = ManagedBlock { tag: "lb-other" };
        let text = other.set("a\n", "o\n", Position::Bottom, f()).unwrap();
        let both = B.set(&text, "t\n", Position::Bottom, f()).unwrap();
        assert_eq!(other.body(&both, f()).unwrap(), Some("o\n"));
        assert_eq!(B.remove(&both, f()).unwrap(), text);
    }

    #[test]
    fn broken_markers_are_errors_with_line() {
        let text = "# BEGIN lb-test (managed by lb-test; edits inside are replaced)\nx\n";
        assert!(B.set(text, "y\n", Position::Bottom, f()).is_err());
        let text = "a\n# END lb-test\n";
        let e = B.remove(text, f()).unwrap_err();
        assert!(e.to_string().starts_with("/etc/x.conf:2:"), "{e}");
    }

    #[test]
    fn empty_body() {
        let with = B.set("a\n", "", Position::Bottom, f()).unwrap();
        assert_eq!(B.body(&with, f()).unwrap(), Some(""));
        assert_eq!(B.remove(&with, f()).unwrap(), "a\n");
    }
}
