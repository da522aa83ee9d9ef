//! One entry of the test table (PROTOCOL.md, section 1) and the table itself.

/// `"KT"` and the layout version, first field of every entry.
pub const MAGIC: u32 = 0x4B54_0001;
/// `flags` bit: the test passes only if it panics.
pub const FLAG_SHOULD_PANIC: u32 = 1 << 0;
/// `flags` bit: the test is skipped unless asked for.
pub const FLAG_IGNORE: u32 = 1 << 1;

/// One test, as the linker collects it in the `kernel_tests` section. `#[kernel_test]` writes
/// these; the layout is the protocol's (16 bytes of 32-bit fields, then five pointer-sized ones).
#[repr(C)]
#[derive(Debug)]
pub struct TestEntry {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`FLAG_SHOULD_PANIC`], [`FLAG_IGNORE`].
    pub flags: u32,
    /// The test's time limit for the runner; 0 = the runner's default.
    pub timeout_ms: u32,
    /// Zero.
    pub reserved: u32,
    /// The test's name (UTF-8, not NUL-terminated).
    pub name_ptr: *const u8,
    pub name_len: usize,
    /// Text a `should_panic` message must contain, or null.
    pub expected_ptr: *const u8,
    pub expected_len: usize,
    /// The test itself.
    pub run: extern "C" fn(),
}

// SAFETY: the pointers lead to immutable, 'static data (string constants).
unsafe impl Sync for TestEntry {}

impl TestEntry {
    /// The test's name, e.g. `paging::maps_pages`.
    pub fn name(&self) -> &'static str {
        // SAFETY: `#[kernel_test]` stores a 'static str's pointer and length; an entry written
        // by hand must do the same (it is `pub` only for that).
        unsafe { str_from_raw(self.name_ptr, self.name_len) }
    }

    /// The text a `should_panic` test's message must contain, if any.
    pub fn expected(&self) -> Option<&'static str> {
        if self.expected_ptr.is_null() {
            return None;
        }
        // SAFETY: as for `name`.
        Some(unsafe { str_from_raw(self.expected_ptr, self.expected_len) })
    }

    pub fn should_panic(&self) -> bool {
        self.flags & FLAG_SHOULD_PANIC != 0
    }

    pub fn ignored(&self) -> bool {
        self.flags & FLAG_IGNORE != 0
    }

    /// Whether this looks like an entry of this layout (a stray object in the section would not).
    pub fn is_valid(&self) -> bool {
        self.magic == MAGIC
    }
}

/// # Safety
/// `ptr..ptr+len` is 'static UTF-8.
unsafe fn str_from_raw(ptr: *const u8, len: usize) -> &'static str {
    // SAFETY: forwarded to the caller.
    unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(ptr, len)) }
}

unsafe extern "C" {
    // Defined by the linker for an output section whose name is a C identifier.
    static __start_kernel_tests: TestEntry;
    static __stop_kernel_tests: TestEntry;
}

/// Every test of this executable, in section order (the index of a test in this slice is its
/// index in the protocol).
///
/// Linking fails with "undefined symbol `__start_kernel_tests`" if the executable has no test.
pub fn tests() -> &'static [TestEntry] {
    let start = &raw const __start_kernel_tests;
    let stop = &raw const __stop_kernel_tests;
    let bytes = (stop as usize).saturating_sub(start as usize);
    // SAFETY: the linker puts the section's entries, all `TestEntry`s of the same alignment and
    // a size that is a multiple of it, back to back between the two symbols.
    unsafe { core::slice::from_raw_parts(start, bytes / core::mem::size_of::<TestEntry>()) }
}

/// Helpers the `#[kernel_test]` expansion calls in constant context. Not a stable API.
#[doc(hidden)]
pub mod private {
    pub use super::{FLAG_IGNORE, FLAG_SHOULD_PANIC, MAGIC, TestEntry};

    /// `module_path!()` without its first segment (the crate).
    pub const fn strip_crate(module_path: &str) -> &[u8] {
        let bytes = module_path.as_bytes();
        let mut i = 0;
        while i + 1 < bytes.len() {
            if bytes[i] == b':' && bytes[i + 1] == b':' {
                return bytes.split_at(i + 2).1;
            }
            i += 1;
        }
        &[]
    }

    /// The length of [`test_name`]'s result.
    pub const fn test_name_len(module_path: &str, function: &str) -> usize {
        let module = strip_crate(module_path);
        if module.is_empty() {
            function.len()
        } else {
            module.len() + 2 + function.len()
        }
    }

    /// `module::path::function`, the module path taken without the crate name.
    pub const fn test_name<const N: usize>(module_path: &str, function: &str) -> [u8; N] {
        let module = strip_crate(module_path);
        let mut out = [0u8; N];
        let mut at = 0;
        if !module.is_empty() {
            at = copy(&mut out, at, module);
            at = copy(&mut out, at, b"::");
        }
        at = copy(&mut out, at, function.as_bytes());
        assert!(at == N, "test name length mismatch");
        out
    }

    const fn copy<const N: usize>(out: &mut [u8; N], mut at: usize, from: &[u8]) -> usize {
        let mut i = 0;
        while i < from.len() {
            out[at] = from[i];
            at += 1;
            i += 1;
        }
        at
    }

    /// Turns the bytes built by [`test_name`] back into a `str` (they came from two `str`s).
    pub const fn as_str(bytes: &[u8]) -> &str {
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(_) => panic!("test name is not UTF-8"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::private::*;

    #[test]
    fn names_drop_the_crate() {
        const N: usize = test_name_len("mixed::math::deep", "adds");
        const NAME: [u8; N] = test_name::<N>("mixed::math::deep", "adds");
        assert_eq!(as_str(&NAME), "math::deep::adds");
        const M: usize = test_name_len("mixed", "top");
        const TOP: [u8; M] = test_name::<M>("mixed", "top");
        assert_eq!(as_str(&TOP), "top");
    }
}
