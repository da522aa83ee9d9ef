//! What every test kernel of this project shares: the PVH boot code (long mode, identity
//! paging, a stack), the C memory functions, and printing on COM1. Each test target defines
//! `kernel_main` (called by the boot code with the PVH start info's address) with
//! [`test_kernel!`], which hands over to kernel-test; kernel-test's `panic-handler` feature
//! provides the `#[panic_handler]`.

#![no_std]

use core::arch::global_asm;

// The example kernel's boot code and memory functions, used as they are (one copy to keep).
#[path = "../../../../examples/rust-kernel/src/mem.rs"]
pub mod mem;

global_asm!(
    include_str!("../../../../examples/rust-kernel/src/boot.s"),
    options(att_syntax)
);

/// `core` is built with unwinding support and its unwind tables name this symbol, even though
/// with `panic = "abort"` it is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// Prints on COM1 (through kernel-test's port driver, so protocol lines still start on a line
/// of their own after output without a newline).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use ::core::fmt::Write as _;
        let _ = ::core::writeln!(::kernel_test::serial::Com1, $($arg)*);
    }};
}

/// The test kernels' entry: runs the tests the PVH command line asks for. (The panic handler
/// is kernel-test's, through its `panic-handler` feature.)
#[macro_export]
macro_rules! test_kernel {
    () => {
        #[unsafe(no_mangle)]
        extern "C" fn kernel_main(start_info: usize) -> ! {
            // SAFETY: the boot code passes the PVH start info's address; the first GiB is
            // identity-mapped.
            let cmdline = unsafe { ::kernel_test::cmdline::pvh(start_info) };
            ::kernel_test::run_tests(cmdline)
        }
    };
}
