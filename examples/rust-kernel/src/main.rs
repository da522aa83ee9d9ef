//! A minimal x86_64 kernel: prints a line on the first serial port and
//! leaves QEMU through the `isa-debug-exit` device.
//!
//! It is built with the ordinary host target (x86_64-unknown-linux-gnu) and
//! stable Rust: `#![no_std]`, a custom linker script (see build.rs) and a
//! PVH entry stub (src/boot.s) that takes the CPU into long mode. QEMU's
//! `-kernel` boots the resulting ELF directly.
//!
//! Interrupts stay disabled throughout, so the red zone the host target's
//! ABI allows is harmless here.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};
use core::panic::PanicInfo;

mod mem;

global_asm!(include_str!("boot.s"), options(att_syntax));

/// COM1, the port QEMU connects to `-serial`.
const COM1: u16 = 0x3f8;
/// The `isa-debug-exit` device's port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// QEMU exits with status `(value << 1) | 1`: 33 for success ...
const EXIT_SUCCESS: u32 = 0x10;
/// ... and 35 for failure.
const EXIT_FAILURE: u32 = 0x11;

/// Called from `boot.s` in long mode, with a stack and identity paging.
#[unsafe(no_mangle)]
extern "C" fn kernel_main() -> ! {
    let mut serial = Serial::init();
    serial.print("Hello from a Rust kernel booted by cargo-image-runner!\n");
    exit_qemu(EXIT_SUCCESS)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let _ = writeln!(Serial, "panic: {info}");
    exit_qemu(EXIT_FAILURE)
}

/// `core` is built with unwinding support and its unwind tables name this
/// symbol, even though with `panic = "abort"` it is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// A 16550 UART at [`COM1`].
struct Serial;

impl Serial {
    /// Programs 115200 baud, 8N1, FIFOs on, interrupts off. Loaders usually
    /// leave the UART set up already, but nothing guarantees it.
    fn init() -> Self {
        // SAFETY: writes to the UART's own registers only.
        unsafe {
            outb(COM1 + 1, 0x00); // no interrupts
            outb(COM1 + 3, 0x80); // DLAB: the next two bytes are the divisor
            outb(COM1, 0x01); // divisor 1 = 115200 baud
            outb(COM1 + 1, 0x00);
            outb(COM1 + 3, 0x03); // 8 bits, no parity, one stop bit
            outb(COM1 + 2, 0xc7); // enable and clear the FIFOs
            outb(COM1 + 4, 0x03); // DTR + RTS
        }
        Serial
    }

    fn print(&mut self, s: &str) {
        for byte in s.bytes() {
            self.write_byte(byte);
        }
    }

    fn write_byte(&mut self, byte: u8) {
        // SAFETY: reads the line status register and writes the data
        // register of the UART; nothing else is touched.
        unsafe {
            // Wait for "transmitter holding register empty".
            while inb(COM1 + 5) & 0x20 == 0 {}
            outb(COM1, byte);
        }
    }
}

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.print(s);
        Ok(())
    }
}

/// Leaves QEMU with status `(code << 1) | 1`; halts if there is no
/// `isa-debug-exit` device (e.g. on real hardware).
fn exit_qemu(code: u32) -> ! {
    // SAFETY: port 0xf4 is the debug-exit device or nothing at all.
    unsafe {
        asm!("out dx, eax", in("dx") DEBUG_EXIT_PORT, in("eax") code, options(nomem, nostack, preserves_flags));
    }
    loop {
        // SAFETY: halting with interrupts off just stops this CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// # Safety
/// Port writes can reconfigure hardware; the caller picks a harmless one.
unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// # Safety
/// Port reads can have side effects on some devices.
unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}
