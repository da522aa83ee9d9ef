//! What every test kernel of this project shares: the PVH boot code (long mode, identity
//! paging, a stack), the C memory functions, and printing on COM1. Each test target defines
//! `kernel_main` (called by the boot code with the PVH start info's address) and its
//! `#[panic_handler]`; both hand over to kernel-test.

#![no_std]

use core::arch::global_asm;

pub mod mem;

global_asm!(include_str!("boot.s"), options(att_syntax));

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

/// The test kernels' entry and panic handler: runs the tests the PVH command line asks for.
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

        #[panic_handler]
        fn panic(info: &::core::panic::PanicInfo) -> ! {
            ::kernel_test::panic(info)
        }
    };
}
