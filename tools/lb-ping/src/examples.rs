//! The examples `--help` shows (and the man page).

use lb_common::cli::Examples;

pub(crate) const EXAMPLES: Examples = &[(
    "",
    "sudo lb-ping                        # every configured builder\nsudo lb-ping --explain linux-builder\nuntil lb-ping -q; do sleep 1; done  # wait for the builder in a Makefile",
)];
