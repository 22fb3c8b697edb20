# linux-builder tools: build, test, install, and the walkthrough as make targets.
#
# The builder's identity maps to the tools' LB_* variables, e.g.
#   make setup NAME=linux-builder PORT=31022 SYSTEM=aarch64-linux MAX_JOBS=4

PREFIX   ?= /usr/local
CARGO    ?= cargo
TOOLS    := lb-keys lb-vm lb-sshcfg lb-nixconf lb-ping lb-copy

.PHONY: all build test lint setup-host install clean

all: build

build:
	$(CARGO) build --release --workspace

# Prepare a Debian 12 machine for the tests (root; installs packages,
# creates the `builder` account, starts a nix daemon).
setup-host:
	bash tests/setup-host.sh

# The test command (README): everything, against real sshd, nix and QEMU.
test: setup-host
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	for t in $(TOOLS); do install -m 755 target/release/$$t $(DESTDIR)$(PREFIX)/bin/$$t; done
	if ls man/*.1 >/dev/null 2>&1; then install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/; fi

clean:
	$(CARGO) clean
