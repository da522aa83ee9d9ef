//! aarch64: leaving QEMU through semihosting (`-semihosting`). Not compiled where this crate is
//! developed (no aarch64 Rust target there).

use core::arch::asm;

/// `SYS_EXIT` with `ADP_Stopped_ApplicationExit` and the exit status (0 or 1) as subcode;
/// QEMU exits with that status. Waits forever if semihosting is off.
pub fn exit(success: bool) -> ! {
    let block: [u64; 2] = [0x2_0026, if success { 0 } else { 1 }];
    // SAFETY: the semihosting call reads `block` and stops the machine.
    unsafe {
        asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack));
    }
    loop {
        // SAFETY: waiting for an interrupt has no other effect.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}
