//! What lb-nixconf keeps inside its managed block of nix.conf, and the
//! edit of nix.conf around it (render: pure text in, text out).
//!
//! ```text
//! # BEGIN lb-nixconf (managed by lb-nixconf; edits inside are replaced)
//! builders = ssh-ng://builder@linux-builder ... ; ssh-ng://builder@other ...
//! builders-use-substitutes = true
//! extra-trusted-users = alice bob
//! # END lb-nixconf
//! ```
//!
//! `builders` is a plain string setting (there is no `extra-builders`), so
//! every builder lb-nixconf manages lives on that one line, joined with
//! ` ; `, each keyed by the host of its URI (the builder's `--name`).

use std::path::Path;

use lb_common::conf::block::{ManagedBlock, Position};
use lb_common::conf::machines::{self, Machine};
use lb_common::conf::nixconf::{Assignment, NixConf};
use lb_common::conf::{Error as ConfError, Location};

/// The block's tag in nix.conf.
pub const BLOCK: ManagedBlock<'static> = ManagedBlock { tag: "lb-nixconf" };

/// One entry of the managed `builders` value, kept as written so entries
/// moved in from elsewhere (`--force`) stay byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub text: String,
    /// The URI's host; `None` for an `@FILE` entry (never replaced).
    pub host: Option<String>,
}

/// The content of the block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    pub entries: Vec<Entry>,
    pub trusted_users: Vec<String>,
}

/// Errors of the edit that are not syntax errors of the file.
#[derive(Debug)]
pub enum EditError {
    Conf(ConfError),
    /// A `builders` line outside the block.
    Conflict {
        at: Location,
        text: String,
        /// In a file nix.conf includes: `--force` cannot move it.
        included: bool,
    },
}

impl From<ConfError> for EditError {
    fn from(e: ConfError) -> Self {
        EditError::Conf(e)
    }
}

/// Split a `builders` value into entries, as machines.cc does (`\n` and
/// `;`), checking each non-`@` entry with the shared machines parser.
pub fn split_entries(value: &str, at: &Location) -> Result<Vec<Entry>, ConfError> {
    let mut out = Vec::new();
    for raw in value.split(['\n', ';']) {
        let text = raw.trim();
        if text.is_empty() {
            continue;
        }
        if text.starts_with('@') {
            out.push(Entry {
                text: text.to_owned(),
                host: None,
            });
            continue;
        }
        // `this_system` only fills an empty systems field; the host is all we need.
        let parsed = machines::parse(text, "x86_64-linux", at, &machines::resolve_as_given)?;
        for m in parsed {
            out.push(Entry {
                text: text.to_owned(),
                host: Some(m.host().to_owned()),
            });
        }
    }
    Ok(out)
}

impl Body {
    /// Read the block's body (`first_line`: the body's line number in `file`).
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfError> {
        let conf = NixConf::parse(text, file)?;
        let mut body = Body::default();
        if let Some(a) = conf.all("builders").last() {
            body.entries = split_entries(&a.value, &a.at)?;
        }
        for a in conf.all("extra-trusted-users") {
            for u in a.value.split_whitespace() {
                body.add_user(u);
            }
        }
        Ok(body)
    }

    /// Add or replace the entry for `machine`'s host.
    pub fn put(&mut self, machine: &Machine) {
        let entry = Entry {
            text: machine.render(),
            host: Some(machine.host().to_owned()),
        };
        match self.entries.iter_mut().find(|e| e.host == entry.host) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
    }

    /// Add entries moved in from outside, unless one for the same host is
    /// already there (the block's own entry wins).
    pub fn adopt(&mut self, entries: Vec<Entry>) {
        for e in entries {
            let dup = self
                .entries
                .iter()
                .any(|x| (x.host.is_some() && x.host == e.host) || x.text == e.text);
            if !dup {
                self.entries.push(e);
            }
        }
    }

    /// Drop the entry of host `name`; true if there was one.
    pub fn drop_host(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.host.as_deref() != Some(name));
        before != self.entries.len()
    }

    pub fn add_user(&mut self, user: &str) {
        if !self.trusted_users.iter().any(|u| u == user) {
            self.trusted_users.push(user.to_owned());
        }
    }

    /// The lines between the markers.
    #[must_use]
    pub fn render(&self) -> String {
        let entries: Vec<&str> = self.entries.iter().map(|e| e.text.as_str()).collect();
        let mut s = format!(
            "builders = {}\nbuilders-use-substitutes = true\n",
            entries.join(" ; ")
        );
        if !self.trusted_users.is_empty() {
            s.push_str("extra-trusted-users = ");
            s.push_str(&self.trusted_users.join(" "));
            s.push('\n');
        }
        s
    }
}

/// nix.conf as read for an edit: the block's body and line range, and the
/// `builders` assignments outside it.
#[derive(Debug)]
pub struct Parsed {
    pub body: Body,
    pub outside: Vec<Assignment>,
}

/// The 1-based line range of the block body inside `text`.
fn body_lines(text: &str, body: &str) -> std::ops::Range<usize> {
    // `body` is a subslice of `text` (ManagedBlock::body borrows from it).
    let offset = (body.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    let first = text[..offset.min(text.len())].matches('\n').count() + 1;
    first..first + body.matches('\n').count()
}

/// Parse nix.conf (following its includes, so a malformed included file is
/// reported with its line too) and find the block and the lines outside it.
pub fn read(text: &str, path: &Path) -> Result<Parsed, ConfError> {
    let conf = NixConf::parse(text, path)?;
    let (body, range) = match BLOCK.body(text, path)? {
        Some(b) => {
            let range = body_lines(text, b);
            // Line numbers in messages must point into nix.conf itself.
            let body = Body::parse(&format!("{}{b}", "\n".repeat(range.start - 1)), path)?;
            (body, range)
        }
        None => (Body::default(), 0..0),
    };
    let outside = conf
        .all("builders")
        .filter(|a| !(a.at.file == path && range.contains(&a.at.line)))
        .cloned()
        .collect();
    Ok(Parsed { body, outside })
}

/// `text` with the given lines (1-based, of this file) removed.
fn drop_lines(text: &str, lines: &[usize]) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .filter(|(i, _)| !lines.contains(&(i + 1)))
        .map(|(_, l)| l)
        .collect()
}

/// The wanted nix.conf and the lines moved into the block: `machine` added to the block (replacing the entry
/// with the same host), `users` trusted. A `builders` line outside the
/// block is a conflict unless `force`, which moves its entries inside.
pub fn install(
    text: &str,
    path: &Path,
    machine: &Machine,
    users: &[String],
    force: bool,
) -> Result<(String, Vec<Location>), EditError> {
    let parsed = read(text, path)?;
    let mut body = parsed.body;
    body.put(machine);
    for u in users {
        body.add_user(u);
    }
    let mut moved = Vec::new();
    for a in &parsed.outside {
        let included = a.at.file != path;
        if !force || included {
            return Err(EditError::Conflict {
                at: a.at.clone(),
                text: lb_common::text::excerpt(&format!("builders = {}", a.value)),
                included,
            });
        }
        body.adopt(split_entries(&a.value, &a.at)?);
        moved.push(a.at.clone());
    }
    let lines: Vec<usize> = moved.iter().map(|at| at.line).collect();
    let text = drop_lines(text, &lines);
    let out = BLOCK.set(&text, &body.render(), Position::Bottom, path)?;
    validate(&out, path)?;
    Ok((out, moved))
}

/// The wanted nix.conf without host `name`; the block goes with its last
/// entry. `None` when `name` is not in the block.
pub fn remove(text: &str, path: &Path, name: &str) -> Result<Option<String>, ConfError> {
    let mut body = read(text, path)?.body;
    if !body.drop_host(name) {
        return Ok(None);
    }
    let out = if body.entries.is_empty() {
        BLOCK.remove(text, path)?
    } else {
        BLOCK.set(text, &body.render(), Position::Bottom, path)?
    };
    validate(&out, path)?;
    Ok(Some(out))
}

/// What we are about to write must read back with Nix's rules: every line
/// parses and the effective `builders` value is a valid machines list.
fn validate(text: &str, path: &Path) -> Result<(), ConfError> {
    let conf = NixConf::parse(text, path)?;
    if let Some(a) = conf.all("builders").last() {
        split_entries(&a.value, &a.at)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str) -> Machine {
        let at = Location {
            file: "t".into(),
            line: 0,
        };
        machines::parse(
            &format!("ssh-ng://builder@{name} aarch64-linux /k 4"),
            "x86_64-linux",
            &at,
            &machines::resolve_as_given,
        )
        .unwrap()
        .remove(0)
    }

    fn p() -> &'static Path {
        Path::new("/etc/nix/nix.conf")
    }

    #[test]
    fn install_keeps_outside_bytes_and_is_idempotent() {
        let original = "# mine\nmax-jobs = 0\n\n  trusted-users = root  ";
        let once = install(original, p(), &machine("a"), &[], false).unwrap().0;
        assert!(once.starts_with(original), "{once}");
        let twice = install(&once, p(), &machine("a"), &[], false).unwrap().0;
        assert_eq!(once, twice);
        let both = install(&once, p(), &machine("b"), &["alice".into()], false)
            .unwrap()
            .0;
        let both = install(&both, p(), &machine("b"), &["bob".into()], false)
            .unwrap()
            .0;
        let body = BLOCK.body(&both, p()).unwrap().unwrap();
        assert_eq!(
            body,
            "builders = ssh-ng://builder@a aarch64-linux /k 4 - - - - ; ssh-ng://builder@b aarch64-linux /k 4 - - - -\nbuilders-use-substitutes = true\nextra-trusted-users = alice bob\n"
        );
        let only_b = remove(&both, p(), "a").unwrap().unwrap();
        assert!(!only_b.contains("builder@a"));
        assert_eq!(remove(&only_b, p(), "a").unwrap(), None);
        assert_eq!(remove(&only_b, p(), "b").unwrap().unwrap(), original);
    }

    #[test]
    fn outside_builders_conflicts_unless_forced() {
        let original = "a = 1\nbuilders = ssh://x@old - - 2 ; @/etc/nix/machines\nb = 2\n";
        match install(original, p(), &machine("a"), &[], false) {
            Err(EditError::Conflict { at, included, .. }) => {
                assert_eq!(at.line, 2);
                assert!(!included);
            }
            other => panic!("{other:?}"),
        }
        let (forced, moved) = install(original, p(), &machine("a"), &[], true).unwrap();
        assert_eq!(moved.iter().map(|at| at.line).collect::<Vec<_>>(), [2]);
        assert!(forced.starts_with("a = 1\nb = 2\n# BEGIN"), "{forced}");
        assert!(forced.contains(
            "builders = ssh-ng://builder@a aarch64-linux /k 4 - - - - ; ssh://x@old - - 2 ; @/etc/nix/machines\n"
        ));
        // Once moved, a second run is quiet.
        assert_eq!(
            install(&forced, p(), &machine("a"), &[], false).unwrap(),
            (forced, vec![])
        );
    }

    #[test]
    fn malformed_lines_are_reported_not_rewritten() {
        let e = install("ok = 1\nbuilders=x\n", p(), &machine("a"), &[], true).unwrap_err();
        let EditError::Conf(e) = e else {
            panic!("{e:?}")
        };
        assert!(e.to_string().starts_with("/etc/nix/nix.conf:2:"), "{e}");
    }

    #[test]
    fn bad_entry_inside_block_names_its_line() {
        let text = "x = 1\n# BEGIN lb-nixconf (managed by lb-nixconf; edits inside are replaced)\nbuilders = a@b - - many\n# END lb-nixconf\n";
        let e = read(text, p()).unwrap_err();
        assert!(e.to_string().starts_with("/etc/nix/nix.conf:3:"), "{e}");
    }
}
