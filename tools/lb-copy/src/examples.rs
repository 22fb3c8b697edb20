//! The examples `--help` shows (and the man page).

use lb_common::cli::Examples;

pub(crate) const EXAMPLES: Examples = &[(
    "",
    "nix build --json .#pkg | lb-copy --out-link result\nlb-copy --from ssh-ng://builder@linux-builder < paths.txt\nnix build --json .#pkg | lb-copy -n            # what would be copied",
)];
