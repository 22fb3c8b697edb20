//! Reading what `nix build --json`, `nix path-info --json` or a plain list
//! printed, into the store paths to bring home.
//!
//! Shapes accepted (docs/reference.md "Output formats", and captured from Nix
//! 2.8 under `tests/fixtures`):
//!
//! - `nix build --json`: one array; each element is
//!   `{"drvPath": D, "outputs": {"out": P, ...}, ...}` (2.12+ add
//!   `startTime`/`stopTime`/`cpuUser`/`cpuSystem`, kept as they are),
//!   `{"path": P}` for a store-path installable before 2.18, or a bare
//!   string `P` after;
//! - `nix path-info --json`: an array of objects with `path` (up to 2.18),
//!   or an object keyed by path, values info objects or `null` (2.19+;
//!   2.33+ add `version: 1` and `storeDir` inside each info);
//! - `nix path-info --json --json-format 2` (2.33+; seen here with 2.34.8):
//!   `{"version": 2, "storeDir": S, "info": {BASENAME: info or null}}`,
//!   the paths being `S/BASENAME`;
//! - plain store paths, one per line (`nix path-info`, `nix-build`).
//!
//! Several JSON documents in one input (`nix build --json a; nix build
//! --json b`) are read one after the other.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

pub use crate::select::{annotate, check_selection, wanted};

/// Where an input came from, for messages (`stdin` or a file name).
pub type Source = String;

/// One input as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// One or more JSON values, as parsed.
    Json(Vec<Value>),
    /// Store paths, one per line.
    Lines(Vec<String>),
}

/// A path to bring home, and what `nix build` would call its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub path: String,
    /// The buildable's index across all inputs: `nix build` numbers its
    /// out-links by it (`result`, `result-1`...).
    pub index: usize,
    /// The derivation output name; `None` for a plain store path.
    pub output: Option<String>,
}

impl Wanted {
    /// The out-link name as `nix build --out-link PREFIX` gives it
    /// (src/nix/build.cc): `PREFIX[-INDEX][-OUTPUT unless out]`.
    #[must_use]
    pub fn link_name(&self, prefix: &str) -> String {
        let mut name = prefix.to_owned();
        if self.index > 0 {
            name.push('-');
            name.push_str(&self.index.to_string());
        }
        if let Some(o) = self.output.as_deref().filter(|o| *o != "out") {
            name.push('-');
            name.push_str(o);
        }
        name
    }
}

/// Bad input: exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{source_name}:{line}:{column}: malformed JSON: {reason}; pass the output of `nix build --json`, \
         `nix path-info --json` or store paths one per line"
    )]
    Malformed {
        source_name: Source,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{source_name}: {what}; expected `nix build --json` or `nix path-info --json` output")]
    Shape { source_name: Source, what: String },
    #[error(
        "{source_name}: more than {limit} bytes; `nix build --json` output is far smaller: \
         check what is piped in"
    )]
    TooLarge { source_name: Source, limit: u64 },
    #[error(
        "{source_name}:{line}: a line longer than {limit} bytes, which no store path is; \
         pass the output of `nix build --json` or store paths one per line"
    )]
    LongLine {
        source_name: Source,
        line: usize,
        limit: usize,
    },
    #[error("{source_name}:{line}: not UTF-8 text; pass store paths one per line")]
    NotText { source_name: Source, line: usize },
    #[error("{source_name}: cannot read: {reason}")]
    Read { source_name: Source, reason: String },
    /// `path` is a bounded, escaped excerpt.
    #[error("{source_name}: \"{path}\" is not a store path: {reason}")]
    NotStorePath {
        source_name: Source,
        path: String,
        reason: String,
    },
    #[error(
        "--output {name}: no derivation in the input has that output (outputs seen: {seen}); \
         pick one of those or drop --output"
    )]
    NoSuchOutput { name: String, seen: String },
}

impl lb_common::exit::Classify for Error {
    fn status(&self) -> lb_common::exit::Status {
        lb_common::exit::Status::Usage
    }
}

/// The most an input may hold: `nix build --json` of thousands of
/// outputs is a few MB. Past this, reading stops with [`Error::TooLarge`].
pub const MAX_INPUT: u64 = 64 << 20;

/// The longest line of a plain list (a store path is at most 256 bytes).
pub const MAX_LINE: usize = 16 << 10;

/// A reader that counts what it has given out.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Parse one input as a stream: JSON values are parsed as the bytes
/// arrive (so a malformed input fails at its first bad byte: 1 GB of `[`
/// stops at serde_json's nesting limit, byte 128), plain lines one at a
/// time with [`MAX_LINE`]; nothing past [`MAX_INPUT`] is read. Memory
/// stays bounded by what the input holds, never the whole stream twice.
pub fn parse_reader<R: Read>(reader: R, source_name: &str) -> Result<Document, Error> {
    parse_reader_limited(reader, source_name, MAX_INPUT)
}

fn parse_reader_limited<R: Read>(
    reader: R,
    source_name: &str,
    limit: u64,
) -> Result<Document, Error> {
    let mut r = BufReader::new(Counted {
        inner: reader.take(limit + 1),
        n: 0,
    });
    let io_err = |e: &std::io::Error| Error::Read {
        source_name: source_name.to_owned(),
        reason: e.to_string(),
    };
    let too_large = || Error::TooLarge {
        source_name: source_name.to_owned(),
        limit,
    };
    // The first byte that is not whitespace decides the form.
    let first = loop {
        let buf = r.fill_buf().map_err(|e| io_err(&e))?;
        if buf.is_empty() {
            break None;
        }
        if let Some(i) = buf.iter().position(|b| !b.is_ascii_whitespace()) {
            let b = buf[i];
            r.consume(i);
            break Some(b);
        }
        let n = buf.len();
        r.consume(n);
    };
    if matches!(first, Some(b'[' | b'{' | b'"')) {
        let mut values = Vec::new();
        for value in serde_json::Deserializer::from_reader(&mut r).into_iter::<Value>() {
            match value {
                Ok(v) => values.push(v),
                Err(_) if r.get_ref().n > limit => return Err(too_large()),
                Err(e) if e.is_io() => {
                    return Err(Error::Read {
                        source_name: source_name.to_owned(),
                        reason: strip_position(&e.to_string()),
                    })
                }
                Err(e) => {
                    return Err(Error::Malformed {
                        source_name: source_name.to_owned(),
                        line: e.line(),
                        column: e.column(),
                        reason: strip_position(&e.to_string()),
                    })
                }
            }
        }
        if r.get_ref().n > limit {
            return Err(too_large());
        }
        return Ok(Document::Json(values));
    }
    read_lines(&mut r, source_name, limit)
}

/// The plain-list form: one store path per line, each line bounded.
fn read_lines<R: Read>(
    r: &mut BufReader<Counted<R>>,
    source_name: &str,
    limit: u64,
) -> Result<Document, Error> {
    let io_err = |e: &std::io::Error| Error::Read {
        source_name: source_name.to_owned(),
        reason: e.to_string(),
    };
    let too_large = || Error::TooLarge {
        source_name: source_name.to_owned(),
        limit,
    };
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        number += 1;
        // One line, never more than MAX_LINE + 1 bytes of it in memory.
        let eof = loop {
            let buf = r.fill_buf().map_err(|e| io_err(&e))?;
            if buf.is_empty() {
                break true;
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            line.extend_from_slice(&buf[..take]);
            r.consume(take);
            if line.len() > MAX_LINE + 1 {
                return Err(if r.get_ref().n > limit {
                    too_large()
                } else {
                    Error::LongLine {
                        source_name: source_name.to_owned(),
                        line: number,
                        limit: MAX_LINE,
                    }
                });
            }
            if done {
                break false;
            }
        };
        if r.get_ref().n > limit {
            return Err(too_large());
        }
        let text = std::str::from_utf8(&line).map_err(|_| Error::NotText {
            source_name: source_name.to_owned(),
            line: number,
        })?;
        let text = text.trim();
        if text.contains('\0') {
            return Err(Error::NotText {
                source_name: source_name.to_owned(),
                line: number,
            });
        }
        if !text.is_empty() {
            lines.push(text.to_owned());
        }
        if eof {
            return Ok(Document::Lines(lines));
        }
    }
}

/// Parse one input's text.
pub fn parse(text: &str, source_name: &str) -> Result<Document, Error> {
    let first = text.trim_start().chars().next();
    if matches!(first, Some('[' | '{' | '"')) {
        let mut values = Vec::new();
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            values.push(value.map_err(|e| Error::Malformed {
                source_name: source_name.to_owned(),
                line: e.line(),
                column: e.column(),
                reason: strip_position(&e.to_string()),
            })?);
        }
        Ok(Document::Json(values))
    } else {
        Ok(Document::Lines(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }
}

/// serde_json appends " at line L column C"; we say it first instead.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// The store directory: `NIX_STORE_DIR` as Nix reads it, else `/nix/store`.
#[must_use]
pub fn store_dir() -> String {
    std::env::var("NIX_STORE_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .map_or_else(
            || "/nix/store".to_owned(),
            |d| d.trim_end_matches('/').to_owned(),
        )
}

/// Nix's base-32 alphabet (src/libutil/hash.cc: no e, o, u, t).
const BASE32: &str = "0123456789abcdfghijklmnpqrsvwxyz";

/// Check that `path` is a store path directly under `store`:
/// `STORE/<32 base-32 chars>-<name>` (src/libstore/path.cc).
pub fn check_store_path(path: &str, store: &str) -> Result<(), String> {
    let Some(base) = path
        .strip_prefix(store)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|_| Path::new(store).is_absolute())
    else {
        return Err(format!(
            "it is outside the store {store} (set NIX_STORE_DIR if your store lives elsewhere)"
        ));
    };
    // `..`, `.` and empty parts would lead out of (or around) the store.
    if base.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err(format!(
            "it has an empty, `.` or `..` part; give a store path such as {store}/HASH-NAME"
        ));
    }
    if base.contains('/') {
        return Err(format!(
            "it is inside a store path; give the store path itself ({store}/{})",
            base.split('/').next().unwrap_or_default()
        ));
    }
    let (hash, name) = base.split_at_checked(32).unwrap_or((base, ""));
    if hash.len() != 32 || !hash.chars().all(|c| BASE32.contains(c)) {
        return Err("its hash part is not 32 characters of Nix base-32".to_owned());
    }
    let Some(name) = name.strip_prefix('-') else {
        return Err("no `-` after the hash part".to_owned());
    };
    if name.is_empty() || name.len() > 211 || name.starts_with('.') {
        return Err("its name is empty, too long or starts with a dot".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(*c)))
    {
        return Err(format!("its name contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// An endless stream that counts what was taken from it.
    struct Endless {
        byte: u8,
        taken: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(self.byte);
            self.taken.set(self.taken.get() + buf.len() as u64);
            Ok(buf.len())
        }
    }

    fn endless(byte: u8) -> (Endless, std::rc::Rc<std::cell::Cell<u64>>) {
        let taken = std::rc::Rc::new(std::cell::Cell::new(0));
        (
            Endless {
                byte,
                taken: taken.clone(),
            },
            taken,
        )
    }

    #[test]
    fn endless_brackets_fail_at_the_nesting_limit_having_read_little() {
        let (r, taken) = endless(b'[');
        let e = parse_reader(r, "stdin").unwrap_err();
        assert!(
            matches!(e, Error::Malformed { line: 1, column, .. } if column <= 129),
            "{e}"
        );
        // One buffer's worth, not a gigabyte.
        assert!(taken.get() <= 64 << 10, "read {} bytes", taken.get());
    }

    #[test]
    fn endless_nul_bytes_and_long_lines_stop_early() {
        let (r, taken) = endless(0);
        let e = parse_reader(r, "stdin").unwrap_err();
        assert!(matches!(e, Error::LongLine { line: 1, .. }), "{e}");
        assert!(taken.get() <= 64 << 10, "read {} bytes", taken.get());
        let e = parse_reader(&b"/nix/store/a\0b\n"[..], "f").unwrap_err();
        assert!(matches!(e, Error::NotText { line: 1, .. }), "{e}");
    }

    #[test]
    fn stream_larger_than_the_bound_is_refused() {
        let big = format!("[{}]", "\"x\",".repeat(100).trim_end_matches(','));
        assert!(parse_reader_limited(big.as_bytes(), "stdin", 10_000).is_ok());
        let e = parse_reader_limited(big.as_bytes(), "stdin", 100).unwrap_err();
        assert!(matches!(e, Error::TooLarge { limit: 100, .. }), "{e}");
        let lines = "/nix/store/x\n".repeat(100);
        let e = parse_reader_limited(lines.as_bytes(), "stdin", 100).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    }

    #[test]
    fn stream_and_text_parse_alike() {
        for text in [
            "",
            "  \n",
            "[{\"drvPath\":\"/nix/store/d\",\"outputs\":{\"out\":\"/nix/store/o\"}}]\n[\"/nix/store/p\"]",
            "/nix/store/a\n\n  /nix/store/b  \n/nix/store/c",
            "{\"/nix/store/a\": null}",
        ] {
            assert_eq!(
                parse_reader(text.as_bytes(), "s").unwrap(),
                parse(text, "s").unwrap(),
                "{text:?}"
            );
        }
    }

    const S: &str = "/nix/store";
    const A: &str = "/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one";

    fn all(text: &str) -> Result<Vec<Wanted>, Error> {
        let doc = parse(text, "stdin")?;
        wanted(&doc, "stdin", &[], S, &mut 0, &mut BTreeSet::new())
    }

    #[test]
    fn store_path_rules() {
        assert!(check_store_path(A, S).is_ok());
        for odd in ["/nix/store/../../etc", "/nix/store//x", "/nix/store/./x"] {
            assert!(
                check_store_path(odd, S).unwrap_err().contains("`..` part"),
                "{odd}"
            );
        }
        assert!(check_store_path("/tmp/x", S)
            .unwrap_err()
            .contains("outside the store"));
        assert!(check_store_path(&format!("{A}/bin/sh"), S)
            .unwrap_err()
            .contains("inside a store path"));
        assert!(check_store_path("/nix/store/eeee-x", S).is_err());
        assert!(
            check_store_path("/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvo-x", S)
                .unwrap_err()
                .contains("base-32")
        );
        assert!(check_store_path("/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn", S).is_err());
        assert!(
            check_store_path("/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-a b", S)
                .unwrap_err()
                .contains("' '")
        );
        assert!(check_store_path("/nix/storex/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-a", S).is_err());
        assert!(
            check_store_path("/my/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-a", "/my/store").is_ok()
        );
    }

    #[test]
    fn newer_build_shapes() {
        // 2.12+: statistics fields; 2.18+: a bare string for a store path.
        let text = format!(
            r#"[{{"drvPath":"/nix/store/bbx6yc4wrcriqnh4jgnkiiq3p2xry440-x.drv","outputs":{{"out":"{A}","dev":"{A}-dev"}},"startTime":1,"stopTime":2,"cpuUser":0.1,"cpuSystem":0.2}},"{A}"]"#
        );
        let w = all(&text).unwrap();
        assert_eq!(w.len(), 3);
        // Outputs come in name order, as Nix prints them.
        assert_eq!(w[0].link_name("result"), "result-dev");
        assert_eq!(w[1].output.as_deref(), Some("out"));
        assert_eq!(w[1].link_name("result"), "result");
        assert_eq!(w[2].link_name("result"), "result-1");
        assert_eq!(w[2].output, None);
    }

    #[test]
    fn path_info_keyed_object_with_null() {
        let text = format!(r#"{{"{A}":{{"narSize":1}},"{A}-b":null}}"#);
        let w = all(&text).unwrap();
        assert_eq!(
            w.iter().map(|w| w.path.as_str()).collect::<Vec<_>>(),
            [A.to_owned(), format!("{A}-b")]
        );
        let v = annotate(&parse(&text, "x").unwrap(), &[], &|p| p == A);
        assert_eq!(
            v.to_string(),
            format!(r#"{{"{A}":{{"copied":true,"narSize":1}},"{A}-b":{{"copied":false}}}}"#)
        );
    }

    /// `nix path-info --json --json-format 2`, as Nix 2.34.8 printed it
    /// here (one valid path, one invalid).
    #[test]
    fn path_info_version_2() {
        let text = r#"{"info":{"mcsmbql926vn90chhgl0vrs9xl1f439h-lb-fixture-one":{"ca":null,"deriver":"7gpldwpr3zn79yzss5ikcrf0qzd8knq3-lb-fixture-one.drv","narHash":"sha256-/lc9ASTwWw48d92RxfZ132t674WJXuCYdNfOuog6oKA=","narSize":120,"references":[],"registrationTime":1796155113,"signatures":[],"storeDir":"/nix/store","ultimate":true,"version":2},"00000000000000000000000000000000-absent":null},"storeDir":"/nix/store","version":2}"#;
        let one = "/nix/store/mcsmbql926vn90chhgl0vrs9xl1f439h-lb-fixture-one";
        let absent = "/nix/store/00000000000000000000000000000000-absent";
        let w = all(text).unwrap();
        assert_eq!(
            w.iter().map(|w| w.path.as_str()).collect::<Vec<_>>(),
            [absent, one]
        );
        let v = annotate(&parse(text, "x").unwrap(), &[], &|p| p == one);
        assert_eq!(v["version"], 2);
        assert_eq!(
            v["info"]["mcsmbql926vn90chhgl0vrs9xl1f439h-lb-fixture-one"]["copied"],
            true
        );
        assert_eq!(
            v["info"]["00000000000000000000000000000000-absent"]["copied"],
            false
        );
        // Its storeDir is where the paths are: another store's is refused.
        let elsewhere = text.replace(
            r#""storeDir":"/nix/store","version":2}"#,
            r#""storeDir":"/other/store","version":2}"#,
        );
        let e = all(&elsewhere).unwrap_err();
        assert!(e.to_string().contains("outside the store"), "{e}");
        // The version-1 default of 2.33+ is the keyed shape with two more
        // fields in each info.
        let v1 = format!(r#"{{"{one}":{{"narSize":120,"storeDir":"/nix/store","version":1}}}}"#);
        assert_eq!(all(&v1).unwrap()[0].path, one);
    }

    #[test]
    fn several_documents_and_lines() {
        let text = format!("[\"{A}\"]\n[{{\"path\":\"{A}-2\"}}]\n");
        let w = all(&text).unwrap();
        assert_eq!(w[1].index, 1);
        let lines = all(&format!("\n {A}\n\n{A}-2\n")).unwrap();
        assert_eq!(lines.len(), 2);
        assert!(all("").unwrap().is_empty());
        assert!(all("  \n").unwrap().is_empty());
        assert!(all("[]").unwrap().is_empty());
    }

    #[test]
    fn malformed_json_has_line_and_column() {
        let e = all("[\n{\"path\": }").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("stdin:2:10: malformed JSON: expected value;"),
            "{msg}"
        );
    }

    #[test]
    fn other_shapes_are_refused() {
        for (text, want) in [
            ("[1]", "element 1: unexpected number"),
            ("[{\"x\":1}]", "neither `outputs` nor `path`"),
            ("[{\"outputs\":[]}]", "`outputs` is not an object"),
            ("[{\"outputs\":{\"out\":null}}]", "has no path"),
            ("{\"/nix/store/x\": 3}", "not path info"),
            ("[[]]", "unexpected array"),
        ] {
            let e = all(text).unwrap_err();
            assert!(matches!(e, Error::Shape { .. }), "{text}: {e}");
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        let e = all("/tmp/result\n").unwrap_err();
        assert!(e.to_string().contains("outside the store"), "{e}");
    }

    #[test]
    fn selection_filters_outputs_and_is_checked() {
        let text = format!(r#"[{{"outputs":{{"dev":"{A}-dev","out":"{A}"}}}}]"#);
        let doc = parse(&text, "stdin").unwrap();
        let mut seen = BTreeSet::new();
        let sel = vec!["dev".to_owned()];
        let w = wanted(&doc, "stdin", &sel, S, &mut 0, &mut seen).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].path, format!("{A}-dev"));
        check_selection(&sel, &seen).unwrap();
        let e = check_selection(&["man".to_owned()], &seen).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--output man: no derivation in the input has that output (outputs seen: dev, out); \
             pick one of those or drop --output"
        );
        let v = annotate(&doc, &sel, &|_| true);
        assert_eq!(
            v.to_string(),
            format!(r#"[{{"copied":{{"dev":true}},"outputs":{{"dev":"{A}-dev"}}}}]"#)
        );
    }
}
