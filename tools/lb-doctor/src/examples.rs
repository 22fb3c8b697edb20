//! The examples `--help` shows (and the man page).

use lb_common::cli::Examples;

pub(crate) const EXAMPLES: Examples = &[(
    "",
    "sudo lb-doctor\nsudo lb-doctor --json | jq '.steps[] | select(.status == \"failed\")'\nsudo lb-doctor --no-vm --name remote-builder",
)];
