//! The hand-written sections of each page: what the clap definitions
//! cannot say. Examples are the pipelines and Makefile lines users copy.

use crate::Extra;

pub const KEYS: Extra = Extra {
    exit_notes: &[
        "check exits 1 when it finds a problem, printing one line per problem with its fix.",
    ],
    environment: &[("SUDO_USER", "The user join-group adds when run under sudo.")],
    files: &[
        (
            "/etc/nix/builder_ed25519",
            "The private key the Nix daemon logs into the builder with (root:nixbld, 0600).",
        ),
        ("/etc/nix/builder_ed25519.pub", "Its public key (0644)."),
        (
            "./keys/builder_ed25519, ./keys/builder_ed25519.pub",
            "The pair shared with the VM (its /var/keys).",
        ),
    ],
    examples: &[
        (
            "Generate the pair in ./keys and install it, as the nixpkgs builder script does:",
            "sudo lb-keys install ./keys",
        ),
        (
            "Try it in a scratch root first:",
            "lb-keys --root /tmp/lb install -n ./keys",
        ),
        (
            "Verify the installed pair matches the VM's keys directory:",
            "lb-keys check ./keys",
        ),
        (
            "Join the nixbld group (macOS: dseditgroup; Linux: gpasswd):",
            "sudo lb-keys join-group",
        ),
    ],
};

pub const VM: Extra = Extra {
    exit_notes: &[
        "start exits 0 when the VM is ready (its sshd answers), 1 when it could not start or did not become ready; with --if-not-running an already running builder is success.",
        "status exits 1 when the VM is not running.",
        "check exits 1 when it finds a problem (down, a known QEMU crash in its log, disk size, TMPDIR, an exposed port, the alias's port), one line each with its fix.",
    ],
    environment: &[
        ("TMPDIR", "Where the nixpkgs runner keeps temporary files (set by lb-vm for --runner)."),
        ("NIX_DISK_IMAGE, KEYS, QEMU_NET_OPTS", "Set by lb-vm for a --runner, as run-nixos-vm and create-builder read them."),
    ],
    files: &[(
        "WORKDIR",
        "The builder's working directory: pid file, QMP socket, console log, disk image and state file; with --on-demand also NAME.listener.pid, the control socket NAME.ctl and the detached listener's log NAME.on-demand.log.",
    )],
    examples: &[
        ("Boot the builder from a kernel and initrd, wait until ready, print HOST:PORT:", "lb-vm start --kernel bzImage --initrd initrd --keys ./keys"),
        ("Boot the nixpkgs builder:", "lb-vm start --runner $(nix build --print-out-paths nixpkgs#darwin.linux-builder)/bin/create-builder"),
        ("Show the QEMU command line and settings:", "lb-vm config --json"),
        ("Run it as a launchd daemon:", "lb-vm service --launchd --install"),
        ("Listen on 127.0.0.1:31023, boot on the first connection, power off after 30 minutes idle (a runner forwards 31022 itself):", "lb-vm start --on-demand --idle 30m --port 31023 --runner .../create-builder"),
        ("The same as a launchd daemon:", "lb-vm service --launchd --on-demand --port 31023 --runner .../create-builder --install"),
        ("Stop it cleanly:", "lb-vm stop"),
    ],
};

pub const SSHCFG: Extra = Extra {
    exit_notes: &["check exits 1 with one line per problem (alias not resolved, overridden Port/Hostname/User, HostKeyAlias mismatch, missing Include, known-hosts disagreement, missing IdentityFile)."],
    environment: &[],
    files: &[
        ("/etc/ssh/ssh_config.d/100-NAME.conf", "The alias for builder NAME."),
        ("/etc/ssh/ssh_config.d/100-NAME.known_hosts", "The builder's host key under NAME."),
        ("/etc/ssh/ssh_config", "Gets a managed Include block when it lacks one."),
    ],
    examples: &[
        ("Write the alias for the default builder:", "sudo lb-sshcfg install"),
        ("A second builder on another port:", "sudo lb-sshcfg install --name builder2 --port 31023"),
        ("See how ssh resolves the alias, and what is wrong:", "lb-sshcfg check"),
    ],
};

pub const NIXCONF: Extra = Extra {
    exit_notes: &[
        "install exits 1 on a conflicting builders line outside its block (use --force), and when nix.conf is managed by nix-darwin (it prints the nix-darwin snippet instead).",
        "check exits 1 with one line per problem.",
    ],
    environment: &[("NIX_CONF_DIR", "Where nix.conf is read from and written to (default /etc/nix, under --root).")],
    files: &[
        ("/etc/nix/nix.conf", "Gets a managed block with builders, builders-use-substitutes and extra-trusted-users."),
        ("/etc/nix/machines", "Nix's default builders file (@/etc/nix/machines), read by show and check."),
    ],
    examples: &[
        ("The manual's builders line for an Apple Silicon Mac:", "lb-nixconf line --system aarch64-linux"),
        ("Install it, trust yourself, restart the daemon:", "sudo lb-nixconf install --trust-user \"$USER\" --restart"),
        ("What Nix will use:", "lb-nixconf show --json | jq ."),
    ],
};

pub const PING: Extra = Extra {
    exit_notes: &["Exits 0 if every builder answered, 1 if any failed (with --health: or cannot take builds: store nearly full, not trusted, another system or missing features), 2 for bad usage or a configuration it cannot parse."],
    environment: &[("NIX_CONF_DIR", "Where the builders are read from (default /etc/nix, under --root).")],
    files: &[("/etc/nix/nix.conf", "The builders pinged when none is named.")],
    examples: &[
        ("Ping every configured builder (as root: the daemon's key is root's):", "sudo lb-ping"),
        ("Say which stage failed and how to fix it:", "sudo lb-ping --explain linux-builder"),
        ("In a Makefile, wait for the builder:", "until lb-ping -q; do sleep 1; done"),
    ],
};

pub const COPY: Extra = Extra {
    exit_notes: &["Exits 1 when the builder is unreachable, dies mid-copy, or the local store refuses unsigned paths; 2 for malformed input."],
    environment: &[
        ("NIX_SSHOPTS", "Passed on to nix copy; lb-copy adds -F ROOT/etc/ssh/ssh_config under --root."),
        ("NIX_CONF_DIR", "Where the default builder is read from."),
    ],
    files: &[],
    examples: &[
        ("Build on the builder's store and bring the outputs home:", "nix build --eval-store auto --store ssh-ng://builder@linux-builder .#pkg --json | lb-copy --out-link result"),
        ("Copy paths listed one per line:", "lb-copy --from ssh-ng://builder@linux-builder < paths.txt"),
    ],
};

pub const DOCTOR: Extra = Extra {
    exit_notes: &["Exits 0 only when every step is healthy; 1 when any step found a problem (each printed with its fix)."],
    environment: &[("NIX_CONF_DIR", "Where the builders are read from (default /etc/nix, under --root).")],
    files: &[
        ("/etc/nix/nix.conf", "The builders pinged, and the trust of the build user."),
        ("/etc/nix/builder_ed25519", "The key checked by the keys step."),
        ("/etc/ssh/ssh_config", "Where the alias is resolved from (ssh -G)."),
        ("WORKDIR", "The VM's files: NAME.pid, NAME.state.json, NAME.qcow2, NAME.qemu.log."),
    ],
    examples: &[
        ("After `make install` and the setup (as root: the daemon's key and files are root's):", "sudo lb-doctor --workdir /var/lib/linux-builder"),
        ("The same as JSON, for scripts:", "sudo lb-doctor --workdir /var/lib/linux-builder --json | jq '.steps[] | select(.status == \"failed\")'"),
        ("A builder that is not a VM on this machine:", "sudo lb-doctor --no-vm --name remote-builder"),
    ],
};
