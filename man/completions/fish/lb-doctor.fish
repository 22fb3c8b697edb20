complete -c lb-doctor -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-doctor -l name -d 'The builder\'s name: ssh alias, HostKeyAlias, and the host part of its URI' -r
complete -c lb-doctor -l user -d 'The user Nix logs into the builder as' -r
complete -c lb-doctor -l hostname -d 'The host the builder\'s sshd is reached at' -r
complete -c lb-doctor -l port -d 'The port the builder\'s sshd is reached at' -r
complete -c lb-doctor -l key -d 'The private key the Nix daemon logs in with (under --root)' -r -F
complete -c lb-doctor -l host-key -d 'The builder\'s SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder\'s]' -r
complete -c lb-doctor -l system -d 'The builder\'s Nix system [default: this machine\'s arch + "-linux"]' -r
complete -c lb-doctor -l max-jobs -d 'Builds Nix may run on the builder at once' -r
complete -c lb-doctor -l workdir -d 'The VM\'s working directory (its NAME.pid, NAME.qcow2, NAME.qemu.log...), as lb-vm --workdir [default: /var/lib/linux-builder, under --root]' -r -F
complete -c lb-doctor -l keys -d 'The keys directory shared into the VM, to check the installed key against [default: WORKDIR/keys if present]' -r -F
complete -c lb-doctor -l disk -d 'The disk image to compare with --disk-size [default: WORKDIR/NAME.qcow2]' -r -F
complete -c lb-doctor -l disk-size -d 'The configured disk size in MiB (the nixpkgs builder\'s diskSize)' -r
complete -c lb-doctor -l trust-user -d 'The user builds run as, who must be trusted [default: SUDO_USER or USER, when --root is /]' -r
complete -c lb-doctor -l timeout -d 'Seconds each builder\'s ping has' -r
complete -c lb-doctor -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-doctor -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-doctor -l no-vm -d 'Leave out the VM step (a builder that is not a VM on this machine)'
complete -c lb-doctor -l json -d 'Print the overview as JSON (shape in the manual)'
complete -c lb-doctor -s h -l help -d 'Print help'
complete -c lb-doctor -s V -l version -d 'Print version'
