//! x86_64: COM1, `isa-debug-exit`, and the saved context a panicking test returns to.

use core::arch::{asm, global_asm};

/// Whether [`resume`] returns to the test loop.
pub const CAN_RESUME: bool = true;

/// The callee-saved state of [`call_guarded`]'s caller, enough to return from it a second time
/// (from the panic handler, through [`resume`]).
#[repr(C)]
#[derive(Debug, Default)]
pub struct Context {
    rbx: u64,
    rbp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    /// Stack pointer at the entry of `call_guarded` (pointing at its return address).
    rsp: u64,
    rflags: u64,
    mxcsr: u32,
    fpu_control: u16,
    _pad: u16,
}

impl Context {
    /// An empty context, for a static.
    pub const ZERO: Context = Context {
        rbx: 0,
        rbp: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
        rsp: 0,
        rflags: 0,
        mxcsr: 0,
        fpu_control: 0,
        _pad: 0,
    };

    /// The highest stack address the test's frames can use: a frame-pointer walk stops here.
    pub fn stack_top(&self) -> usize {
        self.rsp as usize
    }
}

// kernel_test_call_guarded(run: extern "C" fn(), ctx: *mut Context) -> u64
//   Saves the callee-saved registers, the stack pointer, RFLAGS (interrupt and direction
//   flags), MXCSR and the x87 control word into `ctx`, calls `run`, and returns 0.
// kernel_test_resume(ctx: *const Context) -> !
//   Puts that state back and returns 1 from the `kernel_test_call_guarded` call that saved it.
global_asm!(
    ".pushsection .text.kernel_test_call_guarded, \"ax\", @progbits",
    ".globl kernel_test_call_guarded",
    ".type kernel_test_call_guarded, @function",
    "kernel_test_call_guarded:",
    "    mov [rsi + 0x00], rbx",
    "    mov [rsi + 0x08], rbp",
    "    mov [rsi + 0x10], r12",
    "    mov [rsi + 0x18], r13",
    "    mov [rsi + 0x20], r14",
    "    mov [rsi + 0x28], r15",
    "    mov [rsi + 0x30], rsp",
    "    pushfq",
    "    pop qword ptr [rsi + 0x38]",
    "    stmxcsr [rsi + 0x40]",
    "    fnstcw [rsi + 0x44]",
    // The return address left RSP 8 below a 16-byte boundary; the call needs it on one.
    "    sub rsp, 8",
    "    call rdi",
    // A backtrace stops at this return address: the frames above are the test loop's.
    ".globl kernel_test_guarded_return",
    ".hidden kernel_test_guarded_return",
    "kernel_test_guarded_return:",
    "    add rsp, 8",
    "    xor eax, eax",
    "    ret",
    ".size kernel_test_call_guarded, . - kernel_test_call_guarded",
    ".popsection",
    ".pushsection .text.kernel_test_resume, \"ax\", @progbits",
    ".globl kernel_test_resume",
    ".type kernel_test_resume, @function",
    "kernel_test_resume:",
    "    mov rbx, [rdi + 0x00]",
    "    mov rbp, [rdi + 0x08]",
    "    mov r12, [rdi + 0x10]",
    "    mov r13, [rdi + 0x18]",
    "    mov r14, [rdi + 0x20]",
    "    mov r15, [rdi + 0x28]",
    "    ldmxcsr [rdi + 0x40]",
    "    fldcw [rdi + 0x44]",
    "    mov rsp, [rdi + 0x30]",
    "    push qword ptr [rdi + 0x38]",
    "    popfq",
    "    mov eax, 1",
    "    ret",
    ".size kernel_test_resume, . - kernel_test_resume",
    ".popsection",
);

unsafe extern "C" {
    static kernel_test_guarded_return: u8;
    fn kernel_test_call_guarded(run: extern "C" fn(), ctx: *mut Context) -> u64;
    fn kernel_test_resume(ctx: *const Context) -> !;
}

/// Calls `run`; returns `true` if it returned, `false` if [`resume`] was called with `ctx`
/// while it ran.
///
/// # Safety
/// `ctx` must stay valid and unmoved while `run` runs.
pub unsafe fn call_guarded(run: extern "C" fn(), ctx: *mut Context) -> bool {
    // SAFETY: the assembly above follows the C ABI; `ctx` is valid (caller).
    unsafe { kernel_test_call_guarded(run, ctx) == 0 }
}

/// Abandons the running test: everything on the stack between here and its
/// [`call_guarded`] is dropped without running destructors.
///
/// # Safety
/// `ctx` was filled by a [`call_guarded`] that has not returned yet, and the code is on the
/// same stack, deeper than that call.
pub unsafe fn resume(ctx: *const Context) -> ! {
    // SAFETY: forwarded to the caller.
    unsafe { kernel_test_resume(ctx) }
}

/// The return address of a test function called by [`call_guarded`]: a backtrace ends there.
pub fn guarded_return_address() -> usize {
    (&raw const kernel_test_guarded_return) as usize
}

/// The current frame pointer (RBP), the start of a frame-pointer walk.
#[inline(always)]
pub fn frame_pointer() -> usize {
    let rbp: usize;
    // SAFETY: reads a register.
    unsafe { asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

/// The stack pointer, the lowest address a frame-pointer walk may read.
#[inline(always)]
pub fn stack_pointer() -> usize {
    let rsp: usize;
    // SAFETY: reads a register.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// Leaves QEMU through `isa-debug-exit` at port 0xf4 (QEMU's status is `(value << 1) | 1`:
/// 33 for success, 35 for failure); halts forever if the device is missing.
pub fn exit(success: bool) -> ! {
    let value: u32 = if success { 0x10 } else { 0x11 };
    // SAFETY: port 0xf4 is the debug-exit device or nothing.
    unsafe {
        asm!("out dx, eax", in("dx") 0xf4u16, in("eax") value, options(nomem, nostack, preserves_flags));
    }
    loop {
        // SAFETY: halting with interrupts off stops this CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// # Safety
/// Port writes can reconfigure hardware; the caller picks a harmless one.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags));
    }
}

/// # Safety
/// Port reads can have side effects on some devices.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags));
    }
    value
}
