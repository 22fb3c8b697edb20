# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lb_vm_global_optspecs
    string join \n v/verbose q/quiet root= name= user= hostname= port= key= host-key= system= max-jobs= workdir= h/help V/version
end

function __fish_lb_vm_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lb_vm_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lb_vm_using_subcommand
    set -l cmd (__fish_lb_vm_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lb-vm -n "__fish_lb_vm_needs_command" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-vm -n "__fish_lb_vm_needs_command" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-vm -n "__fish_lb_vm_needs_command" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-vm -n "__fish_lb_vm_needs_command" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_needs_command" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_needs_command" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-vm -n "__fish_lb_vm_needs_command" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-vm -n "__fish_lb_vm_needs_command" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-vm -n "__fish_lb_vm_needs_command" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-vm -n "__fish_lb_vm_needs_command" -l workdir -d 'Directory holding the builder\'s pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-vm -n "__fish_lb_vm_needs_command" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -s h -l help -d 'Print help'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -s V -l version -d 'Print version'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -f -a "start" -d 'Boot the builder VM and return once its sshd answers, printing 127.0.0.1:PORT (--on-demand: listen, boot on the first connection)'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -f -a "wait" -d 'Wait until the running builder\'s sshd answers, printing 127.0.0.1:PORT'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -f -a "status" -d 'Say whether the builder runs: pid, port, accelerator, uptime, ready (exit 1 if not running)'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -f -a "stop" -d 'Shut the builder down cleanly (ACPI power button), then SIGTERM, then SIGKILL'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -f -a "check" -d 'Find what users of builder VMs hit (down, crashed, disk size, TMPDIR, exposed port, alias port); one line per problem, exit 1 if any'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -f -a "config" -d 'Print the effective settings and the exact command that boots the VM'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -f -a "service" -d 'Print or install a launchd/systemd service that keeps the builder running'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -f -a "remove" -d 'Remove the stopped builder\'s files (disk, logs, state) from WORKDIR, and WORKDIR once empty'
complete -c lb-vm -n "__fish_lb_vm_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l runner -d 'A nixpkgs VM runner (run-nixos-vm or create-builder) to run instead of a kernel' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l kernel -d 'The guest kernel to boot (with --initrd)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l initrd -d 'The guest initrd to boot (with --kernel)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l append -d 'The kernel command line [default: console=ttyS0 panic=-1, ttyAMA0 on aarch64]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l disk -d 'The qcow2 disk image [default: WORKDIR/NAME.qcow2]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l memory -d 'Guest memory in MiB, at least 256 [default: 3072, or what the runner bakes in; given, it reaches a runner\'s QEMU through QEMU_OPTS]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l cpus -d 'Guest CPUs [default: this host\'s cores (at most 8 under HVF on Apple Silicon), or what the runner bakes in]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l disk-size -d 'Disk size in MiB: the image is created this size, or grown to it if smaller [default: 20480; a runner\'s is baked in and cannot be changed here]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l keys -d 'Directory shared read-only into the guest as /var/keys (holds builder_ed25519.pub) [default: WORKDIR/keys]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l accel -d 'QEMU accelerator [default: hvf on macOS; kvm on Linux if a probe boot works, else tcg]' -r -f -a "hvf\t''
kvm\t''
tcg\t''"
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l timeout -d 'Seconds to wait for the guest\'s sshd' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l idle -d 'With --on-demand: power the VM off after this long with no connection (5m, 3h)' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l workdir -d 'Directory holding the builder\'s pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l foreground -d 'Stay attached: become the VM process (for launchd and systemd)'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l if-not-running -d 'Succeed (exit 0) when this builder is already running'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l ephemeral -d 'Start from a fresh disk: delete the disk image first'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l on-demand -d 'Listen on the port and boot the VM on the first connection (held until sshd answers)'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -l json -d 'Print {"name", "address", "port", "pid"} as one JSON object once it answers'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand start" -s h -l help -d 'Print help'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l timeout -d 'Seconds to wait for the guest\'s sshd' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l workdir -d 'Directory holding the builder\'s pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -l json -d 'Print {"name", "address", "port", "pid"} as one JSON object'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand wait" -s h -l help -d 'Print help'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l workdir -d 'Directory holding the builder\'s pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -l json -d 'Print the status as JSON'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand status" -s h -l help -d 'Print help'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l timeout -d 'Seconds to wait after the power button, and again after SIGTERM, before SIGKILL' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l label -d 'The launchd label of the builder\'s service, if it is not org.lb-vm.NAME' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l workdir -d 'Directory holding the builder\'s pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand stop" -s h -l help -d 'Print help'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l disk -d 'The disk image to compare with --disk-size [default: WORKDIR/NAME.qcow2]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l disk-size -d 'The configured disk size in MiB (the nixpkgs builder\'s diskSize)' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l workdir -d 'Directory holding the builder\'s pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -l json -d 'Print the findings as one JSON object: {"name", "ok", "problems", "summary"}'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand check" -s h -l help -d 'Print help'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l runner -d 'A nixpkgs VM runner (run-nixos-vm or create-builder) to run instead of a kernel' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l kernel -d 'The guest kernel to boot (with --initrd)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l initrd -d 'The guest initrd to boot (with --kernel)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l append -d 'The kernel command line [default: console=ttyS0 panic=-1, ttyAMA0 on aarch64]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l disk -d 'The qcow2 disk image [default: WORKDIR/NAME.qcow2]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l memory -d 'Guest memory in MiB, at least 256 [default: 3072, or what the runner bakes in; given, it reaches a runner\'s QEMU through QEMU_OPTS]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l cpus -d 'Guest CPUs [default: this host\'s cores (at most 8 under HVF on Apple Silicon), or what the runner bakes in]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l disk-size -d 'Disk size in MiB: the image is created this size, or grown to it if smaller [default: 20480; a runner\'s is baked in and cannot be changed here]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l keys -d 'Directory shared read-only into the guest as /var/keys (holds builder_ed25519.pub) [default: WORKDIR/keys]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l accel -d 'QEMU accelerator [default: hvf on macOS; kvm on Linux if a probe boot works, else tcg]' -r -f -a "hvf\t''
kvm\t''
tcg\t''"
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l workdir -d 'Directory holding the builder\'s pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -l json -d 'Print the settings as JSON'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand config" -s h -l help -d 'Print help'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l runner -d 'A nixpkgs VM runner (run-nixos-vm or create-builder) to run instead of a kernel' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l kernel -d 'The guest kernel to boot (with --initrd)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l initrd -d 'The guest initrd to boot (with --kernel)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l append -d 'The kernel command line [default: console=ttyS0 panic=-1, ttyAMA0 on aarch64]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l disk -d 'The qcow2 disk image [default: WORKDIR/NAME.qcow2]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l memory -d 'Guest memory in MiB, at least 256 [default: 3072, or what the runner bakes in; given, it reaches a runner\'s QEMU through QEMU_OPTS]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l cpus -d 'Guest CPUs [default: this host\'s cores (at most 8 under HVF on Apple Silicon), or what the runner bakes in]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l disk-size -d 'Disk size in MiB: the image is created this size, or grown to it if smaller [default: 20480; a runner\'s is baked in and cannot be changed here]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l keys -d 'Directory shared read-only into the guest as /var/keys (holds builder_ed25519.pub) [default: WORKDIR/keys]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l accel -d 'QEMU accelerator [default: hvf on macOS; kvm on Linux if a probe boot works, else tcg]' -r -f -a "hvf\t''
kvm\t''
tcg\t''"
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l label -d 'The launchd label [default: org.lb-vm.NAME; nix-darwin\'s own builder is org.nixos.linux-builder]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l idle -d 'With --on-demand: power the VM off after this long with no connection (5m, 3h)' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l workdir -d 'Directory holding the builder\'s pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l launchd -d 'A launchd daemon (macOS), label org.lb-vm.NAME (see --label)'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l systemd -d 'A systemd unit (Linux), NAME.service'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l install -d 'Write it to /Library/LaunchDaemons or /etc/systemd/system (under --root) and (re)load it, instead of printing it'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l uninstall -d 'Unload the service and remove its file'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -l on-demand -d 'The service listens and boots the VM on the first connection (`start --on-demand`)'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand service" -s h -l help -d 'Print help'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l workdir -d 'Directory holding the builder\'s pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -s n -l dry-run -d 'Show what would change (a diff or the commands) and change nothing'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -l check -d 'Change nothing; exit 1 if a change would be made'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand remove" -s h -l help -d 'Print help'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand help; and not __fish_seen_subcommand_from start wait status stop check config service remove help" -f -a "start" -d 'Boot the builder VM and return once its sshd answers, printing 127.0.0.1:PORT (--on-demand: listen, boot on the first connection)'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand help; and not __fish_seen_subcommand_from start wait status stop check config service remove help" -f -a "wait" -d 'Wait until the running builder\'s sshd answers, printing 127.0.0.1:PORT'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand help; and not __fish_seen_subcommand_from start wait status stop check config service remove help" -f -a "status" -d 'Say whether the builder runs: pid, port, accelerator, uptime, ready (exit 1 if not running)'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand help; and not __fish_seen_subcommand_from start wait status stop check config service remove help" -f -a "stop" -d 'Shut the builder down cleanly (ACPI power button), then SIGTERM, then SIGKILL'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand help; and not __fish_seen_subcommand_from start wait status stop check config service remove help" -f -a "check" -d 'Find what users of builder VMs hit (down, crashed, disk size, TMPDIR, exposed port, alias port); one line per problem, exit 1 if any'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand help; and not __fish_seen_subcommand_from start wait status stop check config service remove help" -f -a "config" -d 'Print the effective settings and the exact command that boots the VM'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand help; and not __fish_seen_subcommand_from start wait status stop check config service remove help" -f -a "service" -d 'Print or install a launchd/systemd service that keeps the builder running'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand help; and not __fish_seen_subcommand_from start wait status stop check config service remove help" -f -a "remove" -d 'Remove the stopped builder\'s files (disk, logs, state) from WORKDIR, and WORKDIR once empty'
complete -c lb-vm -n "__fish_lb_vm_using_subcommand help; and not __fish_seen_subcommand_from start wait status stop check config service remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
