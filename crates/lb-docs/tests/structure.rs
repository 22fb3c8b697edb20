//! How the tools are put together (issue 18), kept true: every write,
//! removal and process of a tool goes through lb-common's layer, and no
//! tool source file grows past 500 lines before its tests.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `tools/*/src/**.rs`, with its lines before `#[cfg(test)]`.
fn tool_sources() -> Vec<(PathBuf, Vec<String>)> {
    let tools = lb_testkit::workspace_dir().join("tools");
    let mut files = Vec::new();
    for t in std::fs::read_dir(&tools).unwrap() {
        let src = t.unwrap().path().join("src");
        if src.is_dir() {
            sources(&src, &mut files);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text
                .lines()
                .take_while(|l| l.trim() != "#[cfg(test)]")
                .map(str::to_owned)
                .collect();
            (f, code)
        })
        .collect()
}

#[test]
fn no_tool_file_holds_more_than_500_lines_before_its_tests() {
    let files = tool_sources();
    assert!(files.len() > 30, "{} files", files.len());
    for (f, code) in &files {
        assert!(
            code.len() <= 500,
            "{}: {} lines before its test module; split it by concern",
            f.display(),
            code.len()
        );
    }
}

#[test]
fn tools_write_remove_and_spawn_only_through_lb_common() {
    let forbidden = [
        "std::fs::write",
        "std::fs::remove",
        "std::fs::rename",
        "std::fs::create_dir",
        "std::fs::set_permissions",
        "std::process::Command",
        "Command::new(",
        "duct::",
        ".expression()",
    ];
    let mut found = Vec::new();
    for (f, code) in tool_sources() {
        for (n, line) in code.iter().enumerate() {
            let code_part = line.split("//").next().unwrap_or_default();
            for word in forbidden {
                if code_part.contains(word) {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "outside lb-common's plan/fs/cmd layer:\n{}",
        found.join("\n")
    );
}
