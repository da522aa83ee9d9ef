//! A test run: every selected test in one boot, and when the machine dies in test k (reset,
//! triple fault, power-off, a hang past its time limit), test k fails with the reason and the
//! tests after it get a boot of their own.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use image_runner_core::{BootMedia, Context, Error, Pipeline, Verdict, exit_code};

use crate::libtest::{self, Mark, Outcome, Printer};
use crate::protocol::{self, Status, TestRun, Watcher};
use crate::request::{self, Request};
use crate::symbolize::Symbolizer;
use crate::table::TestCase;

/// The limit of a test without its own when the config sets none (`test.timeout = 0`).
const NO_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Runs the tests of `ctx`'s executable (whose table is `tests`) that `request` selects, prints
/// libtest's output on stdout and returns libtest's exit code (0, or 101 when a test failed;
/// 130 when interrupted). `--list` prints the names and boots nothing.
pub fn run(
    pipeline: &Pipeline<'_>,
    ctx: &Context,
    tests: &[TestCase],
    request: &Request,
) -> Result<i32, Error> {
    run_with(pipeline, ctx, tests, request, &mut |pipeline, ctx| {
        pipeline.prepare(ctx)
    })
}

/// [`run`], with each boot's media made by `prepare` (the CLI wraps the pipeline's own with its
/// handling of Ctrl-C while an image is written).
pub fn run_with(
    pipeline: &Pipeline<'_>,
    ctx: &Context,
    tests: &[TestCase],
    request: &Request,
    prepare: &mut dyn FnMut(&Pipeline<'_>, &Context) -> Result<BootMedia, Error>,
) -> Result<i32, Error> {
    run_printing(
        pipeline,
        ctx,
        tests,
        request,
        prepare,
        Box::new(std::io::stdout()),
    )
}

/// [`run_with`], printing libtest's output (not `--list`'s) to `out`.
fn run_printing(
    pipeline: &Pipeline<'_>,
    ctx: &Context,
    tests: &[TestCase],
    request: &Request,
    prepare: &mut dyn FnMut(&Pipeline<'_>, &Context) -> Result<BootMedia, Error>,
    out: Box<dyn Write + Send>,
) -> Result<i32, Error> {
    let selection = request.select(tests);
    if request.list {
        libtest::list(
            &mut std::io::stdout().lock(),
            &selection.listed(),
            request.format,
        );
        return Ok(exit_code::SUCCESS);
    }
    // A report that cannot be written is found out before the tests run, not after (when the
    // runner's error would hide their result).
    if let Some(path) = request.junit.as_deref().filter(|p| p.is_dir()) {
        return Err(Error::io(
            "write the JUnit report (`--junit`) to",
            path,
            std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "it is a directory; `--junit` takes the path of the report file",
            ),
        ));
    }
    let started = Instant::now();
    // Shared with the serial handler, which prints each test's line as the kernel has reported
    // it; the failure details are recorded once the boot is over.
    let printer = Arc::new(Mutex::new(
        Printer::new(out, request.format, request.show_output).echoed(request.nocapture),
    ));
    let lock = || printer.lock().unwrap_or_else(PoisonError::into_inner);
    lock().start(selection.run.len() + selection.ignored.len());
    // Printed among the results in name order, as libtest does.
    lock().ignored(selection.ignored.iter().map(|test| Outcome {
        name: test.name.clone(),
        should_panic: test.should_panic,
        verdict: libtest::Verdict::Ignored,
        output: String::new(),
        duration: Duration::ZERO,
    }));
    let default_limit = ctx.decisions.mode.timeout;
    let mut pending: VecDeque<&TestCase> = selection.run.iter().copied().collect();
    let single = pending.len() == 1;
    let mut symbolizer: Option<Option<Symbolizer>> = None;
    let mut boot = 0;
    let mut split_said = false;
    while !pending.is_empty() {
        boot += 1;
        let all: Vec<&TestCase> = pending.iter().copied().collect();
        // A request too long for one command line runs over several boots.
        let order: Vec<&TestCase> = all[..request::batch_len(&all)].to_vec();
        if order.len() < all.len() && !split_said {
            split_said = true;
            eprintln!(
                "note: the request for these {} tests is longer than one kernel command line takes ({} bytes of `ktest=`): they run over several boots",
                all.len(),
                request::TOKEN_MAX
            );
        }
        // One directory a boot: a single test (as nextest runs them, several at a time) gets
        // `tests/<its name>/`, so parallel runs never share a serial log or an image; a boot
        // of several tests `boots/<n>/` (apart, so no test name can be a boot's folder).
        let mut boot_ctx = ctx.clone();
        boot_ctx.output_dir = if single {
            ctx.output_dir
                .join("tests")
                .join(protocol::file_name(&order[0].name))
        } else {
            ctx.output_dir.join("boots").join(boot.to_string())
        };
        let token = request::kernel_token(&order);
        boot_ctx.config.cmdline = if ctx.config.cmdline.trim().is_empty() {
            token
        } else {
            format!("{} {token}", ctx.config.cmdline.trim())
        };
        // The protocol judges the tests; the mode's patterns are for kernels without it.
        // Test output is captured (shown for failures, or as it comes with `--nocapture`), so
        // the QEMU runner's echo of the serial port is turned off: `serial = "file"` is its
        // spelling of "wired by the runner, not shown".
        if let Some(toml::Value::String(serial)) = boot_ctx
            .sections
            .get_mut("qemu")
            .and_then(|qemu| qemu.get_mut("serial"))
            && serial == "stdio"
        {
            *serial = "file".into();
        }
        let mode = &mut boot_ctx.decisions.mode;
        mode.success_pattern = None;
        mode.failure_pattern = None;
        // The watchdog ends a hanging test (and a boot that hangs before its first test: the
        // QEMU runner calls the handler once at the start); the whole boot's limit is only a
        // backstop for runners without deadlines.
        mode.timeout = default_limit.map(|d| {
            order
                .iter()
                .map(|t| t.timeout.unwrap_or(d))
                .fold(d, |sum, t| sum.saturating_add(t))
        });
        let media = prepare(pipeline, &boot_ctx)?;
        let lines: BTreeMap<usize, (String, bool)> = order
            .iter()
            .map(|t| (t.index, (t.name.clone(), t.should_panic)))
            .collect();
        let live = Arc::clone(&printer);
        let mut watcher = Watcher::new(
            &order,
            default_limit.unwrap_or(NO_LIMIT),
            request.nocapture,
            Some(boot_ctx.output_dir.clone()),
        )
        .on_report(move |index, status| {
            if let Some((name, should_panic)) = lines.get(&index) {
                let mark = match status {
                    Status::Passed => Mark::Passed,
                    Status::Failed(_) => Mark::Failed,
                    Status::Ignored => Mark::Ignored,
                };
                live.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .line(name, *should_panic, mark);
            }
        });
        let outcome = pipeline.run(&media, &boot_ctx, &mut watcher)?;
        if outcome.verdict == Verdict::Interrupted {
            return Ok(exit_code::INTERRUPTED);
        }
        let log = outcome.serial_log.clone();
        // The test the machine died in has no result yet.
        if let Some(died_in) = watcher.running() {
            watcher.end_running(died_because(&outcome.verdict));
            if let Some(run) = watcher.finished.iter_mut().find(|r| r.index == died_in) {
                run.screenshot = outcome.screenshot.clone();
            }
        }
        // The kernel's exit counts too: a boot that left with a failure code (isa-debug-exit's
        // 0x11: "some test failed") while it reported no failing test cannot pass.
        if let Verdict::GuestFailure { reason, .. } = &outcome.verdict {
            let reported_a_failure = watcher.finished.iter().any(|r| {
                matches!(r.status, Status::Failed(_)) && order.iter().any(|t| t.index == r.index)
            });
            if !reported_a_failure {
                watcher.fail_passed(&format!(
                    "the kernel reported this test `ok` and no test failed, yet it left with a failure exit, so the results of this boot cannot be trusted: {reason}"
                ));
            }
        }
        // A should_panic test that passed had its display saved at its panic: not evidence.
        for run in &watcher.finished {
            if run.status == Status::Passed && run.panic.is_some() {
                let name = order
                    .iter()
                    .find(|t| t.index == run.index)
                    .map(|t| protocol::file_name(&t.name))
                    .unwrap_or_default();
                let _ = std::fs::remove_file(boot_ctx.output_dir.join(format!("{name}.png")));
            }
        }
        // Every line not printed yet (the test the machine died in, the last one), and the
        // FAILED line of a test whose `ok` line the boot's end contradicts.
        watcher.settle();
        let progressed = watcher
            .finished
            .iter()
            .any(|r| pending.iter().any(|t| t.index == r.index));
        for run in &watcher.finished {
            let Some(at) = pending.iter().position(|t| t.index == run.index) else {
                continue;
            };
            let test = pending.remove(at).unwrap_or(order[0]);
            // The debug information is read once, when the first backtrace needs it.
            if !run.frames.is_empty() && symbolizer.is_none() {
                symbolizer = Some(Symbolizer::open(&ctx.kernel.path));
            }
            let symbols = symbolizer.as_ref().and_then(Option::as_ref);
            // Its line was printed by the watcher's report.
            lock().record(outcome_of(test, run, symbols, log.as_deref(), request));
        }
        if pending.is_empty() {
            break;
        }
        // Tests of this boot's request that got no result (the rest wait for their boot).
        let left_of_batch = pending
            .iter()
            .any(|t| order.iter().any(|o| o.index == t.index));
        if left_of_batch && (watcher.done || watcher.bad_version.is_some() || !progressed) {
            // The kernel finished without running these, speaks another protocol, or a boot
            // ran none of them: each fails, with what the machine said, rather than booting
            // forever.
            let why = if let Some(version) = watcher.bad_version {
                format!(
                    "the kernel speaks version {version} of the test protocol; this runner speaks version 1"
                )
            } else if watcher.done {
                "the kernel said `done` without running this test although it was requested"
                    .to_owned()
            } else {
                format!(
                    "the kernel ended before running this test: {}",
                    describe_verdict(&outcome.verdict)
                )
            };
            let boot_output = String::from_utf8_lossy(&watcher.outside).into_owned();
            // Another protocol fails every boot alike: all that is left fails. Otherwise only
            // this boot's tests do, and the next boot takes the rest.
            let failing: Vec<&TestCase> = if watcher.bad_version.is_some() {
                pending.drain(..).collect()
            } else {
                let (batch, rest): (Vec<&TestCase>, Vec<&TestCase>) = pending
                    .drain(..)
                    .partition(|t| order.iter().any(|o| o.index == t.index));
                pending.extend(rest);
                batch
            };
            for test in failing {
                let run = TestRun {
                    index: test.index,
                    status: Status::Failed(why.clone()),
                    output: boot_output.clone().into_bytes(),
                    panic: None,
                    frames: Vec::new(),
                    duration: Duration::ZERO,
                    screenshot: None,
                };
                lock().result(outcome_of(test, &run, None, log.as_deref(), request));
            }
        }
    }
    let mut printer = lock();
    let code = printer.finish(selection.filtered_out, started.elapsed());
    if let Some(path) = &request.junit {
        let suite = ctx
            .kernel
            .path
            .file_name()
            .map(|n| suite_name(&n.to_string_lossy()))
            .unwrap_or_default();
        if let Err(e) = crate::junit::write(path, &suite, &printer.results) {
            // Failed tests stay libtest's 101 (the report's error is said beside it); after
            // passing tests, the missing report is the runner's error.
            if code == exit_code::SUCCESS {
                return Err(e);
            }
            eprintln!("error: {e}");
        }
    }
    Ok(code)
}

/// Why a test that was running when the machine stopped failed.
fn died_because(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Timeout { after } => format!(
            "the test timed out after {:.1} s (its time limit: the test's own `timeout`, else `test.timeout`)",
            after.as_secs_f64()
        ),
        other => format!(
            "the machine stopped during this test: {}",
            describe_verdict(other)
        ),
    }
}

fn describe_verdict(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Success => "the kernel exited without reporting the test".into(),
        Verdict::Crashed { reason } | Verdict::GuestFailure { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// A test's result as libtest prints it, with its failure details: output, panic message,
/// symbolized backtrace, reason, and where the evidence is.
fn outcome_of(
    test: &TestCase,
    run: &TestRun,
    symbols: Option<&Symbolizer>,
    log: Option<&Path>,
    request: &Request,
) -> Outcome {
    let output = String::from_utf8_lossy(&run.output).into_owned();
    let verdict = match &run.status {
        Status::Passed => libtest::Verdict::Passed,
        Status::Ignored => libtest::Verdict::Ignored,
        Status::Failed(reason) => {
            let mut details = String::new();
            if !request.nocapture && !output.is_empty() {
                details.push_str(&output);
                if !output.ends_with('\n') {
                    details.push('\n');
                }
            }
            if let Some(message) = &run.panic {
                // After the kernel's own `panicked at FILE:LINE:COL:` line the message follows
                // as libtest shows it; otherwise it says what it is.
                let located = details
                    .lines()
                    .last()
                    .is_some_and(|l| l.starts_with("panicked at "));
                if located {
                    details.push_str(&format!("{message}\n"));
                } else {
                    details.push_str(&format!("panicked: {message}\n"));
                }
            }
            if !run.frames.is_empty() {
                details.push_str("backtrace:\n");
                for (i, address) in run.frames.iter().enumerate() {
                    let text = match symbols {
                        Some(s) => s.describe(*address),
                        None => format!("{address:#x}"),
                    };
                    details.push_str(&format!("  {i:>2}: {text}\n"));
                }
            }
            if !reason.is_empty() {
                details.push_str(&format!("error: {reason}\n"));
            } else if run.panic.is_none() {
                details.push_str("error: failed\n");
            }
            let mut evidence: Vec<String> = Vec::new();
            if let Some(log) = log {
                evidence.push(format!("serial log {}", log.display()));
            }
            if let Some(shot) = run.screenshot.as_ref().filter(|p| p.is_file()) {
                evidence.push(format!("screenshot {}", shot.display()));
            }
            if !evidence.is_empty() {
                details.push_str(&format!("evidence: {}\n", evidence.join(", ")));
            }
            libtest::Verdict::Failed { details }
        }
    };
    Outcome {
        name: test.name.clone(),
        should_panic: test.should_panic,
        verdict,
        output,
        duration: run.duration,
    }
}

/// `mixed-0123456789abcdef` → `mixed`: cargo's hash is no part of a suite's name.
fn suite_name(file: &str) -> String {
    match file.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            stem.to_owned()
        }
        _ => file.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use image_runner_core::{
        Arch, BootKind, CommandSpec, Config, Control, Decisions, Kernel, KernelFormat, Registry,
        RunMode, Runner, SerialHandler,
    };

    use super::*;

    /// A runner that plays one scripted boot a call: it hands the serial text to the handler in
    /// one chunk (as a fast guest's output arrives in one read) and ends as QEMU's runner does:
    /// with the handler's verdict when it gave one, else with the boot's own (how the kernel
    /// left). Deadlines are never reached: the scripted machine ends at once.
    struct Scripted {
        boots: Mutex<VecDeque<(String, Verdict)>>,
        booted: Arc<AtomicUsize>,
    }

    impl Runner for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }

        fn command(&self, _media: &BootMedia, _ctx: &Context) -> Result<CommandSpec, Error> {
            Ok(CommandSpec::new("scripted"))
        }

        fn run(
            &self,
            _media: &BootMedia,
            _ctx: &Context,
            handler: &mut dyn SerialHandler,
        ) -> Result<image_runner_core::Outcome, Error> {
            self.booted.fetch_add(1, Ordering::SeqCst);
            let (serial, verdict) = self
                .boots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
                .expect("a scripted boot left");
            let mut control = Control::new();
            handler.output(&[], &mut control);
            handler.output(serial.as_bytes(), &mut control);
            let verdict = control.take_verdict().unwrap_or(verdict);
            Ok(image_runner_core::Outcome::new(verdict, Duration::ZERO))
        }
    }

    /// Printed output, shared with the printer.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What one scripted session did.
    struct Ran {
        code: Result<i32, Error>,
        printed: String,
        boots: usize,
    }

    /// The exit status QEMU gives a kernel that wrote 0x11 (some test failed) to isa-debug-exit,
    /// as QEMU's runner judges it.
    fn exit_0x11() -> Verdict {
        Verdict::GuestFailure {
            code: Some(0x11),
            reason: "the guest wrote 0x11 to the exit port (QEMU status 35, success is 33)".into(),
        }
    }

    /// Runs `tests` (all requested) through boots playing `boots`, with `request`.
    fn run_scripted(
        tests: &[TestCase],
        request: &Request,
        boots: Vec<(&str, Verdict)>,
        dir: &Path,
    ) -> Ran {
        let booted = Arc::new(AtomicUsize::new(0));
        let mut registry = Registry::new();
        registry.add_runner(Scripted {
            boots: Mutex::new(boots.into_iter().map(|(s, v)| (s.to_owned(), v)).collect()),
            booted: Arc::clone(&booted),
        });
        let pipeline = Pipeline::new(&registry);
        let mut mode = RunMode::choose(&Config::default(), true);
        mode.timeout = Some(Duration::from_secs(60));
        let mut ctx = Context::for_tests(
            Kernel::described(
                dir.join("kernel"),
                KernelFormat::Elf { bits: 64 },
                Arch::X86_64,
            ),
            Decisions::new(BootKind::Bios, Arch::X86_64, None, mode),
            dir,
        );
        ctx.config.runner = "scripted".into();
        let out = Shared::default();
        let code = run_printing(
            &pipeline,
            &ctx,
            tests,
            request,
            &mut |_, _| Ok(BootMedia::new(BootKind::Bios)),
            Box::new(out.clone()),
        );
        let printed =
            String::from_utf8(out.0.lock().unwrap_or_else(PoisonError::into_inner).clone())
                .expect("UTF-8 output");
        Ran {
            code,
            printed,
            boots: booted.load(Ordering::SeqCst),
        }
    }

    fn two_tests() -> Vec<TestCase> {
        vec![TestCase::new(0, "a"), TestCase::new(1, "b")]
    }

    /// The `test result:` line.
    fn result_line(printed: &str) -> &str {
        printed
            .lines()
            .find(|l| l.starts_with("test result:"))
            .unwrap_or_else(|| panic!("no result line in:\n{printed}"))
    }

    /// Item 2 of issue 18: `ok` and then `panic`/`failed` for the same test is a failure; the
    /// first report does not win.
    #[test]
    fn a_failure_after_ok_fails_the_test() {
        let dir = tempfile::tempdir().unwrap();
        let ran = run_scripted(
            &two_tests(),
            &Request::default(),
            vec![(
                "KTEST begin 1 2\nKTEST start 0 a\nKTEST ok 0\nKTEST panic 0 boom\nKTEST failed 0 panicked\nKTEST start 1 b\nKTEST ok 1\nKTEST done\n",
                exit_0x11(),
            )],
            dir.path(),
        );
        assert_eq!(ran.code.unwrap(), 101, "{}", ran.printed);
        assert!(
            result_line(&ran.printed).starts_with("test result: FAILED. 1 passed; 1 failed;"),
            "{}",
            ran.printed
        );
        assert!(
            ran.printed.contains("test a ... FAILED\n"),
            "{}",
            ran.printed
        );
        assert!(!ran.printed.contains("test a ... ok\n"), "{}", ran.printed);
        assert!(ran.printed.contains("panicked: boom\n"), "{}", ran.printed);
    }

    /// Item 2 of issue 18: a boot that reported every test passed but left through the exit
    /// device with a failure code (0x11) cannot pass.
    #[test]
    fn a_failure_exit_code_fails_a_boot_that_reported_only_passes() {
        let dir = tempfile::tempdir().unwrap();
        let ran = run_scripted(
            &two_tests(),
            &Request::default(),
            vec![(
                "KTEST begin 1 2\nKTEST start 0 a\nKTEST ok 0\nKTEST start 1 b\nKTEST ok 1\nKTEST done\n",
                exit_0x11(),
            )],
            dir.path(),
        );
        assert_eq!(ran.code.unwrap(), 101, "{}", ran.printed);
        assert!(
            result_line(&ran.printed).starts_with("test result: FAILED. 0 passed; 2 failed;"),
            "{}",
            ran.printed
        );
        assert!(ran.printed.contains("0x11"), "{}", ran.printed);

        // The same boot leaving with the success code passes.
        let ran = run_scripted(
            &two_tests(),
            &Request::default(),
            vec![(
                "KTEST begin 1 2\nKTEST start 0 a\nKTEST ok 0\nKTEST start 1 b\nKTEST ok 1\nKTEST done\n",
                Verdict::Success,
            )],
            dir.path(),
        );
        assert_eq!(ran.code.unwrap(), 0, "{}", ran.printed);
        assert!(
            ran.printed
                .starts_with("\nrunning 2 tests\ntest a ... ok\ntest b ... ok\n\ntest result: ok. 2 passed; 0 failed;"),
            "{}",
            ran.printed
        );
    }

    /// Item 4 of issue 18: lines that arrive in the same read after an unsupported protocol
    /// version change nothing: every test fails with the version message.
    #[test]
    fn nothing_after_a_version_mismatch_counts() {
        let dir = tempfile::tempdir().unwrap();
        let ran = run_scripted(
            &two_tests(),
            &Request::default(),
            vec![(
                "KTEST begin 0 2\nKTEST start 0 a\nKTEST ok 0\nKTEST start 1 b\nKTEST ok 1\nKTEST done\n",
                Verdict::Success,
            )],
            dir.path(),
        );
        assert_eq!(ran.code.unwrap(), 101, "{}", ran.printed);
        assert!(
            result_line(&ran.printed).starts_with("test result: FAILED. 0 passed; 2 failed;"),
            "{}",
            ran.printed
        );
        assert!(
            ran.printed
                .contains("the kernel speaks version 0 of the test protocol"),
            "{}",
            ran.printed
        );
        assert_eq!(ran.boots, 1);
    }

    /// Item 5 of issue 18: a requested test reported `ignored` did not run: it fails, saying so.
    #[test]
    fn a_requested_test_reported_ignored_fails() {
        let dir = tempfile::tempdir().unwrap();
        let ran = run_scripted(
            &two_tests(),
            &Request::default(),
            vec![(
                "KTEST begin 1 2\nKTEST ignored 0\nKTEST ignored 1\nKTEST done\n",
                Verdict::Success,
            )],
            dir.path(),
        );
        assert_eq!(ran.code.unwrap(), 101, "{}", ran.printed);
        assert!(
            result_line(&ran.printed)
                .starts_with("test result: FAILED. 0 passed; 2 failed; 0 ignored;"),
            "{}",
            ran.printed
        );
        assert!(
            ran.printed.contains("test a ... FAILED\n"),
            "{}",
            ran.printed
        );
        assert!(
            ran.printed.contains("reported this test as `ignored`"),
            "{}",
            ran.printed
        );
    }

    /// Item 6 of issue 18: the live lines say what the summary says: a test ended by the next
    /// `start` gets its FAILED line (not the `ok` of a late report), and a repeated `ok` prints
    /// one line.
    #[test]
    fn live_lines_agree_with_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let ran = run_scripted(
            &two_tests(),
            &Request::default(),
            vec![(
                "KTEST begin 1 2\nKTEST start 0 a\nKTEST start 1 b\nKTEST ok 0\nKTEST ok 1\nKTEST ok 1\nKTEST done\n",
                Verdict::Success,
            )],
            dir.path(),
        );
        assert_eq!(ran.code.unwrap(), 101, "{}", ran.printed);
        let lines: Vec<&str> = ran
            .printed
            .lines()
            .filter(|l| l.starts_with("test ") && !l.starts_with("test result"))
            .collect();
        assert_eq!(
            lines,
            ["test a ... FAILED", "test b ... ok"],
            "{}",
            ran.printed
        );
        assert!(
            result_line(&ran.printed).starts_with("test result: FAILED. 1 passed; 1 failed;"),
            "{}",
            ran.printed
        );
        assert!(
            ran.printed
                .contains("started another test without reporting this one"),
            "{}",
            ran.printed
        );
    }

    /// Item 22 of issue 18: a JUnit path that cannot be written never turns the tests' result
    /// into the runner's error code after they ran: a directory is refused before any boot, and
    /// a report that fails to write after failing tests leaves libtest's 101.
    #[test]
    fn a_bad_junit_path_keeps_the_test_result() {
        let dir = tempfile::tempdir().unwrap();
        let failing = || {
            vec![(
                "KTEST begin 1 1\nKTEST start 0 a\nKTEST failed 0 no\nKTEST done\n",
                exit_0x11(),
            )]
        };
        let tests = [TestCase::new(0, "a")];
        let request = Request {
            junit: Some(dir.path().to_path_buf()),
            ..Request::default()
        };
        let ran = run_scripted(&tests, &request, failing(), dir.path());
        let error = ran
            .code
            .expect_err("a directory is no report file")
            .to_string();
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
        assert_eq!(ran.boots, 0, "refused before booting");

        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let request = Request {
            junit: Some(file.join("report.xml")),
            ..Request::default()
        };
        let ran = run_scripted(&tests, &request, failing(), dir.path());
        assert_eq!(ran.code.unwrap(), 101, "{}", ran.printed);
        assert_eq!(ran.boots, 1);
    }

    #[test]
    fn suite_names_drop_cargos_hash() {
        assert_eq!(suite_name("mixed-0123456789abcdef"), "mixed");
        assert_eq!(suite_name("my-kernel"), "my-kernel");
    }

    #[test]
    fn reasons_name_what_happened() {
        let t = died_because(&Verdict::Timeout {
            after: Duration::from_millis(1500),
        });
        assert!(t.starts_with("the test timed out after 1.5 s"), "{t}");
        let c = died_because(&Verdict::Crashed {
            reason: "the guest reset".into(),
        });
        assert_eq!(c, "the machine stopped during this test: the guest reset");
    }
}
