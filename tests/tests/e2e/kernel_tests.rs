//! Kernel tests (`kernel-test` crate + the runner's harness), end to end: the fixture project
//! `tests/kernels/rust-ktest` is built with cargo, and its test kernels are booted in QEMU
//! (`-kernel`, PVH: about 0.1 s a boot) by the runner under test, alone, through `cargo test`
//! and through `cargo nextest run`. The `mixed` kernel has passing, panicking, should_panic,
//! ignored, triple-faulting and hanging tests; `fifty` has fifty quick ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use image_runner_tests::runner_bin;

/// The fixture project and its two test kernels, built once for all tests here.
struct Fixture {
    project: PathBuf,
    target: PathBuf,
    mixed: PathBuf,
    fifty: PathBuf,
}

fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels/rust-ktest")
}

/// Cargo for the fixture project: its own target directory (shared by the tests here), the
/// runner under test as cargo's runner, and none of the outer `cargo test`'s variables.
fn cargo(target: &Path) -> Command {
    let mut cargo = image_runner_tests::tools::repository_cargo(&project_dir());
    cargo.env("CARGO_TARGET_DIR", target).env(
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
        runner_bin!(),
    );
    cargo
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Built once, in the target directory the protocol tests use too.
        let built = image_runner_tests::rust_ktest!();
        Fixture {
            project: project_dir(),
            mixed: built.get("mixed").to_path_buf(),
            fifty: built.get("fifty").to_path_buf(),
            target: Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust-ktest-target"),
        }
    })
}

/// What a run printed.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Ran {
    fn of(out: Output, took: Duration) -> Ran {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took,
        }
    }

    fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The result word of `test NAME ... WORD` (with ` - should panic` if present).
    fn result_of(&self, name: &str) -> Option<&str> {
        self.stdout.lines().find_map(|l| {
            let rest = l.strip_prefix("test ")?.strip_prefix(name)?;
            let rest = rest.strip_prefix(" - should panic").unwrap_or(rest);
            rest.strip_prefix(" ... ")
        })
    }

    /// The names of all `test NAME ... WORD` lines, in order.
    fn reported(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("test ")?;
                let (name, _) = rest.split_once(" ... ")?;
                Some(name.trim_end_matches(" - should panic").to_owned())
            })
            .collect()
    }
}

/// Runs the runner under test on `exe` with libtest's `args`, from the fixture project, with
/// its run files under `target` (its own per test, so tests never share a serial log).
/// The runner under test, started in `dir` with the target directory `target`, and none of
/// the outer test run's variables that would change what it reads (the package it belongs to,
/// the runner's own settings, the developer's firmware choices).
fn runner(dir: &Path, target: &Path) -> Command {
    let mut runner = Command::new(runner_bin!());
    runner.current_dir(dir).env_remove("CARGO_MANIFEST_DIR");
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("CARGO_IMAGE_RUNNER_") || name.starts_with("OVMF_") {
            runner.env_remove(&key);
        }
    }
    runner.env("CARGO_TARGET_DIR", target);
    runner
}

fn run_tests(exe: &Path, args: &[&str], target: &Path) -> Ran {
    let started = Instant::now();
    let out = runner(&fixture().project, target)
        .arg(exe)
        .args(args)
        .output()
        .expect("run the runner");
    Ran::of(out, started.elapsed())
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

#[test]
fn list_reads_the_names_from_the_executable_without_booting() {
    let f = fixture();
    // A copy in a fresh directory, with a QEMU that cannot exist: a boot would fail, and any
    // run file would appear under the directory.
    let dir = temp();
    let deps = dir.path().join("deps");
    std::fs::create_dir_all(&deps).unwrap();
    let exe = deps.join("mixed-0123456789abcdef");
    std::fs::copy(&f.mixed, &exe).unwrap();
    let started = Instant::now();
    let out = runner(dir.path(), &dir.path().join("target"))
        .args(["--set", "qemu.binary=/nonexistent/qemu"])
        .arg(&exe)
        .arg("--list")
        .output()
        .expect("run the runner");
    let ran = Ran::of(out, started.elapsed());
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    let expected: String = image_runner_tests::rust_ktest::MIXED_TESTS
        .iter()
        .map(|n| format!("{n}: test\n"))
        .collect();
    assert_eq!(
        ran.stdout,
        format!("{expected}\n17 tests, 0 benchmarks\n"),
        "{}",
        ran.context()
    );
    assert!(
        !dir.path().join("target").exists(),
        "listing created run files"
    );
    // A boot would fail (no QEMU) and leave run files; the bound only catches a listing that
    // waits on something, generously for a loaded machine.
    assert!(ran.took < Duration::from_secs(10), "took {:?}", ran.took);

    // nextest's two listings: terse, and the ignored tests alone.
    let target = temp();
    let terse = run_tests(&f.mixed, &["--list", "--format", "terse"], target.path());
    assert_eq!(terse.stdout, expected, "{}", terse.context());
    let ignored = run_tests(
        &f.mixed,
        &["--list", "--format", "terse", "--ignored"],
        target.path(),
    );
    assert_eq!(
        ignored.stdout,
        "slow::ignored: test\n",
        "{}",
        ignored.context()
    );
    assert!(
        !target.path().join("image-runner").exists(),
        "listing booted"
    );
}

#[test]
fn a_name_filter_runs_only_its_tests() {
    let f = fixture();
    let target = temp();
    let junit = target.path().join("report.xml");
    let ran = run_tests(
        &f.mixed,
        &["math", "mem::", "--junit", junit.to_str().unwrap()],
        target.path(),
    );
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    assert_eq!(
        ran.reported(),
        [
            "math::adds",
            "math::multiplies",
            "math::subs",
            "mem::copies",
            "mem::fills"
        ],
        "{}",
        ran.context()
    );
    assert!(
        ran.stdout.starts_with("\nrunning 5 tests\n"),
        "{}",
        ran.context()
    );
    assert!(
        ran.stdout.contains(
            "\ntest result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 12 filtered out; finished in "
        ),
        "{}",
        ran.context()
    );
    // The kernel ran those and only those: its own lines in the serial log say so.
    let log = std::fs::read_to_string(
        image_runner_core::context::output_dir_for(target.path(), &f.mixed)
            .join("boots/1/serial.log"),
    )
    .expect("the boot's serial log");
    let started: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("KTEST start "))
        .filter_map(|l| l.split_once(' ').map(|(_, name)| name))
        .collect();
    assert_eq!(
        started,
        [
            "math::adds",
            "math::multiplies",
            "math::subs",
            "mem::copies",
            "mem::fills"
        ],
        "{log}"
    );
    let report = std::fs::read_to_string(&junit).expect("the JUnit report");
    assert!(
        report.contains("<testsuite name=\"mixed\" tests=\"5\" failures=\"0\""),
        "{report}"
    );
    assert_eq!(report.matches("<testcase ").count(), 5, "{report}");
}

#[test]
fn exact_skip_and_ignored_select_like_libtest() {
    let f = fixture();
    let target = temp();
    let exact = run_tests(&f.mixed, &["--exact", "math::adds"], target.path());
    assert_eq!(exact.code, Some(0), "{}", exact.context());
    assert_eq!(exact.reported(), ["math::adds"], "{}", exact.context());
    assert!(
        exact.stdout.contains("16 filtered out"),
        "{}",
        exact.context()
    );
    // A substring is no match with --exact.
    let none = run_tests(&f.mixed, &["--exact", "math"], target.path());
    assert_eq!(none.code, Some(0), "{}", none.context());
    assert!(
        none.stdout.contains("running 0 tests"),
        "{}",
        none.context()
    );

    let skip = run_tests(
        &f.mixed,
        &["late", "output", "--skip", "two", "--skip", "partial"],
        target.path(),
    );
    assert_eq!(skip.code, Some(0), "{}", skip.context());
    assert_eq!(
        skip.reported(),
        ["late::after_crash_one", "output::prints"],
        "{}",
        skip.context()
    );

    // Ignored tests are reported, not run; --ignored runs them (and only them).
    let default = run_tests(&f.mixed, &["slow"], target.path());
    assert_eq!(
        default.result_of("slow::ignored"),
        Some("ignored"),
        "{}",
        default.context()
    );
    assert!(
        default.stdout.contains("0 passed; 0 failed; 1 ignored"),
        "{}",
        default.context()
    );
    let ignored = run_tests(&f.mixed, &["--ignored", "--show-output"], target.path());
    assert_eq!(ignored.code, Some(0), "{}", ignored.context());
    assert_eq!(
        ignored.reported(),
        ["slow::ignored"],
        "{}",
        ignored.context()
    );
    assert!(
        ignored
            .stdout
            .contains("---- slow::ignored stdout ----\nignored test ran\n"),
        "{}",
        ignored.context()
    );

    // An unknown argument is libtest's error.
    let bad = run_tests(&f.mixed, &["--bogus"], target.path());
    assert_eq!(bad.code, Some(101), "{}", bad.context());
    assert!(
        bad.stderr.contains("unknown option `--bogus`"),
        "{}",
        bad.context()
    );
}

#[test]
fn a_panicking_test_is_reported_with_its_message_and_source_line_and_the_rest_run() {
    let f = fixture();
    let target = temp();
    let ran = run_tests(&f.mixed, &["panics", "output"], target.path());
    assert_eq!(ran.code, Some(101), "{}", ran.context());
    assert_eq!(
        ran.result_of("panics::fails_with_message"),
        Some("FAILED"),
        "{}",
        ran.context()
    );
    assert_eq!(
        ran.result_of("panics::asserts_equal"),
        Some("FAILED"),
        "{}",
        ran.context()
    );
    assert_eq!(
        ran.result_of("panics::expected"),
        Some("ok"),
        "{}",
        ran.context()
    );
    assert_eq!(
        ran.result_of("panics::wrong_message"),
        Some("FAILED"),
        "{}",
        ran.context()
    );
    assert_eq!(
        ran.result_of("panics::does_not_panic"),
        Some("FAILED"),
        "{}",
        ran.context()
    );
    // Tests after the panics still ran, in the same boot.
    assert_eq!(
        ran.result_of("output::prints"),
        Some("ok"),
        "{}",
        ran.context()
    );
    assert!(
        ran.stdout
            .contains("3 passed; 4 failed; 0 ignored; 0 measured; 10 filtered out"),
        "{}",
        ran.context()
    );
    let block = ran
        .stdout
        .split("---- panics::fails_with_message stdout ----\n")
        .nth(1)
        .and_then(|rest| rest.split("\n---- ").next())
        .unwrap_or_else(|| panic!("no failure block:\n{}", ran.context()));
    assert!(
        block.contains("kernel test failure: value was 42"),
        "{block}"
    );
    // A frame of the backtrace names the test function and its line in the fixture's source.
    assert!(
        block
            .lines()
            .any(|l| l.contains("mixed::panics::fails_with_message at tests/mixed.rs:")),
        "{block}"
    );
    assert!(block.contains("evidence: serial log "), "{block}");
    assert!(
        ran.stdout.contains("error: test did not panic as expected"),
        "{}",
        ran.context()
    );
    assert!(
        ran.stdout
            .contains("error: panic did not contain expected string"),
        "{}",
        ran.context()
    );
    // The display is saved while the kernel goes on (it may have exited first): a screenshot
    // named is one that was written.
    for shot in ran
        .stdout
        .lines()
        .filter_map(|l| l.split("screenshot ").nth(1))
    {
        let png = std::fs::read(shot).expect("the screenshot");
        assert!(png.starts_with(b"\x89PNG\r\n"), "{shot}");
    }
}

#[test]
fn a_triple_fault_and_a_hang_fail_their_tests_and_the_rest_still_run() {
    let f = fixture();
    let target = temp();
    let ran = run_tests(&f.mixed, &["crash", "late"], target.path());
    assert_eq!(ran.code, Some(101), "{}", ran.context());
    assert_eq!(
        ran.reported(),
        [
            "crash::hangs",
            "crash::triple_fault",
            "late::after_crash_one",
            "late::after_crash_two"
        ],
        "{}",
        ran.context()
    );
    assert_eq!(ran.result_of("crash::hangs"), Some("FAILED"));
    assert_eq!(ran.result_of("crash::triple_fault"), Some("FAILED"));
    assert_eq!(ran.result_of("late::after_crash_one"), Some("ok"));
    assert_eq!(ran.result_of("late::after_crash_two"), Some("ok"));
    assert!(
        ran.stdout.contains("error: the test timed out after 1.0 s"),
        "{}",
        ran.context()
    );
    assert!(
        ran.stdout
            .contains("error: the machine stopped during this test: the guest reset"),
        "{}",
        ran.context()
    );
    // Three boots: the hang, the triple fault, and the two tests after them.
    let runs = image_runner_core::context::output_dir_for(target.path(), &f.mixed).join("boots");
    for boot in ["1", "2", "3"] {
        assert!(runs.join(boot).join("serial.log").is_file(), "{boot}");
    }
    assert!(!runs.join("4").exists());
    // The hang was stopped by the runner, which saved the display first.
    let hang = ran
        .stdout
        .split("---- crash::hangs stdout ----\n")
        .nth(1)
        .unwrap_or_default();
    let shot = hang
        .lines()
        .find_map(|l| l.split("screenshot ").nth(1))
        .unwrap_or_else(|| panic!("no screenshot named:\n{hang}"));
    let png = std::fs::read(shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n"), "{shot}");
    assert!(hang.contains("evidence: serial log "), "{hang}");
    // One second of hang, a few short boots.
    assert!(ran.took < Duration::from_secs(20), "took {:?}", ran.took);
}

#[test]
fn a_plain_run_symbolizes_frame_lines() {
    let f = fixture();
    let tests = image_runner_test_harness::table::read(&f.mixed)
        .expect("read the table")
        .expect("a table");
    let index = tests
        .iter()
        .find(|t| t.name == "panics::fails_with_message")
        .expect("the test")
        .index;
    // Not as a test: the kernel gets its request from QEMU's `-append` by hand.
    let target = temp();
    let started = Instant::now();
    let out = runner(&f.project, target.path())
        .arg("--no-test")
        .arg(&f.mixed)
        .args(["--", "-append", &format!("ktest={index}")])
        .output()
        .expect("run the runner");
    let ran = Ran::of(out, started.elapsed());
    assert!(ran.stdout.contains("KTEST frame 0x"), "{}", ran.context());
    assert!(
        ran.stderr.lines().any(|l| l.contains("= 0x")
            && l.contains("mixed::panics::fails_with_message at tests/mixed.rs:")),
        "{}",
        ran.context()
    );
}

#[test]
fn cargo_test_passes_filters_through() {
    let f = fixture();
    let out = cargo(&f.target)
        .args(["test", "--test", "mixed", "--", "math::"])
        .output()
        .expect("run cargo test");
    let ran = Ran::of(out, Duration::ZERO);
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    assert_eq!(
        ran.reported(),
        ["math::adds", "math::multiplies", "math::subs"],
        "{}",
        ran.context()
    );
}

/// Whether `cargo nextest` is installed (`scripts/install-deps` installs it).
fn nextest_missing() -> Option<String> {
    let out = Command::new(env!("CARGO"))
        .args(["nextest", "--version"])
        .output();
    match out {
        Ok(out) if out.status.success() => None,
        _ => Some("cargo-nextest is not installed (scripts/install-deps installs it)".into()),
    }
}

/// `PASS [...] (i/n) rust-ktest::mixed NAME` → the names of passed and failed tests.
fn nextest_results(stderr: &str) -> (Vec<String>, Vec<String>) {
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let mut in_summary = false;
    for line in stderr.lines() {
        let line = line.trim();
        if line.starts_with("Summary [") {
            in_summary = true;
        }
        if in_summary {
            continue;
        }
        let Some(name) = line.split_whitespace().last() else {
            continue;
        };
        if line.starts_with("PASS [") {
            passed.push(name.to_owned());
        } else if line.starts_with("FAIL [") {
            failed.push(name.to_owned());
        }
    }
    passed.sort();
    failed.sort();
    (passed, failed)
}

#[test]
fn nextest_runs_each_kernel_test_in_its_own_machine() {
    if let Some(why) = nextest_missing() {
        panic!("{why}");
    }
    let f = fixture();
    let out = cargo(&f.target)
        .args([
            "nextest",
            "run",
            "--test",
            "mixed",
            "--no-fail-fast",
            "--color",
            "never",
        ])
        .output()
        .expect("run cargo nextest");
    let ran = Ran::of(out, Duration::ZERO);
    assert_eq!(
        ran.code,
        Some(100),
        "nextest reports failures: {}",
        ran.context()
    );
    let (passed, failed) = nextest_results(&ran.stderr);
    assert_eq!(
        failed,
        [
            "crash::hangs",
            "crash::triple_fault",
            "panics::asserts_equal",
            "panics::does_not_panic",
            "panics::fails_with_message",
            "panics::wrong_message"
        ],
        "{}",
        ran.context()
    );
    assert_eq!(passed.len(), 10, "{passed:?}\n{}", ran.context());
    assert!(passed.contains(&"late::after_crash_two".to_owned()));
    assert!(
        ran.stderr
            .contains("16 tests run: 10 passed, 6 failed, 1 skipped"),
        "{}",
        ran.context()
    );

    // The ignored test, on its own.
    let out = cargo(&f.target)
        .args([
            "nextest",
            "run",
            "--test",
            "mixed",
            "--run-ignored",
            "only",
            "--color",
            "never",
        ])
        .output()
        .expect("run cargo nextest");
    let ran = Ran::of(out, Duration::ZERO);
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    assert_eq!(
        nextest_results(&ran.stderr).0,
        ["slow::ignored"],
        "{}",
        ran.context()
    );
}

#[test]
fn two_nextest_partitions_cover_every_test_once() {
    if let Some(why) = nextest_missing() {
        panic!("{why}");
    }
    let f = fixture();
    let _ = &f.fifty;
    let mut all = Vec::new();
    for part in ["count:1/2", "count:2/2"] {
        let out = cargo(&f.target)
            .args([
                "nextest",
                "run",
                "--test",
                "fifty",
                "--color",
                "never",
                "--partition",
                part,
            ])
            .arg("quick::t1")
            .output()
            .expect("run cargo nextest");
        let ran = Ran::of(out, Duration::ZERO);
        assert_eq!(ran.code, Some(0), "{part}: {}", ran.context());
        let (passed, failed) = nextest_results(&ran.stderr);
        assert!(failed.is_empty(), "{}", ran.context());
        assert_eq!(passed.len(), 5, "{part}: {passed:?}\n{}", ran.context());
        all.extend(passed);
    }
    all.sort();
    let expected: Vec<String> = (10..20).map(|n| format!("quick::t{n}")).collect();
    assert_eq!(all, expected);
}

/// Evidence for any test kernel, not only kernel-test ones: a test the runner stops at its
/// time limit names its serial log and a PNG of the display saved before QEMU was stopped.
#[test]
fn a_timed_out_test_names_its_serial_log_and_screenshot() {
    use image_runner_tests::kernels::{self, Kernel, Variant};
    use image_runner_tests::runner::Project;
    let project = Project::new(runner_bin!(), "[test]\ntimeout = 1\n");
    let run = project.run(
        [
            std::ffi::OsString::from("--test"),
            kernels::path(Kernel::Multiboot, Variant::Hang).into(),
        ],
        &[],
    );
    run.assert_code(3);
    let shot = run
        .stderr
        .split("screenshot: ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no screenshot named:\n{run}"));
    assert!(shot.ends_with("screen.png"), "{run}");
    let png = std::fs::read(shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n"), "{shot}");
    run.assert_stderr_contains("serial log: ");
}
