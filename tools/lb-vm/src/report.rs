//! What `status` and `config` print: a serialisable report, shown by one
//! printer as text lines or as JSON (`--json`) on stdout.

use lb_common::ui;
use serde::Serialize;

/// A report a command prints.
pub trait Report: Serialize {
    /// The report as lines of text.
    fn text(&self) -> Vec<String>;

    /// The report as JSON: its fields in their order.
    ///
    /// # Errors
    /// When it cannot be serialised.
    fn json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

/// Print `report` on stdout, as JSON when `json`.
///
/// # Errors
/// When stdout fails (a broken pipe is dealt with by `main`).
pub fn print(report: &impl Report, json: bool) -> lb_common::Result<()> {
    if json {
        ui::out(&report.json()?)?;
    } else {
        for line in report.text() {
            ui::out(&line)?;
        }
    }
    Ok(())
}

/// `-` for a value that is absent.
#[must_use]
pub fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".to_owned())
}

/// `yes` or `no`.
#[must_use]
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Two {
        b: u8,
        a: Option<u8>,
    }

    impl Report for Two {
        fn text(&self) -> Vec<String> {
            vec![
                format!("b: {}", self.b),
                format!("a: {}", or_dash(self.a.map(|a| a.to_string()))),
            ]
        }
    }

    #[test]
    fn json_keeps_the_field_order_and_text_its_lines() {
        let r = Two { b: 1, a: None };
        assert_eq!(r.json().unwrap(), "{\n  \"b\": 1,\n  \"a\": null\n}");
        assert_eq!(r.text(), ["b: 1", "a: -"]);
        assert_eq!(yes_no(true), "yes");
    }
}
