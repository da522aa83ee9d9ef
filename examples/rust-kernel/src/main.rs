//! A minimal x86_64 kernel: prints a line on the first serial port and
//! leaves QEMU through the `isa-debug-exit` device.
//!
//! It is built with the ordinary host target (x86_64-unknown-linux-gnu) and
//! stable Rust: `#![no_std]`, a custom linker script (see build.rs) and a
//! PVH entry stub (src/boot.s, in the library shared with the tests) that
//! takes the CPU into long mode. QEMU's `-kernel` boots the resulting ELF
//! directly.

#![no_std]
#![no_main]

use core::fmt::Write;
use core::panic::PanicInfo;

use rust_kernel::{EXIT_FAILURE, EXIT_SUCCESS, Serial, exit_qemu};

/// Called from `boot.s` in long mode, with a stack and identity paging.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(_start_info: usize) -> ! {
    let mut serial = Serial::init();
    serial.print("Hello from a Rust kernel booted by cargo-image-runner!\n");
    exit_qemu(EXIT_SUCCESS)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let _ = writeln!(Serial, "panic: {info}");
    exit_qemu(EXIT_FAILURE)
}
