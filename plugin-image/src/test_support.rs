//! Helpers for this crate's unit tests: independent checkers (fsck.fat, mtools, sgdisk,
//! xorriso …) run the same way everywhere, and deterministic test bytes.

use std::process::Command;

/// What a checker did.
pub(crate) struct Checked {
    /// It exited with status 0.
    pub ok: bool,
    /// Its standard output, as bytes (some checkers print file contents).
    pub stdout: Vec<u8>,
    /// Standard output and error together, as text, for assertions and failure messages.
    pub text: String,
}

/// Runs an independent checker. A missing one fails the test and says what to install: these
/// tests must never pass without the tool they need.
pub(crate) fn checker(program: &str, args: &[&str]) -> Checked {
    let output = Command::new(program)
        .args(args)
        // mtools refuses images whose size is not a multiple of its idea of a track.
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "could not run `{program}` ({e}); these tests check images with independent \
                 tools: install dosfstools, mtools, gdisk, fdisk, xorriso and genisoimage \
                 (scripts/install-deps does)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Checked {
        ok: output.status.success(),
        stdout: output.stdout,
        text,
    }
}

/// Deterministic bytes that differ per seed (xorshift).
pub(crate) fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}
