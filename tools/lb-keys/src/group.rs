//! join-group and leave-group, and the group lookup install and check
//! share.
//!
//! On this machine (`--root /`) membership is changed with the
//! platform's own command (gpasswd, dseditgroup), under sudo when needed.
//! Under a scratch `--root` the group database is `ROOT/etc/group`, edited
//! as gpasswd edits it (the member list of the group's line): the real
//! machine's groups are never touched.

use std::path::{Path, PathBuf};

use lb_common::cmd::Cmd;
use lb_common::exit::Status;
use lb_common::fs::{self, Apply, FileSpec};
use lb_common::paths::Root;
use lb_common::plan::{self, Applied, Inspection, Needed, Step};
use lb_common::platform::Platform;
use lb_common::{privilege, ui, usage};
use nix::unistd::{Group, User};

use crate::JoinGroupArgs;

/// The group named `name`, or an error (exit 1) saying which command
/// creates it on this platform.
pub fn lookup(name: &str) -> lb_common::Result<Group> {
    let platform = Platform::current()?;
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g),
        Ok(None) => Err(lb_common::failed!(
            "group {name}: does not exist on this machine; create it with `{}` (Nix's installer makes it for its build users), or name another with --group",
            platform.create_group_hint(name)
        )),
        Err(e) => Err(lb_common::failed!("group {name}: looking it up failed: {e}")),
    }
}

/// The user `join-group` adds by default: the one who ran sudo, else the
/// one running this process.
fn invoking_user() -> lb_common::Result<String> {
    if privilege::is_root() {
        if let Some(u) = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()) {
            return Ok(u);
        }
    }
    let uid = nix::unistd::getuid();
    match User::from_uid(uid) {
        Ok(Some(u)) => Ok(u.name),
        _ => Err(usage!(
            "uid {uid} has no user name in the user database; name the user: lb-keys join-group USER"
        )),
    }
}

fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Which way membership changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Join,
    Leave,
}

/// `join-group` and `leave-group`.
pub fn change(root: &Root, a: &JoinGroupArgs, way: Membership) -> lb_common::Result<Status> {
    let user = match &a.member {
        Some(u) => u.clone(),
        None => invoking_user()?,
    };
    if !valid_user(&user) {
        return Err(usage!(
            "user {user:?}: not a user name; use letters, digits, '.', '_' and '-'"
        ));
    }
    let group = &a.group.group;
    let mode = Apply::from(a.change);
    if !root.is_real() {
        let file = root.system(Path::new("/etc/group"))?;
        let step = GroupFile {
            file,
            group,
            user: &user,
            way,
        };
        let done = plan::apply(mode, &step)?;
        if done == Applied::Unchanged {
            ui::note(&unchanged(&user, group, way));
        }
        return Ok(done.status());
    }
    let g = lookup(group)?;
    let member = match User::from_name(&user) {
        Ok(Some(u)) => Some(u.gid == g.gid || g.mem.contains(&user)),
        _ => None,
    };
    match (member, way) {
        (Some(true), Membership::Join) | (Some(false), Membership::Leave) => {
            ui::note(&unchanged(&user, group, way));
            return Ok(Status::Ok);
        }
        // Dry-run still shows the command (e.g. the macOS one, printed on
        // Linux); running it for a stranger would only fail less clearly.
        (None, _) if mode != Apply::Write => ui::warn(&format!("no user {user} on this machine")),
        (None, _) => {
            return Err(usage!(
                "user {user}: no such user on this machine; name an existing user"
            ))
        }
        _ => {}
    }
    if way == Membership::Leave
        && User::from_name(&user)
            .ok()
            .flatten()
            .is_some_and(|u| u.gid == g.gid)
    {
        return Err(lb_common::failed!(
            "{user}: {group} is its primary group, which only usermod can change; nothing changed"
        ));
    }
    let platform = Platform::current()?;
    let argv = match way {
        Membership::Join => platform.add_to_group(&user, group),
        Membership::Leave => platform.remove_from_group(&user, group),
    };
    let step = GroupCommand {
        cmd: Cmd::from_argv(&argv),
        argv,
        user: &user,
        group,
        way,
        no_sudo: a.sudo.no_sudo,
    };
    Ok(plan::apply(mode, &step)?.status())
}

fn unchanged(user: &str, group: &str, way: Membership) -> String {
    match way {
        Membership::Join => format!("{user} is already in group {group}; nothing changed"),
        Membership::Leave => format!("{user} is not in group {group}; nothing changed"),
    }
}

fn verb(way: Membership) -> (&'static str, &'static str) {
    match way {
        Membership::Join => ("add", "to"),
        Membership::Leave => ("remove", "from"),
    }
}

/// This machine's groups: the platform's command, escalated when needed.
struct GroupCommand<'a> {
    cmd: Cmd,
    argv: Vec<String>,
    user: &'a str,
    group: &'a str,
    way: Membership,
    no_sudo: bool,
}

impl Step for GroupCommand<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        let (v, p) = verb(self.way);
        Ok(Inspection::Needed(Needed::commands(
            std::slice::from_ref(&self.cmd),
            format!("would {v} {} {p} group {}", self.user, self.group),
        )))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let (v, p) = verb(self.way);
        if privilege::is_root() {
            self.cmd.run()?;
        } else {
            let argv: Vec<std::ffi::OsString> = self.argv.iter().map(Into::into).collect();
            let doing = if self.way == Membership::Join {
                "adding"
            } else {
                "removing"
            };
            privilege::escalate(
                &format!("{doing} {} {p} group {}", self.user, self.group),
                &argv,
                self.no_sudo,
            )?;
        }
        let done = if v == "add" { "added" } else { "removed" };
        ui::note(&format!(
            "{done} {} {p} group {}; it applies to new login sessions (log out and in again)",
            self.user, self.group
        ));
        Ok(())
    }
}

/// A scratch root's `etc/group`, edited as gpasswd edits it.
struct GroupFile<'a> {
    file: PathBuf,
    group: &'a str,
    user: &'a str,
    way: Membership,
}

impl GroupFile<'_> {
    /// The file now, and as it would be; `None` when already as wanted.
    fn edit(&self) -> lb_common::Result<(String, Option<String>)> {
        let text = fs::read_optional(&self.file)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok_or_else(|| {
                lb_common::failed!(
                    "{}: absent, so group {} does not exist in this root; create it there first",
                    self.file.display(),
                    self.group
                )
            })?;
        let mut found = false;
        let mut changed = false;
        let mut out = String::with_capacity(text.len() + self.user.len() + 1);
        for line in text.split_inclusive('\n') {
            let body = line.strip_suffix('\n').unwrap_or(line);
            let fields: Vec<&str> = body.splitn(4, ':').collect();
            if fields.len() == 4 && fields[0] == self.group {
                found = true;
                let mut members: Vec<&str> =
                    fields[3].split(',').filter(|m| !m.is_empty()).collect();
                let has = members.contains(&self.user);
                match self.way {
                    Membership::Join if !has => {
                        members.push(self.user);
                        changed = true;
                    }
                    Membership::Leave if has => {
                        members.retain(|m| *m != self.user);
                        changed = true;
                    }
                    _ => {}
                }
                let nl = if line.ends_with('\n') { "\n" } else { "" };
                out.push_str(&[fields[0], fields[1], fields[2], &members.join(",")].join(":"));
                out.push_str(nl);
            } else {
                out.push_str(line);
            }
        }
        if !found {
            return Err(lb_common::failed!(
                "group {}: not in {}; create it there first",
                self.group,
                self.file.display()
            ));
        }
        Ok((text, changed.then_some(out)))
    }
}

impl Step for GroupFile<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        let (before, after) = self.edit()?;
        let Some(after) = after else {
            return Ok(Inspection::Done);
        };
        let line = |t: &str| {
            t.lines()
                .find(|l| l.split(':').next() == Some(self.group))
                .unwrap_or_default()
                .to_owned()
        };
        let (v, p) = verb(self.way);
        Ok(Inspection::Needed(Needed {
            preview: vec![
                format!("--- {}", self.file.display()),
                format!("-{}", line(&before)),
                format!("+{}", line(&after)),
            ],
            would: vec![format!(
                "would {v} {} {p} group {} in {}",
                self.user,
                self.group,
                self.file.display()
            )],
            dry_run_says: lb_common::plan::DryRunSays::Nothing,
        }))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let (_, after) = self.edit()?;
        if let Some(after) = after {
            fs::write(
                &self.file,
                after.as_bytes(),
                &FileSpec::mode(0o644),
                Apply::Write,
            )?;
            let (v, p) = verb(self.way);
            let done = if v == "add" { "added" } else { "removed" };
            ui::note(&format!(
                "{done} {} {p} group {} in {}",
                self.user,
                self.group,
                self.file.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for ok in ["alice", "a.b", "a_b-c", "u1"] {
            assert!(valid_user(ok), "{ok}");
        }
        for bad in ["", "-o", "a b", "a;b", "a/b"] {
            assert!(!valid_user(bad), "{bad}");
        }
    }

    fn edit(text: &str, user: &str, way: Membership) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("group");
        std::fs::write(&file, text).unwrap();
        let g = GroupFile {
            file,
            group: "nixbld",
            user,
            way,
        };
        g.edit().unwrap().1
    }

    #[test]
    fn the_group_line_gains_and_loses_the_member() {
        let text = "root:x:0:\nnixbld:x:30000:nixbld1,nixbld2\nusers:x:100:alice\n";
        let joined = edit(text, "alice", Membership::Join).unwrap();
        assert_eq!(
            joined,
            "root:x:0:\nnixbld:x:30000:nixbld1,nixbld2,alice\nusers:x:100:alice\n"
        );
        assert_eq!(edit(&joined, "alice", Membership::Join), None);
        assert_eq!(
            edit(&joined, "alice", Membership::Leave).as_deref(),
            Some(text)
        );
        assert_eq!(edit(text, "alice", Membership::Leave), None);
        assert_eq!(
            edit("nixbld:x:1:", "bob", Membership::Join).as_deref(),
            Some("nixbld:x:1:bob")
        );
    }
}
