//! The C memory functions compiled Rust calls (`core` uses them for copies,
//! array initialisation, comparisons). On the host target they normally
//! come from libc, which a kernel does not link, so it brings its own.
//!
//! Copying and filling use `rep movsb`/`rep stosb`: a plain Rust loop could
//! be recognised by the optimiser and turned back into a call to the very
//! function being defined.

use core::arch::asm;

/// # Safety
/// The usual `memcpy` contract: valid, non-overlapping regions of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// # Safety
/// The usual `memmove` contract: valid regions of `n` bytes, which may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // dest is below src or past its end: copying forwards is safe.
        // SAFETY: forwarded to the caller.
        return unsafe { memcpy(dest, src, n) };
    }
    // dest overlaps the end of src: copy backwards, from the last byte.
    // SAFETY: forwarded to the caller; the direction flag is restored, as
    // the ABI requires.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dest.wrapping_add(n).wrapping_sub(1) => _,
            inout("rsi") src.wrapping_add(n).wrapping_sub(1) => _,
            options(nostack),
        );
    }
    dest
}

/// # Safety
/// The usual `memset` contract: a valid region of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// # Safety
/// The usual `memcmp` contract: two valid regions of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: within the regions the caller vouched for.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// As [`memcmp`]; only equality matters.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: forwarded to the caller.
    unsafe { memcmp(a, b, n) }
}
