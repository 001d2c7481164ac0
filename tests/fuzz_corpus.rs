//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through the same checks the
//! fuzz targets run (`fuzz/checks.rs`), so a regression on a seed or a fixed crash fails the
//! normal suite without nightly or cargo-fuzz.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, check) in checks::TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (every target has a committed corpus)",
                dir.display()
            )
        });
        let mut files = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(
                result.is_ok(),
                "{}: the {target} check panicked",
                path.display()
            );
            files += 1;
        }
        assert!(files > 0, "{}: empty corpus", dir.display());
    }
}
