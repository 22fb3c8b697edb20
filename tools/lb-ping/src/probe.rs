//! The `--health` probe: the shell command run on the builder and the
//! parsing of what it prints (free space, the Nix settings that decide
//! whether builds can work there). [`crate::health`] judges the result.

/// The shell command run on the builder. Sections are marked so that a
/// missing program (no `df`) leaves the others readable. `nix` is looked
/// for beside the remote program when the URI names one by path.
#[must_use]
pub fn probe_command(remote_program: Option<&str>) -> String {
    let nix = remote_program
        .and_then(|p| p.rsplit_once('/'))
        .map_or_else(|| "nix".to_owned(), |(dir, _)| format!("{dir}/nix"));
    let nix =
        shlex::try_quote(&nix).map_or_else(|_| "nix".to_owned(), std::borrow::Cow::into_owned);
    format!(
        "echo @@id; id -un; id -Gn; echo @@statfs; stat -f -c '%S %b %a' /nix/store; \
         echo @@df; df -Pk /nix/store; echo @@conf; \
         {nix} --extra-experimental-features nix-command config show 2>/dev/null || \
         {nix} --extra-experimental-features nix-command show-config"
    )
}

/// The probe's output, split into its sections.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Probe {
    pub user: Option<String>,
    pub groups: Vec<String>,
    /// (size, available) in bytes.
    pub df: Option<(u64, u64)>,
    /// `name = value` settings.
    pub settings: Vec<(String, String)>,
}

impl Probe {
    pub(crate) fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn words(&self, name: &str) -> Vec<String> {
        self.setting(name)
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// Parse what [`probe_command`] printed.
#[must_use]
pub fn parse_probe(text: &str) -> Probe {
    let mut p = Probe::default();
    let mut section = "";
    let mut id_lines = Vec::new();
    let mut statfs_lines = Vec::new();
    let mut df_lines = Vec::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("@@") {
            section = match s.trim() {
                "id" => "id",
                "statfs" => "statfs",
                "df" => "df",
                "conf" => "conf",
                _ => section,
            };
            continue;
        }
        match section {
            "id" => id_lines.push(line),
            "statfs" => statfs_lines.push(line),
            "df" => df_lines.push(line),
            "conf" => {
                if let Some((k, v)) = line.split_once(" = ") {
                    p.settings.push((k.trim().to_owned(), v.trim().to_owned()));
                } else if let Some(k) = line.strip_suffix(" =") {
                    p.settings.push((k.trim().to_owned(), String::new()));
                }
            }
            _ => {}
        }
    }
    p.user = id_lines
        .first()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    p.groups = id_lines
        .get(1)
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    // `stat -f` first: busybox's df cannot find the mount of an initramfs
    // root ("df: /nix/store: can't find mount point", seen in the test guest).
    let statfs = statfs_lines.first().and_then(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match f[..] {
            [bsize, blocks, avail] => Some((bsize.checked_mul(blocks)?, bsize.checked_mul(avail)?)),
            _ => None,
        }
    });
    // POSIX df -P: a header, then `FS 1024-blocks used available capacity mount`
    // (a long device name may not wrap under -P).
    p.df = statfs.or_else(|| {
        df_lines.iter().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = f.len();
            if n < 6 {
                return None;
            }
            let size: u64 = f[n - 5].parse().ok()?;
            let avail: u64 = f[n - 3].parse().ok()?;
            Some((size * 1024, avail * 1024))
        })
    });
    p
}

/// A size as nix.conf writes it: bytes, or with a K, M, G or T suffix.
#[must_use]
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        'T' | 't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// `N MiB` or `N.N GiB`, for messages.
#[must_use]
pub fn human(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // a message, not arithmetic
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", b / f64::from(1u32 << 30))
    } else {
        format!("{} MiB", bytes >> 20)
    }
}
