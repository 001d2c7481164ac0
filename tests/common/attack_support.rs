//! Helpers shared by the tests that attack otel-run's resources (tests/attack.rs, tests/spill.rs).

use super::text;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs, to fill a disk for real; unmounted when dropped.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    /// Mounts `size` (mount(8)'s syntax: `64k`) at `at`; fails the test without root.
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("mount(8)");
        assert!(
            out.status.success(),
            "the disk-full tests mount a tmpfs and need root (CAP_SYS_ADMIN; run the suite as \
             root, as scripts/test.sh does): {}",
            text(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
