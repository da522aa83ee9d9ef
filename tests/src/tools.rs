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

/// `cargo --locked` for one of this repository's own cargo projects (an example, a fixture),
/// run from a test: in `project`, with none of the variables the outer `cargo test` (or
/// nextest) set for this test, so the inner build is the one a user typing the command there
/// gets. Callers set what they need afterwards, `CARGO_TARGET_DIR` first of all: the inner
/// build then writes into the outer build's target directory, never into the source tree.
///
/// `--locked`: the project's committed `Cargo.lock` is used as it is; when it is out of date
/// the build fails and says so instead of rewriting a file in the source tree.
pub fn repository_cargo(project: &std::path::Path) -> Command {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.arg("--locked").current_dir(project);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("CARGO_") && name != "CARGO_HOME"
            || name == "RUSTFLAGS"
            || name.starts_with("NEXTEST")
        {
            cargo.env_remove(&key);
        }
    }
    cargo
}
