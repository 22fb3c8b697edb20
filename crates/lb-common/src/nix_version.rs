//! The version of the Nix a tool runs, read from `nix --version`, for the
//! few behaviours that changed between releases (machines syntax, `nix
//! copy --stdin`).

use crate::cmd::Cmd;

/// A Nix release, major and minor (`2.8`, `2.26`); patch levels and
/// suffixes (`pre`, Determinate's own number) do not change behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NixVersion {
    /// `2` in `2.26.3`.
    pub major: u64,
    /// `26` in `2.26.3`.
    pub minor: u64,
}

impl NixVersion {
    /// Commands that take installables read them from stdin with `--stdin`
    /// (release notes of 2.15).
    pub const STDIN_INSTALLABLES: NixVersion = NixVersion::new(2, 15);

    /// `major.minor`.
    #[must_use]
    pub const fn new(major: u64, minor: u64) -> Self {
        NixVersion { major, minor }
    }

    /// A version (`2.8.0`, `2.34.8pre`) or a whole `nix --version` line
    /// (`nix (Nix) 2.8.0`, `nix (Determinate Nix 3.6.2) 2.29.0`): its last
    /// word is Nix's own version. `None` when that is not `N.N...`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let word = text.split_whitespace().next_back()?;
        let mut parts = word.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts
            .next()?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        Some(NixVersion { major, minor })
    }

    /// What `nix --version` of the `nix` on PATH says; `None` when it
    /// cannot run or says something unreadable (callers then assume the
    /// oldest behaviour they support).
    #[must_use]
    pub fn installed() -> Option<Self> {
        let out = Cmd::new("nix").arg("--version").run().ok()?;
        NixVersion::parse(&out.stdout_text())
    }
}

impl std::fmt::Display for NixVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_version_lines() {
        let v = |s| NixVersion::parse(s);
        assert_eq!(v("2.8.0"), Some(NixVersion::new(2, 8)));
        assert_eq!(v("nix (Nix) 2.26.3\n"), Some(NixVersion::new(2, 26)));
        assert_eq!(v("2.34.8pre"), Some(NixVersion::new(2, 34)));
        assert_eq!(
            v("nix (Determinate Nix 3.6.2) 2.29.0"),
            Some(NixVersion::new(2, 29))
        );
        assert_eq!(v("2.15"), Some(NixVersion::new(2, 15)));
        for bad in ["", "nix", "2", "x.y", "2.x", "nix (Nix)"] {
            assert_eq!(v(bad), None, "{bad:?}");
        }
        assert!(NixVersion::new(2, 8) < NixVersion::STDIN_INSTALLABLES);
        assert!(NixVersion::new(2, 26) >= NixVersion::STDIN_INSTALLABLES);
        assert!(NixVersion::new(3, 0) > NixVersion::new(2, 99));
        assert_eq!(NixVersion::new(2, 26).to_string(), "2.26");
    }
}
