//! Where lb-sshcfg's files live and what goes in them (pure: no I/O).

use std::path::{Path, PathBuf};

use lb_common::builder::Builder;
use lb_common::conf::escape::{self, Unrepresentable};
use lb_common::conf::sshconfig::{known_hosts_line, HostAlias};
use lb_common::paths::Root;

/// The tag of the managed block holding the `Include` in `ssh_config`.
pub const BLOCK_TAG: &str = "lb-sshcfg";

/// First line of every alias file this tool writes. Uninstall and
/// install recognise their own files by it, so a hand-written
/// `100-linux-builder.conf` (as the manual has users write) is never
/// replaced or deleted silently.
pub const HEADER: &str = "# Written by lb-sshcfg";

/// A comment kept inside the managed block when lb-sshcfg created
/// `ssh_config` itself: uninstall then deletes the file again if nothing
/// else is left in it, so the system is back to "no file".
pub const CREATED_NOTE: &str =
    "# lb-sshcfg created this file; uninstall deletes it if nothing else is left\n";

/// The files of one builder's alias, all inside `--root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `ROOT/etc/ssh`
    pub etc_ssh: PathBuf,
    /// `ROOT/etc/ssh/ssh_config`: the file the root nix daemon's ssh reads.
    pub main: PathBuf,
    /// `ROOT/etc/ssh/ssh_config.d`
    pub dropin: PathBuf,
    /// `ROOT/etc/ssh/ssh_config.d/100-NAME.conf`
    pub conf: PathBuf,
    /// `ROOT/etc/ssh/ssh_config.d/100-NAME.known_hosts`: not matched by
    /// `*.conf`, so ssh never reads it as configuration.
    pub known_hosts: PathBuf,
}

impl Layout {
    /// The files for builder `name` under `root` (refused when a
    /// directory on the way is a symlink leading out of the root).
    pub fn new(root: &Root, name: &str) -> Result<Self, lb_common::paths::Error> {
        let etc_ssh = root.system(Path::new("/etc/ssh"))?;
        let dropin = root.system(Path::new("/etc/ssh/ssh_config.d"))?;
        Ok(Layout {
            main: etc_ssh.join("ssh_config"),
            conf: dropin.join(format!("100-{name}.conf")),
            known_hosts: dropin.join(format!("100-{name}.known_hosts")),
            dropin,
            etc_ssh,
        })
    }

    /// The directories whose files install and uninstall change together:
    /// locked as one for the whole decision and every edit.
    #[must_use]
    pub fn dirs(&self) -> [&Path; 2] {
        [&self.etc_ssh, &self.dropin]
    }

    /// The body of the managed block: an absolute Include, because under
    /// `ssh -F` (a scratch root) relative paths are taken from `~/.ssh`;
    /// quoted when the root's path needs it, refused when ssh would read
    /// it as another pattern.
    pub fn include_body(&self, created: bool) -> Result<String, Unrepresentable> {
        let note = if created { CREATED_NOTE } else { "" };
        let arg = escape::ssh_include("--root (LB_ROOT)", &self.dropin, "*.conf")?;
        Ok(format!("{note}Include {arg}\n"))
    }
}

/// The alias for `builder`, pointing at its known-hosts file.
#[must_use]
pub fn alias(builder: &Builder, layout: &Layout) -> HostAlias {
    HostAlias {
        name: builder.name.clone(),
        hostname: builder.hostname.clone(),
        user: builder.user.clone(),
        port: builder.port,
        identity_file: builder.key.clone(),
        known_hosts: Some(layout.known_hosts.clone()),
    }
}

/// The whole alias file: the header, then the `Host` block.
pub fn render_conf(builder: &Builder, layout: &Layout) -> Result<String, Unrepresentable> {
    Ok(format!(
        "{HEADER} for builder {name}; remove with `lb-sshcfg uninstall --name {name}`.\n{}",
        alias(builder, layout).render()?,
        name = builder.name,
    ))
}

/// The known-hosts file: the builder's host key under NAME, the name ssh
/// looks it up by (HostKeyAlias).
#[must_use]
pub fn render_known_hosts(builder: &Builder) -> String {
    known_hosts_line(&builder.name, &builder.host_key)
}

/// Was this alias file written by lb-sshcfg?
#[must_use]
pub fn is_ours(text: &[u8]) -> bool {
    text.starts_with(HEADER.as_bytes())
}
