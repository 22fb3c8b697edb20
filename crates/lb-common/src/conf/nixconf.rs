//! nix.conf as Nix reads it (src/libutil/config.cc, `applyConfigFile`):
//!
//! - lines split on `\n`, no continuation; `#` to the end of the line is
//!   removed; the rest is split on whitespace;
//! - `include P` (missing: error) and `!include P` (missing: ignored), P
//!   relative to the including file's directory;
//! - otherwise `NAME = VALUE...`: the second token must be `=` (so
//!   `name=value` is an error), the value is the remaining tokens joined by
//!   single spaces;
//! - later assignments win; `extra-NAME` appends to NAME.
//!
//! Nix recurses into include loops until it overflows; here a loop is an
//! error naming the file.

use std::path::{Path, PathBuf};

use super::{Error, Location};
use crate::paths::Root;

/// One `name = value` line, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The setting's name, as written (`builders`, `extra-trusted-users`).
    pub name: String,
    /// The words after `=`, joined by single spaces; empty for `name =`.
    pub value: String,
    /// Where the line is: file and line.
    pub at: Location,
}

/// Every assignment of a nix.conf and the files it includes, in the order
/// Nix applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NixConf {
    /// Every `name = value` line, in the order Nix applies them.
    pub assignments: Vec<Assignment>,
    /// Every file read, main file first.
    pub files: Vec<PathBuf>,
}

/// The nix.conf directory: `$NIX_CONF_DIR` when set (used as given), else
/// `/etc/nix` inside the root.
///
/// # Errors
/// `/etc/nix` leads out of `--root`.
pub fn conf_dir(root: &Root) -> Result<PathBuf, crate::paths::Error> {
    match std::env::var_os("NIX_CONF_DIR") {
        Some(d) if !d.is_empty() => Ok(PathBuf::from(d)),
        _ => root.system(Path::new("/etc/nix")),
    }
}

impl NixConf {
    /// Read `path` and its includes. A missing main file is an empty
    /// configuration, as for Nix.
    ///
    /// # Errors
    /// A malformed line ([`Error::Syntax`]), a missing `include`
    /// ([`Error::IncludeMissing`]), an include loop ([`Error::IncludeLoop`])
    /// or a file that cannot be read ([`Error::File`], [`Error::Read`]).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let mut conf = NixConf::default();
        let mut stack = Vec::new();
        conf.read_file(path, true, None, &mut stack)?;
        Ok(conf)
    }

    /// Parse `text` as if it were the file `path`.
    ///
    /// # Errors
    /// As for [`NixConf::load`]: includes are read relative to `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let mut conf = NixConf::default();
        let mut stack = vec![path.to_path_buf()];
        conf.files.push(path.to_path_buf());
        conf.parse_into(text, path, &mut stack)?;
        Ok(conf)
    }

    fn read_file(
        &mut self,
        path: &Path,
        ignore_missing: bool,
        from: Option<&Location>,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), Error> {
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if stack.contains(&canon) {
            return Err(Error::IncludeLoop {
                at: from.cloned().unwrap_or(Location {
                    file: path.to_path_buf(),
                    line: 0,
                }),
                include: path.to_path_buf(),
            });
        }
        let text = match super::read_text(path)? {
            Some(t) => t,
            None if ignore_missing => return Ok(()),
            None => {
                return Err(match from {
                    Some(at) => Error::IncludeMissing {
                        at: at.clone(),
                        include: path.to_path_buf(),
                    },
                    None => Error::Read {
                        path: path.to_path_buf(),
                        source: std::io::ErrorKind::NotFound.into(),
                    },
                })
            }
        };
        self.files.push(path.to_path_buf());
        stack.push(canon);
        self.parse_into(&text, path, stack)?;
        stack.pop();
        Ok(())
    }

    fn parse_into(
        &mut self,
        text: &str,
        path: &Path,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), Error> {
        for (n, raw) in text.split('\n').enumerate() {
            let at = Location {
                file: path.to_path_buf(),
                line: n + 1,
            };
            let line = raw.find('#').map_or(raw, |i| &raw[..i]);
            let tokens: Vec<&str> = line.split_whitespace().collect();
            let syntax = |reason: &str| Error::Syntax {
                at: at.clone(),
                text: crate::text::excerpt(raw),
                reason: reason.to_owned(),
            };
            match tokens.as_slice() {
                [] => {}
                [kw @ ("include" | "!include"), rest @ ..] => {
                    let [target] = rest else {
                        return Err(syntax("an include takes exactly one path"));
                    };
                    let dir = path.parent().unwrap_or(Path::new("."));
                    let target = dir.join(target);
                    self.read_file(&target, *kw == "!include", Some(&at), stack)?;
                }
                [_] => return Err(syntax("expected `name = value`")),
                [name, "=", value @ ..] => self.assignments.push(Assignment {
                    name: (*name).to_owned(),
                    value: value.join(" "),
                    at,
                }),
                _ => return Err(syntax("expected `name = value` with spaces around `=`")),
            }
        }
        Ok(())
    }

    /// The effective value of a setting: the last plain assignment, with
    /// every later `extra-NAME` appended. `None` when never set.
    #[must_use]
    pub fn effective(&self, name: &str) -> Option<String> {
        let extra = format!("extra-{name}");
        let mut value: Option<String> = None;
        for a in &self.assignments {
            if a.name == name {
                value = Some(a.value.clone());
            } else if a.name == extra {
                value = Some(match value {
                    Some(v) if !v.is_empty() => format!("{v} {}", a.value),
                    _ => a.value.clone(),
                });
            }
        }
        value
    }

    /// Every assignment of exactly `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Assignment> + 'a {
        self.assignments.iter().filter(move |a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<NixConf, Error> {
        NixConf::parse(text, Path::new("/etc/nix/nix.conf"))
    }

    #[test]
    fn comments_spacing_and_last_wins() {
        let c =
            p("# top\n  builders =   a   b  # trailing\nmax-jobs = 1\nbuilders = c\n\n").unwrap();
        assert_eq!(c.effective("builders").as_deref(), Some("c"));
        assert_eq!(c.effective("max-jobs").as_deref(), Some("1"));
        assert_eq!(c.all("builders").next().unwrap().value, "a b");
        assert_eq!(c.all("builders").next().unwrap().at.line, 2);
        assert_eq!(c.effective("absent"), None);
    }

    #[test]
    fn empty_value_is_set_and_empty() {
        let c = p("substituters =\n").unwrap();
        assert_eq!(c.effective("substituters").as_deref(), Some(""));
    }

    #[test]
    fn extra_appends_until_reset() {
        let c = p("trusted-users = root\nextra-trusted-users = alice\nextra-trusted-users = bob\n")
            .unwrap();
        assert_eq!(
            c.effective("trusted-users").as_deref(),
            Some("root alice bob")
        );
        let c = p("extra-trusted-users = alice\ntrusted-users = root\n").unwrap();
        assert_eq!(c.effective("trusted-users").as_deref(), Some("root"));
    }

    #[test]
    fn name_equals_value_without_spaces_is_an_error() {
        let e = p("ok = 1\nbuilders=foo\n").unwrap_err();
        assert!(matches!(e, Error::Syntax { .. }));
        assert!(e.to_string().starts_with("/etc/nix/nix.conf:2:"), "{e}");
        assert!(p("lonely\n").is_err());
        assert!(p("a b = c\n").is_err());
    }

    #[test]
    fn includes_relative_missing_and_loops() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(
            d.join("nix.conf"),
            "a = 1\ninclude sub/x.conf\n!include absent.conf\nc = 3\n",
        )
        .unwrap();
        std::fs::write(d.join("sub/x.conf"), "b = 2\na = 4\n").unwrap();
        let c = NixConf::load(&d.join("nix.conf")).unwrap();
        assert_eq!(c.effective("a").as_deref(), Some("4"));
        assert_eq!(c.effective("b").as_deref(), Some("2"));
        assert_eq!(c.files.len(), 2);

        std::fs::write(d.join("nix.conf"), "include absent.conf\n").unwrap();
        let e = NixConf::load(&d.join("nix.conf")).unwrap_err();
        assert!(matches!(e, Error::IncludeMissing { .. }), "{e}");
        assert!(e.to_string().contains("nix.conf:1"), "{e}");

        std::fs::write(d.join("nix.conf"), "include sub/x.conf\n").unwrap();
        std::fs::write(d.join("sub/x.conf"), "include ../nix.conf\n").unwrap();
        assert!(matches!(
            NixConf::load(&d.join("nix.conf")),
            Err(Error::IncludeLoop { .. })
        ));

        std::fs::write(d.join("nix.conf"), "include a b\n").unwrap();
        assert!(matches!(
            NixConf::load(&d.join("nix.conf")),
            Err(Error::Syntax { .. })
        ));
    }

    #[test]
    fn hostile_includes_are_refused_not_read_for_ever() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let conf = d.join("nix.conf");
        std::fs::write(&conf, "include /dev/zero\n").unwrap();
        let e = NixConf::load(&conf).unwrap_err();
        assert!(
            e.to_string().contains("/dev/zero: is a character device"),
            "{e}"
        );
        assert_eq!(
            crate::status::Classify::status(&e),
            crate::status::Status::Usage
        );
        let fifo = d.join("fifo.conf");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::write(&conf, "!include fifo.conf\n").unwrap();
        let e = NixConf::load(&conf).unwrap_err();
        assert!(e.to_string().contains("is a FIFO"), "{e}");
        // nix.conf itself a FIFO: refused, not waited on.
        assert!(NixConf::load(&fifo).is_err());
    }

    #[test]
    fn errors_quote_a_bounded_escaped_excerpt() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("nix.conf");
        let line = format!("\x1b[31m{}", "x".repeat(8 << 20));
        std::fs::write(&conf, &line).unwrap();
        let e = NixConf::load(&conf).unwrap_err().to_string();
        assert!(e.len() < 300, "{} bytes", e.len());
        assert!(e.contains("\\e[31m") && !e.contains('\x1b'), "{e}");
        assert!(e.contains("(8388613 bytes in all)"), "{e}");
        // An included file's line: the same excerpt, never the whole line.
        std::fs::write(tmp.path().join("secret"), format!("{}\n", "s".repeat(500))).unwrap();
        std::fs::write(&conf, "include secret\n").unwrap();
        let e = NixConf::load(&conf).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:1:", tmp.path().join("secret").display())),
            "{e}"
        );
        assert!(!e.contains(&"s".repeat(100)), "{e}");
    }

    #[test]
    fn missing_main_file_is_empty() {
        let c = NixConf::load(Path::new("/nonexistent/nix.conf")).unwrap();
        assert!(c.assignments.is_empty());
    }
}
