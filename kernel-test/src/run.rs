//! The test loop.

use core::cell::UnsafeCell;
use core::fmt::Write;

use crate::arch::{self, Context};
use crate::entry::{TestEntry, tests};
use crate::report::Escaped;
use crate::request::Request;

/// How a panic inside a test ended, set by the panic handler before it resumes the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PanicVerdict {
    /// A `should_panic` test panicked with the expected text.
    Expected,
    /// The test failed; the panic line is out.
    Failed { missing_expected: bool },
}

/// What the loop and the panic handler share. One CPU runs the tests; the panic handler runs
/// on that CPU, inside the test, while the loop waits in `call_guarded`.
pub(crate) struct State {
    /// Where the protocol lines go (lifetime erased: `run_tests_with` never returns).
    pub out: Option<*mut dyn Write>,
    pub exit: fn(bool) -> !,
    /// The running test's index.
    pub current: Option<usize>,
    pub context: Context,
    pub verdict: Option<PanicVerdict>,
    /// Set while the panic handler reports, to catch a panic inside it.
    pub in_panic: bool,
}

pub(crate) struct Shared(UnsafeCell<State>);

// SAFETY: only the CPU running the tests touches it (see `State`).
unsafe impl Sync for Shared {}

pub(crate) static STATE: Shared = Shared(UnsafeCell::new(State {
    out: None,
    exit: arch::exit,
    current: None,
    context: Context::ZERO,
    verdict: None,
    in_panic: false,
}));

impl Shared {
    /// # Safety
    /// No other reference to the state is alive (single CPU; the loop does not hold one across
    /// a test, and the panic handler's ends before it resumes the loop).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get(&self) -> &mut State {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.0.get() }
    }
}

/// Runs the tests the command line asks for (`ktest=...`, or all of them), printing the
/// protocol lines on COM1, then leaves QEMU through `isa-debug-exit` (0x10: every test passed,
/// 0x11: some failed).
#[cfg(target_arch = "x86_64")]
pub fn run_tests(cmdline: &str) -> ! {
    run_tests_with(cmdline, &mut crate::serial::Com1::init(), arch::exit)
}

/// [`run_tests`] with another sink for the protocol lines and another way out: `exit(true)`
/// when every requested test passed.
pub fn run_tests_with(cmdline: &str, out: &mut dyn Write, exit: fn(bool) -> !) -> ! {
    let all = tests();
    // SAFETY: this function never returns, so the borrow of `out` outlives every use of the
    // stored pointer (the loop's and the panic handler's).
    let out: *mut (dyn Write + 'static) =
        unsafe { core::mem::transmute::<&mut dyn Write, &'static mut dyn Write>(out) };
    {
        // SAFETY: no test runs yet; this reference ends before the first one.
        let state = unsafe { STATE.get() };
        state.out = Some(out);
        state.exit = exit;
    }
    // SAFETY: `out` is valid for good (above) and only used on this CPU, by this loop and the panic handler,
    // never at the same time.
    let w = unsafe { &mut *out };

    if let Some(bad) = all.iter().position(|t| !t.is_valid()) {
        let _ = writeln!(
            w,
            "kernel-test: entry {bad} of the kernel_tests section has the wrong magic \
             (a stray object in the section, or another layout version)"
        );
        exit(false);
    }
    let request = match Request::from_cmdline(cmdline, all.len()) {
        Ok(request) => request,
        Err(e) => {
            let _ = writeln!(w, "kernel-test: {e}");
            exit(false);
        }
    };

    // The tests that will run: without a request, those flagged `ignore` are only reported.
    let count = request
        .iter()
        .filter(|s| s.requested || !all[s.index].ignored())
        .count();
    line_start(w);
    let _ = writeln!(w, "KTEST begin 1 {count}");
    let mut all_passed = true;
    for selected in request.iter() {
        let test = &all[selected.index];
        if test.ignored() && !selected.requested {
            line_start(w);
            let _ = writeln!(w, "KTEST ignored {}", selected.index);
            continue;
        }
        all_passed &= run_one(w, selected.index, test);
    }
    line_start(w);
    let _ = writeln!(w, "KTEST done");
    exit(all_passed)
}

/// Runs one test and prints its `start` and verdict lines; true if it passed.
fn run_one(w: &mut dyn Write, index: usize, test: &TestEntry) -> bool {
    line_start(w);
    let _ = writeln!(w, "KTEST start {index} {}", test.name());
    let context = {
        // SAFETY: the panic handler is not running; this reference ends here.
        let state = unsafe { STATE.get() };
        state.current = Some(index);
        state.verdict = None;
        &raw mut state.context
    };
    // SAFETY: `STATE.context` is a static, so it stays put while the test runs.
    let returned = unsafe { arch::call_guarded(test.run, context) };
    // SAFETY: the test is over (returned, or resumed from the panic handler, which is done).
    let verdict = {
        let state = unsafe { STATE.get() };
        state.current = None;
        state.verdict.take()
    };
    line_start(w);
    let (passed, reason) = match (returned, verdict, test.should_panic()) {
        (true, _, false) => (true, None),
        (true, _, true) => (false, Some("test did not panic as expected")),
        (false, Some(PanicVerdict::Expected), _) => (true, None),
        (false, Some(PanicVerdict::Failed { missing_expected }), _) => (
            false,
            missing_expected.then_some("panic did not contain expected string"),
        ),
        // Resumed without a verdict: cannot happen (only the panic handler resumes).
        (false, None, _) => (false, Some("the test was abandoned")),
    };
    let _ = match (passed, reason) {
        (true, _) => writeln!(w, "KTEST ok {index}"),
        (false, None) => writeln!(w, "KTEST failed {index}"),
        (false, Some(reason)) => {
            let _ = write!(w, "KTEST failed {index} ");
            let _ = write!(Escaped(w), "{reason}");
            writeln!(w)
        }
    };
    passed
}

/// Ends a line of test output that did not end itself, so the next protocol line starts at the
/// beginning of a line (for output through [`crate::serial::Com1`]).
pub(crate) fn line_start(w: &mut dyn Write) {
    #[cfg(target_arch = "x86_64")]
    if !crate::serial::at_line_start() {
        let _ = w.write_str("\n");
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = w;
}
