//! lb-sshcfg under hostile and unlucky input (issue 19): values that would
//! inject ssh_config directives, paths that climb out of `--root`, a
//! symlinked directory leading out, two runs racing on the shared files,
//! and a target root cannot change (immutable, read-only file system).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lb_testkit::Scenario;

fn scratch() -> Scenario {
    Scenario::new("lb-sshcfg")
}

/// Every entry under the root, relative.
fn entries(s: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![s.root().to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(s.root()).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_root() -> bool {
    lb_common::privilege::is_root()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `ssh -G` for NAME with the scratch root's ssh_config: keyword -> lines.
fn ssh_g(s: &Scenario, name: &str) -> Vec<(String, String)> {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(s.path("etc/ssh/ssh_config"))
        .args(["-G", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh -G: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn get<'a>(g: &'a [(String, String)], k: &str) -> Vec<&'a str> {
    g.iter()
        .filter(|(kk, _)| kk == k)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn injected_proxy_command_in_lb_key_is_refused_writing_nothing() {
    let s = scratch();
    let marker = s.path("../lb-sshcfg-pwned");
    let key = format!(
        "/etc/nix/k\"\nProxyCommand sh -c \"touch {}\"\n#",
        marker.display()
    );
    let o = s
        .run_env([("LB_KEY", &key)], ["install"])
        .one_line_error(2, "--key (LB_KEY) \"");
    assert!(
        o.stderr().contains("/etc/nix/k\"\\nProxyCommand sh -c"),
        "{}",
        o.stderr()
    );
    assert!(
        o.stderr().contains("it contains a newline"),
        "{}",
        o.stderr()
    );
    assert!(entries(&s).is_empty(), "written: {:?}", entries(&s));
    // A lone quote (which made ssh refuse every host) and a newline alone.
    for bad in ["/etc/nix/k\"", "/etc/nix/k\nHost *", "/etc/nix/a\\b"] {
        s.run(["install", "--key", bad])
            .one_line_error(2, "--key (LB_KEY)");
        assert!(entries(&s).is_empty(), "written: {:?}", entries(&s));
    }
    assert!(!marker.exists());
}

#[test]
fn values_with_spaces_are_quoted_and_parse_with_real_ssh() {
    let s = Scenario::with_root_prefix("lb-sshcfg", "lb root with spaces.");
    s.run([
        "install",
        "--key",
        "/etc/nix/my key's/k#1",
        "--port",
        "31099",
    ])
    .code(0);
    let g = ssh_g(&s, "linux-builder");
    // The quoted Include was read: the alias's values are in effect.
    assert_eq!(get(&g, "hostname"), ["localhost"]);
    assert_eq!(get(&g, "port"), ["31099"]);
    assert_eq!(
        get(&g, "identityfile"),
        [s.path("etc/nix/my key's/k#1").display().to_string()]
    );
    assert_eq!(
        get(&g, "globalknownhostsfile"),
        [s.path("etc/ssh/ssh_config.d/100-linux-builder.known_hosts")
            .display()
            .to_string()]
    );
    // check reads the same files (with the key there: no problem at all).
    let key_dir = s.path("etc/nix/my key's");
    std::fs::create_dir_all(&key_dir).unwrap();
    std::fs::write(key_dir.join("k#1"), "").unwrap();
    s.run(["check", "--key", "/etc/nix/my key's/k#1", "--port", "31099"])
        .success();
}

#[test]
fn key_climbing_out_of_the_root_stays_inside() {
    let s = scratch();
    let outside = tempfile::tempdir().unwrap();
    let key = format!("/../../../{}/k", outside.path().display());
    s.run(["install", "--key", &key]).code(0);
    let conf =
        std::fs::read_to_string(s.path("etc/ssh/ssh_config.d/100-linux-builder.conf")).unwrap();
    let inside = s
        .root()
        .join(outside.path().strip_prefix("/").unwrap())
        .join("k");
    assert!(
        conf.contains(&format!("  IdentityFile {}\n", inside.display())),
        "{conf}"
    );
    assert!(!conf.contains(".."), "{conf}");
}

#[test]
fn etc_ssh_symlinked_out_of_the_root_is_refused() {
    let s = scratch();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(s.path("etc")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), s.path("etc/ssh")).unwrap();
    for args in [&["install"][..], &["uninstall"][..]] {
        s.run(args).one_line_error(2, "outside --root");
    }
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

/// Install and uninstall of two builders, in parallel, `rounds` times:
/// after each round the Include is present exactly when an alias is, and
/// every alias has its known-hosts file and no known-hosts file is left
/// without its alias.
fn race(rounds: usize, pair: impl Fn(usize) -> [(&'static str, &'static str); 2]) {
    let s = scratch();
    let dropin = s.path("etc/ssh/ssh_config.d");
    let main = s.path("etc/ssh/ssh_config");
    for round in 0..rounds {
        let children: Vec<_> = pair(round)
            .iter()
            .map(|(verb, name)| {
                s.command()
                    .args(["-q", verb, "--name", name])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", stderr(&o));
        }
        let aliases: Vec<String> = ["a", "b"]
            .iter()
            .filter(|n| dropin.join(format!("100-{n}.conf")).exists())
            .map(|n| (*n).to_owned())
            .collect();
        for n in ["a", "b"] {
            assert_eq!(
                dropin.join(format!("100-{n}.conf")).exists(),
                dropin.join(format!("100-{n}.known_hosts")).exists(),
                "round {round}: alias and known hosts of {n} disagree"
            );
        }
        let text = std::fs::read_to_string(&main).unwrap_or_default();
        assert_eq!(
            text.contains("Include "),
            !aliases.is_empty(),
            "round {round}: aliases {aliases:?}, ssh_config {text:?}"
        );
        for a in &aliases {
            let g = ssh_g(&s, a);
            assert_eq!(get(&g, "hostkeyalias"), [a.as_str()], "round {round}");
        }
    }
}

#[test]
fn install_b_beside_uninstall_a_keeps_the_include_b_needs() {
    // Uninstall a races install b, then install a races uninstall b.
    race(100, |round| {
        if round % 2 == 0 {
            [("uninstall", "a"), ("install", "b")]
        } else {
            [("install", "a"), ("uninstall", "b")]
        }
    });
}

#[test]
fn install_a_beside_uninstall_a_leaves_a_whole_state() {
    race(100, |round| {
        if round % 2 == 0 {
            [("install", "a"), ("uninstall", "a")]
        } else {
            [("uninstall", "a"), ("install", "a")]
        }
    });
}

/// Run `f` with `path` immutable (chattr +i), clearing the flag after.
fn immutable(path: &Path, f: impl FnOnce()) {
    let st = Command::new("chattr").arg("+i").arg(path).status().unwrap();
    assert!(
        st.success(),
        "chattr +i {} (the test needs root)",
        path.display()
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let _ = Command::new("chattr").arg("-i").arg(path).status();
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn immutable_alias_file_as_root_is_named_not_sudo() {
    assert!(is_root(), "this test runs as root (make test)");
    let s = scratch();
    s.run(["install"]).code(0);
    let conf = s.path("etc/ssh/ssh_config.d/100-linux-builder.conf");
    let before = std::fs::read(&conf).unwrap();
    immutable(&conf, || {
        let o = s
            .run(["install", "--port", "31023"])
            .one_line_error(1, "immutable");
        assert!(!o.stderr().contains("needs root"), "{}", o.stderr());
        assert!(!o.stderr().contains("sudo --reset"), "{}", o.stderr());
    });
    assert_eq!(std::fs::read(&conf).unwrap(), before);
}

#[test]
fn read_only_file_system_as_root_is_named_not_sudo() {
    assert!(is_root(), "this test runs as root (make test)");
    let s = scratch();
    let mount = |args: &[&str]| {
        let out = Command::new("mount")
            .args(args)
            .arg(s.root())
            .output()
            .unwrap();
        assert!(out.status.success(), "mount {args:?}: {}", stderr(&out));
    };
    mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"]);
    let guard = Unmount(s.root().to_owned());
    s.run(["install"]).code(0);
    mount(&["-o", "remount,ro"]);
    for args in [&["install", "--port", "31023"][..], &["uninstall"][..]] {
        let o = s.run(args).one_line_error(1, "read-only file system");
        assert!(!o.stderr().contains("needs root"), "{}", o.stderr());
    }
    drop(guard);
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
