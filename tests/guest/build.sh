#!/usr/bin/env bash
# Build the lb test guest: a Linux kernel and a gzip'd cpio initramfs that
# QEMU boots into a tiny Nix remote builder (sshd on port 22 + nix-daemon,
# user `builder`), assembled from Debian packages.
#
#   tests/guest/build.sh [--nix 2.8|2.26|2.34] [OUTDIR]
#
# --nix (or $LB_GUEST_NIX) chooses the Nix generation in the guest: 2.8 is
# this machine's Debian 12 `nix-bin`; 2.26 and 2.34 come from a Debian
# trixie or sid root made by tests/nix/make-root.sh (its nix, nix-daemon,
# the build hook /usr/libexec/nix/build-remote and the libraries ldd lists
# inside that root). Default 2.8. OUTDIR defaults to $LB_GUEST_DIR, else
# <repo>/target/guest for 2.8 and <repo>/target/guest-nix-GEN for the others.
#
# Writes OUTDIR/vmlinuz (Debian's bzImage), OUTDIR/vmlinux (the same kernel
# uncompressed, which boots faster), OUTDIR/initrd.gz and OUTDIR/stamp, and
# prints the kernel path to boot (vmlinux if it could be made) and the
# initrd path on stdout (nothing else goes to stdout). The stamp
# hashes every input (this directory, the Debian package versions, the host
# files copied in, the Nix root's stamp), so an unchanged guest is not
# rebuilt. See README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

say() { echo "guest: $*" >&2; }
die() { echo "guest: error: $*" >&2; exit 1; }

gen=${LB_GUEST_NIX:-2.8}
while (($#)); do
    case $1 in
        --nix) (($# >= 2)) || { echo "guest: --nix needs 2.8, 2.26 or 2.34" >&2; exit 2; }; gen=$2; shift 2 ;;
        --nix=*) gen=${1#--nix=}; shift ;;
        -*) echo "guest: unknown option $1 (usage: build.sh [--nix 2.8|2.26|2.34] [OUTDIR])" >&2; exit 2 ;;
        *) break ;;
    esac
done
case $gen in
    2.8) suite=bookworm default_out=$repo/target/guest ;;
    2.26) suite=trixie default_out=$repo/target/guest-nix-2.26 ;;
    2.34) suite=sid default_out=$repo/target/guest-nix-2.34 ;;
    *) echo "guest: unknown Nix generation '$gen': give 2.8, 2.26 or 2.34" >&2; exit 2 ;;
esac
out=${1:-${LB_GUEST_DIR:-$default_out}}

# --- host prerequisites -----------------------------------------------------

# Guest parts come from these installed packages (Nix from the generation's
# root, which is this machine for 2.8); tools from the others.
guest_pkgs=(busybox-static openssh-server)
[[ $suite != bookworm ]] || guest_pkgs+=(nix-bin)
missing=()
for p in "${guest_pkgs[@]}" cpio kmod gzip; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
((${#missing[@]} == 0)) || die "missing host packages; run: apt-get install ${missing[*]}"
for c in apt-get apt-cache dpkg-deb ldd flock; do
    command -v "$c" >/dev/null || die "missing command $c (a Debian base system is assumed)"
done

mkdir -p "$out/cache"
out=$(cd "$out" && pwd)
# Serialize builds sharing OUTDIR (parallel test binaries, make -j). Not
# OUTDIR/.lock: callers may hold that one themselves while running us.
exec 9>"$out/.build.lock"
flock 9

# --- inputs -----------------------------------------------------------------

# The kernel: whatever linux-image-amd64 currently points at, e.g.
# "Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)". apt-cache takes
# seconds here (no pkgcache.bin), so the answer is cached until the apt
# lists change.
apt_lists_sig=$(stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* 2>/dev/null | sha256sum | cut -d' ' -f1)
kernel_pkg() {
    apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
        sed -n 's/^Depends:.*\(linux-image-[^ ,]*\) (= \([^)]*\)).*/\1 \2/p' | head -n1
}
read -r sig kpkg kver 2>/dev/null <"$out/cache/kernel-pkg" || true
if [[ ${sig:-} != "$apt_lists_sig" || -z ${kver:-} ]]; then
    read -r kpkg kver < <(kernel_pkg) || true
    if [[ -z ${kver:-} ]]; then
        say "apt knows no linux-image-amd64; running apt-get update"
        apt-get update -q >&2 || true
        apt_lists_sig=$(stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* 2>/dev/null | sha256sum | cut -d' ' -f1)
        read -r kpkg kver < <(kernel_pkg) || true
    fi
    [[ -n ${kver:-} ]] || die "cannot resolve linux-image-amd64 (try apt-get update)"
    echo "$apt_lists_sig $kpkg $kver" >"$out/cache/kernel-pkg"
fi

# The root holding this generation's Nix: / for 2.8 (this machine's own),
# else a Debian root made (once, cached) by tests/nix/make-root.sh.
nixroot=$(bash "$repo/tests/nix/make-root.sh" "$suite")
[[ -x $nixroot/usr/bin/nix ]] || die "no $nixroot/usr/bin/nix (is nix-bin installed there?)"
in_nixroot() { if [[ $nixroot == / ]]; then "$@"; else chroot "$nixroot" "$@"; fi; }
# nix-bin's files: nix, its nix-* links, /usr/libexec/nix/build-remote and
# (2.34) /usr/libexec/nix-nswrapper.
mapfile -t nix_files < <(in_nixroot dpkg -L nix-bin | grep -E '^/usr/(bin/nix|libexec/nix)')
nix_programs=(/usr/bin/nix)
for f in "${nix_files[@]}"; do
    [[ -f $nixroot$f && ! -L $nixroot$f && $f != /usr/bin/nix ]] && nix_programs+=("$f")
done

# Files copied into the guest: the programs and every library they load
# (busybox-static has none), this machine's for busybox and sshd, the Nix
# root's for Nix. /usr/bin/nix is one binary behind all the nix-* names.
programs=(/bin/busybox /usr/sbin/sshd)
lib_paths() { # lib_paths PROGRAM...: the libraries ldd lists, one a line
    for p in "$@"; do ldd "$p" 2>/dev/null || true; done |
        awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'
}
mapfile -t libs < <(lib_paths "${programs[@]}" | sort -u)
mapfile -t nix_libs < <(
    {
        in_nixroot bash -c "$(declare -f lib_paths); lib_paths ${nix_programs[*]}"
        # dlopen()ed by nix before builds (else "unable to load nss_dns backend").
        in_nixroot bash -c 'ls /lib/x86_64-linux-gnu/libnss_dns.so.2 2>/dev/null || true'
    } | sort -u
)
((${#libs[@]} > 0 && ${#nix_libs[@]} > 0)) || die "ldd found no libraries for ${programs[*]} ${nix_programs[*]}"

# The stamp: this directory's files, the package versions, and size and
# mtime of each copied host file (libraries come from many packages; a
# changed one changes its mtime).
stamp=$(
    {
        echo "lb-guest stamp v1"
        cd "$here" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
        dpkg-query -W "${guest_pkgs[@]}"
        echo "nix $gen $(in_nixroot dpkg-query -W nix-bin)"
        cat "$nixroot/.lb-stamp" 2>/dev/null || true
        echo "kernel $kpkg $kver"
        stat -L -c '%n %s %Y' "${programs[@]}" "${libs[@]}"
        for f in "${nix_programs[@]}" "${nix_libs[@]}"; do stat -L -c '%n %s %Y' "$nixroot$f"; done
    } | sha256sum | cut -d' ' -f1
)

# The stamp file holds "KERNEL HASH": which kernel file to print.
done_() {
    echo "$out/$1"
    echo "$out/initrd.gz"
}
read -r built_kernel built_stamp 2>/dev/null <"$out/stamp" || true
if [[ ${built_stamp:-} == "$stamp" && -f $out/${built_kernel:-none} && -f $out/initrd.gz ]]; then
    say "up to date ($out)"
    done_ "$built_kernel"
    exit 0
fi

# --- build ------------------------------------------------------------------

started=$SECONDS
say "building into $out (kernel $kpkg $kver, Nix $gen from ${nixroot})"
# We hold the lock: any earlier temp dir is left over from a killed build.
rm -rf "$out"/.tmp.*
tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Invalidate first: if we are interrupted between the moves below, the next
# run sees no stamp and rebuilds.
rm -f "$out/stamp"

# Kernel package, cached across builds (downloaded next to the build, then
# moved in, so an interrupted download is never taken for a cached one).
deb=$out/cache/${kpkg}_${kver}_amd64.deb
if [[ ! -f $deb ]]; then
    say "downloading $kpkg $kver"
    # As root, apt would hand the download to user _apt, who cannot write
    # into our private temp dir.
    apt_opts=(-q)
    ((EUID != 0)) || apt_opts+=(-o APT::Sandbox::User=root)
    (cd "$tmp" && apt-get download "${apt_opts[@]}" "$kpkg=$kver" >&2) || {
        say "apt-get download failed; running apt-get update and retrying"
        apt-get update -q >&2
        (cd "$tmp" && apt-get download "${apt_opts[@]}" "$kpkg=$kver" >&2)
    }
    dl=("$tmp"/"${kpkg}"_*.deb)
    [[ -f ${dl[0]} ]] || die "apt-get download left no .deb"
    rm -f "$out/cache/${kpkg%%-[0-9]*}"*.deb # older kernels
    mv "${dl[0]}" "$deb"
fi
say "unpacking $(basename "$deb")"
dpkg-deb -x "$deb" "$tmp/kernel"
vmlinuz=$(find "$tmp/kernel/boot" -name 'vmlinuz-*' | head -n1)
[[ -n $vmlinuz ]] || die "no vmlinuz in $deb"
kmods=$(find "$tmp/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)
[[ -n $kmods ]] || die "no modules in $deb"

root=$tmp/root
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/libexec/nix,usr/lib/modules,etc/lb-guest}
# Merged /usr, as on the host, so both spellings of library paths work.
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
mkdir -p "$root"/{proc,sys,dev,run,tmp,root,var/keys,var/empty,var/log,home/builder}
ln -s ../run "$root/var/run"
# The Nix store and state live in the RAM root.
mkdir -p "$root"/nix/store "$root"/nix/var/nix/{db,gcroots,profiles,temproots,userpool,daemon-socket}

# Modules: the virtio PCI transport, virtio-net, 9p over virtio, and the
# ACPI power button with evdev (acpid reads /dev/input/event*), each listed
# after its dependencies. These come from modinfo: the package has no
# modules.dep (depmod makes it at install time). Compressed modules are
# unpacked, as busybox insmod may not read them.
declare -A modpath=() loaded=()
while IFS= read -r f; do
    n=$(basename "$f")
    n=${n%%.ko*}
    modpath[${n//-/_}]=$f
done < <(find "$kmods/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
order=()
add_module() {
    local n=${1//-/_} f dep
    [[ -z ${loaded[$n]:-} ]] || return 0
    loaded[$n]=1
    f=${modpath[$n]:-}
    if [[ -z $f ]]; then
        # Built in (or gone in this kernel version): nothing to load.
        grep -q "/${n//_/[-_]}\.ko\$" "$kmods/modules.builtin" 2>/dev/null ||
            say "note: module $n is not in this kernel; skipped"
        return 0
    fi
    case $f in
        *.xz)
            command -v xz >/dev/null || die "xz-compressed kernel modules; run: apt-get install xz-utils"
            xz -dc "$f" >"$root/lib/modules/$n.ko"
            ;;
        *.zst)
            command -v zstd >/dev/null || die "zstd-compressed kernel modules; run: apt-get install zstd"
            zstd -qdc "$f" >"$root/lib/modules/$n.ko"
            ;;
        *.gz) gzip -dc "$f" >"$root/lib/modules/$n.ko" ;;
        *) cp "$f" "$root/lib/modules/$n.ko" ;;
    esac
    for dep in $(modinfo -F depends "$root/lib/modules/$n.ko" | tr ',' ' '); do
        add_module "$dep"
    done
    order+=("$n")
}
for m in virtio_pci virtio_net 9pnet_virtio 9p button evdev; do
    add_module "$m"
done
printf '%s\n' "${order[@]}" >"$root/etc/lb-guest/modules"
say "modules: ${order[*]}"

# Programs. busybox provides /bin/sh (the login shell and Nix's builder
# shell), init, mount, ip, acpid...; its applets never shadow nix or sshd.
cp /bin/busybox "$root/usr/bin/busybox"
for a in $(/bin/busybox --list-full); do
    [[ -e $root/$a || -L $root/$a ]] || ln -s /usr/bin/busybox "$root/$a"
done
cp /usr/sbin/sshd "$root/usr/sbin/sshd"
# nix, nix-daemon, nix-store, ... and libexec/nix/build-remote, which a build
# sent over ssh-ng needs (without it: "unexpected EOF reading a line"), all
# from the generation's root.
for f in "${nix_files[@]}"; do
    if [[ -L $nixroot$f ]]; then
        rm -f "$root$f"
        ln -s "$(readlink "$nixroot$f")" "$root$f"
    elif [[ -f $nixroot$f ]]; then
        mkdir -p "$root$(dirname "$f")"
        rm -f "$root$f"
        cp "$nixroot$f" "$root$f"
    fi
done
[[ -L $root/usr/libexec/nix/build-remote ]] || die "nix-bin ($gen) has no /usr/libexec/nix/build-remote"
# This machine's libraries first, then the Nix root's over them: where both
# have a library (libc, libcrypto...), the root's is the newer release of
# the same soname, which the older sshd and busybox also load.
for l in "${libs[@]}"; do
    mkdir -p "$root$(dirname "$l")"
    cp -L "$l" "$root$l"
done
for l in "${nix_libs[@]}"; do
    mkdir -p "$root$(dirname "$l")"
    rm -f "$root$l"
    cp -L "$nixroot$l" "$root$l"
done

# Configuration (passwd, sshd_config, nix.conf, /init...) and the fixed,
# deliberately public host key. cpio records everything as root:root; /init
# fixes the few paths owned by others.
cp -a "$here/rootfs/." "$root/"
install -m 600 "$here/ssh_host_ed25519_key" "$root/etc/ssh/ssh_host_ed25519_key"
install -m 644 "$here/ssh_host_ed25519_key.pub" "$root/etc/ssh/ssh_host_ed25519_key.pub"
chmod 755 "$root/init" "$root/etc/lb-guest/shutdown" "$root/etc/acpi/PWRF/00000080"
chmod 600 "$root/etc/shadow"
chmod 1777 "$root/tmp"
chmod 700 "$root/root"

say "packing initramfs"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    gzip -6 >"$tmp/initrd.gz"
cp "$vmlinuz" "$tmp/vmlinuz"

# Also the uncompressed kernel (ELF vmlinux), which QEMU boots straight
# through its PVH entry point (CONFIG_PVH): under TCG that skips about 4 s
# of the bzImage unpacking itself. It is what we print, when we have it.
# The bzImage's payload is one compressed stream, found by its magic; the
# decompressor fails on the bytes that follow it, so judge the result
# instead: an ELF file whose section headers (at its end) are all there.
extract_vmlinux() {
    local magic_cmd magic cmd off
    grep -q '^CONFIG_PVH=y' "$tmp"/kernel/boot/config-* 2>/dev/null || return 1
    for magic_cmd in '\xfd7zXZ\x00:xz' '\x28\xb5\x2f\xfd:zstd'; do
        magic=${magic_cmd%:*} cmd=${magic_cmd##*:}
        off=$(LC_ALL=C grep -obUaP "$magic" "$tmp/vmlinuz" | head -n1 | cut -d: -f1)
        [[ -n $off ]] || continue
        command -v "$cmd" >/dev/null || { say "note: no $cmd, so no vmlinux (slower boot)"; return 1; }
        tail -c +$((off + 1)) "$tmp/vmlinuz" | "$cmd" -dcq >"$tmp/vmlinux" 2>/dev/null || true
        [[ $(head -c4 "$tmp/vmlinux" | od -An -c | tr -d ' ') == '177ELF' ]] || return 1
        local shoff shentsize shnum
        shoff=$(od -An -t u8 -j 40 -N 8 "$tmp/vmlinux" | tr -d ' ')
        shentsize=$(od -An -t u2 -j 58 -N 2 "$tmp/vmlinux" | tr -d ' ')
        shnum=$(od -An -t u2 -j 60 -N 2 "$tmp/vmlinux" | tr -d ' ')
        (($(stat -c %s "$tmp/vmlinux") >= shoff + shentsize * shnum)) || return 1
        return 0
    done
    return 1
}
kernel=vmlinuz
if extract_vmlinux; then
    kernel=vmlinux
else
    rm -f "$tmp/vmlinux" "$out/vmlinux"
    say "note: booting the compressed vmlinuz (no PVH-bootable vmlinux)"
fi
echo "$kernel $stamp" >"$tmp/stamp"

# Each file replaces its old version atomically (a running QEMU keeps the
# old inode); the stamp goes last and marks the set complete.
mv "$tmp/vmlinuz" "$out/vmlinuz"
[[ $kernel == vmlinuz ]] || mv "$tmp/vmlinux" "$out/vmlinux"
mv "$tmp/initrd.gz" "$out/initrd.gz"
mv "$tmp/stamp" "$out/stamp"
say "built in $((SECONDS - started)) s: initrd $(du -h "$out/initrd.gz" | cut -f1)"
done_ "$kernel"
