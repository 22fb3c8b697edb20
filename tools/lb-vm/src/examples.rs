//! The examples each subcommand's `--help` shows (and its man page).

use lb_common::cli::Examples;

pub(crate) const EXAMPLES: Examples = &[
    ("", "lb-vm start --runner .../bin/create-builder\nlb-vm status && lb-vm stop"),
    ("start", "lb-vm start --kernel bzImage --initrd initrd --keys ./keys\nlb-vm start --if-not-running --runner .../bin/create-builder\nlb-vm start --on-demand --idle 30m --port 31023 --runner .../bin/create-builder"),
    ("wait", "lb-vm wait --timeout 120 && lb-ping"),
    ("status", "lb-vm status --json | jq .pid"),
    ("stop", "lb-vm stop"),
    ("check", "lb-vm check                   # one line per problem, exit 1 if any"),
    ("config", "lb-vm config --json | jq -r .command"),
    ("remove", "lb-vm stop && lb-vm remove -n   # the files it would delete\nlb-vm remove"),
    ("service", "lb-vm service --launchd      # print the plist\nsudo lb-vm service --launchd --install --runner .../bin/create-builder"),
];
