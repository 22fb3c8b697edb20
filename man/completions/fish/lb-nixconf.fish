# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lb_nixconf_global_optspecs
    string join \n v/verbose q/quiet root= name= user= hostname= port= key= host-key= system= max-jobs= h/help V/version
end

function __fish_lb_nixconf_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lb_nixconf_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lb_nixconf_using_subcommand
    set -l cmd (__fish_lb_nixconf_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -s h -l help -d 'Print help'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -s V -l version -d 'Print version'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -f -a "line" -d 'Print this builder\'s entry for the `builders` setting (the machines format)'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -f -a "install" -d 'Put this builder into nix.conf\'s managed block, with builders-use-substitutes'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -f -a "remove" -d 'Take this builder (--name) out of nix.conf; the block goes with its last builder'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -f -a "show" -d 'Print the builders Nix would use, one per builder with every field named'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -f -a "check" -d 'Exit 1 with one line per problem in the builders configuration'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -f -a "restart-daemon" -d 'Restart the Nix daemon so it rereads nix.conf'
complete -c lb-nixconf -n "__fish_lb_nixconf_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l speed-factor -d 'How much faster this builder is than others; Nix prefers faster ones (a whole number for Nix before 2.20 and nix-darwin)' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l features -d 'Features the builder supports, comma-separated (e.g. kvm,big-parallel)' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l mandatory-features -d 'Features a derivation must ask for to be built there, comma-separated' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -l json -d 'Print {"line", "entry"} as one JSON object (the entry as `show --json` names its fields)'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand line" -s h -l help -d 'Print help'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l speed-factor -d 'How much faster this builder is than others; Nix prefers faster ones (a whole number for Nix before 2.20 and nix-darwin)' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l features -d 'Features the builder supports, comma-separated (e.g. kvm,big-parallel)' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l mandatory-features -d 'Features a derivation must ask for to be built there, comma-separated' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l trust-user -d 'Also add USER to extra-trusted-users (repeat for several; users accumulate)' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l force -d 'Move a `builders` line found outside the block into it (its entries are kept)'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l restart -d 'Restart the Nix daemon afterwards, so the change takes effect'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -l json -d 'Print {"name", "file", "line", "entry", "result"} as one JSON object; with -n no diff, result says what would change'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand install" -s h -l help -d 'Print help'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand remove" -s h -l help -d 'Print help'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -l json -d 'Print a JSON array of objects instead of text'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand show" -s h -l help -d 'Print help'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l trust-user -d 'Also require USER to be a trusted user of this Nix [default: SUDO_USER or USER, when --root is /]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -l json -d 'Print the findings as one JSON object: {"name", "ok", "problems", "summary"}'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand check" -s h -l help -d 'Print help'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand restart-daemon" -s h -l help -d 'Print help'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand help; and not __fish_seen_subcommand_from line install remove show check restart-daemon help" -f -a "line" -d 'Print this builder\'s entry for the `builders` setting (the machines format)'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand help; and not __fish_seen_subcommand_from line install remove show check restart-daemon help" -f -a "install" -d 'Put this builder into nix.conf\'s managed block, with builders-use-substitutes'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand help; and not __fish_seen_subcommand_from line install remove show check restart-daemon help" -f -a "remove" -d 'Take this builder (--name) out of nix.conf; the block goes with its last builder'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand help; and not __fish_seen_subcommand_from line install remove show check restart-daemon help" -f -a "show" -d 'Print the builders Nix would use, one per builder with every field named'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand help; and not __fish_seen_subcommand_from line install remove show check restart-daemon help" -f -a "check" -d 'Exit 1 with one line per problem in the builders configuration'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand help; and not __fish_seen_subcommand_from line install remove show check restart-daemon help" -f -a "restart-daemon" -d 'Restart the Nix daemon so it rereads nix.conf'
complete -c lb-nixconf -n "__fish_lb_nixconf_using_subcommand help; and not __fish_seen_subcommand_from line install remove show check restart-daemon help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
