//! The examples each subcommand's `--help` shows (and its man page).

use lb_common::cli::Examples;

pub(crate) const EXAMPLES: Examples = &[
    ("", "sudo lb-keys install ./keys\nlb-keys check ./keys"),
    ("install", "sudo lb-keys install ./keys\nlb-keys --root /tmp/lb install -n ./keys    # try it in a scratch root"),
    ("generate", "lb-keys generate ./keys"),
    ("check", "lb-keys check ./keys          # the installed pair matches the VM's keys\nlb-keys check --json | jq .problems"),
    ("pubkey", "lb-keys pubkey --base64       # as the builders line carries it"),
    ("join-group", "sudo lb-keys join-group \"$USER\""),
    ("leave-group", "sudo lb-keys leave-group \"$USER\""),
    ("uninstall", "sudo lb-keys uninstall\nlb-keys uninstall -n          # show what would be removed"),
];
