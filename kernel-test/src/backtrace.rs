//! Frame-pointer backtraces, printed as `KTEST frame 0x<address>` lines (PROTOCOL.md, section
//! 3) for the runner to symbolize.
//!
//! The walk follows the chain of saved frame pointers: each frame holds the caller's frame
//! pointer at `[fp]` and the return address at `[fp + 8]` (x86_64). It needs the kernel built
//! with `-C force-frame-pointers=yes`; functions without a frame (precompiled `core` may have
//! some) are skipped silently.

use core::fmt::{self, Write};

/// At most this many frames are printed.
pub const MAX_FRAMES: usize = 64;

/// Prints the return addresses of the frames on the current stack, innermost first, reading
/// only the stack between the current stack pointer and `stack_top` (exclusive). A walk stops
/// at a frame pointer outside that range, unaligned, or not above the previous one.
///
/// `stack_top` is the highest address of the stack in use (its initial stack pointer, or for a
/// test the stack pointer where the test was called). No frame is printed if it is 0.
#[inline(never)]
pub fn print_backtrace(out: &mut dyn Write, stack_top: usize) -> fmt::Result {
    print_callers(out, stack_top)
}

/// Prints the frames above the caller's own: the first line is the return address into the
/// function that called the caller. The walk ends at the call of a test (the frames above it
/// are kernel-test's loop).
#[inline(never)]
pub(crate) fn print_callers(out: &mut dyn Write, stack_top: usize) -> fmt::Result {
    let low = crate::arch::stack_pointer();
    let fp = crate::arch::frame_pointer();
    let guard = crate::arch::guarded_return_address();
    // The first frame is this function's own: its return address leads into the caller.
    for address in frames(fp, low, stack_top)
        .skip(1)
        .take_while(|&a| a != guard)
    {
        writeln!(out, "KTEST frame {address:#x}")?;
    }
    Ok(())
}

/// The return addresses along the frame-pointer chain starting at `fp`, reading only memory in
/// `low..high`.
pub fn frames(fp: usize, low: usize, high: usize) -> impl Iterator<Item = usize> {
    let word = core::mem::size_of::<usize>();
    let mut fp = fp;
    let mut left = MAX_FRAMES;
    core::iter::from_fn(move || {
        if left == 0 || fp < low || !fp.is_multiple_of(word) || fp.checked_add(2 * word)? > high {
            return None;
        }
        left -= 1;
        // SAFETY: `fp..fp + 2 words` lies in the stack range the caller named.
        let (next, ret) = unsafe {
            (
                core::ptr::read_volatile(fp as *const usize),
                core::ptr::read_volatile((fp + word) as *const usize),
            )
        };
        if ret == 0 {
            return None;
        }
        // Frames grow down: the caller's frame is above. Anything else ends the walk next time.
        fp = if next > fp { next } else { 0 };
        Some(ret)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_a_chain_and_stops_at_its_bounds() {
        // A fake stack: three frames, fp -> next fp, return address.
        let mut stack = [0usize; 12];
        let words = stack.as_mut_ptr();
        let base = words as usize;
        let at = |i: usize| base + i * 8;
        let set = |i: usize, value: usize| unsafe { words.add(i).write(value) };
        set(0, at(4));
        set(1, 0x1111);
        set(4, at(8));
        set(5, 0x2222);
        set(8, at(2)); // points down: the walk ends after this frame
        set(9, 0x3333);
        let all: Vec<usize> = frames(at(0), at(0), at(12)).collect();
        assert_eq!(all, [0x1111, 0x2222, 0x3333]);
        // The upper bound cuts the walk.
        let cut: Vec<usize> = frames(at(0), at(0), at(9)).collect();
        assert_eq!(cut, [0x1111, 0x2222]);
        // Unaligned or below the stack pointer: nothing.
        assert_eq!(frames(at(0) + 1, at(0), at(12)).count(), 0);
        assert_eq!(frames(at(0), at(1), at(12)).count(), 0);
    }
}
