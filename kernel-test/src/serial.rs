//! The default sink: the first PC serial port (COM1, a 16550 UART at I/O port 0x3f8), which is
//! QEMU's `-serial` on x86.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::{inb, outb};

const COM1: u16 = 0x3f8;

/// Whether the last byte written through [`Com1`] ended a line.
static AT_LINE_START: AtomicBool = AtomicBool::new(true);

/// COM1. Kernels may print their own output through it too: then a protocol line that follows
/// output without a final newline still starts on a line of its own.
#[derive(Debug, Clone, Copy)]
pub struct Com1;

impl Com1 {
    /// Programs 115200 baud, 8N1, FIFOs on, UART interrupts off.
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
        Com1
    }

    /// Sends one byte, waiting until the transmitter can take it.
    pub fn write_byte(&mut self, byte: u8) {
        // SAFETY: reads the line status register and writes the data register of the UART.
        unsafe {
            while inb(COM1 + 5) & 0x20 == 0 {}
            outb(COM1, byte);
        }
        AT_LINE_START.store(byte == b'\n', Ordering::Relaxed);
    }
}

impl Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            self.write_byte(byte);
        }
        Ok(())
    }
}

/// Whether output through [`Com1`] (if any) ended its last line.
pub(crate) fn at_line_start() -> bool {
    AT_LINE_START.load(Ordering::Relaxed)
}
