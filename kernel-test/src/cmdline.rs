//! Finding the kernel command line in what each boot protocol hands over.
//!
//! All functions take physical/virtual addresses as the loader gave them: the memory must be
//! mapped (identity-mapped for the physical ones) when they are called. A command line that is
//! not UTF-8 is cut at its first invalid byte.

/// A NUL-terminated string at `ptr`, as UTF-8 (up to the first invalid byte).
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string that stays valid and unchanged.
pub unsafe fn from_c_str(ptr: *const u8) -> &'static str {
    if ptr.is_null() {
        return "";
    }
    // Counted here rather than by `CStr::from_ptr`, which calls the C library's `strlen`, a
    // function kernels need not have.
    let mut len = 0;
    // SAFETY: the string is NUL-terminated (caller), so every byte up to the NUL is readable.
    while unsafe { ptr.add(len).read_volatile() } != 0 {
        len += 1;
    }
    // SAFETY: the `len` bytes before the NUL.
    utf8_prefix(unsafe { core::slice::from_raw_parts(ptr, len) })
}

fn utf8_prefix(bytes: &[u8]) -> &str {
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            // SAFETY: `valid_up_to` bytes are valid UTF-8.
            unsafe { core::str::from_utf8_unchecked(&bytes[..e.valid_up_to()]) }
        }
    }
}

/// Multiboot 1: the information structure whose address the loader passes in EBX.
/// `cmdline` (offset 16) is valid if bit 2 of `flags` is set.
///
/// # Safety
/// `info` is the multiboot 1 information structure, mapped at this address.
pub unsafe fn multiboot1(info: usize) -> &'static str {
    let info = info as *const u32;
    // SAFETY: the structure starts with `flags`; `cmdline` is its fifth u32.
    unsafe {
        if info.is_null() || info.read_volatile() & (1 << 2) == 0 {
            return "";
        }
        from_c_str(info.add(4).read_volatile() as usize as *const u8)
    }
}

/// Multiboot 2: the boot information whose address the loader passes in EBX. The command line
/// is the tag of type 1.
///
/// # Safety
/// `info` is the multiboot 2 boot information, mapped at this address.
pub unsafe fn multiboot2(info: usize) -> &'static str {
    if info == 0 {
        return "";
    }
    // SAFETY: the information starts with its total size; tags follow from offset 8, each
    // `type: u32, size: u32`, 8-byte aligned, up to the end tag (type 0).
    unsafe {
        let total = (info as *const u32).read_volatile() as usize;
        let mut tag = info + 8;
        while tag + 8 <= info + total {
            let kind = (tag as *const u32).read_volatile();
            let size = ((tag + 4) as *const u32).read_volatile() as usize;
            match kind {
                0 => break,
                1 => return from_c_str((tag + 8) as *const u8),
                _ => {}
            }
            if size < 8 {
                break;
            }
            tag += (size + 7) & !7;
        }
    }
    ""
}

/// Xen PVH (QEMU's `-kernel` for an ELF with a PVH note): the `hvm_start_info` whose physical
/// address the loader passes in EBX. `cmdline_paddr` is its u64 at offset 24 (after `magic`,
/// `version`, `flags`, `nr_modules` and `modlist_paddr`).
///
/// # Safety
/// `start_info` is the PVH start info, identity-mapped.
pub unsafe fn pvh(start_info: usize) -> &'static str {
    /// `hvm_start_info.magic`.
    const MAGIC: u32 = 0x336e_c578;
    if start_info == 0 {
        return "";
    }
    // SAFETY: the structure starts with its magic; `cmdline_paddr` is at offset 24.
    unsafe {
        if (start_info as *const u32).read_volatile() != MAGIC {
            return "";
        }
        let cmdline = ((start_info + 24) as *const u64).read_volatile();
        from_c_str(cmdline as usize as *const u8)
    }
}

/// UEFI: the loaded image's `LoadOptions` (UTF-16, `size` bytes, often NUL-terminated), as
/// UTF-8 in `buf`. Characters that do not fit, and whatever follows a NUL, are dropped; an
/// unpaired surrogate becomes U+FFFD.
///
/// # Safety
/// `options` is null or points to `size` readable bytes, 2-byte aligned.
pub unsafe fn uefi_load_options(options: *const u16, size: usize, buf: &mut [u8]) -> &str {
    if options.is_null() {
        return "";
    }
    // SAFETY: forwarded to the caller.
    let units = unsafe { core::slice::from_raw_parts(options, size / 2) };
    let mut len = 0;
    for c in core::char::decode_utf16(units.iter().copied().take_while(|&u| u != 0)) {
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        if len + c.len_utf8() > buf.len() {
            break;
        }
        len += c.encode_utf8(&mut buf[len..]).len();
    }
    utf8_prefix(&buf[..len])
}

/// Limine's executable command line: place this request in the kernel (in the section the
/// kernel keeps its Limine requests in, between its start and end markers) and read
/// [`LimineCmdlineRequest::cmdline`] after boot.
///
/// ```
/// #[used]
/// #[unsafe(link_section = ".limine_requests")]
/// static CMDLINE: kernel_test::cmdline::LimineCmdlineRequest =
///     kernel_test::cmdline::LimineCmdlineRequest::new();
///
/// // Without Limine (here), there is no answer and so no command line.
/// assert_eq!(CMDLINE.cmdline(), "");
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct LimineCmdlineRequest {
    id: [u64; 4],
    revision: u64,
    /// Filled in by Limine before the kernel starts.
    response: core::cell::UnsafeCell<*const LimineCmdlineResponse>,
}

#[repr(C)]
#[derive(Debug)]
struct LimineCmdlineResponse {
    revision: u64,
    cmdline: *const u8,
}

// SAFETY: the loader writes `response` before the kernel runs; the kernel only reads it.
unsafe impl Sync for LimineCmdlineRequest {}

impl LimineCmdlineRequest {
    pub const fn new() -> Self {
        LimineCmdlineRequest {
            // The common magic, then the executable command line feature's own two words.
            id: [
                0xc7b1_dd30_df4c_8b88,
                0x0a82_e883_a194_f07b,
                0x4b16_1536_e598_651e,
                0xb390_ad4a_2f1f_303a,
            ],
            revision: 0,
            response: core::cell::UnsafeCell::new(core::ptr::null()),
        }
    }

    /// The command line Limine answered with (empty if it did not answer).
    pub fn cmdline(&self) -> &'static str {
        // SAFETY: Limine wrote a valid response pointer or left it null; the response and its
        // string stay mapped (bootloader-reclaimable memory the kernel has not reused).
        unsafe {
            let response = self.response.get().read_volatile();
            if response.is_null() {
                return "";
            }
            from_c_str((*response).cmdline)
        }
    }
}

impl Default for LimineCmdlineRequest {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiboot1_reads_cmdline_when_flagged() {
        let text = c"ktest=1,2 quiet";
        let mut info = [0u32; 8];
        info[4] = text.as_ptr() as usize as u32;
        // Only meaningful if the string is below 4 GiB, as in a real multiboot 1 machine.
        if text.as_ptr() as usize <= u32::MAX as usize {
            info[0] = 1 << 2;
            assert_eq!(
                unsafe { multiboot1(info.as_ptr() as usize) },
                "ktest=1,2 quiet"
            );
        }
        info[0] = 0;
        assert_eq!(unsafe { multiboot1(info.as_ptr() as usize) }, "");
    }

    #[test]
    fn multiboot2_finds_the_cmdline_tag() {
        // total_size, reserved; tag 4 (basic meminfo, 16 bytes); tag 1 "ktest=3"; end tag.
        let mut info = [0u32; 16];
        info[2] = 4;
        info[3] = 16;
        info[6] = 1;
        info[7] = 8 + 8;
        let text = b"ktest=3\0";
        let bytes =
            unsafe { core::slice::from_raw_parts_mut(info.as_mut_ptr().add(8).cast::<u8>(), 8) };
        bytes.copy_from_slice(text);
        info[10] = 0;
        info[11] = 8;
        info[0] = 48;
        assert_eq!(unsafe { multiboot2(info.as_ptr() as usize) }, "ktest=3");
    }

    #[test]
    fn pvh_needs_its_magic() {
        let text = c"ktest=0-4";
        let mut start = [0u64; 7];
        start[0] = 0x336e_c578;
        start[2] = 0x1234_5678; // modlist_paddr
        start[3] = text.as_ptr() as u64;
        assert_eq!(unsafe { pvh(start.as_ptr() as usize) }, "ktest=0-4");
        start[0] = 0;
        assert_eq!(unsafe { pvh(start.as_ptr() as usize) }, "");
    }

    #[test]
    fn uefi_options_become_utf8() {
        let units: Vec<u16> = "img.efi ktest=2 é\0junk".encode_utf16().collect();
        let mut buf = [0u8; 64];
        let s = unsafe { uefi_load_options(units.as_ptr(), units.len() * 2, &mut buf) };
        assert_eq!(s, "img.efi ktest=2 é");
        let mut small = [0u8; 4];
        let s = unsafe { uefi_load_options(units.as_ptr(), units.len() * 2, &mut small) };
        assert_eq!(s, "img.");
    }
}
