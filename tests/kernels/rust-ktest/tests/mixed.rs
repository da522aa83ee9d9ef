//! A test kernel with every kind of outcome, for the runner's tests.
//!
//! Expected outcomes (test name: outcome; the index of a test is its position in the
//! `kernel_tests` section, which need not follow this file's order: look it up by name):
//!
//! | test                           | flags                                | outcome |
//! |--------------------------------|--------------------------------------|---------|
//! | math::adds                     |                                      | ok |
//! | math::subs                     |                                      | ok |
//! | math::multiplies               |                                      | ok |
//! | mem::copies                    |                                      | ok |
//! | mem::fills                     |                                      | ok |
//! | output::prints                 |                                      | ok; prints `hello from output::prints` and `second line` |
//! | output::partial_line           |                                      | ok; prints `no newline here` without a newline |
//! | panics::fails_with_message     |                                      | failed: panic `kernel test failure: value was 42` |
//! | panics::asserts_equal          |                                      | failed: panic ``assertion `left == right` failed\n  left: 41\n right: 42`` |
//! | panics::expected               | should_panic(expected = "index out of bounds") | ok (panics `index out of bounds: the len is 3 but the index is 7`) |
//! | panics::wrong_message          | should_panic(expected = "xyz")       | failed: panic `something else`, reason `panic did not contain expected string` |
//! | panics::does_not_panic         | should_panic                         | failed: reason `test did not panic as expected` |
//! | slow::ignored                  | ignore                               | ignored (without `ktest=`); ok when requested, prints `ignored test ran` |
//! | crash::triple_fault            |                                      | the machine resets mid-test (no verdict line) |
//! | crash::hangs                   | timeout = 1000 ms                    | hangs forever with interrupts off (no verdict line) |
//! | late::after_crash_one          |                                      | ok |
//! | late::after_crash_two          |                                      | ok |
//!
//! The panicking tests' panics are raised in this file (`panicked at tests/mixed.rs:LINE:COL:`),
//! and they print `KTEST frame` lines whose innermost frames symbolize to this file.

#![no_std]
#![no_main]

use core::hint::black_box;

use kernel_test::kernel_test;
use rust_ktest::println;

rust_ktest::test_kernel!();

mod math {
    use super::*;

    #[kernel_test]
    fn adds() {
        assert_eq!(black_box(2u64) + black_box(40), 42);
    }

    #[kernel_test]
    fn subs() {
        assert_eq!(black_box(50i32) - black_box(8), 42);
        assert_eq!(black_box(0u8).wrapping_sub(1), 255);
    }

    #[kernel_test]
    fn multiplies() {
        assert_eq!(black_box(6u32) * black_box(7), 42);
        assert_eq!(black_box(u64::MAX).checked_mul(2), None);
    }
}

mod mem {
    use super::*;

    #[kernel_test]
    fn copies() {
        let source = black_box([7u8; 300]);
        let mut target = [0u8; 300];
        target.copy_from_slice(&source);
        assert!(target.iter().all(|&b| b == 7));
    }

    #[kernel_test]
    fn fills() {
        let mut buffer = black_box([1u64; 128]);
        buffer.fill(black_box(0xfeed));
        assert_eq!(buffer.iter().sum::<u64>(), 128 * 0xfeed);
    }
}

mod output {
    use super::*;

    #[kernel_test]
    fn prints() {
        println!("hello from output::prints");
        println!("second line");
    }

    #[kernel_test]
    fn partial_line() {
        use core::fmt::Write as _;
        let _ = write!(kernel_test::serial::Com1, "no newline here");
    }
}

mod panics {
    use super::*;

    #[kernel_test]
    fn fails_with_message() {
        let value = black_box(42);
        panic!("kernel test failure: value was {value}");
    }

    #[kernel_test]
    fn asserts_equal() {
        assert_eq!(black_box(41), 42);
    }

    #[kernel_test(should_panic(expected = "index out of bounds"))]
    fn expected() {
        let values = black_box([1u8, 2, 3]);
        let index = black_box(7usize);
        black_box(values[index]);
    }

    #[kernel_test(should_panic(expected = "xyz"))]
    fn wrong_message() {
        if black_box(true) {
            panic!("something else");
        }
    }

    #[kernel_test(should_panic)]
    fn does_not_panic() {
        black_box(1);
    }
}

mod slow {
    use super::*;

    #[kernel_test(ignore)]
    fn ignored() {
        println!("ignored test ran");
    }
}

mod crash {
    use core::arch::asm;

    use super::*;

    /// An empty interrupt table and a breakpoint: the breakpoint, the #GP it turns into and the
    /// double fault all find no gate, so the CPU shuts down (QEMU resets, or exits with
    /// `-no-reboot`).
    #[kernel_test]
    fn triple_fault() {
        #[repr(C, packed)]
        struct Idtr {
            limit: u16,
            base: u64,
        }
        let empty = Idtr { limit: 0, base: 0 };
        // SAFETY: deliberately fatal.
        unsafe {
            asm!("lidt [{}]", "int3", in(reg) &empty, options(nostack));
        }
    }

    /// Never returns or reports: the runner must stop it at its time limit.
    #[kernel_test(timeout = 1000)]
    fn hangs() {
        loop {
            // SAFETY: halts this CPU with interrupts off, for good.
            unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
        }
    }
}

mod late {
    use super::*;

    #[kernel_test]
    fn after_crash_one() {
        assert!(black_box(usize::BITS) == 64);
    }

    #[kernel_test]
    fn after_crash_two() {
        let text = black_box("kernel");
        assert_eq!(text.len(), 6);
    }
}
