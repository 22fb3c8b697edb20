//! The builders / machines format (src/libstore/machines.cc).
//!
//! Entries are separated by newlines or `;`; `#` starts a comment; an entry
//! `@FILE` reads more entries from FILE (a missing file is ignored). An
//! entry's fields, whitespace-separated, `-` meaning the default:
//!
//! 1. store URI (a bare `user@host` means legacy `ssh://`)
//! 2. systems, comma-separated (default: this machine's)
//! 3. SSH identity file
//! 4. max jobs (default 1)
//! 5. speed factor (default 1)
//! 6. supported features, comma-separated
//! 7. mandatory features, comma-separated
//! 8. base64 of the host's public key line
//!
//! Where Nix versions read it differently, [`Dialect`] says which way
//! ([`parse`] reads as today's Nix does; [`parse_as`] as a given version).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Error, Location};

/// One builder as Nix reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// The URI as written.
    pub uri: String,
    /// Field 2: the systems it builds for; this machine's when not given.
    pub systems: Vec<String>,
    /// Field 3: the SSH identity file; `None` for the default.
    pub ssh_key: Option<String>,
    /// Field 4: how many builds it runs at once (default 1).
    pub max_jobs: u64,
    /// Field 5: its speed relative to the others (default 1; 0 reads as 1).
    pub speed_factor: f64,
    /// Field 6: the features it supports (`kvm`, `big-parallel`...).
    pub supported_features: Vec<String>,
    /// Field 7: the features a build must ask for to be sent to it.
    pub mandatory_features: Vec<String>,
    /// Field 8: base64 of the `.pub` line.
    pub public_host_key: Option<String>,
    /// Which file (or setting) and line it came from.
    #[serde(skip)]
    pub at: Location,
}

impl Machine {
    /// The URI Nix actually uses: a bare `user@host` gets `ssh://`; a
    /// path and the local store words (`auto`, `daemon`, `local`, with or
    /// without `?params`) are kept (machines.cc, `Machine::Machine`; seen
    /// here: Nix 2.8 built on `local?root=...` as given).
    #[must_use]
    pub fn effective_uri(&self) -> String {
        let u = self.uri.as_str();
        let word = u.split('?').next().unwrap_or(u);
        if u.contains("://")
            || u.contains('/')
            || u.starts_with('?')
            || matches!(word, "auto" | "daemon" | "local")
        {
            self.uri.clone()
        } else {
            format!("ssh://{}", self.uri)
        }
    }

    /// The host part of the URI (no scheme, user, port, path or query).
    #[must_use]
    pub fn host(&self) -> &str {
        let rest = self
            .uri
            .split_once("://")
            .map_or(self.uri.as_str(), |(_, r)| r);
        let rest = rest.split(['?', '/']).next().unwrap_or(rest);
        rest.rsplit_once('@').map_or(rest, |(_, h)| h)
    }

    /// The user part of the URI, if any.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        let rest = self
            .uri
            .split_once("://")
            .map_or(self.uri.as_str(), |(_, r)| r);
        let rest = rest.split(['?', '/']).next().unwrap_or(rest);
        rest.rsplit_once('@').map(|(u, _)| u)
    }

    /// A query parameter of the URI (`remote-program`, `ssh-key`...).
    #[must_use]
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, q) = self.uri.split_once('?')?;
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The entry as one line of the machines format, `-` for defaults.
    #[must_use]
    pub fn render(&self) -> String {
        let list = |v: &[String]| match v.join(",") {
            s if s.is_empty() => "-".to_owned(),
            // A list holding just `-` (written `-,`): a lone `-` would read
            // back as "the default" (found by the machines fuzz target).
            s if s == "-" => "-,".to_owned(),
            s => s,
        };
        // f64's Display prints whole numbers without a fraction ("2").
        let speed = format!("{}", self.speed_factor);
        [
            self.uri.clone(),
            list(&self.systems),
            self.ssh_key.clone().unwrap_or_else(|| "-".to_owned()),
            self.max_jobs.to_string(),
            if (self.speed_factor - 1.0).abs() < f64::EPSILON {
                "-".to_owned()
            } else {
                speed
            },
            list(&self.supported_features),
            list(&self.mandatory_features),
            self.public_host_key
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
        ]
        .join(" ")
    }
}

/// How one Nix version reads the machines format where versions differ
/// (src/libstore/machines.cc of each tag; the cases are Nix's own tests,
/// crates/lb-common/tests/nix_machines_cases.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// The speed factor is a float (2.20 on, "Convert `Machine::speedFactor`
    /// from a non-neg int to a non-neg float"); before, an unsigned
    /// integer, so `1.5` is refused.
    pub float_speed: bool,
    /// The systems are a set, sorted and without duplicates (2.20 on,
    /// "Make `Machine::systemTypes` a set not vector"); before, the list
    /// as written.
    pub systems_set: bool,
    /// `#` comments out the rest of the line, `;` included, and each entry
    /// is trimmed before it is looked at (2.29 on: "Fix `;` and `#` bug in
    /// machine file parsing" and "Fix another machine config parsing
    /// bug"). Before, the value was split on `;` and newlines first and
    /// each piece cut at its `#` but never trimmed (its `trim` result was
    /// dropped): a `;` ended a comment and what followed was an entry, a
    /// piece of only blanks (an indented comment, a blank line) was
    /// refused ("store URL was not found", seen here with 2.8 and 2.26),
    /// and `@FILE` counted only at the piece's first character.
    pub comment_to_line_end: bool,
}

impl Dialect {
    /// Today's Nix (2.29 and later).
    pub const LATEST: Dialect = Dialect {
        float_speed: true,
        systems_set: true,
        comment_to_line_end: true,
    };

    /// Nix before 2.20 (Debian 12's 2.8).
    pub const BEFORE_2_20: Dialect = Dialect {
        float_speed: false,
        systems_set: false,
        comment_to_line_end: false,
    };

    /// How Nix `version` (`2.8.0`, `2.26.3`, `2.34.8pre`...) reads it;
    /// an unreadable version reads as today's.
    #[must_use]
    pub fn for_version(version: &str) -> Dialect {
        match crate::nix_version::NixVersion::parse(version) {
            Some(v) if v.major == 2 => Dialect {
                float_speed: v.minor >= 20,
                systems_set: v.minor >= 20,
                comment_to_line_end: v.minor >= 29,
            },
            Some(v) if v.major < 2 => Dialect::BEFORE_2_20,
            _ => Dialect::LATEST,
        }
    }
}

/// Parse a `builders` value as today's Nix does. `this_system` fills an
/// empty systems field; `at` says where the value came from. `@FILE`
/// entries are read from `resolve(FILE)`.
///
/// # Errors
/// An entry Nix would refuse ([`Error::Machine`]), an `@FILE` loop
/// ([`Error::IncludeLoop`]) or an `@FILE` that cannot be read
/// ([`Error::File`], [`Error::Read`]).
pub fn parse(
    text: &str,
    this_system: &str,
    at: &Location,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<Machine>, Error> {
    parse_as(text, this_system, at, resolve, Dialect::LATEST)
}

/// [`parse`] as the Nix of `dialect` reads it.
///
/// # Errors
/// As for [`parse`], by the rules of `dialect`.
pub fn parse_as(
    text: &str,
    this_system: &str,
    at: &Location,
    resolve: &dyn Fn(&str) -> PathBuf,
    dialect: Dialect,
) -> Result<Vec<Machine>, Error> {
    let mut out = Vec::new();
    let ctx = Ctx {
        this_system,
        resolve,
        dialect,
    };
    parse_into(text, &ctx, at, &mut Vec::new(), &mut out)?;
    Ok(out)
}

struct Ctx<'a> {
    this_system: &'a str,
    resolve: &'a dyn Fn(&str) -> PathBuf,
    dialect: Dialect,
}

fn parse_into(
    text: &str,
    ctx: &Ctx<'_>,
    at: &Location,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<Machine>,
) -> Result<(), Error> {
    let (this_system, resolve) = (ctx.this_system, ctx.resolve);
    // Lines are counted for messages; `;` separates entries within a line.
    for (n, line) in text.split('\n').enumerate() {
        let here = Location {
            file: at.file.clone(),
            line: if at.line == 0 { n + 1 } else { at.line },
        };
        // Today's Nix cuts the comment off the line first; older Nix cut
        // each `;`-separated entry at its own `#` (see [`Dialect`]).
        let line = if ctx.dialect.comment_to_line_end {
            line.find('#').map_or(line, |i| &line[..i])
        } else {
            line
        };
        for entry in line.split(';') {
            let entry = if ctx.dialect.comment_to_line_end {
                entry.trim()
            } else if entry.is_empty() {
                // tokenizeString skips empty pieces.
                continue;
            } else {
                entry.find('#').map_or(entry, |i| &entry[..i])
            };
            if entry.is_empty() {
                continue;
            }
            if let Some(file) = entry.strip_prefix('@') {
                let path = resolve(file.trim());
                if stack.contains(&path) {
                    return Err(Error::IncludeLoop {
                        at: here,
                        include: path,
                    });
                }
                // Bounded and regular files only: `@/dev/zero` is refused.
                let Some(text) = super::read_text(&path)? else {
                    continue;
                };
                stack.push(path.clone());
                let file_at = Location {
                    file: path,
                    line: 0,
                };
                parse_into(&text, ctx, &file_at, stack, out)?;
                stack.pop();
                continue;
            }
            out.push(parse_entry(entry, this_system, &here, ctx.dialect)?);
        }
    }
    Ok(())
}

fn parse_entry(
    entry: &str,
    this_system: &str,
    at: &Location,
    dialect: Dialect,
) -> Result<Machine, Error> {
    let bad = |reason: String| Error::Machine {
        at: at.clone(),
        entry: crate::text::excerpt(entry),
        reason,
    };
    let ex = |v: &str| crate::text::excerpt_n(v, 40);
    let f: Vec<&str> = entry.split_whitespace().collect();
    if f.is_empty() {
        return Err(bad(
            "only blanks, no store URI (Nix before 2.29 refuses such an entry; remove it)"
                .to_owned(),
        ));
    }
    if f.len() > 8 {
        return Err(bad(format!("{} fields, at most 8", f.len())));
    }
    let set = |i: usize| f.get(i).copied().filter(|v| !v.is_empty() && *v != "-");
    let list = |i: usize| {
        set(i).map_or_else(Vec::new, |v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    };
    // An `unsigned int` in every version (machines.cc `parseUnsignedIntField`).
    let max_jobs = match set(3) {
        None => 1,
        Some(v) => u64::from(
            v.parse::<u32>()
                .map_err(|_| bad(format!("max jobs \"{}\" is not a whole number", ex(v))))?,
        ),
    };
    let speed_factor = match set(4) {
        None => 1.0,
        Some(v) if !dialect.float_speed => f64::from(v.parse::<u32>().map_err(|_| {
            bad(format!(
                "speed factor \"{}\" is not a whole number (Nix before 2.20 reads an integer)",
                ex(v)
            ))
        })?),
        Some(v) => v
            .parse::<f32>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(f64::from)
            .ok_or_else(|| bad(format!("speed factor \"{}\" is not a number >= 0", ex(v))))?,
    };
    // Nix takes 0 for the default, 1 (`Machine::Machine`).
    let speed_factor = if speed_factor == 0.0 {
        1.0
    } else {
        speed_factor
    };
    // Nix refuses the whole builders list when field 8 is not base64
    // (machines.cc `ensureBase64`; seen here with 2.8: "bad machine
    // specification: a column #7 ... is not valid base64 string"). Its
    // decoder does not insist on padding.
    if let Some(v) = set(7) {
        use base64::Engine as _;
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        lenient.decode(v).map_err(|e| {
            bad(format!(
                "public host key \"{}\" is not valid base64 ({e})",
                ex(v)
            ))
        })?;
    }
    let mut systems = list(1);
    if systems.is_empty() {
        systems.push(this_system.to_owned());
    }
    if dialect.systems_set {
        systems.sort();
        systems.dedup();
    }
    Ok(Machine {
        uri: f[0].to_owned(),
        systems,
        ssh_key: set(2).map(str::to_owned),
        max_jobs,
        speed_factor,
        supported_features: list(5),
        mandatory_features: list(6),
        public_host_key: set(7).map(str::to_owned),
        at: at.clone(),
    })
}

/// `@FILE` paths as Nix resolves them: relative to the working directory.
#[must_use]
pub fn resolve_as_given(file: &str) -> PathBuf {
    Path::new(file).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANUAL: &str = "ssh-ng://builder@linux-builder aarch64-linux /etc/nix/builder_ed25519 4 - - - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=";

    fn at() -> Location {
        Location {
            file: "builders".into(),
            line: 0,
        }
    }

    fn p(text: &str) -> Result<Vec<Machine>, Error> {
        parse(text, "x86_64-linux", &at(), &resolve_as_given)
    }

    #[test]
    fn manual_line_round_trips() {
        let m = p(MANUAL).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].systems, ["aarch64-linux"]);
        assert_eq!(m[0].max_jobs, 4);
        assert_eq!(m[0].host(), "linux-builder");
        assert_eq!(m[0].user(), Some("builder"));
        assert_eq!(m[0].render(), MANUAL);
    }

    #[test]
    fn separators_comments_and_defaults() {
        let m = p("a@h1 ; ssh-ng://b@h2 - - 2 # comment\n  # whole line\n\nssh://c@h3 x86_64-linux,i686-linux - - 2 kvm,big-parallel benchmark").unwrap();
        assert_eq!(m.len(), 3, "{m:#?}");
        assert_eq!(m[0].effective_uri(), "ssh://a@h1");
        assert_eq!(m[0].systems, ["x86_64-linux"]);
        assert_eq!(m[0].max_jobs, 1);
        assert_eq!(m[1].max_jobs, 2);
        assert_eq!(m[1].ssh_key, None);
        // A set from 2.20 on: sorted (machines.cc, `tokenizeString<StringSet>`).
        assert_eq!(m[2].systems, ["i686-linux", "x86_64-linux"]);
        assert!((m[2].speed_factor - 2.0).abs() < f64::EPSILON);
        assert_eq!(m[2].supported_features, ["kvm", "big-parallel"]);
        assert_eq!(m[2].mandatory_features, ["benchmark"]);
        assert_eq!(m[2].at.line, 4);
    }

    #[test]
    fn comment_ends_its_line_from_2_29_its_entry_before() {
        // 2.29+ cut the line at `#`; before, machines.cc split on `\n;`
        // first, then cut each entry at `#`.
        let m = p("a@h # c ; b@h2").unwrap();
        assert_eq!(m.iter().map(Machine::host).collect::<Vec<_>>(), ["h"]);
        let old = parse_as(
            "a@h # c ; b@h2",
            "x86_64-linux",
            &at(),
            &resolve_as_given,
            Dialect::for_version("2.26.3"),
        )
        .unwrap();
        assert_eq!(
            old.iter().map(Machine::host).collect::<Vec<_>>(),
            ["h", "h2"]
        );
        assert_eq!(Dialect::for_version("2.8.0"), Dialect::BEFORE_2_20);
        assert_eq!(Dialect::for_version("2.34.8"), Dialect::LATEST);
        assert_eq!(Dialect::for_version("2.29.0pre"), Dialect::LATEST);
        assert!(!Dialect::for_version("2.28.4").comment_to_line_end);
        assert!(Dialect::for_version("2.28.4").float_speed);
    }

    #[test]
    fn at_file_read_and_missing_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("machines");
        std::fs::write(&f, "ssh-ng://x@y\n@/nonexistent/more\n").unwrap();
        let m = p(&format!("ssh-ng://a@b ; @{}", f.display())).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].host(), "y");
        assert_eq!(m[1].at.file, f);
        assert!(p("@/nonexistent/machines").unwrap().is_empty());
    }

    #[test]
    fn at_file_that_never_ends_is_refused() {
        let e = p("@/dev/zero").unwrap_err();
        assert!(
            e.to_string().contains("/dev/zero: is a character device"),
            "{e}"
        );
        let e = p(&format!("a@b - - {}", "9".repeat(1 << 20))).unwrap_err();
        assert!(e.to_string().len() < 400, "{}", e.to_string().len());
    }

    #[test]
    fn at_file_loop_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("m");
        std::fs::write(&f, format!("@{}\n", f.display())).unwrap();
        assert!(matches!(
            p(&format!("@{}", f.display())),
            Err(Error::IncludeLoop { .. })
        ));
    }

    #[test]
    fn bad_entries() {
        assert!(matches!(p("a@b - - x"), Err(Error::Machine { .. })));
        assert!(matches!(p("a@b - - 1 fast"), Err(Error::Machine { .. })));
        let e = p("a@b - - - - - - notbase64!").unwrap_err();
        assert!(e.to_string().contains("not valid base64"), "{e}");
        // Valid base64 of something that is not a key is Nix's business at
        // connection time, not a parse error; missing padding is accepted.
        p("a@b - - - - - - aGVsbG8gd29ybGQK").unwrap();
        p("a@b - - - - - - aGVsbG8").unwrap();
        let e = p("a b c d e f g h i").unwrap_err();
        assert!(e.to_string().contains("9 fields"), "{e}");
    }

    #[test]
    fn a_list_of_just_a_dash_round_trips() {
        let m = p("a@b -, - - - -,").unwrap();
        assert_eq!(m[0].systems, ["-"]);
        assert_eq!(m[0].supported_features, ["-"]);
        let back = p(&m[0].render()).unwrap();
        assert_eq!(back[0].systems, ["-"]);
        assert_eq!(back[0].supported_features, ["-"]);
    }

    #[test]
    fn only_bare_user_at_host_gets_ssh() {
        let m = p("a@h ; local?root=/x ; daemon ; /some/store ; ssh-ng://b@h").unwrap();
        let uris: Vec<String> = m.iter().map(Machine::effective_uri).collect();
        assert_eq!(
            uris,
            [
                "ssh://a@h",
                "local?root=/x",
                "daemon",
                "/some/store",
                "ssh-ng://b@h"
            ]
        );
    }

    #[test]
    fn uri_parts_and_query() {
        let m = &p("ssh-ng://builder@lb?remote-program=/bin/nix-daemon&ssh-key=/k").unwrap()[0];
        assert_eq!(m.host(), "lb");
        assert_eq!(m.query("remote-program"), Some("/bin/nix-daemon"));
        assert_eq!(m.query("ssh-key"), Some("/k"));
        assert_eq!(m.query("compress"), None);
    }
}
