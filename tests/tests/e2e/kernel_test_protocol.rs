//! The `kernel-test` crate on its own, without the runner: the Rust test kernels of
//! `tests/kernels/rust-ktest` (and the example kernel's tests) are built with cargo and booted
//! in plain QEMU (`-kernel`, the request in `-append`), and their test table and serial lines are
//! checked against kernel-test/PROTOCOL.md.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use image_runner_tests::rust_ktest::{self, Boot, TableEntry, boot, index_of, read_table};

const LIMIT: Duration = Duration::from_secs(60);

struct Mixed {
    exe: &'static Path,
    table: Vec<TableEntry>,
}

impl Mixed {
    fn new() -> Mixed {
        let exe = image_runner_tests::rust_ktest!().get("mixed");
        Mixed {
            exe,
            table: read_table(exe),
        }
    }

    fn index(&self, name: &str) -> usize {
        index_of(&self.table, name)
    }

    /// `ktest=` with the indices of `names`, in that order.
    fn request(&self, names: &[&str]) -> String {
        let items: Vec<String> = names.iter().map(|n| self.index(n).to_string()).collect();
        format!("ktest={}", items.join(","))
    }

    fn boot(&self, names: &[&str]) -> Boot {
        boot(self.exe, Some(&self.request(names)), LIMIT)
    }
}

/// The lines `start` and `ok` of a passing test.
fn passes(index: usize, name: &str) -> [String; 2] {
    [
        format!("KTEST start {index} {name}"),
        format!("KTEST ok {index}"),
    ]
}

fn assert_lines(boot: &Boot, expected: &[String]) {
    assert_eq!(
        boot.protocol_lines(),
        expected,
        "serial output:\n{}",
        boot.serial
    );
}

/// The `KTEST frame` addresses printed after the `panic` line of test `index`.
fn frames_after_panic(boot: &Boot, index: usize) -> Vec<u64> {
    let lines = boot.protocol_lines();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("KTEST panic {index} ")))
        .unwrap_or_else(|| panic!("no panic line for {index}:\n{}", boot.serial));
    lines[at + 1..]
        .iter()
        .map_while(|l| l.strip_prefix("KTEST frame 0x"))
        .map(|hex| u64::from_str_radix(hex, 16).expect("hex frame address"))
        .collect()
}

#[test]
fn the_table_holds_every_test_with_its_options() {
    let mixed = Mixed::new();
    let mut names: Vec<&str> = mixed.table.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, rust_ktest::MIXED_TESTS);
    let entry = |name| &mixed.table[mixed.index(name)];
    let plain = entry("math::adds");
    assert_eq!(
        (plain.flags, plain.timeout_ms, &plain.expected),
        (0, 0, &None)
    );
    let expected = entry("panics::expected");
    assert_eq!(expected.flags, 1, "should_panic");
    assert_eq!(expected.expected.as_deref(), Some("index out of bounds"));
    assert_eq!(entry("panics::does_not_panic").expected, None);
    assert_eq!(entry("slow::ignored").flags, 2, "ignore");
    assert_eq!(entry("crash::hangs").timeout_ms, 1000);
    let runs: std::collections::HashSet<u64> = mixed.table.iter().map(|t| t.run).collect();
    assert_eq!(runs.len(), mixed.table.len(), "one function per entry");
}

#[test]
fn requested_tests_run_in_the_requested_order_even_ignored_ones() {
    let mixed = Mixed::new();
    let order = [
        "mem::copies",
        "slow::ignored",
        "math::adds",
        "output::prints",
    ];
    let run = mixed.boot(&order);
    let mut expected = vec!["KTEST begin 1 4".to_owned()];
    for name in order {
        expected.extend(passes(mixed.index(name), name));
    }
    expected.push("KTEST done".to_owned());
    assert_lines(&run, &expected);
    assert_eq!(run.code, Some(33), "0x10: all passed");
    let serial: Vec<&str> = run.serial.lines().collect();
    let prints = serial
        .iter()
        .position(|l| {
            *l == format!(
                "KTEST start {} output::prints",
                mixed.index("output::prints")
            )
        })
        .expect("start line");
    assert_eq!(serial[prints + 1], "hello from output::prints");
    assert_eq!(serial[prints + 2], "second line");
    assert!(serial.contains(&"ignored test ran"), "{}", run.serial);
}

#[test]
fn ranges_and_a_test_that_leaves_its_line_open() {
    let mixed = Mixed::new();
    let partial = mixed.index("output::partial_line");
    let run = boot(
        mixed.exe,
        Some(&format!("console=ttyS0 ktest={partial}-{partial} quiet")),
        LIMIT,
    );
    let mut expected = vec!["KTEST begin 1 1".to_owned()];
    expected.extend(passes(partial, "output::partial_line"));
    expected.push("KTEST done".to_owned());
    assert_lines(&run, &expected);
    assert!(
        run.serial.contains("no newline here\nKTEST ok"),
        "the verdict starts a line of its own:\n{}",
        run.serial
    );
}

#[test]
fn a_panicking_test_is_reported_with_message_and_frames_and_the_next_test_runs() {
    let mixed = Mixed::new();
    let run = mixed.boot(&["panics::fails_with_message", "math::subs"]);
    let failing = mixed.index("panics::fails_with_message");
    let subs = mixed.index("math::subs");
    let lines = run.protocol_lines();
    assert_eq!(
        lines[..3],
        [
            "KTEST begin 1 2".to_owned(),
            format!("KTEST start {failing} panics::fails_with_message"),
            format!("KTEST panic {failing} kernel test failure: value was 42"),
        ]
    );
    let frames = frames_after_panic(&run, failing);
    assert!(!frames.is_empty(), "no backtrace:\n{}", run.serial);
    let tail = &lines[3 + frames.len()..];
    assert_eq!(tail[0], format!("KTEST failed {failing}"));
    assert_eq!(tail[1..3], passes(subs, "math::subs"));
    assert_eq!(lines.last(), Some(&"KTEST done"));
    assert_eq!(run.code, Some(35), "0x11: some failed");
    assert!(
        run.serial
            .lines()
            .any(|l| l.starts_with("panicked at tests/mixed.rs:")),
        "{}",
        run.serial
    );

    // The frames are return addresses in the kernel: addr2line puts one in the test's file.
    let mut addr2line = Command::new("addr2line");
    addr2line.arg("-e").arg(mixed.exe);
    for frame in &frames {
        addr2line.arg(format!("{:#x}", frame - 1));
    }
    let out = addr2line.output().expect("run addr2line (binutils)");
    let places = String::from_utf8_lossy(&out.stdout);
    assert!(
        places.lines().any(|l| l.contains("tests/mixed.rs")),
        "no frame in tests/mixed.rs: {frames:x?}\n{places}"
    );
}

#[test]
fn multi_line_messages_are_escaped_onto_one_line() {
    let mixed = Mixed::new();
    let run = mixed.boot(&["panics::asserts_equal"]);
    let index = mixed.index("panics::asserts_equal");
    assert!(
        run.protocol_lines().contains(
            &format!(
                "KTEST panic {index} assertion `left == right` failed\\n  left: 41\\n right: 42"
            )
            .as_str()
        ),
        "{}",
        run.serial
    );
    assert_eq!(run.code, Some(35));
}

#[test]
fn should_panic_tests_pass_only_with_the_expected_panic() {
    let mixed = Mixed::new();
    let run = mixed.boot(&[
        "panics::expected",
        "panics::wrong_message",
        "panics::does_not_panic",
    ]);
    let [expected, wrong, none] = [
        "panics::expected",
        "panics::wrong_message",
        "panics::does_not_panic",
    ]
    .map(|n| mixed.index(n));
    let lines = run.protocol_lines();
    let wrong_frames = frames_after_panic(&run, wrong).len();
    let mut want = vec![
        "KTEST begin 1 3".to_owned(),
        format!("KTEST start {expected} panics::expected"),
        format!("KTEST panic {expected} index out of bounds: the len is 3 but the index is 7"),
        // An expected panic passes without a backtrace.
        format!("KTEST ok {expected}"),
        format!("KTEST start {wrong} panics::wrong_message"),
        format!("KTEST panic {wrong} something else"),
    ];
    want.extend(
        lines[want.len()..want.len() + wrong_frames]
            .iter()
            .map(|l| l.to_string()),
    );
    want.extend([
        format!("KTEST failed {wrong} panic did not contain expected string"),
        format!("KTEST start {none} panics::does_not_panic"),
        format!("KTEST failed {none} test did not panic as expected"),
        "KTEST done".to_owned(),
    ]);
    assert!(
        wrong_frames > 0,
        "a failing panic has a backtrace:\n{}",
        run.serial
    );
    assert_lines(&run, &want);
    assert_eq!(run.code, Some(35));
}

#[test]
fn a_triple_fault_ends_the_boot_in_the_middle_of_its_test() {
    let mixed = Mixed::new();
    let run = mixed.boot(&["math::adds", "crash::triple_fault", "math::subs"]);
    let adds = mixed.index("math::adds");
    let mut expected = vec!["KTEST begin 1 3".to_owned()];
    expected.extend(passes(adds, "math::adds"));
    expected.push(format!(
        "KTEST start {} crash::triple_fault",
        mixed.index("crash::triple_fault")
    ));
    assert_lines(&run, &expected);
    // With -no-reboot, QEMU exits on the reset instead of rebooting: status 0, not 33 or 35.
    assert_eq!(run.code, Some(0), "{}", run.serial);
}

#[test]
fn a_hanging_test_never_reports() {
    let mixed = Mixed::new();
    let hangs = mixed.index("crash::hangs");
    // Stopped a second after the test started (it can only hang there), whatever the
    // machine's load made of the boot.
    let run = rust_ktest::boot_until_line(
        mixed.exe,
        Some(&mixed.request(&["crash::hangs", "math::adds"])),
        &format!("KTEST start {hangs} crash::hangs"),
        LIMIT,
    );
    assert_eq!(run.code, None, "QEMU had to be stopped:\n{}", run.serial);
    assert_lines(
        &run,
        &[
            "KTEST begin 1 2".to_owned(),
            format!("KTEST start {hangs} crash::hangs"),
        ],
    );
}

#[test]
fn a_bad_request_fails_before_any_test() {
    let mixed = Mixed::new();
    let count = mixed.table.len();
    let run = boot(mixed.exe, Some(&format!("ktest=0,{count}")), LIMIT);
    assert!(run.protocol_lines().is_empty(), "{}", run.serial);
    assert!(
        run.serial.contains(&format!(
            "kernel-test: bad `ktest=` request `{count}`: no test has this index"
        )),
        "{}",
        run.serial
    );
    assert_eq!(run.code, Some(35));
}

#[test]
fn fifty_tests_pass_in_one_boot_in_section_order() {
    let exe = image_runner_tests::rust_ktest!().get("fifty");
    let table = read_table(exe);
    assert_eq!(table.len(), 50);
    let run = boot(exe, None, LIMIT);
    let mut expected = vec!["KTEST begin 1 50".to_owned()];
    for (index, test) in table.iter().enumerate() {
        assert!(test.name.starts_with("quick::t"), "{}", test.name);
        expected.extend(passes(index, &test.name));
    }
    expected.push("KTEST done".to_owned());
    assert_lines(&run, &expected);
    assert_eq!(run.code, Some(33));
}

#[test]
fn the_example_kernel_tests_pass_and_skip_the_ignored_one() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let exe = rust_ktest::build_example(tmp).get("kernel");
    let table = read_table(exe);
    assert!(table.len() >= 30, "about thirty tests: {}", table.len());
    let ignored: Vec<usize> = (0..table.len())
        .filter(|&i| table[i].flags & 2 != 0)
        .collect();
    assert_eq!(ignored.len(), 1);
    assert_eq!(
        table.iter().filter(|t| t.flags & 1 != 0).count(),
        1,
        "one should_panic"
    );
    let run = boot(exe, None, LIMIT);
    // The ignored test is reported but does not count as one that runs.
    let mut expected = vec![format!("KTEST begin 1 {}", table.len() - 1)];
    for (index, test) in table.iter().enumerate() {
        if index == ignored[0] {
            expected.push(format!("KTEST ignored {index}"));
        } else {
            expected.push(format!("KTEST start {index} {}", test.name));
            if test.flags & 1 != 0 {
                let panic = run
                    .protocol_lines()
                    .into_iter()
                    .find(|l| l.starts_with(&format!("KTEST panic {index} ")))
                    .unwrap_or_else(|| panic!("should_panic test did not panic:\n{}", run.serial));
                expected.push(panic.to_owned());
            }
            expected.push(format!("KTEST ok {index}"));
        }
    }
    expected.push("KTEST done".to_owned());
    assert_lines(&run, &expected);
    assert_eq!(run.code, Some(33));
}
