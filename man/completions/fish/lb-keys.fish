# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lb_keys_global_optspecs
    string join \n v/verbose q/quiet root= name= user= hostname= port= key= host-key= system= max-jobs= h/help V/version
end

function __fish_lb_keys_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lb_keys_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lb_keys_using_subcommand
    set -l cmd (__fish_lb_keys_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lb-keys -n "__fish_lb_keys_needs_command" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-keys -n "__fish_lb_keys_needs_command" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-keys -n "__fish_lb_keys_needs_command" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-keys -n "__fish_lb_keys_needs_command" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_needs_command" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_needs_command" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-keys -n "__fish_lb_keys_needs_command" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-keys -n "__fish_lb_keys_needs_command" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-keys -n "__fish_lb_keys_needs_command" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-keys -n "__fish_lb_keys_needs_command" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -s V -l version -d 'Print version'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -f -a "install" -d 'Generate the pair in KEYS_DIR if missing, then install it to /etc/nix (prints the private key\'s path)'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -f -a "generate" -d 'Create a fresh pair in DIR without installing it (never overwrites without --force)'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -f -a "check" -d 'Verify the installed pair: present, mode 600, group nixbld, matching (exit 1 per problem found)'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -f -a "pubkey" -d 'Print the installed public key (the `.pub` line, or its base64 with --base64)'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -f -a "join-group" -d 'Add a user to the nixbld group (gpasswd on Linux, dseditgroup on macOS)'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -f -a "leave-group" -d 'Remove a user from the nixbld group, undoing join-group (gpasswd -d, dseditgroup -d)'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -f -a "uninstall" -d 'Remove the installed pair (--key and its .pub); the keys directory is left alone'
complete -c lb-keys -n "__fish_lb_keys_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l group -d 'The group that owns the installed private key (the Nix daemon\'s build users group)' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l no-sudo -d 'Never run sudo: when root is needed, exit 1 and print the command to run as root'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -l no-generate -d 'Only install the pair already in KEYS_DIR, never generate one (the step re-run under sudo)'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l force -d 'Replace whatever is there with a fresh pair (the old private key is lost)'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l group -d 'The group that owns the installed private key (the Nix daemon\'s build users group)' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -l json -d 'Print the findings as one JSON object: {"name", "ok", "problems", "summary"}'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l base64 -d 'Print base64 of the line with its newline, the form nix\'s builders line and machines file carry'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -l json -d 'Print {"path", "key", "base64", "fingerprint"} as one JSON object'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand pubkey" -s h -l help -d 'Print help'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l group -d 'The group to add USER to or remove USER from (the Nix daemon\'s build users group)' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -l no-sudo -d 'Never run sudo: when root is needed, exit 1 and print the command to run as root'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand join-group" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l group -d 'The group to add USER to or remove USER from (the Nix daemon\'s build users group)' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -l no-sudo -d 'Never run sudo: when root is needed, exit 1 and print the command to run as root'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand leave-group" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -l no-sudo -d 'Never run sudo: when root is needed, exit 1 and print the command to run as root'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand uninstall" -s h -l help -d 'Print help'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand help; and not __fish_seen_subcommand_from install generate check pubkey join-group leave-group uninstall help" -f -a "install" -d 'Generate the pair in KEYS_DIR if missing, then install it to /etc/nix (prints the private key\'s path)'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand help; and not __fish_seen_subcommand_from install generate check pubkey join-group leave-group uninstall help" -f -a "generate" -d 'Create a fresh pair in DIR without installing it (never overwrites without --force)'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand help; and not __fish_seen_subcommand_from install generate check pubkey join-group leave-group uninstall help" -f -a "check" -d 'Verify the installed pair: present, mode 600, group nixbld, matching (exit 1 per problem found)'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand help; and not __fish_seen_subcommand_from install generate check pubkey join-group leave-group uninstall help" -f -a "pubkey" -d 'Print the installed public key (the `.pub` line, or its base64 with --base64)'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand help; and not __fish_seen_subcommand_from install generate check pubkey join-group leave-group uninstall help" -f -a "join-group" -d 'Add a user to the nixbld group (gpasswd on Linux, dseditgroup on macOS)'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand help; and not __fish_seen_subcommand_from install generate check pubkey join-group leave-group uninstall help" -f -a "leave-group" -d 'Remove a user from the nixbld group, undoing join-group (gpasswd -d, dseditgroup -d)'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand help; and not __fish_seen_subcommand_from install generate check pubkey join-group leave-group uninstall help" -f -a "uninstall" -d 'Remove the installed pair (--key and its .pub); the keys directory is left alone'
complete -c lb-keys -n "__fish_lb_keys_using_subcommand help; and not __fish_seen_subcommand_from install generate check pubkey join-group leave-group uninstall help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
