//! The accelerator: `hvf` on macOS, `kvm` on Linux where a probe boot
//! shows it works, else `tcg`. The probe's QEMU command line is built by
//! a pure function ([`probe_command`]), snapshot-tested; running it and
//! caching its verdict in the working directory is [`choose`].

use std::path::Path;
use std::time::{Duration, Instant};

use lb_common::cmd::{Cmd, Sink};
use lb_common::fs::{Apply, FileSpec};
use lb_common::platform::QemuProfile;
use lb_common::ui;

use crate::cli::VmArgs;
use crate::vm::{self, Boot, Layout, VmSpec};

/// How long a probe boot may take to show the guest kernel running.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// `-accel A`; under HVF also `-accel tcg`, which QEMU tries when HVF
/// cannot start (as nixpkgs' `accel=hvf:tcg`).
#[must_use]
pub fn accel_args(accel: &str) -> Vec<String> {
    let mut v = vec!["-accel".to_owned(), accel.to_owned()];
    if accel == "hvf" {
        v.extend(["-accel".to_owned(), "tcg".to_owned()]);
    }
    v
}

/// The accelerator to use without probing: hvf on macOS for a native
/// guest, tcg for a foreign one; on Linux `kvm` needs a probe first (see
/// [`choose`]), so the answer here is only the candidate.
#[must_use]
pub fn candidate_accel(profile: &QemuProfile) -> String {
    profile
        .accels
        .first()
        .cloned()
        .unwrap_or_else(|| "tcg".to_owned())
}

/// The accelerator without running anything: `--accel`, the cached probe
/// verdict, or the best candidate. The bool says whether it is settled.
pub fn known(l: &Layout, a: &VmArgs, profile: &QemuProfile) -> (String, bool) {
    if let Some(acc) = &a.accel {
        return (acc.clone(), true);
    }
    let candidate = candidate_accel(profile);
    if candidate != "kvm" {
        return (candidate, true);
    }
    // Bounded, regular files only (lb-common's reader): a FIFO planted in
    // the working directory must not hang `lb-vm start`.
    let cached = lb_common::fs::read_bounded(&l.accel_cache(), true, 64)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned());
    match cached {
        Some(v) if ["kvm", "tcg"].contains(&v.as_str()) => (v, true),
        _ => (candidate, false),
    }
}

/// KVM only where a probe boot shows the guest kernel running: here
/// `/dev/kvm` exists but `-accel kvm` has hung or aborted. The verdict is
/// cached in the working directory.
pub fn choose(l: &Layout, a: &VmArgs, spec: &VmSpec, profile: &QemuProfile) -> String {
    let (accel, settled) = known(l, a, profile);
    if settled {
        return accel;
    }
    let Boot::Kernel { kernel, initrd, .. } = &spec.boot else {
        return accel;
    };
    let works = probe_kvm(l, profile, kernel, initrd, &spec.system);
    let verdict = if works { "kvm" } else { "tcg" };
    ui::note(&format!(
        "KVM probe: {}; using {verdict} (cached in {})",
        if works {
            "works"
        } else {
            "no kernel output, KVM unusable"
        },
        l.accel_cache().display()
    ));
    if let Err(e) = lb_common::fs::write(
        &l.accel_cache(),
        verdict.as_bytes(),
        &FileSpec::mode(0o644),
        Apply::Write,
    ) {
        ui::warn(&format!("cannot cache the KVM verdict: {e}"));
    }
    verdict.to_owned()
}

/// Where the probe's guest console goes.
fn probe_log(l: &Layout) -> std::path::PathBuf {
    l.dir.join(format!("{}.kvm-probe.log", l.name))
}

/// The probe boot: the guest kernel and initrd under `-accel kvm`, small,
/// no disk, no network, its console in `log`.
#[must_use]
pub fn probe_command(
    profile: &QemuProfile,
    kernel: &Path,
    initrd: &Path,
    system: &str,
    log: &Path,
) -> Cmd {
    let console = vm::default_append(system);
    Cmd::new(&profile.binary)
        .args(["-machine", &profile.machine, "-accel", "kvm", "-cpu", "max"])
        .args([
            "-m", "256", "-smp", "1", "-display", "none", "-monitor", "none",
        ])
        .args(["-no-reboot", "-nodefaults", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &console])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
}

/// Does the console show the guest kernel running? Reaching userspace
/// proves vCPUs run; a broken KVM stalls before printing or aborts.
fn kernel_ran(console: &str) -> bool {
    console.contains("Run /init") || console.contains("Freeing unused kernel")
}

fn probe_kvm(
    l: &Layout,
    profile: &QemuProfile,
    kernel: &Path,
    initrd: &Path,
    system: &str,
) -> bool {
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !usable {
        return false;
    }
    let log = probe_log(l);
    let _ = lb_common::fs::remove_entry(&log);
    let cmd = probe_command(profile, kernel, initrd, system, &log);
    ui::verbose(&format!("probing KVM: {}", cmd.display()));
    let Ok(child) = cmd.spawn(Sink::Null, false) else {
        return false;
    };
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut works = false;
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if kernel_ran(&text) {
            works = true;
            break;
        }
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = lb_common::fs::remove_entry(&log);
    works
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::platform::{Os, Platform};

    fn layout(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
            name: "lb".to_owned(),
        }
    }

    #[test]
    fn the_probe_boots_the_kernel_small_under_kvm() {
        let p = Platform::new(Os::Linux, "x86_64").qemu("x86_64-linux");
        let l = layout(Path::new("/w"));
        let c = probe_command(
            &p,
            Path::new("/nix/store/k/bzImage"),
            Path::new("/nix/store/i/initrd"),
            "x86_64-linux",
            &probe_log(&l),
        );
        insta::assert_snapshot!(c.display(), @"qemu-system-x86_64 -machine pc -accel kvm -cpu max -m 256 -smp 1 -display none -monitor none -no-reboot -nodefaults -kernel /nix/store/k/bzImage -initrd /nix/store/i/initrd -append 'console=ttyS0 panic=-1' -serial file:/w/lb.kvm-probe.log");
    }

    #[test]
    fn the_probe_on_aarch64_watches_its_console() {
        let p = Platform::new(Os::Linux, "aarch64").qemu("aarch64-linux");
        let c = probe_command(
            &p,
            Path::new("/k"),
            Path::new("/i"),
            "aarch64-linux",
            Path::new("/w/x.log"),
        );
        let line = c.display();
        assert!(line.starts_with("qemu-system-aarch64 "), "{line}");
        assert!(
            line.contains(" -append 'console=ttyAMA0 panic=-1' "),
            "{line}"
        );
    }

    #[test]
    fn hvf_falls_back_to_tcg_inside_qemu() {
        assert_eq!(accel_args("hvf"), ["-accel", "hvf", "-accel", "tcg"]);
        assert_eq!(accel_args("kvm"), ["-accel", "kvm"]);
    }

    #[test]
    fn userspace_on_the_console_means_kvm_works() {
        assert!(kernel_ran("[    0.9] Run /init as init process\n"));
        assert!(kernel_ran("[    0.8] Freeing unused kernel image memory"));
        assert!(!kernel_ran("SeaBIOS\n"));
    }

    #[test]
    fn a_cached_verdict_settles_kvm_and_anything_else_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let l = layout(tmp.path());
        let kvm = Platform::new(Os::Linux, "x86_64").qemu("x86_64-linux");
        let mac = Platform::new(Os::MacOs, "aarch64").qemu("aarch64-linux");
        let none = VmArgs {
            runner: None,
            kernel: None,
            initrd: None,
            append: None,
            disk: None,
            memory: None,
            cpus: None,
            disk_size: None,
            keys: None,
            accel: None,
        };
        let given = VmArgs {
            accel: Some("tcg".to_owned()),
            ..none.clone()
        };
        assert_eq!(known(&l, &given, &kvm), ("tcg".to_owned(), true));
        assert_eq!(known(&l, &none, &mac), ("hvf".to_owned(), true));
        // KVM is only a candidate until probed; the verdict settles it.
        assert_eq!(known(&l, &none, &kvm), ("kvm".to_owned(), false));
        std::fs::write(l.accel_cache(), "tcg\n").unwrap();
        assert_eq!(known(&l, &none, &kvm), ("tcg".to_owned(), true));
        std::fs::write(l.accel_cache(), "hvf\n").unwrap();
        assert_eq!(known(&l, &none, &kvm), ("kvm".to_owned(), false));
    }
}
