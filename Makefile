# linux-builder tools: build, test, install, and the nixpkgs walkthrough as
# make targets that chain the tools.
#
# The builder's identity maps to the tools' LB_* variables (an LB_* already
# in the environment is the default), e.g.
#   sudo make setup RUNNER=/nix/store/...-create-builder/bin/create-builder SYSTEM=aarch64-linux

PREFIX   ?= /usr/local
CARGO    ?= cargo
TOOLS    := lb-keys lb-vm lb-sshcfg lb-nixconf lb-ping lb-copy lb-doctor
# Where the tools are: empty means on PATH (after `make install`).
BIN      ?=
# Where `make install` takes the binaries from (what `make build` makes).
BUILT    ?= target/release

NAME       ?= $(or $(LB_NAME),linux-builder)
PORT       ?= $(or $(LB_PORT),31022)
MAX_JOBS   ?= $(or $(LB_MAX_JOBS),4)
SYSTEM     ?= $(LB_SYSTEM)
HOST_KEY   ?= $(LB_HOST_KEY)
WORKDIR    ?= /var/lib/linux-builder
KEYS       ?= $(WORKDIR)/keys
# The nixpkgs builder's runner (create-builder or run-nixos-vm) for setup.
RUNNER     ?=
TRUST_USER ?= $(or $(SUDO_USER),$(USER))

export LB_NAME := $(NAME)
export LB_PORT := $(PORT)
export LB_MAX_JOBS := $(MAX_JOBS)
ifneq ($(SYSTEM),)
export LB_SYSTEM := $(SYSTEM)
endif
ifneq ($(HOST_KEY),)
export LB_HOST_KEY := $(HOST_KEY)
endif

.PHONY: all build test lint setup-host install uninstall clean setup unsetup doctor demo man

all: build

build:
	$(CARGO) build --release --workspace --bins

# Prepare a Debian 12 machine for the tests and the demo (root; installs
# packages, creates the `builder` account, starts a nix daemon).
setup-host:
	bash tests/setup-host.sh

# The test command (README): everything, against real sshd, nix and QEMU.
test: setup-host
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps -q

# Regenerate man pages and completions from the clap definitions.
man:
	$(CARGO) run -q -p lb-docs

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	    $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	    $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	for t in $(TOOLS); do install -m 755 $(BUILT)/$$t $(DESTDIR)$(PREFIX)/bin/$$t; done
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/completions/bash/* $(DESTDIR)$(PREFIX)/share/bash-completion/completions/
	install -m 644 man/completions/zsh/* $(DESTDIR)$(PREFIX)/share/zsh/site-functions/
	install -m 644 man/completions/fish/* $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/

# Remove exactly what `make install` put under $(DESTDIR)$(PREFIX): the
# binaries, man pages and completions, named one by one (the directories,
# shared with other software, stay).
uninstall:
	for t in $(TOOLS); do \
	    rm -f $(DESTDIR)$(PREFIX)/bin/$$t \
	        $(DESTDIR)$(PREFIX)/share/man/man1/$$t.1 \
	        $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$t \
	        $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$t \
	        $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$t.fish; \
	done

# The manual's walkthrough on a real machine (run with sudo): keys, ssh
# alias, nix.conf with you as trusted user, daemon restart, the VM, a ping.
setup:
	@test -n "$(RUNNER)" || { echo "make setup: give RUNNER=.../bin/create-builder (nix build nixpkgs#darwin.linux-builder)"; exit 2; }
	$(BIN)lb-keys install $(KEYS)
	$(BIN)lb-keys join-group $(TRUST_USER)
	$(BIN)lb-sshcfg install
	$(BIN)lb-nixconf install --trust-user $(TRUST_USER) --restart
	$(BIN)lb-vm start --if-not-running --workdir $(WORKDIR) --keys $(KEYS) --runner $(RUNNER)
	$(BIN)lb-ping --explain $(NAME)

# Undo `make setup`, step by step in reverse: stop the VM and remove its
# files (disk, logs, state) and the keys directory setup generated, take
# the builder out of nix.conf (with the trusted user it added) and restart
# the daemon, remove the ssh alias, take TRUST_USER out of nixbld, and
# remove the installed key. Each step is idempotent; a step with nothing
# to undo says so. (TRUST_USER leaves nixbld even if it was a member
# before setup: join it again with `lb-keys join-group` if so.)
unsetup:
	$(BIN)lb-vm stop --workdir $(WORKDIR)
	$(BIN)lb-keys uninstall
	rm -f $(KEYS)/builder_ed25519 $(KEYS)/builder_ed25519.pub
	-rmdir $(KEYS) 2>/dev/null
	$(BIN)lb-vm remove --workdir $(WORKDIR)
	$(BIN)lb-nixconf remove
	$(BIN)lb-nixconf restart-daemon
	$(BIN)lb-sshcfg uninstall
	$(BIN)lb-keys leave-group $(TRUST_USER)

# Every check and a ping of every builder, one overview with fixes (lb-doctor):
# exit 0 only if all is healthy.
doctor:
	$(BIN)lb-doctor --workdir $(WORKDIR) --keys $(KEYS)

# The main job (README): set up this machine, build the tools and the test
# VM, then run the walkthrough in a scratch root with the tools only.
demo: setup-host build
	bash demo/run.sh

clean:
	$(CARGO) clean
