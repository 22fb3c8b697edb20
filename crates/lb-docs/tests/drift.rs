//! The committed man pages and completions match the code.

#[test]
fn man_pages_and_completions_match_the_code() {
    let dir = lb_docs::workspace_dir().join("man");
    let mut stale = Vec::new();
    for file in lb_docs::generate().unwrap() {
        let path = dir.join(&file.path);
        if std::fs::read(&path).ok().as_deref() != Some(file.contents.as_slice()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {}\nregenerate with `cargo run -p lb-docs` and commit man/",
        stale.join(", ")
    );
}

#[test]
fn every_page_has_the_hand_written_sections() {
    for (cmd, extra) in lb_docs::tools() {
        let page = String::from_utf8(lb_docs::man_page(&cmd, &extra).unwrap()).unwrap();
        for section in [
            "EXIT STATUS",
            "ENVIRONMENT",
            "EXAMPLES",
            "SYNOPSIS",
            "OPTIONS",
        ] {
            assert!(
                page.contains(&format!(".SH \"{section}\""))
                    || page.contains(&format!(".SH {section}")),
                "{} lacks {section}",
                cmd.get_name()
            );
        }
    }
}
