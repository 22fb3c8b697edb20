//! Progress of a long `nix copy` on a terminal: paths and bytes.
//!
//! `nix copy --log-format internal-json` reports on stderr as `@nix {...}`
//! lines (src/libutil/logging.cc). The copy as a whole is one `actCopyPaths`
//! (103) activity whose `resProgress` (105) carries paths done/expected and
//! whose `resSetExpected` (106) for `actCopyPath` (100) carries the bytes
//! expected; each path is an `actCopyPath` activity whose progress carries
//! its bytes done. Messages (`"action":"msg"`) and lines from ssh itself
//! are kept as the stderr text the failure is judged by.

use std::collections::HashMap;

use lb_common::cmd::Cmd;

const ACT_COPY_PATH: u64 = 100;
const ACT_COPY_PATHS: u64 = 103;
const RES_PROGRESS: u64 = 105;
const RES_SET_EXPECTED: u64 = 106;

/// What the log said so far.
#[derive(Debug, Default)]
pub struct Tally {
    copy_paths: Option<u64>,
    copy_path: HashMap<u64, u64>,
    pub paths_done: u64,
    pub paths_expected: u64,
    pub bytes_expected: u64,
    /// Messages, one per line, as Nix would have printed them.
    pub text: String,
}

impl Tally {
    /// Bytes done over every path activity.
    #[must_use]
    pub fn bytes_done(&self) -> u64 {
        self.copy_path.values().sum()
    }

    /// Take one stderr line into account.
    pub fn line(&mut self, line: &str) {
        let Some(json) = line.strip_prefix("@nix ") else {
            self.text.push_str(line);
            self.text.push('\n');
            return;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
            return;
        };
        let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let field = |i: usize| {
            v.get("fields")
                .and_then(|f| f.get(i))
                .and_then(serde_json::Value::as_u64)
        };
        match v.get("action").and_then(serde_json::Value::as_str) {
            Some("msg") => {
                if let Some(m) = v.get("msg").and_then(serde_json::Value::as_str) {
                    self.text.push_str(&strip_ansi(m));
                    self.text.push('\n');
                }
            }
            Some("start") => match (num("id"), num("type")) {
                (Some(id), Some(ACT_COPY_PATHS)) => self.copy_paths = Some(id),
                (Some(id), Some(ACT_COPY_PATH)) => {
                    self.copy_path.insert(id, 0);
                }
                _ => {}
            },
            Some("result") => {
                let id = num("id");
                match num("type") {
                    Some(RES_PROGRESS) if id.is_some() && id == self.copy_paths => {
                        self.paths_done = field(0).unwrap_or(self.paths_done);
                        self.paths_expected = field(1).unwrap_or(self.paths_expected);
                    }
                    Some(RES_PROGRESS) => {
                        if let (Some(id), Some(done)) = (id, field(0)) {
                            if let Some(d) = self.copy_path.get_mut(&id) {
                                *d = done;
                            }
                        }
                    }
                    Some(RES_SET_EXPECTED)
                        if id.is_some()
                            && id == self.copy_paths
                            && field(0) == Some(ACT_COPY_PATH) =>
                    {
                        self.bytes_expected = field(1).unwrap_or(self.bytes_expected);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Remove terminal colour sequences Nix puts in messages.
#[must_use]
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Run the copy with a progress bar on stderr. Returns whether it
/// succeeded and the stderr text.
pub fn run_with_bar(cmd: &Cmd, missing: usize) -> Result<(bool, String), lb_common::cmd::Error> {
    let cmd = cmd.clone().args(["--log-format", "internal-json"]);
    let mut lines = cmd.lines()?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "lb-copy: {spinner} {msg} {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut tally = Tally::default();
    for line in lines.by_ref() {
        tally.line(&line);
        let expected = if tally.paths_expected > 0 {
            tally.paths_expected
        } else {
            missing as u64
        };
        bar.set_message(format!("{}/{expected} paths", tally.paths_done));
        bar.set_length(tally.bytes_expected);
        bar.set_position(tally.bytes_done());
    }
    bar.finish_and_clear();
    let ok = lines.succeeded();
    Ok((ok, tally.text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_follows_paths_and_bytes() {
        let mut t = Tally::default();
        for l in [
            r#"@nix {"action":"start","id":1,"level":3,"parent":0,"text":"copying 2 paths","type":103}"#,
            r#"@nix {"action":"result","fields":[100,4000],"id":1,"type":106}"#,
            r#"@nix {"action":"start","id":2,"level":3,"parent":1,"text":"copying path","type":100}"#,
            r#"@nix {"action":"result","fields":[1500,3000,0,0],"id":2,"type":105}"#,
            r#"@nix {"action":"result","fields":[1,2,1,0],"id":1,"type":105}"#,
            "ssh: connect to host 127.0.0.1 port 1: Connection refused",
            "@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"\\u001b[31;1merror:\\u001b[0m boom\"}",
            "@nix {not json",
        ] {
            t.line(l);
        }
        assert_eq!((t.paths_done, t.paths_expected), (1, 2));
        assert_eq!((t.bytes_done(), t.bytes_expected), (1500, 4000));
        assert_eq!(
            t.text,
            "ssh: connect to host 127.0.0.1 port 1: Connection refused\nerror: boom\n"
        );
    }
}
