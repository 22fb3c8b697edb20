//! lb-ping against the test builder VM of each Nix generation (tests/guest
//! built with Debian's Nix 2.8, 2.26 or 2.34 behind the guest's sshd),
//! through a scratch root's ssh_config alias and builders line, as a
//! configured Mac would have it. lb-ping speaks the worker protocol itself:
//! the host's Nix plays no part, so the matrix is the builder's side.

use assert_cmd::Command;
use lb_common::builder::HostKey;
use lb_testkit::{nix_matrix, NixGen};

nix_matrix! {
    fn the_builder_reports_its_version_protocol_and_trust(gen) {
        let vm = gen.vm();
        let root = lb_testkit::scratch_root();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(r.join("etc/nix")).unwrap();
        std::fs::write(
            r.join("etc/ssh/ssh_config"),
            format!(
                "Host lb-vm-test\n  Hostname 127.0.0.1\n  Port {}\n  User builder\n  HostKeyAlias lb-vm-test\n",
                vm.port
            ),
        )
        .unwrap();
        let host_key = HostKey::parse(&vm.host_key).unwrap().machines_base64();
        std::fs::write(
            r.join("etc/nix/nix.conf"),
            format!(
                "builders = ssh-ng://lb-vm-test x86_64-linux {} 1 1 - - {host_key}\n",
                vm.key.private.display()
            ),
        )
        .unwrap();
        // TCG guests are slow: a generous timeout, the answer is what counts.
        let out = Command::cargo_bin("lb-ping")
            .unwrap()
            .env_remove("NIX_CONF_DIR")
            .arg("--root")
            .arg(r)
            .args(["--json", "--timeout", "60"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}\nconsole:\n{}",
            String::from_utf8_lossy(&out.stderr),
            vm.console()
        );
        let reports: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        // The guest's Nix is the root's: the same version its nix says.
        let version = gen.version();
        assert_eq!(reports[0]["nix_version"], version.as_str(), "{text}");
        assert!(version.starts_with(&format!("{}.", gen.name())), "{version}");
        assert_eq!(reports[0]["protocol"], gen.protocol(), "{text}");
        // Trust is sent from protocol 1.35 on; the guest trusts `builder`
        // (trusted-users = root builder). 1.34 cannot say.
        let trusted = if gen.reports_trust() { "yes" } else { "unknown" };
        assert_eq!(reports[0]["trusted"], trusted, "{text}");
        if gen == NixGen::V2_8 {
            assert_eq!(reports[0]["protocol"], "1.34", "{text}");
        }
    }
}
