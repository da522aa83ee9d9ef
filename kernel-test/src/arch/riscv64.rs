//! riscv64: leaving QEMU's `virt` machine through the SiFive test device at 0x100000. Not
//! compiled where this crate is developed (no riscv64 Rust target there).

use core::arch::asm;

/// Writes `0x5555` (pass: QEMU exits 0) or `(1 << 16) | 0x3333` (fail: QEMU exits 1).
pub fn exit(success: bool) -> ! {
    let value: u32 = if success { 0x5555 } else { (1 << 16) | 0x3333 };
    // SAFETY: the test device's register on QEMU's `virt` machine.
    unsafe { core::ptr::write_volatile(0x10_0000 as *mut u32, value) };
    loop {
        // SAFETY: waiting for an interrupt has no other effect.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}
