//! Rewrites the committed example files: `cargo run -p fom-testkit --example make-examples -- DIR`.

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| fom_testkit::repo_root().join("examples"), Into::into);
    fom_testkit::examples::write_examples(std::path::Path::new(&dir))?;
    println!("wrote examples to {}", std::path::Path::new(&dir).display());
    Ok(())
}
