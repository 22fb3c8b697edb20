# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lb_sshcfg_global_optspecs
    string join \n v/verbose q/quiet root= name= user= hostname= port= key= host-key= system= max-jobs= h/help V/version
end

function __fish_lb_sshcfg_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lb_sshcfg_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lb_sshcfg_using_subcommand
    set -l cmd (__fish_lb_sshcfg_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -s h -l help -d 'Print help'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -s V -l version -d 'Print version'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -f -a "install" -d 'Write /etc/ssh/ssh_config.d/100-NAME.conf and its known-hosts file, and make ssh_config include them; prints the file\'s path'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -f -a "print" -d 'Print the alias file install would write; write nothing'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -f -a "check" -d 'Resolve NAME as ssh does (`ssh -G`) and print one line per problem; exit 1 if any'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -f -a "uninstall" -d 'Remove NAME\'s alias and known-hosts files, and the managed Include once no other alias needs it'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -l force -d 'Replace an alias file that lb-sshcfg did not write (e.g. one written by hand from the manual)'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand install" -s h -l help -d 'Print help'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -l json -d 'Print {"name", "path", "contents"} as one JSON object'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand print" -s h -l help -d 'Print help'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -l json -d 'Print the findings as one JSON object: {"name", "ok", "problems", "summary"}'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand check" -s h -l help -d 'Print help'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -l force -d 'Remove an alias file that lb-sshcfg did not write'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand uninstall" -s h -l help -d 'Print help'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand help; and not __fish_seen_subcommand_from install print check uninstall help" -f -a "install" -d 'Write /etc/ssh/ssh_config.d/100-NAME.conf and its known-hosts file, and make ssh_config include them; prints the file\'s path'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand help; and not __fish_seen_subcommand_from install print check uninstall help" -f -a "print" -d 'Print the alias file install would write; write nothing'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand help; and not __fish_seen_subcommand_from install print check uninstall help" -f -a "check" -d 'Resolve NAME as ssh does (`ssh -G`) and print one line per problem; exit 1 if any'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand help; and not __fish_seen_subcommand_from install print check uninstall help" -f -a "uninstall" -d 'Remove NAME\'s alias and known-hosts files, and the managed Include once no other alias needs it'
complete -c lb-sshcfg -n "__fish_lb_sshcfg_using_subcommand help; and not __fish_seen_subcommand_from install print check uninstall help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
