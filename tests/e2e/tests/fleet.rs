//! A fleet of eight builders for real: each its own host on 127.0.0.2 to
//! 127.0.0.9 (sshd on port 22, its own host key, login key and Nix store),
//! configured in a scratch root with the tools only, pinged in parallel,
//! and used by Nix's own scheduler for a `--max-jobs 0` build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lb_testkit::fleet::{self, run_tool, tool, Fleet, Spec};
use lb_testkit::{keygen, scratch_root, NIX_TEST_OPTIONS};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// Nix as the client, reading the scratch root's nix.conf and ssh_config
/// (the root daemon's ssh would read /etc/ssh/ssh_config the same way).
fn nix(root: &Path, program: &str) -> Command {
    let mut c = Command::new(program);
    c.args(NIX_TEST_OPTIONS)
        .env("NIX_CONF_DIR", root.join("etc/nix"))
        .env(
            "NIX_SSHOPTS",
            format!("-F {}", root.join("etc/ssh/ssh_config").display()),
        );
    c
}

/// Sixteen independent derivations, each a few seconds long so that they
/// overlap and Nix spreads them, and one requiring the feature only one
/// builder has. The builder is a static busybox from the local store, so
/// the builders' sandboxes (a chroot store always builds in one) need
/// nothing of the host.
fn write_jobs(dir: &Path, stamp: &str) -> PathBuf {
    let bb = dir.join("bb");
    std::fs::create_dir_all(&bb).unwrap();
    lb_testkit::require_program("/bin/busybox", "busybox-static");
    std::fs::copy("/bin/busybox", bb.join("busybox")).unwrap();
    let file = dir.join("jobs.nix");
    std::fs::write(
        &file,
        format!(
            r#"let
  bb = builtins.path {{ path = ./bb; name = "fleet-busybox"; }};
  job = name: extra: derivation ({{
    inherit name;
    system = "x86_64-linux";
    builder = "${{bb}}/busybox";
    args = [ "sh" "-c" "echo building ${{name}}; sleep 2; echo ${{name}} > $out" ];
  }} // extra);
in builtins.genList (i: job "job-{stamp}-${{toString i}}" {{}}) 16
   ++ [ (job "rare-{stamp}" {{ requiredSystemFeatures = [ "{rare}" ]; }}) ]
"#,
            rare = fleet::RARE_FEATURE
        ),
    )
    .unwrap();
    file
}

fn ping(bin: &Path, root: &Path, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = tool(bin, root, "lb-ping").args(args).output().unwrap();
    (out, t.elapsed())
}

#[test]
fn eight_builders_configured_pinged_and_scheduled_by_nix() {
    let bin = lb_testkit::tool_bin_dir();
    let fleet = Fleet::start(fleet::eight());
    let root = scratch_root();
    chmod(root.path(), 0o755);
    fleet.configure(&bin, root.path());
    let root = root.path();
    configured_as_nix_reads_it(&bin, root);
    every_builder_answers(&bin, root, &fleet);
    nix_spreads_the_builds(&fleet, root);
    failures_are_named_without_slowing_the_others(&fleet, &bin, root);
}

/// The configuration, as Nix reads it: eight entries with their fields.
fn configured_as_nix_reads_it(bin: &Path, root: &Path) {
    let show = run_tool(bin, root, "lb-nixconf", &["show", "--json"]);
    let shown: Vec<serde_json::Value> = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown.len(), 8, "{}", text(&show.stdout));
    let cfg = nix(root, "nix").arg("show-config").output().unwrap();
    assert!(cfg.status.success(), "{}", text(&cfg.stderr));
    let cfg = text(&cfg.stdout);
    let builders = cfg
        .lines()
        .find_map(|l| l.strip_prefix("builders = "))
        .unwrap_or_else(|| panic!("no builders in {cfg}"));
    assert_eq!(builders.split(" ; ").count(), 8, "{builders}");
}

/// Every builder answers, pinged in parallel; the JSON carries what a
/// fleet overview shows (address, capacity, features).
fn every_builder_answers(bin: &Path, root: &Path, fleet: &Fleet) {
    let (out, _) = ping(bin, root, &["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rs = json(&out);
    assert_eq!(rs.len(), 8);
    for (r, m) in rs.iter().zip(&fleet.members) {
        let s = &m.spec;
        assert_eq!(r["uri"], format!("ssh-ng://builder@{}", s.name), "{r}");
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["address"], m.sshd.socket_addr().to_string(), "{r}");
        assert_eq!(r["max_jobs"], s.max_jobs, "{r}");
        assert_eq!(r["speed_factor"], s.speed_factor, "{r}");
        assert_eq!(
            r["supported_features"],
            serde_json::json!(s.features),
            "{r}"
        );
        assert_eq!(r["systems"], serde_json::json!(["x86_64-linux"]), "{r}");
    }
}

/// Nix's scheduler spreads sixteen builds over the builders' own stores;
/// from each builder's side: the builds in its own logs, their outputs in
/// its own store, each derivation on exactly one builder.
///
/// Nix picks the free builder with the lowest load / speed factor, higher
/// speed breaking ties (build-remote.cc); up to 2.19 both are integers, so
/// fleet-5 (speed 4) takes its three slots first, then fleet-3 and fleet-7
/// (speed 2), then the others. Which builder gets how many depends on
/// timing; that at least four of them build does not, as long as the
/// builds overlap (two seconds each, all seventeen asked for at once).
fn nix_spreads_the_builds(fleet: &Fleet, root: &Path) {
    let stamp = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let jobs = write_jobs(fleet.work.path(), &stamp);
    let t = Instant::now();
    let out = nix(root, "nix")
        .args(["build", "--max-jobs", "0", "--no-link", "--json", "-f"])
        .arg(&jobs)
        .output()
        .unwrap();
    let took = t.elapsed();
    let logs: String = fleet.members.iter().map(|m| m.sshd.log()).collect();
    assert!(
        out.status.success(),
        "nix build: {}\nsshd logs:\n{logs}",
        text(&out.stderr)
    );
    let built: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(built.len(), 17);
    let outputs: Vec<String> = built
        .iter()
        .map(|b| b["outputs"]["out"].as_str().unwrap().to_owned())
        .collect();
    for o in &outputs {
        assert!(Path::new(o).exists(), "{o} was not copied back");
    }

    let mut ran: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    eprintln!("nix build of 17 derivations took {took:?}; per builder:");
    for m in &fleet.members {
        let logged = m.logged_builds();
        let in_store = m.built("");
        let mine: Vec<&str> = built
            .iter()
            .filter(|b| {
                let drv = b["drvPath"].as_str().unwrap();
                logged.iter().any(|l| drv.ends_with(l.as_str()))
            })
            .map(|b| b["outputs"]["out"].as_str().unwrap())
            .collect();
        for o in &mine {
            let base = Path::new(o).file_name().unwrap().to_string_lossy();
            assert!(
                in_store.iter().any(|n| *n == base),
                "{} logged {o} but its store lacks it",
                m.spec.name
            );
        }
        eprintln!(
            "  {} (max-jobs {}, speed {}): {} builds",
            m.spec.name,
            m.spec.max_jobs,
            m.spec.speed_factor,
            mine.len()
        );
        ran.insert(&m.spec.name, mine);
    }
    for o in &outputs {
        let on: Vec<&str> = ran
            .iter()
            .filter(|(_, v)| v.contains(&o.as_str()))
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(
            on.len(),
            1,
            "{o} built on {on:?} (want exactly one builder)"
        );
        if o.ends_with(&format!("rare-{stamp}")) {
            assert_eq!(
                on,
                ["fleet-8"],
                "the {} job went elsewhere",
                fleet::RARE_FEATURE
            );
        }
    }
    let used = ran.values().filter(|v| !v.is_empty()).count();
    assert!(used >= 4, "Nix used only {used} of 8 builders: {ran:?}");
}

/// A builder that is down, one whose key is wrong and two that accept
/// connections and then never answer are each named, and the others answer
/// as fast as before: the stalls overlap instead of adding up. Then the
/// one-line-per-builder overview (what `make doctor` shows): every builder
/// in order, its status the failed stage or ok.
fn failures_are_named_without_slowing_the_others(fleet: &Fleet, bin: &Path, root: &Path) {
    fleet.member("fleet-3").go_down();
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = keygen(stranger_dir.path(), "stranger");
    fleet
        .member("fleet-5")
        .sshd
        .authorize(&stranger.public_line());
    fleet.member("fleet-6").hang();
    fleet.member("fleet-7").hang();
    let timeout = 4.0;
    let (out, took) = ping(bin, root, &["--json", "--timeout", "4"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let rs = json(&out);
    let got: Vec<(String, &str, &str)> = rs
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_owned(),
                r["failed_stage"].as_str().unwrap_or("-"),
                r["cause"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    let want: Vec<(String, &str, &str)> = [
        ("fleet-1", "-", "-"),
        ("fleet-2", "-", "-"),
        ("fleet-3", "connect", "refused"),
        ("fleet-4", "-", "-"),
        ("fleet-5", "auth", "auth-refused"),
        ("fleet-6", "ssh-handshake", "timeout"),
        ("fleet-7", "ssh-handshake", "timeout"),
        ("fleet-8", "-", "-"),
    ]
    .into_iter()
    .map(|(h, s, c)| (h.to_owned(), s, c))
    .collect();
    assert_eq!(got, want, "{}", text(&out.stdout));
    for r in rs.iter().filter(|r| r["ok"] == true) {
        let ms = r["total_ms"].as_f64().unwrap();
        assert!(ms < timeout * 1000.0, "a healthy builder waited: {r}");
    }
    // One after another the two stalls alone take 2 x timeout.
    assert!(
        took.as_secs_f64() < 2.0 * timeout,
        "took {took:?}: {}",
        text(&out.stdout)
    );
    let stderr = text(&out.stderr);
    for name in ["fleet-3", "fleet-5", "fleet-6", "fleet-7"] {
        assert!(
            stderr.contains(&format!("ssh-ng://builder@{name}: ")),
            "{name} not named: {stderr}"
        );
    }

    let (out, _) = ping(bin, root, &["--timeout", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let lines = text(&out.stdout);
    let status: Vec<(&str, &str)> = lines
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap(), w.next().unwrap())
        })
        .collect();
    assert_eq!(
        status,
        [
            ("ssh-ng://builder@fleet-1", "ok"),
            ("ssh-ng://builder@fleet-2", "ok"),
            ("ssh-ng://builder@fleet-3", "connect"),
            ("ssh-ng://builder@fleet-4", "ok"),
            ("ssh-ng://builder@fleet-5", "auth"),
            ("ssh-ng://builder@fleet-6", "ssh-handshake"),
            ("ssh-ng://builder@fleet-7", "ssh-handshake"),
            ("ssh-ng://builder@fleet-8", "ok"),
        ],
        "{lines}"
    );
    doctor_names_the_same_builders(bin, root, timeout);
    fleet.member("fleet-6").resume();
    fleet.member("fleet-7").resume();
}

/// lb-doctor's overview of the fleet: every builder pinged (with its
/// health) in one run, the same four named in its ping step, in about one
/// timeout rather than the sum.
fn doctor_names_the_same_builders(bin: &Path, root: &Path, timeout: f64) {
    let t = Instant::now();
    let out = tool(bin, root, "lb-doctor")
        .args(["--json", "--no-vm", "--timeout", &timeout.to_string()])
        .output()
        .unwrap();
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["healthy"], false);
    let builders = doc["builders"].as_array().unwrap();
    assert_eq!(builders.len(), 8, "{doc}");
    let failed: Vec<&str> = builders
        .iter()
        .filter(|b| b["ok"] != true)
        .map(|b| b["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        ["fleet-3", "fleet-5", "fleet-6", "fleet-7"],
        "{doc}"
    );
    let ping = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "ping")
        .expect("a ping step");
    assert_eq!(ping["status"], "failed", "{ping}");
    let problems = ping["problems"].to_string();
    for name in ["fleet-3", "fleet-5", "fleet-6", "fleet-7"] {
        assert!(
            problems.contains(name),
            "{name} not in the ping step: {ping}"
        );
    }
    for name in ["fleet-1", "fleet-2", "fleet-4", "fleet-8"] {
        assert!(!problems.contains(name), "{name} is healthy: {ping}");
    }
    assert!(
        took.as_secs_f64() < 3.0 * timeout,
        "lb-doctor took {took:?} for the fleet"
    );
}

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// The builders entries of nix.conf's block, keyed by host, and the file
/// without its builders line.
fn entries(root: &Path) -> (BTreeMap<String, String>, String) {
    let conf = std::fs::read_to_string(root.join("etc/nix/nix.conf")).unwrap();
    let mut map = BTreeMap::new();
    let mut rest = String::new();
    for l in conf.split_inclusive('\n') {
        match l.strip_prefix("builders = ") {
            Some(v) => {
                for e in v.trim_end().split(" ; ") {
                    let host = e
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .rsplit('@')
                        .next()
                        .unwrap()
                        .to_owned();
                    assert!(map.insert(host, e.to_owned()).is_none(), "{conf}");
                }
            }
            None => rest.push_str(l),
        }
    }
    (map, rest)
}

/// Adding, changing and removing one builder leaves the other entries of
/// nix.conf and the other alias files byte for byte as they were.
#[test]
#[allow(clippy::too_many_lines)] // one scenario, read in order
fn eight_entries_stay_apart_through_add_change_remove() {
    let bin = lb_testkit::tool_bin_dir();
    let root = scratch_root();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/nix")).unwrap();
    std::fs::create_dir_all(r.join("etc/ssh")).unwrap();
    let mine_nix = "# my own settings\nmax-jobs = 0\nsubstituters =\n";
    let mine_ssh = "Host *\n  ServerAliveInterval 30\n";
    std::fs::write(r.join("etc/nix/nix.conf"), mine_nix).unwrap();
    std::fs::write(r.join("etc/ssh/ssh_config"), mine_ssh).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let host_keys: Vec<String> = (0..9)
        .map(|i| keygen(keys.path(), &format!("host{i}")).public_line())
        .collect();
    let flags = |s: &Spec, host_key: &str| -> Vec<String> {
        let v: Vec<String> = [
            "--name",
            &s.name,
            "--hostname",
            &s.address.to_string(),
            "--port",
            "22",
            "--key",
            &format!("/etc/nix/{}_ed25519", s.name),
            "--host-key",
            host_key,
            "--system",
            "x86_64-linux",
            "--max-jobs",
            &s.max_jobs.to_string(),
        ]
        .iter()
        .map(|&x| x.to_owned())
        .collect();
        v
    };
    let install = |s: &Spec, hk: &str| {
        let f = flags(s, hk);
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        run_tool(&bin, r, "lb-sshcfg", &[&["install"][..], &f].concat());
        let speed = s.speed_factor.to_string();
        let mut nixconf = vec!["install", "--speed-factor", &speed];
        nixconf.extend(&f);
        let features = s.features.join(",");
        if !features.is_empty() {
            nixconf.extend(["--features", &features]);
        }
        run_tool(&bin, r, "lb-nixconf", &nixconf);
    };
    let specs = fleet::eight();
    for (s, hk) in specs.iter().zip(&host_keys) {
        install(s, hk);
    }
    let (before, rest) = entries(r);
    assert_eq!(before.len(), 8);
    assert!(rest.starts_with(mine_nix), "{rest}");
    let ssh_before = files(&r.join("etc/ssh"));
    assert_eq!(ssh_before.len(), 1 + 8 * 2, "{:?}", ssh_before.keys());

    let unchanged = |skip: &[&str], want_entries: usize| {
        let (now, now_rest) = entries(r);
        assert_eq!(now_rest, rest, "nix.conf outside the builders line changed");
        assert_eq!(now.len(), want_entries);
        for (host, e) in &before {
            if !skip.contains(&host.as_str()) {
                assert_eq!(now.get(host), Some(e), "{host}'s entry changed");
            }
        }
        let ssh_now = files(&r.join("etc/ssh"));
        for (p, bytes) in &ssh_before {
            let name = p.to_string_lossy();
            if !skip.iter().any(|s| name.contains(&format!("100-{s}."))) {
                assert_eq!(ssh_now.get(p), Some(bytes), "{name} changed");
            }
        }
        ssh_now
    };

    // Add a ninth.
    let ninth = Spec::new("fleet-9", "127.0.0.10".parse().unwrap(), 4, 3.0, &["kvm"]);
    install(&ninth, &host_keys[8]);
    let ssh_now = unchanged(&["fleet-9"], 9);
    assert!(ssh_now.contains_key(Path::new("ssh_config.d/100-fleet-9.conf")));

    // Change the fourth: address, max-jobs, speed and features.
    let mut fourth = specs[3].clone();
    fourth.address = "127.0.0.44".parse().unwrap();
    fourth.max_jobs = 6;
    fourth.speed_factor = 9.0;
    fourth.features = vec!["benchmark".into()];
    install(&fourth, &host_keys[3]);
    unchanged(&["fleet-4", "fleet-9"], 9);
    let (now, _) = entries(r);
    assert_ne!(now["fleet-4"], before["fleet-4"]);
    assert!(
        now["fleet-4"].contains(" 6 9 benchmark "),
        "{}",
        now["fleet-4"]
    );
    let conf4 = std::fs::read_to_string(r.join("etc/ssh/ssh_config.d/100-fleet-4.conf")).unwrap();
    assert!(conf4.contains("127.0.0.44"), "{conf4}");

    // Remove the sixth.
    run_tool(&bin, r, "lb-sshcfg", &["uninstall", "--name", "fleet-6"]);
    run_tool(&bin, r, "lb-nixconf", &["remove", "--name", "fleet-6"]);
    let ssh_now = unchanged(&["fleet-4", "fleet-9", "fleet-6"], 8);
    assert!(!entries(r).0.contains_key("fleet-6"));
    assert!(!ssh_now.contains_key(Path::new("ssh_config.d/100-fleet-6.conf")));
    assert!(!ssh_now.contains_key(Path::new("ssh_config.d/100-fleet-6.known_hosts")));
    // The order of the others is kept too: the file is stable to diff.
    let (now, _) = entries(r);
    let conf = std::fs::read_to_string(r.join("etc/nix/nix.conf")).unwrap();
    let order: Vec<&str> = [
        "fleet-1", "fleet-2", "fleet-3", "fleet-4", "fleet-5", "fleet-7", "fleet-8", "fleet-9",
    ]
    .into_iter()
    .filter(|h| now.contains_key(*h))
    .collect();
    let positions: Vec<usize> = order
        .iter()
        .map(|h| conf.find(&format!("@{h} ")).unwrap())
        .collect();
    assert!(positions.is_sorted(), "entries reordered: {conf}");
}
