//! The library example (`examples/library-boot`, its own cargo project) boots test kernels from
//! Rust code: its handler answers the input kernel's `login: ` prompt (the guest passes only if
//! it read `y`), and ends a run of a kernel that never exits as soon as its line appears.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use image_runner_tests::kernels::{self, Kernel, Variant};

/// Builds the example once (in its own target directory, inside the one cargo builds these
/// tests in, so that `CARGO_TARGET_DIR` is honoured and nothing lands in the source tree) and
/// returns the program.
fn example() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tests package sits in the workspace");
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("library-boot");
        let status =
            image_runner_tests::tools::repository_cargo(&root.join("examples/library-boot"))
                .args(["build", "--quiet"])
                .env("CARGO_TARGET_DIR", &target)
                .status()
                .expect("run cargo");
        assert!(status.success(), "building examples/library-boot failed");
        target.join("debug").join("library-boot")
    })
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn run(kernel: &Path, args: &[&str]) -> Ran {
    let started = Instant::now();
    let out = Command::new(example())
        .arg(kernel)
        .args(args)
        .output()
        .expect("run library-boot");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

#[test]
fn the_handler_answers_the_prompt_and_the_guest_reads_the_answer() {
    let kernel = kernels::path(Kernel::Multiboot, Variant::Input);
    let yes = run(&kernel, &["--answer", "y"]);
    assert_eq!(
        yes.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        yes.stdout,
        yes.stderr
    );
    assert!(yes.stdout.contains("login: "), "{}", yes.stdout);
    assert!(
        yes.stdout
            .contains("verdict: passed; guest exit status: 33"),
        "{}",
        yes.stdout
    );
    // Anything but `y` makes the guest fail: the answer really is what it read.
    let no = run(&kernel, &["--answer", "n"]);
    assert_eq!(
        no.code,
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        no.stdout,
        no.stderr
    );
    assert!(no.stdout.contains("guest exit status: 35"), "{}", no.stdout);
}

#[test]
fn the_handler_ends_a_run_that_would_never_end() {
    let kernel = kernels::path(Kernel::Multiboot, Variant::Hang);
    let marker = kernels::marker(Kernel::Multiboot, Variant::Hang);
    let ran = run(&kernel, &["--end-on", marker, "--timeout", "120"]);
    assert_eq!(
        ran.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        ran.stdout,
        ran.stderr
    );
    assert!(ran.stdout.contains(marker), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("verdict: passed; guest exit status: none"),
        "{}",
        ran.stdout
    );
    // Ended by the handler, not by the 120 s limit (building the example is not timed here).
    assert!(
        ran.elapsed < Duration::from_secs(60),
        "took {:?}",
        ran.elapsed
    );
}
