//! The kernel test protocol spoken by a kernel written in C without the `kernel-test` crate
//! (`tests/kernels/c_ktest.c`): a 32-bit Multiboot kernel, so the runner reads the ELF32 form
//! of the test table (36-byte entries), and the `ktest=` request reaches the kernel through its
//! Multiboot command line: from QEMU `-append` (`bootloader = "none"`) and from the `grub.cfg`
//! the runner writes (`bootloader = "grub"`, BIOS, ISO; multiboot2 and multiboot1).
//!
//! Its tests, in section order: `c::adds` (passes), `c::fails` (panics), `c::hangs` (time limit
//! 1000 ms, spins with interrupts off), `c::ignored` (flagged ignore), `c::panics_expected`
//! (should_panic, expects "boom") and `c::then_runs` (passes).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use image_runner_tests::kernels;
use image_runner_tests::runner::{Project, Run};
use image_runner_tests::runner_bin;

/// Where cargo would put a test executable called `c_ktest`: the runner takes it for a test.
const EXE: &str = "target/x86_64-unknown-linux-gnu/debug/deps/c_ktest-0123456789abcdef";

/// A project with the C kernel at [`EXE`] and `metadata` as its runner config.
fn project(metadata: &str) -> (Project, PathBuf) {
    let project = Project::new(runner_bin!(), metadata);
    let exe = project.add_kernel(&kernels::c_ktest_path(), EXE);
    (project, exe)
}

/// Runs the runner on `exe` with libtest's `args`.
fn run(project: &Project, exe: &Path, args: &[&str]) -> Run {
    run_with(project, &[], exe, args)
}

/// Runs the runner with its own `options`, then `exe` and libtest's `args`.
fn run_with(project: &Project, options: &[&str], exe: &Path, args: &[&str]) -> Run {
    let mut all: Vec<OsString> = options.iter().map(Into::into).collect();
    all.push(exe.into());
    all.extend(args.iter().map(Into::into));
    project.run(all, &[])
}

/// The `test NAME ... RESULT` lines, as (name, result) pairs in order.
fn reported(run: &Run) -> Vec<(String, String)> {
    run.stdout
        .lines()
        .filter_map(|l| {
            let (name, result) = l.strip_prefix("test ")?.split_once(" ... ")?;
            Some((name.to_owned(), result.to_owned()))
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect()
}

/// The serial log in the run folder `dir`: `boots/<n>` for the n-th boot of a run of several
/// tests, `tests/<the test's name with . for ::>` when one test runs.
fn serial_log(project: &Project, dir: &str) -> String {
    let path = project
        .target_dir()
        .join("image-runner")
        .join(EXE.strip_prefix("target/").expect("under target/"))
        .join(dir)
        .join("serial.log");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names of the kernel's own `KTEST start <index> <name>` lines in `log`.
fn started(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.strip_prefix("KTEST start "))
        .filter_map(|l| l.split_once(' ').map(|(_, name)| name))
        .collect()
}

#[test]
fn list_reads_the_elf32_table_without_booting() {
    let (project, exe) = project("");
    // The table read is the ELF32 one (EI_CLASS 1).
    let bytes = std::fs::read(&exe).expect("read the kernel");
    assert_eq!(
        (&bytes[..4], bytes[4]),
        (&b"\x7fELF"[..], 1),
        "not an ELF32 file"
    );
    // A QEMU that cannot exist: a boot would fail.
    let listed = run_with(
        &project,
        &["--set", "qemu.binary=/nonexistent/qemu"],
        &exe,
        &["--list"],
    );
    listed.assert_code(0);
    assert_eq!(
        listed.stdout,
        "c::adds: test\nc::fails: test\nc::hangs: test\nc::ignored: test\n\
         c::panics_expected: test\nc::then_runs: test\n\n6 tests, 0 benchmarks\n",
        "{listed}"
    );
    let ignored = run(
        &project,
        &exe,
        &["--list", "--format", "terse", "--ignored"],
    );
    ignored.assert_code(0);
    assert_eq!(ignored.stdout, "c::ignored: test\n", "{ignored}");
    assert!(
        !project.target_dir().join("image-runner").exists(),
        "listing booted"
    );
}

#[test]
fn direct_boot_filter_failure_timeout_and_the_test_after_the_hang() {
    let (project, exe) = project("bootloader = \"none\"\n");
    let ran = run(&project, &exe, &["adds", "fails", "hangs", "then"]);
    ran.assert_code(101);
    assert_eq!(
        reported(&ran),
        pairs(&[
            ("c::adds", "ok"),
            ("c::fails", "FAILED"),
            ("c::hangs", "FAILED"),
            ("c::then_runs", "ok"),
        ]),
        "{ran}"
    );
    // The failure carries the kernel's message; the hang, its time limit.
    let fails = ran
        .stdout
        .split("---- c::fails stdout ----\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no output section for c::fails\n{ran}"));
    assert!(
        fails.starts_with("panicked: assertion failed: 1 + 1 == 3\n"),
        "{ran}"
    );
    let hangs = ran
        .stdout
        .split("---- c::hangs stdout ----\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no output section for c::hangs\n{ran}"));
    assert!(
        hangs.starts_with("error: the test timed out after 1.0 s"),
        "{ran}"
    );
    assert!(
        ran.stdout.contains(
            "\ntest result: FAILED. 2 passed; 2 failed; 0 ignored; 0 measured; 2 filtered out;"
        ),
        "{ran}"
    );
    // One boot up to the hang, a second for the test after it; the kernel ran only the
    // requested tests.
    let first = serial_log(&project, "boots/1");
    assert_eq!(
        started(&first),
        ["c::adds", "c::fails", "c::hangs"],
        "{first}"
    );
    assert!(first.contains("\nKTEST begin 1 4\n"), "{first}");
    let second = serial_log(&project, "boots/2");
    assert_eq!(started(&second), ["c::then_runs"], "{second}");
    assert!(second.contains("\nKTEST done\n"), "{second}");
}

#[test]
fn direct_boot_should_panic_and_ignored_tests() {
    let (project, exe) = project("bootloader = \"none\"\n");
    let ran = run(&project, &exe, &["panics", "ignored"]);
    ran.assert_code(0);
    assert_eq!(
        reported(&ran),
        pairs(&[
            ("c::ignored", "ignored"),
            ("c::panics_expected - should panic", "ok"),
        ]),
        "{ran}"
    );
    let log = serial_log(&project, "tests/c.panics_expected");
    assert_eq!(started(&log), ["c::panics_expected"], "{log}");
    assert!(log.contains("\nKTEST panic 4 boom in C\n"), "{log}");

    // Asked for, the ignored test runs: the kernel runs what the request names, flag or not.
    let ignored = run(&project, &exe, &["--ignored"]);
    ignored.assert_code(0);
    assert_eq!(
        reported(&ignored),
        pairs(&[("c::ignored", "ok")]),
        "{ignored}"
    );
    let log = serial_log(&project, "tests/c.ignored");
    assert_eq!(started(&log), ["c::ignored"], "{log}");
}

/// Runs `args` through GRUB (BIOS, ISO) with `protocol`; the request reaches the kernel only
/// through the command line in GRUB's config.
fn through_grub(protocol: &str, args: &[&str]) -> (Project, Run) {
    let (project, exe) = project(&format!(
        "bootloader = \"grub\"\nboot = \"bios\"\nformat = \"iso\"\nprotocol = \"{protocol}\"\n"
    ));
    let ran = run(&project, &exe, args);
    (project, ran)
}

#[test]
fn grub_multiboot2_passes_the_request_to_the_kernel() {
    let (project, ran) = through_grub("multiboot2", &["adds", "then", "panics"]);
    ran.assert_code(0);
    assert_eq!(
        reported(&ran),
        pairs(&[
            ("c::adds", "ok"),
            ("c::panics_expected - should panic", "ok"),
            ("c::then_runs", "ok"),
        ]),
        "{ran}"
    );
    let log = serial_log(&project, "boots/1");
    // GRUB booted it, and the kernel started exactly the requested tests, in order.
    assert!(log.contains("Booting `"), "{log}");
    assert_eq!(
        started(&log),
        ["c::adds", "c::panics_expected", "c::then_runs"],
        "{log}"
    );
    assert!(log.contains("\nKTEST begin 1 3\n"), "{log}");
}

#[test]
fn grub_multiboot1_passes_the_request_to_the_kernel() {
    let (project, ran) = through_grub("multiboot1", &["adds", "fails"]);
    ran.assert_code(101);
    assert_eq!(
        reported(&ran),
        pairs(&[("c::adds", "ok"), ("c::fails", "FAILED")]),
        "{ran}"
    );
    assert!(
        ran.stdout
            .contains("\npanicked: assertion failed: 1 + 1 == 3\n"),
        "{ran}"
    );
    let log = serial_log(&project, "boots/1");
    assert!(log.contains("Booting `"), "{log}");
    assert_eq!(started(&log), ["c::adds", "c::fails"], "{log}");
}
