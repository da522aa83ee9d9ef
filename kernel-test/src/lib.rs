//! Tests inside a `no_std` kernel, one function each, for `cargo test` and `cargo nextest run`
//! through cargo-image-runner.
//!
//! A test target (`[[test]] harness = false`, `#![no_std] #![no_main]`) marks functions with
//! [`#[kernel_test]`](kernel_test); the kernel's entry point passes its command line to
//! [`run_tests`], and its `#[panic_handler]` calls [`panic()`] (or the `panic-handler` feature
//! defines one). The crate then runs the requested tests in order and reports each on serial in
//! the line protocol of `PROTOCOL.md`, which the runner reads. See README.md.

#![cfg_attr(not(test), no_std)]

pub mod arch;
pub mod backtrace;
pub mod cmdline;
mod entry;
mod panic;
pub mod report;
pub mod request;
mod run;
#[cfg(target_arch = "x86_64")]
pub mod serial;

pub use entry::{FLAG_IGNORE, FLAG_SHOULD_PANIC, MAGIC, TestEntry, tests};
/// Marks a function as a kernel test: `#[kernel_test]`, with the options `should_panic`,
/// `should_panic(expected = "text")`, `ignore` and `timeout = 500` (milliseconds) or
/// `timeout = "30s"`, comma-separated. The standard `#[should_panic]` and `#[ignore]`
/// attributes below it are understood too.
pub use kernel_test_macros::kernel_test;
pub use panic::panic;
pub use request::Request;
#[cfg(target_arch = "x86_64")]
pub use run::run_tests;
pub use run::run_tests_with;

/// Used by the `#[kernel_test]` expansion.
#[doc(hidden)]
pub use entry::private as __private;

#[cfg(test)]
extern crate self as kernel_test;

/// The attribute, the section and the guarded call, exercised in a host process.
#[cfg(test)]
mod host_tests {
    use super::*;

    #[kernel_test]
    fn plain() {}

    mod inner {
        #[crate::kernel_test(should_panic(expected = "boom"), timeout = "2s")]
        fn expects() {}

        #[crate::kernel_test]
        #[ignore]
        #[should_panic = "x"]
        fn std_attributes() {}
    }

    #[test]
    fn entries_are_collected_with_their_names_and_options() {
        let all = tests();
        assert_eq!(all.len(), 3, "three tests registered in this file");
        let find = |name: &str| {
            all.iter()
                .find(|t| t.name() == name)
                .unwrap_or_else(|| panic!("no test named {name}"))
        };
        let plain = find("host_tests::plain");
        assert_eq!(
            (plain.flags, plain.timeout_ms, plain.expected()),
            (0, 0, None)
        );
        let expects = find("host_tests::inner::expects");
        assert!(expects.should_panic() && !expects.ignored());
        assert_eq!(expects.timeout_ms, 2000);
        assert_eq!(expects.expected(), Some("boom"));
        let std = find("host_tests::inner::std_attributes");
        assert!(std.should_panic() && std.ignored());
        assert_eq!(std.expected(), Some("x"));
        assert!(all.iter().all(TestEntry::is_valid));
        assert_eq!(core::mem::size_of::<TestEntry>(), 56);
    }

    static mut REACHED: u32 = 0;
    static mut CONTEXT: arch::Context = arch::Context::ZERO;

    extern "C" fn abandons() {
        // SAFETY: single-threaded within this test.
        unsafe {
            REACHED = 1;
            arch::resume(&raw const CONTEXT);
        }
    }

    extern "C" fn returns() {
        // SAFETY: as above.
        unsafe { REACHED = 2 };
    }

    #[test]
    fn a_guarded_call_returns_once_either_way() {
        // SAFETY: `CONTEXT` is a static; `abandons` resumes from deeper on this stack.
        unsafe {
            assert!(!arch::call_guarded(abandons, &raw mut CONTEXT));
            assert_eq!((&raw const REACHED).read(), 1);
            assert!(arch::call_guarded(returns, &raw mut CONTEXT));
            assert_eq!((&raw const REACHED).read(), 2);
        }
    }
}
