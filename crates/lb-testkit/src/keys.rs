//! Throw-away SSH key pairs made with the real `ssh-keygen`.

use std::path::{Path, PathBuf};

/// An ed25519 key pair on disk.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl KeyPair {
    /// The public key line, without newline.
    #[must_use]
    pub fn public_line(&self) -> String {
        std::fs::read_to_string(&self.public)
            .expect("read public key")
            .trim()
            .to_owned()
    }
}

/// Make `DIR/NAME` and `DIR/NAME.pub` with `ssh-keygen`.
#[must_use]
pub fn keygen(dir: &Path, name: &str) -> KeyPair {
    crate::require_program("ssh-keygen", "openssh-client");
    let private = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lb-test", "-f"])
        .arg(&private)
        .status()
        .expect("run ssh-keygen");
    assert!(
        status.success(),
        "ssh-keygen failed for {}",
        private.display()
    );
    KeyPair {
        public: lb_common::builder::pub_path(&private),
        private,
    }
}
