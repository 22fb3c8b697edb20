//! show: the builders Nix will use, as text or JSON.

use lb_common::conf::load_builders;
use lb_common::conf::machines::Machine;
use lb_common::exit::Status;
use lb_common::paths::Root;
use lb_common::ui;
use serde::Serialize;

/// One builder as `show` prints it.
#[derive(Debug, Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    machine: &'a Machine,
    /// The URI Nix connects to (a bare `user@host` means `ssh://`).
    effective_uri: String,
    host: &'a str,
    user: Option<&'a str>,
    /// `FILE:LINE` of the setting or machines file it came from.
    source: String,
}

pub(crate) fn show(root: &Root, json: bool) -> lb_common::Result<Status> {
    let builders = load_builders(root)?;
    let shown: Vec<Shown> = builders
        .machines
        .iter()
        .map(|m| Shown {
            machine: m,
            effective_uri: m.effective_uri(),
            host: m.host(),
            user: m.user(),
            source: m.at.to_string(),
        })
        .collect();
    if json {
        ui::out(&serde_json::to_string_pretty(&shown)?)?;
        return Ok(Status::Ok);
    }
    if shown.is_empty() {
        ui::note(&format!(
            "no builders configured (read {})",
            builders.conf_file.display()
        ));
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(",")
        }
    };
    for s in &shown {
        let m = s.machine;
        ui::out(&s.effective_uri)?;
        for (k, v) in [
            ("host", s.host.to_owned()),
            ("user", s.user.unwrap_or("-").to_owned()),
            ("systems", list(&m.systems)),
            ("ssh-key", m.ssh_key.clone().unwrap_or_else(|| "-".into())),
            ("max-jobs", m.max_jobs.to_string()),
            ("speed-factor", m.speed_factor.to_string()),
            ("supported-features", list(&m.supported_features)),
            ("mandatory-features", list(&m.mandatory_features)),
            (
                "public-host-key",
                m.public_host_key.clone().unwrap_or_else(|| "-".into()),
            ),
            ("source", s.source.clone()),
        ] {
            ui::out(&format!("  {k}: {v}"))?;
        }
    }
    Ok(Status::Ok)
}
