//! `lb-vm check`: what users of the nixpkgs builder VM report going wrong,
//! each found and named with its fix (one line per problem):
//!
//! - the VM is not running, or runs but its sshd does not answer; when it
//!   died, a known crash signature in `NAME.qemu.log` is named with its
//!   workaround (QEMU 11's HVF assertion, nixpkgs issue 528299; `Property
//!   'max-arm-cpu.sme' not found` on M4, nix-darwin issue 1292);
//! - the disk image's virtual size differs from the configured size: a
//!   changed size does nothing to an existing image (nix-darwin issue 1200);
//! - on macOS, the runner's TMPDIR under `/tmp` (or `/var/folders`), which
//!   macOS cleans after three days under a running VM (nix-darwin issue 768);
//! - the forward listening beyond loopback while the builder has the
//!   publicly known nixpkgs host key (nixpkgs PR 208792): anyone on the
//!   network reaches a builder anyone can impersonate;
//! - the ssh alias NAME reaching another port than the one the VM
//!   listens on (nix-darwin PR 1459).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use lb_common::builder::{Builder, HostKey, NIXPKGS_HOST_KEY};
use lb_common::cmd::Cmd;
use lb_common::paths::Root;
use lb_common::platform::{Os, Platform};
use lb_common::ssh;

use crate::vm::Layout;

/// What to compare the VM with.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The disk image [default: WORKDIR/NAME.qcow2].
    pub disk: Option<PathBuf>,
    /// The configured disk size in MiB (`--disk-size`, the nixpkgs
    /// builder's `diskSize`).
    pub disk_size: u64,
}

/// A known way QEMU dies at start, recognised in its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashSignature {
    pub needles: &'static [&'static str],
    pub what: &'static str,
    pub fix: &'static str,
}

/// The known crash signatures, every needle of one must be in the log.
pub const CRASHES: &[CrashSignature] = &[
    CrashSignature {
        needles: &["hvf_arch_init_vcpu", "assertion failed"],
        what: "QEMU 11 aborts at vCPU start under HVF (assertion in hvf_arch_init_vcpu, exit status 134; nixpkgs issue 528299)",
        fix: "run the builder with a QEMU before 11 (e.g. pin the builder's qemu to 10.x), or one built against apple-sdk 15; `--accel tcg` works meanwhile, slowly",
    },
    CrashSignature {
        needles: &["Property 'max-arm-cpu.sme' not found"],
        what: "this QEMU does not know the M4's SME CPU feature that `-cpu max` asks for (nix-darwin issue 1292)",
        fix: "give the VM another CPU model (in the builder's NixOS module: virtualisation.qemu.options = [ \"-cpu\" \"host\" ]), or update QEMU",
    },
];

/// The crash signature `log` shows, if any. An abort (exit status 134,
/// SIGABRT) with an HVF frame counts as the HVF assertion even when the
/// assertion text itself did not reach the log.
#[must_use]
pub fn crash_signature(log: &str) -> Option<&'static CrashSignature> {
    CRASHES
        .iter()
        .find(|c| c.needles.iter().all(|n| log.contains(n)))
        .or_else(|| {
            let aborted = log.contains("exit status: 134")
                || log.contains("exit code 134")
                || log.contains("Abort trap: 6");
            (aborted && log.contains("hvf")).then_some(&CRASHES[0])
        })
}

/// The directory macOS cleans behind a running VM that `dir` is in, if any.
#[must_use]
pub fn cleaned_by_macos(dir: &Path) -> Option<&'static str> {
    [
        "/tmp",
        "/private/tmp",
        "/var/folders",
        "/private/var/folders",
    ]
    .into_iter()
    .find(|p| dir.starts_with(p))
}

/// TMPDIR as a launchd plist sets it (`EnvironmentVariables`).
#[must_use]
pub fn plist_tmpdir(plist: &str) -> Option<String> {
    let at = plist.find("<key>TMPDIR</key>")?;
    let rest = &plist[at + "<key>TMPDIR</key>".len()..];
    let start = rest.find("<string>")? + "<string>".len();
    let end = rest[start..].find("</string>")? + start;
    Some(rest[start..end].trim().to_owned())
}

/// Addresses listening on `port` in a /proc/net/tcp or tcp6 table.
#[must_use]
pub fn proc_listeners(table: &str, port: u16) -> Vec<IpAddr> {
    let want = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (addr, p) = f.get(1)?.rsplit_once(':')?;
            (p == want && *f.get(3)? == "0A").then_some(())?;
            proc_addr(addr)
        })
        .collect()
}

/// A /proc/net address: hex of the address in host byte order per 32-bit word.
fn proc_addr(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// Addresses listening on `port` as `lsof -nP -iTCP:PORT -sTCP:LISTEN`
/// prints them (macOS, where there is no /proc).
#[must_use]
pub fn lsof_listeners(text: &str, port: u16) -> Vec<IpAddr> {
    let suffix = format!(":{port}");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME (LISTEN)
            let name = f.iter().rev().find(|w| w.ends_with(&suffix))?;
            let host = name.strip_suffix(&suffix)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host == "*" {
                Some(IpAddr::from([0, 0, 0, 0]))
            } else {
                host.parse().ok()
            }
        })
        .collect()
}

fn listeners(platform: &Platform, port: u16) -> Vec<IpAddr> {
    match platform.os {
        Os::Linux => ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| proc_listeners(&t, port))
            .collect(),
        Os::MacOs => Cmd::new("lsof")
            .args(["-nP", &format!("-iTCP:{port}"), "-sTCP:LISTEN"])
            .run()
            .map(|o| lsof_listeners(&o.stdout_text(), port))
            .unwrap_or_default(),
    }
}

/// The problem of a forward on `port` listening on `addrs`, if any.
#[must_use]
pub fn exposure_problem(addrs: &[IpAddr], port: u16, host_key: &HostKey) -> Option<String> {
    let outside: Vec<String> = addrs
        .iter()
        .filter(|a| !a.is_loopback())
        .map(|a| {
            if a.is_unspecified() {
                format!("{a} (every interface)")
            } else {
                a.to_string()
            }
        })
        .collect();
    if outside.is_empty() {
        return None;
    }
    let public = HostKey::parse(NIXPKGS_HOST_KEY).is_ok_and(|k| k.same_key(host_key.public_key()));
    if !public {
        return None;
    }
    Some(format!(
        "port {port} listens on {} beyond loopback, and the builder's host key is the publicly known nixpkgs key ({}): \
         anyone on the network reaches the builder, and anyone can pose as it (nixpkgs PR 208792); \
         forward on 127.0.0.1 only: `lb-vm start` does (hostfwd=tcp:127.0.0.1:{port}-:22), or set \
         QEMU_NET_OPTS=hostfwd=tcp:127.0.0.1:{port}-:22 for the nixpkgs runner, or give the builder its own host key",
        outside.join(", "),
        host_key.fingerprint()
    ))
}

/// The problem of a disk image of `have` bytes configured as `want_mib`.
#[must_use]
pub fn disk_size_problem(disk: &Path, have: u64, want_mib: u64) -> Option<String> {
    let have_mib = have / (1024 * 1024);
    if have_mib == want_mib {
        return None;
    }
    let d = disk.display();
    Some(if have_mib < want_mib {
        format!(
            "disk image {d} is {have_mib} MiB but the configured size is {want_mib} MiB: a changed disk size does nothing to an image that \
             already exists (nix-darwin issue 1200); grow it: `lb-vm stop`, then `lb-vm start --disk-size {want_mib}` \
             (qemu-img resize; the guest's filesystem must grow too), or recreate it empty: `lb-vm start --ephemeral --disk-size {want_mib}`"
        )
    } else {
        format!(
            "disk image {d} is {have_mib} MiB, more than the configured {want_mib} MiB: images are never shrunk; \
             to get {want_mib} MiB recreate it (its store is lost): `lb-vm stop`, then `lb-vm start --ephemeral --disk-size {want_mib}`"
        )
    })
}

/// The virtual size of a disk image, from `qemu-img info`.
pub fn virtual_size(disk: &Path) -> lb_common::Result<u64> {
    let out = Cmd::new("qemu-img")
        .hint("install qemu-utils (apt-get install qemu-utils) or qemu")
        .args(["info", "--output=json", "-U"])
        .arg(disk)
        .run()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| lb_common::failed!("qemu-img info {}: not JSON ({e})", disk.display()))?;
    v.get("virtual-size")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| lb_common::failed!("qemu-img info {}: no virtual-size", disk.display()))
}

/// Where the VM runs, as `lb-vm start` recorded it.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    pub pid: Option<u32>,
    /// The port it forwards (recorded, else the configured one).
    pub port: u16,
    /// An on-demand listener holds the port (`pid` is the listener): a
    /// banner probe would boot the VM, and connections are held until sshd
    /// answers, so the port answers by construction.
    pub on_demand: bool,
}

/// Every problem found, one line each.
pub fn problems(
    root: &Root,
    builder: &Builder,
    platform: &Platform,
    layout: &Layout,
    running: Running,
    expect: &Expect,
) -> lb_common::Result<Vec<String>> {
    let mut out = Vec::new();
    let name = &layout.name;
    let port = running.port;
    match running.pid {
        None => {
            let mut line = format!(
                "{name} is not running (no live pid in {}); start it: `lb-vm start --workdir {}` with the --kernel/--initrd or --runner it boots",
                layout.pid().display(),
                layout.dir.display()
            );
            let log = std::fs::read(layout.qemu_log())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if let Some(c) = crash_signature(&log) {
                line = format!(
                    "{name} is not running: its last start died: {} (seen in {}); workaround: {}",
                    c.what,
                    layout.qemu_log().display(),
                    c.fix
                );
            }
            out.push(line);
        }
        Some(pid) => {
            if !running.on_demand && crate::process::ssh_banner(port).is_none() {
                out.push(format!(
                    "{name} runs (pid {pid}) but no sshd answers on 127.0.0.1:{port}: still booting, or the guest is stuck; \
                     wait with `lb-vm wait --workdir {}`, see {}",
                    layout.dir.display(),
                    layout.console().display()
                ));
            }
            if let Some(p) = exposure_problem(&listeners(platform, port), port, &builder.host_key) {
                out.push(p);
            }
            out.extend(alias_port_problem(root, name, port));
        }
    }
    let disk = expect.disk.clone().unwrap_or_else(|| layout.disk());
    if disk.exists() {
        match virtual_size(&disk) {
            Ok(have) => out.extend(disk_size_problem(&disk, have, expect.disk_size)),
            Err(e) => out.push(format!("{e:#}")),
        }
    }
    if platform.os == Os::MacOs {
        let tmp = layout.tmp();
        if let Some(under) = cleaned_by_macos(&tmp) {
            out.push(format!(
                "the VM's TMPDIR {} is under {under}, which macOS cleans after three days under the running VM (nix-darwin issue 768); \
                 move the working directory: `lb-vm start --workdir /var/lib/{name}`",
                tmp.display(),
            ));
        }
        let plist = root.lexical(Path::new(&platform.service_path(name)));
        if let Some(t) = lb_common::fs::read_following(&plist)
            .ok()
            .flatten()
            .and_then(|p| plist_tmpdir(&String::from_utf8_lossy(&p)))
        {
            if let Some(under) = cleaned_by_macos(Path::new(&t)) {
                out.push(format!(
                    "{}: TMPDIR {t} is under {under}, which macOS cleans after three days (nix-darwin issue 768); \
                     rewrite it: `lb-vm service --launchd --install --workdir /var/lib/{name}`",
                    plist.display()
                ));
            }
        }
    }
    Ok(out)
}

/// The ssh alias NAME must reach the port the VM forwards.
fn alias_port_problem(root: &Root, name: &str, port: u16) -> Option<String> {
    let r = ssh::resolve(root, name, None).ok()?;
    let local = r.hostname == "localhost"
        || r.hostname
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if !local {
        return None;
    }
    (r.port != port).then(|| {
        format!(
            "the ssh alias {name} reaches {}:{} but the VM listens on 127.0.0.1:{port}, so Nix never gets there (nix-darwin PR 1459); \
             fix the alias: `lb-sshcfg install --name {name} --port {port}`, or start the VM with `--port {}`",
            r.hostname, r.port, r.port
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_signatures_from_recorded_logs() {
        // nixpkgs issue 528299 (QEMU 11, HVF).
        let hvf = "ERROR:../target/arm/hvf/sysreg.c.inc:149:hvf_arch_init_vcpu:\n  assertion failed: \
                   (HV_SYS_REG_SMCR_EL1 == KVMID_TO_HVF(KVMID_AA64_SYS_REG64(3, 0, 1, 2, 6)))\nBail out!\n";
        let c = crash_signature(hvf).unwrap();
        assert!(c.what.contains("528299"));
        // The same crash seen only as the runner's abort line.
        let abort = "create-builder: line 14: 93190 Abort trap: 6  qemu-system-aarch64 -machine virt,gic-version=2,accel=hvf:tcg";
        assert_eq!(crash_signature(abort), Some(&CRASHES[0]));
        // nix-darwin issue 1292 (M4).
        let sme = "Unexpected error in object_property_find_err() at ../qom/object.c:1358:\n\
                   qemu-system-aarch64: Property 'max-arm-cpu.sme' not found\n";
        assert!(crash_signature(sme).unwrap().what.contains("1292"));
        assert_eq!(
            crash_signature("qemu-system-x86_64: terminating on signal 15"),
            None
        );
        assert_eq!(crash_signature(""), None);
    }

    #[test]
    fn tmpdirs_macos_cleans() {
        for bad in [
            "/tmp/lb/linux-builder.tmp",
            "/private/tmp/x",
            "/var/folders/ab/T/x",
        ] {
            assert!(cleaned_by_macos(Path::new(bad)).is_some(), "{bad}");
        }
        for ok in [
            "/var/lib/linux-builder/linux-builder.tmp",
            "/run/org.nixos.linux-builder",
            "/tmpx",
        ] {
            assert_eq!(cleaned_by_macos(Path::new(ok)), None, "{ok}");
        }
        let plist = "<dict><key>EnvironmentVariables</key><dict><key>TMPDIR</key>\n  <string>/tmp/lb</string></dict>";
        assert_eq!(plist_tmpdir(plist).as_deref(), Some("/tmp/lb"));
        assert_eq!(plist_tmpdir("<dict></dict>"), None);
    }

    #[test]
    fn listeners_from_proc_and_lsof() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                   0: 0100007F:7A5E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
                   1: 00000000:7A5E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
                   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1\n";
        assert_eq!(
            proc_listeners(tcp, 31326),
            [IpAddr::from([127, 0, 0, 1]), IpAddr::from([0, 0, 0, 0])]
        );
        let tcp6 = "  sl  local_address                         remote_address                        st\n\
                    0: 00000000000000000000000001000000:7A5E 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0 9\n";
        assert_eq!(
            proc_listeners(tcp6, 31326),
            [IpAddr::from(std::net::Ipv6Addr::LOCALHOST)]
        );
        let lsof = "COMMAND   PID USER   FD   TYPE DEVICE SIZE/OFF NODE NAME\n\
                    qemu-syst 812 root   14u  IPv4 0xabc      0t0  TCP *:31022 (LISTEN)\n\
                    qemu-syst 812 root   15u  IPv6 0xabd      0t0  TCP [::1]:31022 (LISTEN)\n";
        assert_eq!(
            lsof_listeners(lsof, 31022),
            [
                IpAddr::from([0, 0, 0, 0]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            ]
        );
    }

    #[test]
    fn exposure_needs_the_public_key_and_an_outside_address() {
        let public = HostKey::parse(NIXPKGS_HOST_KEY).unwrap();
        let any = [IpAddr::from([0, 0, 0, 0])];
        let p = exposure_problem(&any, 31022, &public).unwrap();
        assert!(p.contains("every interface") && p.contains("208792"), "{p}");
        assert_eq!(
            exposure_problem(&[IpAddr::from([127, 0, 0, 1])], 31022, &public),
            None
        );
        let own = HostKey::parse(&format!(
            "@{}/../../tests/guest/ssh_host_ed25519_key.pub",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(exposure_problem(&any, 31022, &own), None);
    }

    #[test]
    fn disk_sizes() {
        let d = Path::new("/w/lb.qcow2");
        assert_eq!(disk_size_problem(d, 20480 << 20, 20480), None);
        let p = disk_size_problem(d, 10240 << 20, 20480).unwrap();
        assert!(
            p.contains("is 10240 MiB but the configured size is 20480 MiB") && p.contains("1200"),
            "{p}"
        );
        assert!(disk_size_problem(d, 40960 << 20, 20480)
            .unwrap()
            .contains("never shrunk"));
    }
}
