//! The one shape of every `check`, and the `--json` printing every
//! command that reports state shares.
//!
//! A check prints each problem as one line on stdout (the answer, with
//! its fix), then one line on stderr: `NAME: N problem(s)`, or what was
//! found healthy; it exits 1 when there is a problem. With `--json` it
//! prints one object on stdout instead:
//!
//! ```json
//! {"name": "linux-builder", "ok": false, "problems": ["..."], "summary": "1 problem(s)"}
//! ```
//!
//! The stderr line is a message (hidden by `-q`); stdout is the same data
//! in both forms.

use serde::Serialize;

use crate::status::{Result, Status};

/// What a check found, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The builder (or the thing) checked.
    pub name: String,
    /// True when there is no problem.
    pub ok: bool,
    /// One line per problem, each with its fix.
    pub problems: Vec<String>,
    /// The line said on stderr: what was found healthy, or `N problem(s)`.
    pub summary: String,
}

impl CheckReport {
    /// The report of `problems` found checking `name`; `healthy` is what
    /// to say when there are none.
    #[must_use]
    pub fn new(name: &str, problems: Vec<String>, healthy: impl Into<String>) -> Self {
        let ok = problems.is_empty();
        let summary = if ok {
            healthy.into()
        } else {
            format!("{} problem(s)", problems.len())
        };
        CheckReport {
            name: name.to_owned(),
            ok,
            problems,
            summary,
        }
    }

    /// Print it (the problems, or the JSON object, on stdout; the summary
    /// on stderr) and return the exit status: 1 when there is a problem.
    ///
    /// # Errors
    /// Writing stdout failed.
    pub fn print(&self, json: bool) -> Result<Status> {
        if json {
            print_json(self)?;
        } else {
            for p in &self.problems {
                crate::ui::out(p)?;
            }
        }
        crate::ui::note(&format!("{}: {}", self.name, self.summary));
        Ok(if self.ok { Status::Ok } else { Status::Failed })
    }
}

/// `value` as one line of JSON on stdout: the form `--json` takes in every
/// tool.
///
/// # Errors
/// Serialising failed, or writing stdout did.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string(value)?;
    crate::ui::out(&text)?;
    Ok(())
}

/// An object of text fields as one line of JSON on stdout: for
/// tools whose report is a few named strings (`lb-keys pubkey --json`).
///
/// # Errors
/// Writing stdout failed.
pub fn print_fields(fields: &[(&str, String)]) -> Result<()> {
    let map: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
        .collect();
    print_json(&map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_and_not() {
        let r = CheckReport::new("b", vec![], "b runs");
        assert!(r.ok);
        assert_eq!(r.summary, "b runs");
        let r = CheckReport::new("b", vec!["x: fix it".into(), "y".into()], "unused");
        assert!(!r.ok);
        assert_eq!(r.summary, "2 problem(s)");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"name": "b", "ok": false, "problems": ["x: fix it", "y"], "summary": "2 problem(s)"})
        );
    }
}
