//! join-group, and the group lookup install and check share.

use lb_common::cmd::Cmd;
use lb_common::exit::Status;
use lb_common::fs::Apply;
use lb_common::plan::{self, Inspection, Needed, Step};
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

pub fn join(a: &JoinGroupArgs) -> lb_common::Result<Status> {
    let apply = Apply::from(a.change);
    let platform = Platform::current()?;
    let user = match &a.member {
        Some(u) => u.clone(),
        None => invoking_user()?,
    };
    if !valid_user(&user) {
        return Err(usage!(
            "user {user:?}: not a user name; use letters, digits, '.', '_' and '-'"
        ));
    }
    let group = lookup(&a.group.group)?;
    match User::from_name(&user) {
        Ok(Some(u)) => {
            if u.gid == group.gid || group.mem.contains(&user) {
                ui::note(&format!(
                    "{user} is already in group {}; nothing changed",
                    group.name
                ));
                return Ok(Status::Ok);
            }
        }
        // Dry-run still shows the command (e.g. the macOS one, printed on
        // Linux); running it for a stranger would only fail less clearly.
        _ if apply != Apply::Write => {
            ui::warn(&format!("no user {user} on this machine"));
        }
        _ => {
            return Err(usage!(
                "user {user}: no such user on this machine; name an existing user"
            ))
        }
    }
    let argv = platform.add_to_group(&user, &group.name);
    let step = AddToGroup {
        cmd: Cmd::from_argv(&argv),
        argv: argv.iter().map(Into::into).collect(),
        user: &user,
        group: &group.name,
        no_sudo: a.sudo.no_sudo,
    };
    Ok(plan::apply(apply, &step)?.status())
}

/// The platform's command that adds `user` to `group`, under sudo when
/// this process is not root.
struct AddToGroup<'a> {
    cmd: Cmd,
    argv: Vec<std::ffi::OsString>,
    user: &'a str,
    group: &'a str,
    no_sudo: bool,
}

impl Step for AddToGroup<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        Ok(Inspection::Needed(Needed::commands(
            std::slice::from_ref(&self.cmd),
            format!("would add {} to group {}", self.user, self.group),
        )))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let (user, group) = (self.user, self.group);
        if privilege::is_root() {
            self.cmd.run()?;
        } else {
            privilege::escalate(
                &format!("adding {user} to group {group}"),
                &self.argv,
                self.no_sudo,
            )?;
        }
        ui::note(&format!(
            "added {user} to group {group}; it applies to new login sessions (log out and in again)"
        ));
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
}
