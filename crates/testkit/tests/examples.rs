//! The committed examples/ files are exactly what the generator makes (`make examples`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fom_testkit::examples::{write_examples, DEPOSIT_PDF, GIFTS_CSV};

#[test]
fn committed_examples_match_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    write_examples(dir.path()).unwrap();
    let committed = fom_testkit::repo_root().join("examples");
    for name in [DEPOSIT_PDF, GIFTS_CSV] {
        let fresh = std::fs::read(dir.path().join(name)).unwrap();
        let old = std::fs::read(committed.join(name)).unwrap();
        assert!(
            fresh == old,
            "examples/{name} is stale: run `make examples`"
        );
    }
    assert!(
        std::fs::metadata(committed.join(DEPOSIT_PDF))
            .unwrap()
            .len()
            < 16 * 1024
    );
}
