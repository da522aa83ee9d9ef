//! Independent checkers (sgdisk, sfdisk, fsck.fat, mtools, xorriso, isoinfo …) run the same way
//! by every test. A missing checker fails the test and names the package: no test passes
//! without the tool it needs.

use std::process::Command;

/// Runs a checker; returns whether it succeeded and everything it printed (stdout, then
/// stderr).
pub fn checker(program: &str, package: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        // mtools refuses images whose size is not a multiple of its idea of a track.
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("could not run `{program}` ({e}); install {package}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Runs a checker that must succeed; returns everything it printed.
#[track_caller]
pub fn check(program: &str, package: &str, args: &[&str]) -> String {
    let (ok, text) = checker(program, package, args);
    assert!(ok, "`{program} {}` failed:\n{text}", args.join(" "));
    text
}
