//! What the kernel and its test kernel share: the PVH entry stub (src/boot.s) that takes the
//! CPU into long mode, the C memory functions, the serial port and the way out of QEMU.
//!
//! The boot code calls `kernel_main(start_info: usize) -> !`, which each executable defines:
//! `src/main.rs` for the kernel, `tests/kernel.rs` for its tests. `start_info` is the physical
//! address of the PVH start info, which holds the kernel command line.
//!
//! Interrupts stay disabled throughout, so the red zone the host target's ABI allows is
//! harmless here.

#![no_std]

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};

pub mod mem;

global_asm!(include_str!("boot.s"), options(att_syntax));

/// COM1, the port QEMU connects to `-serial`.
pub const COM1: u16 = 0x3f8;
/// The `isa-debug-exit` device's port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// QEMU exits with status `(value << 1) | 1`: 33 for success ...
pub const EXIT_SUCCESS: u32 = 0x10;
/// ... and 35 for failure.
pub const EXIT_FAILURE: u32 = 0x11;

/// `core` is built with unwinding support and its unwind tables name this
/// symbol, even though with `panic = "abort"` it is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// A 16550 UART at [`COM1`].
#[derive(Debug, Clone, Copy)]
pub struct Serial;

impl Serial {
    /// Programs 115200 baud, 8N1, FIFOs on, interrupts off. Loaders usually
    /// leave the UART set up already, but nothing guarantees it.
    pub fn init() -> Self {
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

    pub fn print(&mut self, s: &str) {
        for byte in s.bytes() {
            self.write_byte(byte);
        }
    }

    pub fn write_byte(&mut self, byte: u8) {
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
pub fn exit_qemu(code: u32) -> ! {
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
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// # Safety
/// Port reads can have side effects on some devices.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}
