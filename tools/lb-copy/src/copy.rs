//! The `nix` command lines lb-copy runs, and what their failures mean.

use std::path::Path;

use lb_common::cmd::Cmd;
use lb_common::conf::machines::Machine;
use lb_common::exit::{Classify, Status};
use lb_common::nix_version::NixVersion;
use lb_common::paths::Root;

/// Where the default source store comes from when nothing is configured.
pub const FALLBACK_URI: &str = "ssh-ng://builder@linux-builder";

const NIX_HINT: &str = "install Nix (apt-get install nix-bin) or put it on PATH";

/// Failures of the copy itself: exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{uri}: the local store refused the builder's paths: they lack a valid signature. \
         Three ways out: (1) pass --no-check-sigs (you must be a trusted user: `trusted-users` in nix.conf, \
         e.g. `lb-nixconf install --trust-user $USER`); (2) sign them on the builder with \
         `nix store sign --key-file KEY PATHS` and add its public key to `trusted-public-keys` on this host; \
         (3) set `require-sigs = false` in this host's nix.conf (trusts every store you copy from). \
         Nix said: {tail}"
    )]
    Unsigned { uri: String, tail: String },
    #[error(
        "cannot reach the builder store {uri}: {tail}; check the builder with `lb-ping{ping_arg}`"
    )]
    Unreachable {
        uri: String,
        tail: String,
        ping_arg: String,
    },
    #[error(
        "copying from {uri} failed: {tail}; {valid} of {total} missing paths arrived complete, none is left \
         half-copied (Nix registers a path only once all of it is in); rerun to fetch the rest, \
         and check the builder with `lb-ping{ping_arg}`"
    )]
    Failed {
        uri: String,
        tail: String,
        valid: usize,
        total: usize,
        ping_arg: String,
    },
}

impl Classify for Error {
    fn status(&self) -> Status {
        Status::Failed
    }
}

/// The last few non-empty lines of a child's stderr, joined.
#[must_use]
pub fn tail(stderr: &str) -> String {
    lb_common::cmd::last_lines(stderr, 3).join(" / ")
}

/// Marks of a connection that never came up (seen with Nix 2.8:
/// "cannot open connection to remote store ..." after ssh's own message).
const UNREACHABLE_MARKS: &[&str] = &[
    "cannot open connection to remote store",
    "Connection refused",
    "Could not resolve hostname",
    "Host key verification failed",
    "Permission denied (publickey",
    "Connection timed out",
    "No route to host",
    "failed to start SSH",
];

/// What a failed `nix copy` stands for.
#[must_use]
pub fn classify(uri: &str, stderr: &str, valid: usize, total: usize) -> Error {
    let t = tail(stderr);
    let ping_arg = ping_arg(uri);
    // Nix 2.8 says "lacks a valid signature"; 2.26 and later "lacks a
    // signature by a trusted key" (src/libstore/local-store.cc of each tag).
    if stderr.contains("lacks a valid signature")
        || stderr.contains("lacks a signature by a trusted key")
    {
        Error::Unsigned {
            uri: uri.to_owned(),
            tail: t,
        }
    } else if valid == 0 && UNREACHABLE_MARKS.iter().any(|m| stderr.contains(m)) {
        Error::Unreachable {
            uri: uri.to_owned(),
            tail: t,
            ping_arg,
        }
    } else {
        Error::Failed {
            uri: uri.to_owned(),
            tail: t,
            valid,
            total,
            ping_arg,
        }
    }
}

/// `lb-ping` takes an ssh-ng URI or a configured name; give it the URI
/// (without query, which lb-ping reads from the builders entry).
fn ping_arg(uri: &str) -> String {
    if uri.starts_with("ssh-ng://") {
        format!(" {}", uri.split('?').next().unwrap_or(uri))
    } else {
        String::new()
    }
}

/// The host part of a store URI (no scheme, user, path or query).
#[must_use]
pub fn uri_host(uri: &str) -> &str {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let rest = rest.split(['?', '/']).next().unwrap_or(rest);
    rest.rsplit_once('@').map_or(rest, |(_, h)| h)
}

/// Does `uri` already carry query parameter `name`?
fn has_query(uri: &str, name: &str) -> bool {
    uri.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|kv| kv.split_once('=').map_or(kv, |(k, _)| k) == name)
    })
}

/// The source URI with the builders entry's key and host key added as
/// query parameters Nix's ssh store understands (`ssh-key`,
/// `base64-ssh-public-host-key`), unless the URI sets them itself.
#[must_use]
pub fn with_entry_params(uri: &str, entry: Option<&Machine>) -> String {
    let Some(m) = entry else {
        return uri.to_owned();
    };
    if !uri.starts_with("ssh-ng://") && !uri.starts_with("ssh://") {
        return uri.to_owned();
    }
    let mut params = Vec::new();
    if let Some(k) = m.ssh_key.as_deref().filter(|k| !k.is_empty()) {
        if !has_query(uri, "ssh-key") {
            params.push(format!("ssh-key={k}"));
        }
    }
    if let Some(h) = m.public_host_key.as_deref().filter(|k| !k.is_empty()) {
        if !has_query(uri, "base64-ssh-public-host-key") {
            params.push(format!("base64-ssh-public-host-key={h}"));
        }
    }
    if params.is_empty() {
        return uri.to_owned();
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", params.join("&"))
}

/// `NIX_SSHOPTS` for the copy: the caller's, plus `-F ROOT/etc/ssh/ssh_config`
/// under a scratch root (so the alias written there is the one ssh uses),
/// unless the caller already chose a config file.
#[must_use]
pub fn ssh_opts(root: &Root, inherited: Option<&str>) -> Option<String> {
    let inherited = inherited.map(str::trim).filter(|s| !s.is_empty());
    let ours = lb_common::ssh::config_file(root)
        .filter(|f| f.exists())
        .filter(|_| !lb_common::ssh::chooses_config(&lb_common::ssh::nix_sshopts(inherited)))
        .map(|f| format!("-F {}", f.display()));
    match (inherited, ours) {
        (Some(i), Some(o)) => Some(format!("{i} {o}")),
        (Some(i), None) => Some(i.to_owned()),
        (None, Some(o)) => Some(o),
        (None, None) => None,
    }
}

/// How many bytes of store paths one command line carries. Arguments and
/// environment share ARG_MAX (2 MiB on Linux, 1 MiB on macOS); a quarter
/// of the smaller leaves the environment its room. 256 KiB is some 3,000
/// paths: a build's outputs fit, a closure may not.
pub const ARGV_BUDGET: usize = 256 * 1024;

/// `paths` cut into runs whose command-line bytes (each path and its NUL)
/// stay within `budget`; a single longer path gets a run of its own.
#[must_use]
pub fn batches<'a>(paths: &'a [&'a str], budget: usize) -> Vec<&'a [&'a str]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, p) in paths.iter().enumerate() {
        let len = p.len() + 1;
        if i > start && bytes + len > budget {
            out.push(&paths[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < paths.len() {
        out.push(&paths[start..]);
    }
    out
}

/// `nix-store --check-validity --print-invalid PATHS`: prints the invalid
/// ones, one process for all that fit a command line.
#[must_use]
pub fn validity_command(paths: &[&str]) -> Cmd {
    Cmd::new("nix-store")
        .hint(NIX_HINT)
        .args(["--check-validity", "--print-invalid"])
        .args(paths)
}

/// The paths among `paths` not valid in the local store (nix-store reads
/// no stdin: one process per [`ARGV_BUDGET`] of paths).
pub fn invalid(paths: &[&str]) -> Result<Vec<String>, lb_common::cmd::Error> {
    let mut invalid = Vec::new();
    for batch in batches(paths, ARGV_BUDGET) {
        let out = validity_command(batch).run()?;
        invalid.extend(
            out.stdout_text()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    Ok(invalid)
}

/// One `nix copy --from` and the paths it copies.
#[derive(Debug, Clone)]
pub struct CopyCmd {
    /// The command, paths on its command line or its stdin.
    pub cmd: Cmd,
    /// How many paths it copies.
    pub paths: usize,
    /// Whether it reads them on stdin (`--stdin`).
    pub on_stdin: bool,
}

impl CopyCmd {
    /// The command as a shell line; one reading stdin says so.
    #[must_use]
    pub fn display(&self) -> String {
        if self.on_stdin {
            format!(
                "{}  # the {} paths, one per line on stdin",
                self.cmd.display(),
                self.paths
            )
        } else {
            self.cmd.display()
        }
    }
}

/// The `nix copy --from` commands that copy `paths`: one with the paths
/// as arguments while they fit `budget`; beyond it one reading them on
/// stdin where the Nix on PATH can (`nix_version`, asked only then: 2.15
/// and later), else one per batch that fits.
#[must_use]
pub fn copy_commands(
    base: &Cmd,
    paths: &[&str],
    budget: usize,
    nix_version: impl FnOnce() -> Option<NixVersion>,
) -> Vec<CopyCmd> {
    let fits = paths.iter().map(|p| p.len() + 1).sum::<usize>() <= budget;
    if !fits && nix_version().is_some_and(|v| v >= NixVersion::STDIN_INSTALLABLES) {
        let mut input = paths.join("\n");
        input.push('\n');
        return vec![CopyCmd {
            cmd: base.clone().arg("--stdin").stdin_bytes(input),
            paths: paths.len(),
            on_stdin: true,
        }];
    }
    batches(paths, budget)
        .into_iter()
        .map(|batch| CopyCmd {
            cmd: base.clone().args(batch),
            paths: batch.len(),
            on_stdin: false,
        })
        .collect()
}

/// `nix copy --from URI` without its paths.
#[must_use]
pub fn copy_base(uri: &str, no_check_sigs: bool, sshopts: Option<&str>) -> Cmd {
    let mut cmd = Cmd::new("nix").hint(NIX_HINT);
    if let Some(o) = sshopts {
        cmd = cmd.env("NIX_SSHOPTS", o);
    }
    // `nix copy` is behind the nix-command feature up to Nix 2.x's
    // stabilisation; naming it is harmless where it is already on.
    cmd = cmd.args([
        "--extra-experimental-features",
        "nix-command",
        "copy",
        "--from",
        uri,
    ]);
    if no_check_sigs {
        cmd = cmd.arg("--no-check-sigs");
    }
    cmd
}

/// `nix-store --add-root LINK --indirect --realise PATH`: a GC root the
/// way `nix build --out-link` makes one (Nix 2.8 wants `--indirect` for a
/// root outside the gcroots directory; later versions ignore it).
#[must_use]
pub fn root_command(link: &Path, path: &str) -> Cmd {
    Cmd::new("nix-store")
        .hint(NIX_HINT)
        .arg("--add-root")
        .arg(link)
        .args(["--indirect", "--realise", path])
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::conf::Location;

    fn machine(key: Option<&str>, host_key: Option<&str>) -> Machine {
        Machine {
            uri: "ssh-ng://builder@linux-builder".into(),
            systems: vec!["x86_64-linux".into()],
            ssh_key: key.map(Into::into),
            max_jobs: 1,
            speed_factor: 1.0,
            supported_features: vec![],
            mandatory_features: vec![],
            public_host_key: host_key.map(Into::into),
            at: Location {
                file: "/etc/nix/machines".into(),
                line: 1,
            },
        }
    }

    #[test]
    fn entry_params_added_once() {
        let m = machine(Some("/etc/nix/builder_ed25519"), Some("c3No"));
        assert_eq!(
            with_entry_params("ssh-ng://builder@linux-builder", Some(&m)),
            "ssh-ng://builder@linux-builder?ssh-key=/etc/nix/builder_ed25519&base64-ssh-public-host-key=c3No"
        );
        assert_eq!(
            with_entry_params("ssh-ng://b@h?ssh-key=/k", Some(&m)),
            "ssh-ng://b@h?ssh-key=/k&base64-ssh-public-host-key=c3No"
        );
        assert_eq!(
            with_entry_params("ssh-ng://b@h", Some(&machine(None, None))),
            "ssh-ng://b@h"
        );
        assert_eq!(with_entry_params("file:///x", Some(&m)), "file:///x");
    }

    #[test]
    fn command_lines() {
        let base = copy_base("ssh-ng://b@h", true, Some("-F /r/etc/ssh/ssh_config"));
        let c = copy_commands(
            &base,
            &["/nix/store/a", "/nix/store/b"],
            ARGV_BUDGET,
            || panic!("no version asked while the paths fit"),
        );
        assert_eq!(c.len(), 1);
        insta::assert_snapshot!(c[0].display(), @"NIX_SSHOPTS='-F /r/etc/ssh/ssh_config' nix --extra-experimental-features nix-command copy --from ssh-ng://b@h --no-check-sigs /nix/store/a /nix/store/b");
        let c = copy_base("ssh-ng://b@h?x=1&y=2", false, None).arg("/nix/store/a");
        insta::assert_snapshot!(c.display(), @"nix --extra-experimental-features nix-command copy --from 'ssh-ng://b@h?x=1&y=2' /nix/store/a");
        insta::assert_snapshot!(root_command(Path::new("result-dev"), "/nix/store/a").display(), @"nix-store --add-root result-dev --indirect --realise /nix/store/a");
    }

    fn many(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("/nix/store/{i:032}-lb-copy-path-{i}"))
            .collect()
    }

    #[test]
    fn batches_cover_every_path_in_order_within_the_budget() {
        let owned = many(1000);
        let paths: Vec<&str> = owned.iter().map(String::as_str).collect();
        let b = batches(&paths, 4096);
        assert!(b.len() > 1);
        assert_eq!(b.concat(), paths);
        for batch in &b {
            assert!(batch.iter().map(|p| p.len() + 1).sum::<usize>() <= 4096);
        }
        assert!(batches(&[], 4096).is_empty());
        // A path longer than the budget still gets copied, on its own.
        let long = "x".repeat(100);
        assert_eq!(
            batches(&["a", &long, "b"], 10),
            vec![&["a"][..], &[&long[..]], &["b"]]
        );
    }

    #[test]
    fn many_paths_go_on_stdin_from_nix_2_15_and_in_batches_before() {
        let owned = many(20_000);
        let paths: Vec<&str> = owned.iter().map(String::as_str).collect();
        let base = copy_base("ssh-ng://b@h", false, None);

        let new = copy_commands(&base, &paths, ARGV_BUDGET, || Some(NixVersion::new(2, 15)));
        assert_eq!(new.len(), 1);
        assert!(new[0].on_stdin);
        assert_eq!(new[0].paths, 20_000);
        assert_eq!(new[0].cmd.get_args().last().unwrap(), "--stdin");
        assert!(new[0]
            .display()
            .ends_with("--stdin  # the 20000 paths, one per line on stdin"));

        for old in [Some(NixVersion::new(2, 14)), None] {
            let cmds = copy_commands(&base, &paths, ARGV_BUDGET, || old);
            assert!(cmds.len() > 1, "{old:?}");
            let mut all = Vec::new();
            for c in &cmds {
                assert!(!c.on_stdin);
                let args: Vec<&str> = c.cmd.get_args().iter().filter_map(|a| a.to_str()).collect();
                let args = &args[args.iter().position(|a| *a == "ssh-ng://b@h").unwrap() + 1..];
                assert!(args.iter().map(|a| a.len() + 1).sum::<usize>() <= ARGV_BUDGET);
                assert_eq!(args.len(), c.paths);
                all.extend_from_slice(args);
            }
            assert_eq!(all, paths);
        }
    }

    #[test]
    fn ssh_opts_adds_root_config_unless_given() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(Some(tmp.path())).unwrap();
        assert_eq!(
            ssh_opts(&root, None),
            None,
            "no config file in the root yet"
        );
        std::fs::create_dir_all(tmp.path().join("etc/ssh")).unwrap();
        std::fs::write(tmp.path().join("etc/ssh/ssh_config"), "").unwrap();
        let f = root.system(Path::new("/etc/ssh/ssh_config")).unwrap();
        assert_eq!(ssh_opts(&root, None), Some(format!("-F {}", f.display())));
        assert_eq!(
            ssh_opts(&root, Some("-v")),
            Some(format!("-v -F {}", f.display()))
        );
        assert_eq!(ssh_opts(&root, Some("-F /x")), Some("-F /x".to_owned()));
        assert_eq!(ssh_opts(&Root::real(), Some(" ")), None);
    }

    #[test]
    fn failures_are_told_apart() {
        let unsigned = "copying path '/nix/store/x' from 'ssh-ng://b@h'...\nerror: cannot add path '/nix/store/x' because it lacks a valid signature\n";
        let e = classify("ssh-ng://b@h", unsigned, 0, 1);
        assert!(matches!(e, Error::Unsigned { .. }));
        let unsigned_2_26 =
            "error: cannot add path '/nix/store/x' because it lacks a signature by a trusted key\n";
        assert!(matches!(
            classify("ssh-ng://b@h", unsigned_2_26, 0, 1),
            Error::Unsigned { .. }
        ));
        let msg = e.to_string();
        for way in [
            "--no-check-sigs",
            "nix store sign",
            "trusted-public-keys",
            "require-sigs = false",
        ] {
            assert!(msg.contains(way), "{msg}");
        }
        let refused = "ssh: connect to host 127.0.0.1 port 1: Connection refused\nerror: cannot open connection to remote store 'ssh-ng://b@h': error: unexpected end-of-file\n";
        let e = classify("ssh-ng://b@h?ssh-key=/k", refused, 0, 2);
        assert_eq!(
            e.to_string(),
            "cannot reach the builder store ssh-ng://b@h?ssh-key=/k: ssh: connect to host 127.0.0.1 port 1: \
             Connection refused / error: cannot open connection to remote store 'ssh-ng://b@h': error: \
             unexpected end-of-file; check the builder with `lb-ping ssh-ng://b@h`"
        );
        let e = classify("ssh-ng://b@h", "error: unexpected end-of-file\n", 1, 3);
        assert!(
            e.to_string()
                .contains("1 of 3 missing paths arrived complete"),
            "{e}"
        );
        assert_eq!(e.status(), Status::Failed);
    }

    #[test]
    fn host_of_uri() {
        assert_eq!(
            uri_host("ssh-ng://builder@linux-builder?a=b"),
            "linux-builder"
        );
        assert_eq!(uri_host("ssh-ng://h"), "h");
        assert_eq!(uri_host("h"), "h");
    }
}
