#!/usr/bin/env bash
# Run a command with one Nix generation as this machine's Nix: its nix,
# nix-store, nix-daemon and a store of its own (tests/nix/README.md).
#
#   tests/nix/host.sh GEN CMD [ARGS...]      GEN: 2.8, 2.26 or 2.34 (root)
#   tests/nix/host.sh GEN --root             print the generation's root
#
# 2.8 is this machine's own Debian 12 Nix: CMD runs as is. 2.26 and 2.34
# live in a Debian trixie or sid root (tests/nix/make-root.sh, made once and
# cached): CMD runs under chroot of that root, in a private mount namespace
# where /proc is mounted (nix-daemon's Boehm GC aborts without it), /dev,
# /tmp, $TMPDIR, the workspace and each directory of $LB_NIX_BIND
# (colon-separated) are bound at their own paths, and the working directory
# is kept. So the root's /nix is that generation's store and daemon socket,
# and files the caller names (scratch roots, ssh_config, the tools under
# target/) are where the caller sees them. The namespace, and every mount in
# it, ends with CMD's last process: nothing is left mounted.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
gen=${1:-}
case $gen in
    2.8) suite=bookworm ;;
    2.26) suite=trixie ;;
    2.34) suite=sid ;;
    *) echo "host-nix: unknown Nix generation '$gen': give 2.8, 2.26 or 2.34 (usage: host.sh GEN CMD...)" >&2; exit 2 ;;
esac
shift
(($#)) || { echo "host-nix: give a command to run with Nix $gen" >&2; exit 2; }

root=$(bash "$here/make-root.sh" "$suite" 2>/dev/null) || {
    # Again, to show why.
    bash "$here/make-root.sh" "$suite" >/dev/null
    exit 1
}
if [[ $1 == --root ]]; then
    echo "$root"
    exit 0
fi
[[ $root != / ]] || exec "$@"

binds=(/tmp "$repo")
[[ -z ${TMPDIR:-} ]] || binds+=("$TMPDIR")
IFS=: read -r -a extra <<<"${LB_NIX_BIND:-}"
for d in "${extra[@]}"; do [[ -z $d ]] || binds+=("$d"); done

# shellcheck disable=SC2016 # expanded by the inner shell
exec unshare --mount --propagation private -- bash -c '
    set -e
    r=$1 cwd=$2 n=$3
    shift 3
    mount -t proc proc "$r/proc"
    # rbind: /dev/pts too (a build opens a pseudoterminal for its log).
    mount --rbind /dev "$r/dev"
    for d in "${@:1:n}"; do
        d=$(realpath -e "$d")
        mkdir -p "$r$d"
        mount --bind "$d" "$r$d"
    done
    shift "$n"
    exec chroot "$r" /bin/sh -c "cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\"" "$cwd" "$@"
' host-nix "$root" "$PWD" "${#binds[@]}" "${binds[@]}" "$@"
