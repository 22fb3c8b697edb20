//! The examples each subcommand's `--help` shows (and its man page).

use lb_common::cli::Examples;

pub(crate) const EXAMPLES: Examples = &[
    ("", "sudo lb-nixconf install --trust-user \"$USER\" --restart\nlb-nixconf show"),
    ("line", "lb-nixconf line --system aarch64-linux"),
    ("install", "sudo lb-nixconf install --trust-user \"$USER\" --restart\nlb-nixconf --root /tmp/lb install -n     # the diff, written nowhere"),
    ("remove", "sudo lb-nixconf remove --name builder2 --restart"),
    ("show", "lb-nixconf show --json | jq '.[].uri'"),
    ("check", "lb-nixconf check              # one line per problem, exit 1 if any"),
    ("restart-daemon", "sudo lb-nixconf restart-daemon"),
];
