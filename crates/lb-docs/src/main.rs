//! `cargo run -p lb-docs [DIR]`: write man pages to DIR (default `man/`)
//! and completions to DIR/completions/{bash,zsh,fish}/.

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os().nth(1).map_or_else(
        || lb_docs::workspace_dir().join("man"),
        std::path::PathBuf::from,
    );
    for file in lb_docs::generate()? {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.contents)?;
        eprintln!("lb-docs: wrote {}", path.display());
    }
    Ok(())
}
