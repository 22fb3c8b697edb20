//! Which of the wanted paths the local store already has.
//!
//! Asked of the local Nix daemon over its unix socket: one handshake and
//! one `QueryValidPaths` for the whole batch, no process started. A
//! `nix-store --check-validity` costs ~20 ms of process start and
//! configuration loading, as much as a small copy itself.
//!
//! Paths absent from the store directory are missing without asking (a
//! valid path is always on disk): the daemon hears only about the ones
//! there, and not at all when none is, the usual case for fresh outputs.
//!
//! The daemon is asked only when it serves the store Nix would use here
//! (the `store` setting, else `NIX_REMOTE`, is `auto`, `daemon` or
//! `unix://PATH`). When the store is another one, the socket is absent or
//! anything in the exchange fails, `nix-store --check-validity` answers,
//! applying Nix's own rules, as before.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lb_common::conf::nixconf::{conf_dir, NixConf};
use lb_common::daemon;
use lb_common::paths::Root;
use lb_common::ui;

use crate::copy;

/// Where Nix puts the daemon socket under its state directory.
const DEFAULT_STATE_DIR: &str = "/nix/var/nix";

/// A daemon that accepted the connection but stays silent this long is
/// left for nix-store (which would wait on the same daemon, but says why).
const TIMEOUT: Duration = Duration::from_secs(30);

/// How the local store is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The daemon listening on this socket.
    Daemon(PathBuf),
    /// `nix-store --check-validity`.
    NixStore,
}

/// The local store's validity oracle for this run.
#[derive(Debug)]
pub struct Local {
    via: Via,
}

impl Local {
    /// Decide once per run how the local store is asked.
    #[must_use]
    pub fn new(root: &Root) -> Self {
        let env = |name: &str| std::env::var(name).ok();
        let via = store_setting(root, &env)
            .and_then(|store| daemon_socket(&store, &env))
            .map_or(Via::NixStore, Via::Daemon);
        Local { via }
    }

    /// How this run asks (for tests and `-v`).
    #[must_use]
    pub fn via(&self) -> &Via {
        &self.via
    }

    /// The paths among `paths` not valid in the local store, in the
    /// order given.
    pub fn invalid(&self, paths: &[&str]) -> Result<Vec<String>, lb_common::cmd::Error> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        if let Via::Daemon(socket) = &self.via {
            // A valid path is on disk, so one absent from the store
            // directory is missing without asking. Fresh outputs of the
            // builder are all absent: then the daemon is not asked at all
            // (its per-connection fork costs ~5 ms, the copy's few percent).
            // One that is there may be invalid (a copy cut short): the
            // daemon decides.
            let on_disk: Vec<&str> = paths.iter().copied().filter(|p| may_exist(p)).collect();
            if on_disk.is_empty() {
                ui::verbose(&format!(
                    "none of the {} paths is in the store directory: all are missing",
                    paths.len()
                ));
                return Ok(paths.iter().map(|p| (*p).to_owned()).collect());
            }
            match query_daemon(socket, &on_disk) {
                Ok(valid) => {
                    ui::verbose(&format!(
                        "the Nix daemon at {} has {} of {} paths ({} more not in the store directory)",
                        socket.display(),
                        valid.len(),
                        on_disk.len(),
                        paths.len() - on_disk.len()
                    ));
                    let valid: std::collections::HashSet<String> = valid.into_iter().collect();
                    return Ok(paths
                        .iter()
                        .filter(|p| !valid.contains(**p))
                        .map(|p| (*p).to_owned())
                        .collect());
                }
                Err(e) => ui::verbose(&format!(
                    "asking the Nix daemon at {}: {e}; asking nix-store instead",
                    socket.display()
                )),
            }
        }
        copy::invalid(paths)
    }
}

/// False only when `path` is surely absent; any other answer (no
/// permission to look) leaves it to the daemon.
fn may_exist(path: &str) -> bool {
    !matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// What went wrong reaching the daemon (only ever reported with `-v`,
/// since nix-store then answers).
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error(transparent)]
    Protocol(#[from] daemon::Error),
}

/// One connection, one handshake, one `QueryValidPaths`.
fn query_daemon(socket: &Path, paths: &[&str]) -> Result<Vec<String>, QueryError> {
    let stream = UnixStream::connect(socket).map_err(QueryError::Connect)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(QueryError::Connect)?;
    // Buffered reads: the answer is read 8 bytes at a time, one system
    // call each without a buffer (two per path).
    let reader = stream.try_clone().map_err(QueryError::Connect)?;
    let mut client = daemon::handshake(daemon::Duplex {
        reader: BufReader::new(reader),
        writer: stream,
    })?;
    Ok(client.query_valid_paths(paths)?)
}

/// The local store Nix would open: the last `store` setting of nix.conf
/// (with its includes), the user's nix.conf files, then `NIX_CONFIG`
/// (Nix applies them in that order, config.cc / globals.cc
/// `loadConfFile`); unset, `NIX_REMOTE` is its default; unset, `auto`.
/// `None` when a file cannot be read: nix-store then decides.
fn store_setting(root: &Root, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let mut files = vec![conf_dir(root).ok()?.join("nix.conf")];
    files.extend(user_conf_files(env));
    let mut store = None;
    for f in &files {
        let conf = NixConf::load(f).ok()?;
        store = conf.effective("store").or(store);
    }
    if let Some(text) = env("NIX_CONFIG").filter(|t| !t.is_empty()) {
        let conf = NixConf::parse(&text, Path::new("NIX_CONFIG")).ok()?;
        store = conf.effective("store").or(store);
    }
    Some(
        store
            .or_else(|| env("NIX_REMOTE"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "auto".to_owned()),
    )
}

/// The user's nix.conf files in the order Nix applies them
/// (`getUserConfigFiles`): `NIX_USER_CONF_FILES` (colon-separated, the
/// first wins, so applied last), else `nix/nix.conf` in
/// `XDG_CONFIG_HOME` (or `~/.config`) and each of `XDG_CONFIG_DIRS`
/// (default `/etc/xdg`), the first dir winning.
fn user_conf_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = if let Some(list) = env("NIX_USER_CONF_FILES") {
        list.split(':')
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)
            .collect()
    } else {
        let home = env("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .or_else(|| env("HOME").map(|h| format!("{h}/.config")));
        let dirs = env("XDG_CONFIG_DIRS")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/etc/xdg".to_owned());
        home.into_iter()
            .chain(dirs.split(':').map(str::to_owned))
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(&d).join("nix/nix.conf"))
            .collect()
    };
    files.reverse();
    files
}

/// The daemon socket for `store`, when that store is the daemon's:
/// `NIX_DAEMON_SOCKET_PATH`, else `STATE_DIR/daemon-socket/socket`
/// (`NIX_STATE_DIR`, default `/nix/var/nix`), for `auto` and `daemon`;
/// the path of `unix://PATH`. `None` for any other store (`local`, a
/// chroot store, `ssh://`...), and for `auto` with no socket there (Nix
/// then opens the database itself).
fn daemon_socket(store: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let store = store.trim();
    // Parameters (`?trusted=1`) do not change where the daemon is.
    let (base, _query) = store.split_once('?').unwrap_or((store, ""));
    let socket = match base {
        "auto" | "daemon" | "unix://" => env("NIX_DAEMON_SOCKET_PATH")
            .filter(|p| !p.is_empty())
            .map_or_else(
                || {
                    let state = env("NIX_STATE_DIR")
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned());
                    Path::new(&state).join("daemon-socket/socket")
                },
                PathBuf::from,
            ),
        other => PathBuf::from(other.strip_prefix("unix://").filter(|p| !p.is_empty())?),
    };
    if base == "auto" && !socket.exists() {
        return None;
    }
    Some(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn socket_for_daemon_stores_only() {
        let none = env_of(&[]);
        let std = PathBuf::from("/nix/var/nix/daemon-socket/socket");
        assert_eq!(daemon_socket("daemon", &none), Some(std.clone()));
        assert_eq!(daemon_socket("unix://", &none), Some(std));
        assert_eq!(
            daemon_socket("unix:///run/nix.sock?trusted=1", &none),
            Some(PathBuf::from("/run/nix.sock"))
        );
        let over = env_of(&[("NIX_DAEMON_SOCKET_PATH", "/tmp/s")]);
        assert_eq!(
            daemon_socket("daemon", &over),
            Some(PathBuf::from("/tmp/s"))
        );
        let state = env_of(&[("NIX_STATE_DIR", "/st")]);
        assert_eq!(
            daemon_socket("daemon", &state),
            Some(PathBuf::from("/st/daemon-socket/socket"))
        );
        for other in [
            "local",
            "local?root=/r",
            "/some/chroot",
            "ssh://h",
            "file:///c",
        ] {
            assert_eq!(daemon_socket(other, &over), None, "{other}");
        }
    }

    #[test]
    fn auto_needs_the_socket_to_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("socket");
        let env = env_of(&[("NIX_DAEMON_SOCKET_PATH", sock.to_str().unwrap())]);
        assert_eq!(daemon_socket("auto", &env), None);
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(daemon_socket("auto", &env), Some(sock));
    }

    #[test]
    fn store_setting_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(Some(tmp.path())).unwrap();
        let user = tmp.path().join("user.conf");
        let user_files = user.to_str().unwrap().to_owned();
        let base = [("NIX_USER_CONF_FILES", user_files.as_str())];
        // Nothing set: auto; NIX_REMOTE is the default.
        assert_eq!(
            store_setting(&root, &env_of(&base)).as_deref(),
            Some("auto")
        );
        let remote = [base[0], ("NIX_REMOTE", "local")];
        assert_eq!(
            store_setting(&root, &env_of(&remote)).as_deref(),
            Some("local")
        );
        // nix.conf beats NIX_REMOTE; the user's file beats nix.conf;
        // NIX_CONFIG beats both.
        std::fs::create_dir_all(tmp.path().join("etc/nix")).unwrap();
        std::fs::write(tmp.path().join("etc/nix/nix.conf"), "store = daemon\n").unwrap();
        assert_eq!(
            store_setting(&root, &env_of(&remote)).as_deref(),
            Some("daemon")
        );
        std::fs::write(&user, "store = unix:///u\n").unwrap();
        assert_eq!(
            store_setting(&root, &env_of(&remote)).as_deref(),
            Some("unix:///u")
        );
        let config = [base[0], ("NIX_CONFIG", "store = local?root=/x")];
        assert_eq!(
            store_setting(&root, &env_of(&config)).as_deref(),
            Some("local?root=/x")
        );
        // An unreadable configuration: leave it to nix-store.
        std::fs::write(&user, "store=broken\n").unwrap();
        assert_eq!(store_setting(&root, &env_of(&base)), None);
    }

    #[test]
    fn user_files_first_wins() {
        let env = env_of(&[("NIX_USER_CONF_FILES", "/a:/b")]);
        assert_eq!(
            user_conf_files(&env),
            vec![PathBuf::from("/b"), PathBuf::from("/a")]
        );
        let env = env_of(&[("HOME", "/h"), ("XDG_CONFIG_DIRS", "/x:/y")]);
        assert_eq!(
            user_conf_files(&env),
            ["/y", "/x", "/h/.config"]
                .map(|d| Path::new(d).join("nix/nix.conf"))
                .to_vec()
        );
    }
}
