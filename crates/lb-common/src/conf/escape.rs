//! One validation and quoting layer per output format: every value a tool
//! writes into a file someone else parses goes through the function for
//! that format, which either returns the value in a form that reads back
//! as exactly that value, or refuses it ([`Unrepresentable`], exit 2)
//! naming the flag and what to do. A value is never written "mostly
//! right": a newline in a path would otherwise start a new directive
//! (`ProxyCommand ...` in ssh_config, `ExecStartPre=` in a unit).
//!
//! | format | function | refused | quoted / escaped |
//! |---|---|---|---|
//! | ssh_config | [`ssh_config`] | control chars, `"`, `\`, `${` (token keywords), glob chars (Include) | `"..."` around spaces, `#`, `'`; `%` -> `%%` where tokens expand |
//! | nix.conf | [`nix_conf_word`], [`nix_conf_value`] | control chars, `#`, whitespace in a word, space runs | none: Nix has no quoting |
//! | machines / builders | [`machines_field`], [`machines_list_item`] | control chars, whitespace, `;`, `#`, a lone `-`, `,` in a list item | none: the format has no quoting |
//! | launchd plist | [`plist_string`] | characters XML 1.0 cannot carry (C0 but tab/newline, CR, U+FFFE/F) | `&`, `<`, `>` |
//! | systemd unit | [`unit_word`], [`unit_env`], [`unit_path`] | control chars; a relative or trailing-`\` path | `"..."` with `\\`/`\"`; `%` -> `%%`; `$` -> `$$` in ExecStart |

use std::path::Path;

use crate::status::{Classify, Status};
use crate::text::excerpt;

/// A value the target format cannot hold safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} \"{value}\": {reason}, which {format} cannot hold safely; {fix}")]
pub struct Unrepresentable {
    /// The flag or variable the value came from (`--key`, `LB_KEY`...).
    pub what: String,
    /// A bounded, escaped excerpt of the value.
    pub value: String,
    /// The format it was meant for (`an ssh_config value`...).
    pub format: &'static str,
    /// What in the value the format cannot hold (`it contains a newline`).
    pub reason: String,
    /// What the user should do instead.
    pub fix: String,
}

impl Classify for Unrepresentable {
    fn status(&self) -> Status {
        Status::Usage
    }
}

fn refuse(what: &str, value: &str, format: &'static str, reason: &str) -> Unrepresentable {
    Unrepresentable {
        what: what.to_owned(),
        value: excerpt(value),
        format,
        reason: reason.to_owned(),
        fix: format!("give {what} a value without it"),
    }
}

fn describe(c: char) -> String {
    match c {
        '\n' => "a newline".to_owned(),
        '\r' => "a carriage return".to_owned(),
        '\0' => "a NUL byte".to_owned(),
        '\t' => "a tab".to_owned(),
        c => format!("the control character U+{:04X}", c as u32),
    }
}

fn no_controls(what: &str, value: &str, format: &'static str) -> Result<(), Unrepresentable> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(refuse(
            what,
            value,
            format,
            &format!("it contains {}", describe(c)),
        )),
        None => Ok(()),
    }
}

/// A path as UTF-8 text, or refused: every format here is text.
///
/// # Errors
/// A path that is not valid UTF-8 ([`Unrepresentable`]).
pub fn path_text<'a>(what: &str, path: &'a Path) -> Result<&'a str, Unrepresentable> {
    path.to_str().ok_or_else(|| Unrepresentable {
        what: what.to_owned(),
        value: excerpt(&path.to_string_lossy()),
        format: "a configuration file",
        reason: "it is not valid UTF-8".to_owned(),
        fix: format!("give {what} a UTF-8 path"),
    })
}

/// How ssh reads the argument of a keyword (ssh_config(5) TOKENS and
/// ENVIRONMENT VARIABLES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshArg {
    /// `%` tokens and `${VAR}` are expanded (IdentityFile, UserKnownHostsFile...).
    Tokens,
    /// A glob(3) pattern (Include): `*`, `?`, `[` and `\` are special.
    Glob,
    /// Taken as written (GlobalKnownHostsFile, User...).
    Literal,
}

/// `value` as one ssh_config argument.
///
/// OpenSSH splits arguments on spaces, honours `"` and (since 8.7) `'`
/// quotes and backslash escapes, and stops at a `#` that starts an
/// argument; older versions know only `"`. So a value with a space, `#` or
/// `'` is written inside double quotes (which every version reads the
/// same way), and a value with `"` or `\` is refused: no form of it reads
/// back the same in old and new OpenSSH. A newline would end the line and
/// start another directive (`ProxyCommand`), so control characters are
/// refused too.
///
/// # Errors
/// An empty value, or one with a control character, `"` or `\`; with
/// [`SshArg::Tokens`] one with `${`, with [`SshArg::Glob`] one with a glob
/// character ([`Unrepresentable`]).
pub fn ssh_config(what: &str, value: &str, arg: SshArg) -> Result<String, Unrepresentable> {
    const F: &str = "an ssh_config value";
    no_controls(what, value, F)?;
    if value.is_empty() {
        return Err(refuse(what, value, F, "it is empty"));
    }
    for (c, name) in [('"', "a double quote"), ('\\', "a backslash")] {
        if value.contains(c) {
            return Err(refuse(what, value, F, &format!("it contains {name}")));
        }
    }
    let value = match arg {
        SshArg::Tokens => {
            if value.contains("${") {
                return Err(refuse(
                    what,
                    value,
                    F,
                    "it contains `${`, which ssh expands as an environment variable",
                ));
            }
            value.replace('%', "%%")
        }
        SshArg::Glob => {
            if let Some(c) = value.chars().find(|c| "*?[]".contains(*c)) {
                return Err(refuse(
                    what,
                    value,
                    F,
                    &format!("it contains `{c}`, which ssh's Include reads as a pattern"),
                ));
            }
            value.to_owned()
        }
        SshArg::Literal => value.to_owned(),
    };
    // Any whitespace, not only ssh's space and tab: a reader that trims
    // Unicode spaces must see the same value.
    Ok(
        if value.contains(|c: char| c.is_whitespace() || "#'=".contains(c)) {
            format!("\"{value}\"")
        } else {
            value
        },
    )
}

/// [`ssh_config`] for a path that may be followed by a glob suffix written
/// by the tool itself (`DIR/*.conf`): only `dir` is checked as literal.
///
/// # Errors
/// A `dir` that is not UTF-8 or that [`ssh_config`] refuses as a glob
/// ([`Unrepresentable`]).
pub fn ssh_include(what: &str, dir: &Path, pattern: &str) -> Result<String, Unrepresentable> {
    let dir = path_text(what, dir)?;
    let quoted = ssh_config(what, dir, SshArg::Glob)?;
    Ok(
        match quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
            Some(inner) => format!("\"{inner}/{pattern}\""),
            None => format!("{quoted}/{pattern}"),
        },
    )
}

/// One whitespace-free word of a nix.conf value (a user name, a feature).
/// nix.conf has no quoting: whitespace splits, `#` starts a comment.
///
/// # Errors
/// An empty value, or one with a control character, whitespace or `#`
/// ([`Unrepresentable`]).
pub fn nix_conf_word<'a>(what: &str, value: &'a str) -> Result<&'a str, Unrepresentable> {
    const F: &str = "a nix.conf value";
    no_controls(what, value, F)?;
    if value.is_empty() {
        return Err(refuse(what, value, F, "it is empty"));
    }
    if value.contains(char::is_whitespace) {
        return Err(refuse(what, value, F, "it contains whitespace"));
    }
    if value.contains('#') {
        return Err(refuse(
            what,
            value,
            F,
            "it contains `#`, which starts a comment",
        ));
    }
    Ok(value)
}

/// A whole nix.conf value: Nix joins the words after `=` with single
/// spaces, so only a value already in that form reads back as written.
///
/// # Errors
/// A value with a control character or `#`, or with leading, trailing or
/// repeated whitespace ([`Unrepresentable`]).
pub fn nix_conf_value<'a>(what: &str, value: &'a str) -> Result<&'a str, Unrepresentable> {
    const F: &str = "a nix.conf value";
    no_controls(what, value, F)?;
    if value.contains('#') {
        return Err(refuse(
            what,
            value,
            F,
            "it contains `#`, which starts a comment",
        ));
    }
    if value.split_whitespace().collect::<Vec<_>>().join(" ") != value {
        return Err(refuse(
            what,
            value,
            F,
            "it has leading, trailing or repeated whitespace, which Nix collapses",
        ));
    }
    Ok(value)
}

/// One field of a machines entry (a key path, a URI): the format splits
/// fields on whitespace and entries on `;` and newlines, cuts at `#`, and
/// reads a lone `-` as "default".
///
/// # Errors
/// An empty value or a lone `-`, or one with a control character,
/// whitespace, `;` or `#` ([`Unrepresentable`]).
pub fn machines_field<'a>(what: &str, value: &'a str) -> Result<&'a str, Unrepresentable> {
    const F: &str = "a builders (machines) field";
    no_controls(what, value, F)?;
    if value.is_empty() || value == "-" {
        return Err(refuse(
            what,
            value,
            F,
            "it is empty or `-` (which means the default)",
        ));
    }
    if value.contains(char::is_whitespace) {
        return Err(refuse(
            what,
            value,
            F,
            "it contains whitespace, which separates fields",
        ));
    }
    if let Some(c) = value.chars().find(|c| ";#".contains(*c)) {
        return Err(refuse(
            what,
            value,
            F,
            &format!("it contains `{c}`, which separates entries or starts a comment"),
        ));
    }
    Ok(value)
}

/// One item of a comma-separated machines field (a system, a feature).
///
/// # Errors
/// What [`machines_field`] refuses, and a value with `,`
/// ([`Unrepresentable`]).
pub fn machines_list_item<'a>(what: &str, value: &'a str) -> Result<&'a str, Unrepresentable> {
    let v = machines_field(what, value)?;
    if v.contains(',') {
        return Err(refuse(
            what,
            value,
            "a builders (machines) list",
            "it contains `,`, which separates list items",
        ));
    }
    Ok(v)
}

/// Text of a `<string>` in a launchd property list (XML 1.0).
///
/// # Errors
/// A character XML 1.0 cannot carry: a control character other than tab
/// and newline, U+FFFE or U+FFFF ([`Unrepresentable`]).
pub fn plist_string(what: &str, value: &str) -> Result<String, Unrepresentable> {
    const F: &str = "a launchd property list";
    if let Some(c) = value.chars().find(|&c| {
        (c.is_control() && c != '\t' && c != '\n') || matches!(c, '\u{fffe}' | '\u{ffff}')
    }) {
        return Err(refuse(
            what,
            value,
            F,
            &format!("it contains {}", describe(c)),
        ));
    }
    Ok(value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;"))
}

fn unit_quote(inner: &str) -> String {
    format!("\"{}\"", inner.replace('\\', "\\\\").replace('"', "\\\""))
}

const UNIT: &str = "a systemd unit";

/// One word of `ExecStart=` (systemd.service(5) "Command lines"): `%`
/// specifiers and `$VAR` are expanded unless doubled; a word with spaces,
/// quotes, backslashes or `;` (a lone `;` separates commands) is quoted.
///
/// # Errors
/// A value with a control character ([`Unrepresentable`]).
pub fn unit_word(what: &str, value: &str) -> Result<String, Unrepresentable> {
    no_controls(what, value, UNIT)?;
    let escaped = value.replace('%', "%%").replace('$', "$$");
    Ok(
        if escaped.is_empty()
            || escaped.contains(|c: char| c.is_whitespace() || "\"'\\;".contains(c))
        {
            unit_quote(&escaped)
        } else {
            escaped
        },
    )
}

/// `NAME=VALUE` for `Environment=`: quoted, `%` doubled (no `$`
/// expansion happens there, so `$` stays as it is).
///
/// # Errors
/// A value with a control character ([`Unrepresentable`]).
pub fn unit_env(what: &str, name: &str, value: &str) -> Result<String, Unrepresentable> {
    no_controls(what, value, UNIT)?;
    Ok(unit_quote(&format!("{name}={}", value.replace('%', "%%"))))
}

/// A path for `WorkingDirectory=` and the like: taken to the end of the
/// line without unquoting, `%` specifiers expanded; a trailing backslash
/// would continue the line.
///
/// # Errors
/// A value with a control character, a relative path, or one ending in a
/// backslash or whitespace ([`Unrepresentable`]).
pub fn unit_path(what: &str, value: &str) -> Result<String, Unrepresentable> {
    no_controls(what, value, UNIT)?;
    if !value.starts_with('/') {
        return Err(refuse(what, value, UNIT, "it is not an absolute path"));
    }
    if value.ends_with(|c: char| c == '\\' || c.is_whitespace()) {
        return Err(refuse(
            what,
            value,
            UNIT,
            "it ends in a backslash or whitespace",
        ));
    }
    Ok(value.replace('%', "%%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INJECTION: &str = "/etc/nix/k\"\nProxyCommand sh -c \"touch /tmp/x\"\n#";

    #[test]
    fn ssh_config_refuses_what_breaks_the_line() {
        for bad in [INJECTION, "\"", "/a\\b", "/a\nb", "/a\0b", "", "/a\rb"] {
            let e = ssh_config("--key", bad, SshArg::Tokens).unwrap_err();
            assert!(e.to_string().starts_with("--key \""), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
            assert_eq!(e.status(), Status::Usage);
        }
        assert!(ssh_config("--key", "/a/${HOME}/k", SshArg::Tokens).is_err());
        assert!(ssh_config("--root", "/a*/x", SshArg::Glob).is_err());
    }

    #[test]
    fn ssh_config_quotes_and_escapes() {
        assert_eq!(ssh_config("k", "/a/b", SshArg::Tokens).unwrap(), "/a/b");
        assert_eq!(
            ssh_config("k", "/a b/k", SshArg::Tokens).unwrap(),
            "\"/a b/k\""
        );
        assert_eq!(
            ssh_config("k", "/a%d/k", SshArg::Tokens).unwrap(),
            "/a%%d/k"
        );
        assert_eq!(
            ssh_config("k", "/a%d/k", SshArg::Literal).unwrap(),
            "/a%d/k"
        );
        assert_eq!(
            ssh_config("k", "/it's#1", SshArg::Literal).unwrap(),
            "\"/it's#1\""
        );
        assert_eq!(
            ssh_include("--root", Path::new("/r x/d"), "*.conf").unwrap(),
            "\"/r x/d/*.conf\""
        );
        assert_eq!(
            ssh_include("--root", Path::new("/r/d"), "*.conf").unwrap(),
            "/r/d/*.conf"
        );
    }

    #[test]
    fn nix_conf_and_machines() {
        assert_eq!(nix_conf_word("--trust-user", "alice").unwrap(), "alice");
        for bad in ["a b", "a#b", "", "a\nb"] {
            assert!(nix_conf_word("--trust-user", bad).is_err(), "{bad:?}");
        }
        assert!(nix_conf_value("v", "a b").is_ok());
        assert!(nix_conf_value("v", "a  b").is_err());
        assert!(nix_conf_value("v", "a\nb = c").is_err());
        assert_eq!(machines_field("--key", "/k").unwrap(), "/k");
        for bad in ["/a b", "/a;b", "/a#b", "-", "", "/a\nb"] {
            assert!(machines_field("--key", bad).is_err(), "{bad:?}");
        }
        assert!(machines_list_item("--features", "kvm,x").is_err());
    }

    #[test]
    fn plist_and_unit() {
        assert_eq!(plist_string("a", "a<b>&\"c").unwrap(), "a&lt;b&gt;&amp;\"c");
        assert!(plist_string("a", "a\x1bb").is_err());
        assert!(plist_string("a", "a\0").is_err());
        assert_eq!(unit_word("a", "a b").unwrap(), "\"a b\"");
        assert_eq!(unit_word("a", "50%$x").unwrap(), "50%%$$x");
        assert_eq!(unit_word("a", ";").unwrap(), "\";\"");
        assert_eq!(unit_word("a", "x\"y\\").unwrap(), "\"x\\\"y\\\\\"");
        assert!(unit_word("--append", "a\nExecStartPre=/bin/evil").is_err());
        assert_eq!(
            unit_env("t", "TMPDIR", "/a b/$x%").unwrap(),
            "\"TMPDIR=/a b/$x%%\""
        );
        assert_eq!(unit_path("w", "/a b/%h").unwrap(), "/a b/%%h");
        assert!(unit_path("w", "rel").is_err());
        assert!(unit_path("w", "/a\\").is_err());
    }
}
