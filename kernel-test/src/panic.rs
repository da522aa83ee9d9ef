//! Reporting a panic inside a test, and going on with the next test.

use core::fmt::Write;
use core::panic::PanicInfo;

use crate::arch;
use crate::backtrace::print_callers;
use crate::entry::tests;
use crate::report::{Contains, Escaped};
use crate::run::{PanicVerdict, STATE, line_start};

/// The panic handler of a kernel under test: call it from the kernel's `#[panic_handler]` (or
/// enable the `panic-handler` feature, which defines one that does).
///
/// Inside a test it prints `panicked at <file>:<line>:<column>:` (ordinary output, like libtest's
/// captured text), `KTEST panic <index> <message>`, and, unless the test expected this panic,
/// `KTEST frame 0x...` lines; then it abandons the test and the loop goes on with the next one.
/// Abandoning a test runs no destructors: whatever the test held stays held (locks, heap
/// allocations, a disabled interrupt flag is restored though, see README).
///
/// Outside a test (or when a panic happens while reporting one) it prints the panic and leaves
/// with the failure status.
#[inline(never)]
pub fn panic(info: &PanicInfo) -> ! {
    // SAFETY: the loop is inside `call_guarded` (or not running); nothing else holds the state.
    let state = unsafe { STATE.get() };
    let exit = state.exit;
    let Some(out) = state.out else {
        // Before `run_tests`: there is nowhere set up to report to.
        #[cfg(target_arch = "x86_64")]
        {
            let _ = writeln!(
                crate::serial::Com1::init(),
                "kernel-test: panic before the tests started: {info}"
            );
        }
        exit(false)
    };
    // SAFETY: see `run_tests_with`: the loop is not using the sink while a test runs.
    let w = unsafe { &mut *out };
    let index = match state.current {
        _ if state.in_panic => {
            line_start(w);
            let _ = writeln!(w, "kernel-test: panic while reporting a panic: {info}");
            exit(false)
        }
        Some(index) => index,
        None => {
            line_start(w);
            let _ = writeln!(w, "kernel-test: panic outside a test: {info}");
            exit(false)
        }
    };
    state.in_panic = true;
    let test = &tests()[index];

    line_start(w);
    if let Some(location) = info.location() {
        let _ = writeln!(w, "panicked at {location}:");
    }
    let message = info.message();
    let _ = write!(w, "KTEST panic {index} ");
    let _ = write!(Escaped(w), "{message}");
    let _ = writeln!(w);

    let verdict = if test.should_panic() {
        match test.expected() {
            None => PanicVerdict::Expected,
            Some(expected) => {
                let mut contains = Contains::new(expected);
                let _ = write!(contains, "{message}");
                if contains.found() {
                    PanicVerdict::Expected
                } else {
                    PanicVerdict::Failed {
                        missing_expected: true,
                    }
                }
            }
        }
    } else {
        PanicVerdict::Failed {
            missing_expected: false,
        }
    };
    if verdict != PanicVerdict::Expected {
        // From the caller of this function (the kernel's panic handler) outwards.
        let _ = print_callers(w, state.context.stack_top());
    }

    if !arch::CAN_RESUME {
        // No way back into the loop on this CPU: report and stop; the runner boots again for
        // the tests after this one.
        let _ = match verdict {
            PanicVerdict::Expected => writeln!(w, "KTEST ok {index}"),
            PanicVerdict::Failed {
                missing_expected: true,
            } => writeln!(
                w,
                "KTEST failed {index} panic did not contain expected string"
            ),
            PanicVerdict::Failed { .. } => writeln!(w, "KTEST failed {index}"),
        };
        exit(false)
    }
    state.verdict = Some(verdict);
    state.in_panic = false;
    let context = &raw const state.context;
    // SAFETY: the loop filled `context` in `call_guarded` for this test, which is still running
    // on this stack, below the saved stack pointer.
    unsafe { arch::resume(context) }
}

#[cfg(all(feature = "panic-handler", not(test)))]
#[panic_handler]
fn panic_handler(info: &PanicInfo) -> ! {
    panic(info)
}
