complete -c lb-copy -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-copy -l from -d 'The store to copy from: a store URI, or a builder\'s name (its URI\'s host) from the builders list [default: the first ssh-ng:// builder in nix.conf, else ssh-ng://builder@linux-builder]' -r
complete -c lb-copy -l output -d 'Copy only this derivation output (repeat for more) [default: all]' -r
complete -c lb-copy -s o -l out-link -d 'Make GC roots: symlinks PREFIX, PREFIX-dev, PREFIX-1... named as `nix build --out-link PREFIX` names them' -r -F
complete -c lb-copy -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-copy -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-copy -l no-check-sigs -d 'Accept paths nobody signed (passes --no-check-sigs to nix copy; you must be a trusted user of the local Nix daemon)'
complete -c lb-copy -l json -d 'Print the input\'s structure with a `copied` flag per path instead of plain paths (with -n: whether it would be copied)'
complete -c lb-copy -s n -l dry-run -d 'Show what would be copied and the commands, and change nothing'
complete -c lb-copy -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lb-copy -s V -l version -d 'Print version'
