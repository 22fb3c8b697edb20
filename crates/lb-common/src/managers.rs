//! Who else manages this machine's Nix: nix-darwin and Determinate Nix,
//! recognised by what they leave on disk (under `--root`), so every tool
//! can step aside from a file another manager owns and say what to do
//! instead.
//!
//! - nix-darwin (modules/system/etc.nix, modules/nix/default.nix,
//!   modules/nix/linux-builder.nix): `/etc/static` is a symlink to the
//!   system's etc in the store, and the files it manages in /etc are
//!   symlinks into `/etc/static` (`/etc/nix/nix.conf`,
//!   `/etc/ssh/ssh_config.d/100-linux-builder.conf`); `/run/current-system`
//!   links to the system; its launchd daemons are plists named
//!   `org.nixos.*` in /Library/LaunchDaemons whose program is
//!   `/bin/sh -c "/bin/wait4path /nix/store && exec /nix/store/..."`;
//!   `nix.linux-builder` is `org.nixos.linux-builder`.
//! - Determinate Nix: its daemon is `/usr/local/bin/determinate-nixd`
//!   (launchd label `systems.determinate.nix-daemon`); it owns
//!   `/etc/nix/nix.conf`, which ends with `!include nix.custom.conf`, and
//!   users' settings go in `/etc/nix/nix.custom.conf`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::paths::Root;

/// nix-darwin's `nix.linux-builder` launchd label (and plist name).
pub const NIX_DARWIN_BUILDER_LABEL: &str = "org.nixos.linux-builder";
/// The launchd label of the Nix daemon that the Nix installer and nix-darwin use.
pub const NIX_DAEMON_LABEL: &str = "org.nixos.nix-daemon";
/// Determinate Nix's daemon label.
pub const DETERMINATE_DAEMON_LABEL: &str = "systems.determinate.nix-daemon";
/// Determinate's daemon binary.
pub const DETERMINATE_NIXD: &str = "/usr/local/bin/determinate-nixd";
/// The file Determinate's nix.conf includes for users' settings.
pub const DETERMINATE_CUSTOM_CONF: &str = "nix.custom.conf";

/// What nix-darwin left on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NixDarwin {
    /// Where the evidence was found (`ROOT/etc/static`, a plist...).
    pub evidence: PathBuf,
    /// `ROOT/Library/LaunchDaemons/org.nixos.linux-builder.plist` when
    /// `nix.linux-builder` is enabled.
    pub linux_builder: Option<PathBuf>,
}

/// What Determinate Nix left on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Determinate {
    /// Where the evidence was found (`ROOT/usr/local/bin/determinate-nixd`,
    /// or the nix.conf that includes the custom file).
    pub evidence: PathBuf,
    /// `ROOT/etc/nix/nix.custom.conf`: where users' settings go.
    pub custom_conf: PathBuf,
}

/// The managers found on this machine (under `--root`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managers {
    /// nix-darwin, if found.
    pub nix_darwin: Option<NixDarwin>,
    /// Determinate Nix, if found.
    pub determinate: Option<Determinate>,
}

/// Is `path` a symlink whose target lies in nix-darwin's `/etc/static`?
/// Returns the link's target.
#[must_use]
pub fn static_link(path: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(path).ok()?;
    let s = target.to_string_lossy();
    (s.starts_with("/etc/static/") || s.contains("/etc/static/")).then_some(target)
}

/// Does a launchd plist look like one nix-darwin wrote: its program waits
/// for the store and then execs a store path?
#[must_use]
pub fn is_nix_darwin_plist(text: &str) -> bool {
    text.contains("/bin/wait4path /nix/store") && text.contains("exec /nix/store/")
}

/// Does nix.conf's text include Determinate's custom file?
#[must_use]
pub fn includes_custom_conf(nix_conf: &str) -> bool {
    nix_conf.lines().any(|l| {
        let l = l.split('#').next().unwrap_or_default().trim();
        let rest = l
            .strip_prefix("!include")
            .or_else(|| l.strip_prefix("include"));
        rest.is_some_and(|p| {
            p.starts_with(char::is_whitespace)
                && Path::new(p.trim()).file_name() == Some(DETERMINATE_CUSTOM_CONF.as_ref())
        })
    })
}

/// A small text file's contents, read bounded (a regular file, at most
/// lb-common's read limit); `None` when absent or unreadable.
fn read_text(path: &Path) -> Option<String> {
    crate::fs::read_following(path)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

impl Managers {
    /// Look under `root` for nix-darwin and Determinate Nix. `nix_conf` is
    /// the nix.conf the tools read (it honours `NIX_CONF_DIR`).
    #[must_use]
    pub fn detect(root: &Root, nix_conf: &Path) -> Self {
        // Detection only reads: a path is mapped as written (a link that
        // leads out of a scratch root is nix-darwin's own /etc/static).
        let at = |p: &str| root.lexical(Path::new(p));
        let daemons = at("/Library/LaunchDaemons");
        let builder_plist = daemons.join(format!("{NIX_DARWIN_BUILDER_LABEL}.plist"));
        let linux_builder = read_text(&builder_plist)
            .filter(|t| is_nix_darwin_plist(t))
            .map(|_| builder_plist.clone());
        let etc_static = at("/etc/static");
        let nix_darwin_evidence =
            if std::fs::symlink_metadata(&etc_static).is_ok_and(|m| m.file_type().is_symlink()) {
                Some(etc_static)
            } else if static_link(nix_conf).is_some() {
                Some(nix_conf.to_path_buf())
            } else {
                linux_builder.clone().or_else(|| {
                    let daemon = daemons.join(format!("{NIX_DAEMON_LABEL}.plist"));
                    read_text(&daemon)
                        .filter(|t| is_nix_darwin_plist(t))
                        .map(|_| daemon)
                })
            };
        let nix_darwin = nix_darwin_evidence.map(|evidence| NixDarwin {
            evidence,
            linux_builder,
        });
        let custom_conf = nix_conf
            .parent()
            .unwrap_or(Path::new("/"))
            .join(DETERMINATE_CUSTOM_CONF);
        let nixd = at(DETERMINATE_NIXD);
        let determinate_evidence = if nixd.exists() {
            Some(nixd)
        } else if crate::fs::read_following(nix_conf)
            .ok()
            .flatten()
            .is_some_and(|b| includes_custom_conf(&String::from_utf8_lossy(&b)))
        {
            Some(nix_conf.to_path_buf())
        } else {
            None
        };
        let determinate = determinate_evidence.map(|evidence| Determinate {
            evidence,
            custom_conf,
        });
        Managers {
            nix_darwin,
            determinate,
        }
    }

    /// The launchd label of the Nix daemon on a Mac.
    #[must_use]
    pub fn daemon_label(&self) -> &'static str {
        if self.determinate.is_some() {
            DETERMINATE_DAEMON_LABEL
        } else {
            NIX_DAEMON_LABEL
        }
    }

    /// One line saying who was found, for `-v` and reports.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.nix_darwin {
            parts.push(format!("nix-darwin (found {})", d.evidence.display()));
        }
        if let Some(d) = &self.determinate {
            parts.push(format!("Determinate Nix (found {})", d.evidence.display()));
        }
        if parts.is_empty() {
            "neither nix-darwin nor Determinate Nix".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The message when nix-darwin owns `path` (a link to `target` in
/// /etc/static): who owns it, and that its settings go in the nix-darwin
/// configuration, the builder first.
#[must_use]
pub fn owned_by_nix_darwin(path: &Path, target: &Path) -> String {
    format!(
        "{}: nix-darwin owns this file (a link to {}); changes belong in your nix-darwin configuration, then `darwin-rebuild switch`. The builder is `nix.linux-builder.enable = true;` there:",
        path.display(),
        target.display()
    )
}

/// A Nix string literal.
#[must_use]
pub fn nix_str(s: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Nix list of strings.
#[must_use]
pub fn nix_list(v: &[String]) -> String {
    if v.is_empty() {
        "[ ]".to_owned()
    } else {
        let items: Vec<String> = v.iter().map(|s| nix_str(s)).collect();
        format!("[ {} ]", items.join(" "))
    }
}

/// nix-darwin's `nix.linux-builder` defaults (modules/nix/linux-builder.nix).
pub const LINUX_BUILDER_FEATURES: [&str; 3] = ["kvm", "benchmark", "big-parallel"];

/// The `nix.linux-builder` settings matching what a tool would configure;
/// a field is written only when it is set and differs from nix-darwin's
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinuxBuilderSnippet {
    /// Builds Nix may run on the builder at once (`maxJobs`).
    pub max_jobs: Option<u64>,
    /// `speedFactor`; 1, the default, is not written. An integer:
    /// nix-darwin's type is `ints.positive`.
    pub speed_factor: Option<u64>,
    /// `supportedFeatures`; written only when it differs from
    /// [`LINUX_BUILDER_FEATURES`].
    pub supported_features: Option<Vec<String>>,
    /// `mandatoryFeatures`; written only when not empty.
    pub mandatory_features: Option<Vec<String>>,
    /// The Nix systems the builder builds for (`systems`).
    pub systems: Option<Vec<String>>,
    /// The VM's vCPUs (`config.virtualisation.cores`).
    pub cores: Option<u32>,
    /// The VM's memory in MiB
    /// (`config.virtualisation.darwin-builder.memorySize`).
    pub memory_mib: Option<u32>,
    /// The VM's disk size in MiB
    /// (`config.virtualisation.darwin-builder.diskSize`).
    pub disk_mib: Option<u64>,
}

impl LinuxBuilderSnippet {
    /// The Nix text, `nix.linux-builder.enable = true;` first.
    #[must_use]
    pub fn render(&self) -> String {
        let mut fields = Vec::new();
        if let Some(n) = self.max_jobs {
            fields.push(format!("maxJobs = {n};"));
        }
        if let Some(n) = self.speed_factor.filter(|n| *n != 1) {
            fields.push(format!("speedFactor = {n};"));
        }
        let default_features: Vec<String> = LINUX_BUILDER_FEATURES
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if let Some(f) = self
            .supported_features
            .as_ref()
            .filter(|f| **f != default_features)
        {
            fields.push(format!("supportedFeatures = {};", nix_list(f)));
        }
        if let Some(f) = self.mandatory_features.as_ref().filter(|f| !f.is_empty()) {
            fields.push(format!("mandatoryFeatures = {};", nix_list(f)));
        }
        if let Some(s) = &self.systems {
            fields.push(format!("systems = {};", nix_list(s)));
        }
        if let Some(c) = self.cores {
            fields.push(format!("config.virtualisation.cores = {c};"));
        }
        if let Some(m) = self.memory_mib {
            fields.push(format!(
                "config.virtualisation.darwin-builder.memorySize = {m};"
            ));
        }
        if let Some(d) = self.disk_mib {
            fields.push(format!(
                "config.virtualisation.darwin-builder.diskSize = {d};"
            ));
        }
        if fields.is_empty() {
            return "nix.linux-builder.enable = true;\n".to_owned();
        }
        let mut s = String::from("nix.linux-builder = {\n  enable = true;\n");
        for f in fields {
            let _ = writeln!(s, "  {f}");
        }
        s.push_str("};\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn custom_conf_include_forms() {
        assert!(includes_custom_conf("a = b\n!include nix.custom.conf\n"));
        assert!(includes_custom_conf("include /etc/nix/nix.custom.conf"));
        assert!(!includes_custom_conf("# !include nix.custom.conf\n"));
        assert!(!includes_custom_conf("!include other.conf\n"));
        assert!(!includes_custom_conf("!includenix.custom.conf\n"));
    }

    #[test]
    fn nothing_on_a_plain_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(Some(tmp.path())).unwrap();
        let m = Managers::detect(&root, &tmp.path().join("etc/nix/nix.conf"));
        assert_eq!(m, Managers::default());
        assert_eq!(m.daemon_label(), "org.nixos.nix-daemon");
    }

    #[test]
    fn nix_darwin_by_etc_static_and_its_builder_plist() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("etc/nix")).unwrap();
        std::fs::create_dir_all(r.join("Library/LaunchDaemons")).unwrap();
        symlink("/nix/store/aaaa-etc/etc", r.join("etc/static")).unwrap();
        symlink("/etc/static/nix/nix.conf", r.join("etc/nix/nix.conf")).unwrap();
        std::fs::write(
            r.join("Library/LaunchDaemons/org.nixos.linux-builder.plist"),
            "<string>/bin/wait4path /nix/store &amp;&amp; exec /nix/store/bbbb-linux-builder-start</string>",
        )
        .unwrap();
        let root = Root::new(Some(r)).unwrap();
        let m = Managers::detect(&root, &r.join("etc/nix/nix.conf"));
        let d = m.nix_darwin.expect("nix-darwin found");
        assert_eq!(d.evidence, r.join("etc/static"));
        assert_eq!(
            d.linux_builder,
            Some(r.join("Library/LaunchDaemons/org.nixos.linux-builder.plist"))
        );
        assert!(m.determinate.is_none());
        assert_eq!(
            static_link(&r.join("etc/nix/nix.conf")),
            Some(PathBuf::from("/etc/static/nix/nix.conf"))
        );
    }

    #[test]
    fn determinate_by_nixd_or_include() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("etc/nix")).unwrap();
        let conf = r.join("etc/nix/nix.conf");
        std::fs::write(
            &conf,
            "build-users-group = nixbld\n!include nix.custom.conf\n",
        )
        .unwrap();
        let root = Root::new(Some(r)).unwrap();
        let m = Managers::detect(&root, &conf);
        let d = m.determinate.clone().expect("Determinate found");
        assert_eq!(d.evidence, conf);
        assert_eq!(d.custom_conf, r.join("etc/nix/nix.custom.conf"));
        assert_eq!(m.daemon_label(), "systems.determinate.nix-daemon");
        std::fs::write(&conf, "").unwrap();
        assert!(Managers::detect(&root, &conf).determinate.is_none());
        std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
        std::fs::write(r.join("usr/local/bin/determinate-nixd"), "").unwrap();
        let d = Managers::detect(&root, &conf).determinate.unwrap();
        assert_eq!(d.evidence, r.join("usr/local/bin/determinate-nixd"));
    }

    #[test]
    fn linux_builder_snippet() {
        assert_eq!(
            LinuxBuilderSnippet::default().render(),
            "nix.linux-builder.enable = true;\n"
        );
        let s = LinuxBuilderSnippet {
            max_jobs: Some(4),
            speed_factor: Some(1),
            supported_features: Some(
                LINUX_BUILDER_FEATURES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            ),
            systems: Some(vec!["aarch64-linux".into()]),
            cores: Some(4),
            memory_mib: Some(8192),
            ..Default::default()
        };
        insta::assert_snapshot!(s.render(), @r#"
        nix.linux-builder = {
          enable = true;
          maxJobs = 4;
          systems = [ "aarch64-linux" ];
          config.virtualisation.cores = 4;
          config.virtualisation.darwin-builder.memorySize = 8192;
        };
        "#);
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(nix_str(r#"a"b\c${d}$e"#), r#""a\"b\\c\${d}$e""#);
    }
}
