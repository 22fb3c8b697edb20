//! The examples each subcommand's `--help` shows (and its man page).

use lb_common::cli::Examples;

pub(crate) const EXAMPLES: Examples = &[
    ("", "sudo lb-sshcfg install\nlb-sshcfg check"),
    ("install", "sudo lb-sshcfg install\nsudo lb-sshcfg install --name builder2 --port 31023\nlb-sshcfg --root /tmp/lb install -n      # the diff, written nowhere"),
    ("print", "lb-sshcfg print --name builder2 --port 31023"),
    ("check", "lb-sshcfg check               # resolve the alias as ssh does, one line per problem"),
    ("uninstall", "sudo lb-sshcfg uninstall --name builder2"),
];
