//! A test run: every selected test in one boot, and when the machine dies in test k (reset,
//! triple fault, power-off, a hang past its time limit), test k fails with the reason and the
//! tests after it get a boot of their own.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
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
    let selection = request.select(tests);
    if request.list {
        libtest::list(
            &mut std::io::stdout().lock(),
            &selection.listed(),
            request.format,
        );
        return Ok(exit_code::SUCCESS);
    }
    let started = Instant::now();
    // Shared with the serial handler, which prints each test's line as the kernel reports it;
    // the failure details are recorded once the boot is over.
    let printer = Arc::new(Mutex::new(
        Printer::new(std::io::stdout(), request.format, request.show_output)
            .echoed(request.nocapture),
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
    while !pending.is_empty() {
        boot += 1;
        let order: Vec<&TestCase> = pending.iter().copied().collect();
        // One directory a boot: a single test (as nextest runs them, several at a time) gets
        // one named after it, so parallel runs never share a serial log or an image.
        let label = if single {
            protocol::file_name(&order[0].name)
        } else {
            format!("boot-{boot}")
        };
        let mut boot_ctx = ctx.clone();
        boot_ctx.output_dir = ctx.output_dir.join("tests").join(label);
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
        // The test the machine died in had no line yet.
        let died_in = watcher.running();
        if died_in.is_some() {
            watcher.end_running(died_because(&outcome.verdict));
            if let Some(last) = watcher.finished.last_mut() {
                last.screenshot = outcome.screenshot.clone();
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
            let outcome = outcome_of(test, run, symbols, log.as_deref(), request);
            if died_in == Some(run.index) {
                lock().result(outcome);
            } else {
                lock().record(outcome);
            }
        }
        if pending.is_empty() {
            break;
        }
        if watcher.done || !progressed {
            // The kernel finished without running these, or a boot ran none of them: each
            // fails, with what the machine said, rather than booting forever.
            let why = if watcher.done {
                "the kernel said `done` without running this test although it was requested"
                    .to_owned()
            } else if let Some(version) = watcher.bad_version {
                format!(
                    "the kernel speaks version {version} of the test protocol; this runner speaks version 1"
                )
            } else {
                format!(
                    "the kernel ended before running this test: {}",
                    describe_verdict(&outcome.verdict)
                )
            };
            let boot_output = String::from_utf8_lossy(&watcher.outside).into_owned();
            for test in pending.drain(..) {
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
        crate::junit::write(path, &suite, &printer.results)?;
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

/// Where a boot of `ctx`'s tests keeps its files (for messages and tests).
pub fn tests_dir(ctx: &Context) -> PathBuf {
    ctx.output_dir.join("tests")
}

#[cfg(test)]
mod tests {
    use super::*;

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
