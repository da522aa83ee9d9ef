//! Kernel test verdicts that a kernel speaking the protocol badly must not turn into passes
//! (issue 18, items 2, 4, 5, 6, 17 and 22), through the real runner program and its QEMU runner:
//! a stand-in for QEMU plays the serial lines (its stdout is the serial port), talks just enough
//! QMP for the runner to count the machine as started, and leaves with the exit status a kernel
//! writing to isa-debug-exit would give (33 for 0x10, 35 for 0x11). The test table is the C
//! test kernel's (`tests/kernels/c_ktest.c`): `c::adds` is index 0, `c::then_runs` index 5.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use image_runner_tests::kernels;
use image_runner_tests::runner::{Project, Run};
use image_runner_tests::runner_bin;

/// Where cargo would put a test executable called `c_ktest`: the runner takes it for a test.
const EXE: &str = "target/x86_64-unknown-linux-gnu/debug/deps/c_ktest-0123456789abcdef";

/// The begin line, and a passing `c::adds` and `c::then_runs`.
const BOTH_PASS: &str =
    "KTEST begin 1 2\nKTEST start 0 c::adds\nKTEST ok 0\nKTEST start 5 c::then_runs\nKTEST ok 5\n";

/// A project whose QEMU prints `serial` and exits with `status`; it also records each start in
/// `starts` under the project root.
fn project(serial: &str, status: i32) -> (Project, PathBuf) {
    let project = Project::new(runner_bin!(), "bootloader = \"none\"\n");
    let exe = project.add_kernel(&kernels::c_ktest_path(), EXE);
    let qemu = project.root().join("fake-qemu");
    let starts = project.root().join("starts");
    // QMP: the greeting, then the answer to the runner's `qmp_capabilities`; the serial text
    // after it, in one write; then the exit status.
    let script = format!(
        "#!/bin/sh\necho start >> {starts}\nfd=\nfor a in \"$@\"; do case \"$a\" in socket,id=image-runner-qmp,fd=*) fd=${{a##*fd=}};; esac; done\nif [ -n \"$fd\" ]; then\n  eval \"printf '%s\\n' '{{\\\"QMP\\\": {{}}}}' >&$fd\"\n  eval \"read -r line <&$fd\"\n  eval \"printf '%s\\n' '{{\\\"return\\\": {{}}, \\\"id\\\": \\\"caps\\\"}}' >&$fd\"\nfi\nprintf '%s' {serial}\nexit {status}\n",
        starts = shell_quote(&starts.to_string_lossy()),
        serial = shell_quote(serial),
    );
    image_runner_test_support::fake_tool(&qemu, &script);
    project.write(
        "image-runner.toml",
        &format!(
            "[qemu]\nbinary = {}\n",
            toml_string(&qemu.to_string_lossy())
        ),
    );
    (project, exe)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs `c::adds` and `c::then_runs` with libtest's `extra` arguments.
fn run(project: &Project, exe: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<OsString> = vec![exe.into(), "c::adds".into(), "c::then_runs".into()];
    args.extend(extra.iter().map(Into::into));
    project.run(args, &[])
}

/// How often the stand-in QEMU was started.
fn starts(project: &Project) -> usize {
    std::fs::read_to_string(project.root().join("starts"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The `test NAME ... RESULT` lines, in order.
fn reported(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("test ") && !l.starts_with("test result:"))
        .map(str::to_owned)
        .collect()
}

/// The `test result:` line.
fn result_line(run: &Run) -> &str {
    run.stdout
        .lines()
        .find(|l| l.starts_with("test result:"))
        .unwrap_or_else(|| panic!("no result line:\n{run}"))
}

/// Item 2: every test reported `ok`, but the kernel left through isa-debug-exit with 0x11
/// (QEMU status 35): the run fails, quoting the exit.
#[test]
fn a_failure_exit_after_only_passes_fails_the_run() {
    let (project, exe) = project(&format!("{BOTH_PASS}KTEST done\n"), 35);
    let ran = run(&project, &exe, &[]);
    ran.assert_code(101);
    assert!(
        result_line(&ran).starts_with("test result: FAILED. 0 passed; 2 failed;"),
        "{ran}"
    );
    assert!(ran.stdout.contains("0x11"), "{ran}");

    // The same lines with the success exit (0x10) pass.
    let (project, exe) = project_passing();
    let ran = run(&project, &exe, &[]);
    ran.assert_code(0);
    assert_eq!(
        reported(&ran),
        ["test c::adds ... ok", "test c::then_runs ... ok"],
        "{ran}"
    );
}

fn project_passing() -> (Project, PathBuf) {
    project(&format!("{BOTH_PASS}KTEST done\n"), 33)
}

/// Item 2: `ok`, then `panic` and `failed` for the same test: it failed.
#[test]
fn a_failure_after_ok_wins() {
    let (project, exe) = project(
        "KTEST begin 1 2\nKTEST start 0 c::adds\nKTEST ok 0\nKTEST panic 0 boom\nKTEST failed 0\nKTEST start 5 c::then_runs\nKTEST ok 5\nKTEST done\n",
        35,
    );
    let ran = run(&project, &exe, &[]);
    ran.assert_code(101);
    assert_eq!(
        reported(&ran),
        ["test c::adds ... FAILED", "test c::then_runs ... ok"],
        "{ran}"
    );
    assert!(
        result_line(&ran).starts_with("test result: FAILED. 1 passed; 1 failed;"),
        "{ran}"
    );
}

/// Item 4: an unsupported protocol version, with passing lines in the same write: nothing
/// passes, and the machine is not booted again.
#[test]
fn a_version_mismatch_fails_every_test_whatever_follows() {
    let (project, exe) = project(
        &format!(
            "KTEST begin 0 2\n{}KTEST done\n",
            BOTH_PASS.trim_start_matches("KTEST begin 1 2\n")
        ),
        33,
    );
    let ran = run(&project, &exe, &[]);
    ran.assert_code(101);
    assert!(
        result_line(&ran).starts_with("test result: FAILED. 0 passed; 2 failed;"),
        "{ran}"
    );
    assert!(
        ran.stdout
            .contains("the kernel speaks version 0 of the test protocol"),
        "{ran}"
    );
    assert_eq!(starts(&project), 1, "{ran}");
}

/// Item 5: requested tests reported `ignored` did not run: they fail.
#[test]
fn requested_tests_reported_ignored_fail() {
    let (project, exe) = project(
        "KTEST begin 1 2\nKTEST ignored 0\nKTEST ignored 5\nKTEST done\n",
        33,
    );
    let ran = run(&project, &exe, &[]);
    ran.assert_code(101);
    assert!(
        result_line(&ran).starts_with("test result: FAILED. 0 passed; 2 failed; 0 ignored;"),
        "{ran}"
    );
    assert!(
        ran.stdout.contains("reported this test as `ignored`"),
        "{ran}"
    );
}

/// Item 6: one live line a test, saying what the summary says: `c::adds`, ended by the next
/// `start`, is FAILED (its late `ok` does not count); the repeated `ok` prints one line.
#[test]
fn live_lines_agree_with_the_summary() {
    let (project, exe) = project(
        "KTEST begin 1 2\nKTEST start 0 c::adds\nKTEST start 5 c::then_runs\nKTEST ok 0\nKTEST ok 5\nKTEST ok 5\nKTEST done\n",
        35,
    );
    let ran = run(&project, &exe, &[]);
    ran.assert_code(101);
    assert_eq!(
        reported(&ran),
        ["test c::adds ... FAILED", "test c::then_runs ... ok"],
        "{ran}"
    );
    assert!(
        result_line(&ran).starts_with("test result: FAILED. 1 passed; 1 failed;"),
        "{ran}"
    );
}

/// Items 17 and 22: the JUnit report holds no character XML cannot (ESC, U+FFFE from the
/// test's output); `--junit DIR` is refused before booting; a report that cannot be written
/// after a failing test leaves libtest's 101.
#[test]
fn junit_reports_are_xml_and_never_hide_the_result() {
    let (project, exe) = project(
        "KTEST begin 1 2\nKTEST start 0 c::adds\nred \u{1b}[31m odd \u{fffe}\u{ffff}\nKTEST failed 0 bad\nKTEST start 5 c::then_runs\nKTEST ok 5\nKTEST done\n",
        35,
    );
    let report = project.root().join("report.xml");
    let ran = run(&project, &exe, &["--junit", &report.to_string_lossy()]);
    ran.assert_code(101);
    let xml = std::fs::read_to_string(&report).expect("the report");
    assert!(
        !xml.contains(['\u{1b}', '\u{fffe}', '\u{ffff}']),
        "characters XML 1.0 cannot hold:\n{xml}"
    );
    assert!(
        xml.contains("red \\u{1b}[31m odd \\u{fffe}\\u{ffff}"),
        "{xml}"
    );

    let starts_before = starts(&project);
    let ran = run(
        &project,
        &exe,
        &["--junit", &project.root().to_string_lossy()],
    );
    ran.assert_code(2)
        .assert_stderr_contains("it is a directory");
    assert_eq!(starts(&project), starts_before, "booted: {ran}");

    let under_a_file = project.root().join("starts").join("report.xml");
    let ran = run(
        &project,
        &exe,
        &["--junit", &under_a_file.to_string_lossy()],
    );
    ran.assert_code(101);
    assert!(ran.stderr.contains("error: "), "{ran}");
}
