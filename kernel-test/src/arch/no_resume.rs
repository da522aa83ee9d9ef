//! CPUs without a saved-context implementation: a panicking test cannot be returned from, so
//! the panic handler reports it failed and the kernel exits; the runner boots again for the
//! tests after it.

/// Nothing is saved.
#[derive(Debug, Default)]
pub struct Context;

impl Context {
    /// An empty context, for a static.
    pub const ZERO: Context = Context;

    /// No bound is known: no frame-pointer walk.
    pub fn stack_top(&self) -> usize {
        0
    }
}

/// Whether [`resume`] returns to the test loop.
pub const CAN_RESUME: bool = false;

/// Calls `run`; it always returns (a panic ends the run instead).
///
/// # Safety
/// None beyond calling `run`.
pub unsafe fn call_guarded(run: extern "C" fn(), _ctx: *mut Context) -> bool {
    run();
    true
}

/// Never reached: the panic handler checks [`CAN_RESUME`] first.
///
/// # Safety
/// None.
pub unsafe fn resume(_ctx: *const Context) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// No guarded call, no return address to stop at.
pub fn guarded_return_address() -> usize {
    0
}

/// No frame-pointer walk here.
#[inline(always)]
pub fn frame_pointer() -> usize {
    0
}

#[inline(always)]
pub fn stack_pointer() -> usize {
    0
}
