//! The kernel's tests: a second kernel, built by `cargo test` from this file and the shared
//! boot code, that runs the tests the runner asks for (on the kernel command line) and reports
//! each on serial through the `kernel-test` crate.
//!
//! Each `#[kernel_test]` function is one test, named by its module path: `paging::cr3_is_aligned`.

#![no_std]
#![no_main]

use core::arch::asm;
use core::hint::black_box;
use core::panic::PanicInfo;

use kernel_test::kernel_test;

/// Called from `boot.s` in long mode with the PVH start info's address.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(start_info: usize) -> ! {
    // SAFETY: the boot code hands over the PVH start info; the first GiB is identity-mapped.
    let cmdline = unsafe { kernel_test::cmdline::pvh(start_info) };
    kernel_test::run_tests(cmdline)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    kernel_test::panic(info)
}

/// Control registers and model-specific registers.
mod regs {
    use super::*;

    pub fn cr0() -> u64 {
        let value: u64;
        // SAFETY: reading a control register has no side effects.
        unsafe { asm!("mov {}, cr0", out(reg) value, options(nomem, nostack, preserves_flags)) };
        value
    }

    pub fn cr3() -> u64 {
        let value: u64;
        // SAFETY: as above.
        unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) };
        value
    }

    pub fn cr4() -> u64 {
        let value: u64;
        // SAFETY: as above.
        unsafe { asm!("mov {}, cr4", out(reg) value, options(nomem, nostack, preserves_flags)) };
        value
    }

    pub fn rdmsr(msr: u32) -> u64 {
        let (low, high): (u32, u32);
        // SAFETY: the tests read architectural MSRs that every x86_64 CPU has.
        unsafe {
            asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
        }
        (u64::from(high) << 32) | u64::from(low)
    }

    pub fn rflags() -> u64 {
        let value: u64;
        // SAFETY: pushes and pops one word on the stack.
        unsafe { asm!("pushfq", "pop {}", out(reg) value, options(nomem, preserves_flags)) };
        value
    }

    pub fn cpuid(leaf: u32) -> [u32; 4] {
        let r = core::arch::x86_64::__cpuid(leaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    pub fn rdtsc() -> u64 {
        // SAFETY: reading the time-stamp counter has no side effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
}

/// Four-level paging as the boot code set it up: the first GiB identity-mapped with 2 MiB pages.
mod paging {
    use super::*;

    const PRESENT: u64 = 1;
    const WRITABLE: u64 = 1 << 1;
    const HUGE: u64 = 1 << 7;
    const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

    /// The table indices and page offset of a virtual address.
    fn split(virt: u64) -> [u64; 5] {
        [
            (virt >> 39) & 0x1ff,
            (virt >> 30) & 0x1ff,
            (virt >> 21) & 0x1ff,
            (virt >> 12) & 0x1ff,
            virt & 0xfff,
        ]
    }

    fn entry(table: u64, index: u64) -> u64 {
        // SAFETY: page tables live in identity-mapped memory; reading an entry is harmless.
        unsafe { ((table + index * 8) as *const u64).read_volatile() }
    }

    /// Walks the tables in software: the physical address `virt` maps to, if any.
    fn translate(virt: u64) -> Option<u64> {
        let [l4, l3, l2, _, _] = split(virt);
        let pml4e = entry(regs::cr3() & ADDRESS, l4);
        if pml4e & PRESENT == 0 {
            return None;
        }
        let pdpte = entry(pml4e & ADDRESS, l3);
        if pdpte & PRESENT == 0 {
            return None;
        }
        let pde = entry(pdpte & ADDRESS, l2);
        if pde & PRESENT == 0 || pde & HUGE == 0 {
            return None;
        }
        Some((pde & ADDRESS & !0x1f_ffff) | (virt & 0x1f_ffff))
    }

    #[kernel_test]
    fn index_math_splits_an_address() {
        assert_eq!(split(0x0000_7fff_ffff_f123), [255, 511, 511, 511, 0x123]);
        assert_eq!(split(0x20_0000), [0, 0, 1, 0, 0]);
        assert_eq!(split(0x4000_1000), [0, 1, 0, 1, 0]);
    }

    #[kernel_test]
    fn cr3_holds_an_aligned_table() {
        let cr3 = regs::cr3();
        assert_eq!(cr3 & 0xfff, 0, "CR3 {cr3:#x} is not page-aligned");
        assert!(
            cr3 < 1 << 30,
            "the boot tables are in the kernel's .bss, below 1 GiB"
        );
    }

    #[kernel_test]
    fn first_gib_uses_huge_writable_pages() {
        let pml4e = entry(regs::cr3() & ADDRESS, 0);
        let pdpte = entry(pml4e & ADDRESS, 0);
        let pd = pdpte & ADDRESS;
        for index in [0, 1, 255, 511] {
            let pde = entry(pd, index);
            assert_eq!(pde & (PRESENT | WRITABLE | HUGE), PRESENT | WRITABLE | HUGE);
            assert_eq!(pde & ADDRESS, index << 21);
        }
    }

    #[kernel_test]
    fn kernel_code_is_identity_mapped() {
        let code = kernel_main as *const () as u64;
        assert_eq!(translate(code), Some(code));
    }

    #[kernel_test]
    fn the_stack_is_identity_mapped() {
        let local = black_box(0u64);
        let address = &raw const local as u64;
        assert_eq!(translate(address), Some(address));
    }

    #[kernel_test]
    fn nothing_is_mapped_above_one_gib() {
        assert_eq!(translate(1 << 30), None);
        assert_eq!(translate(0xffff_8000_0000_0000), None);
    }
}

/// The CPU state the boot code left.
mod cpu {
    use super::*;

    #[kernel_test]
    fn long_mode_is_active() {
        const EFER: u32 = 0xc000_0080;
        const LMA: u64 = 1 << 10;
        assert_ne!(regs::rdmsr(EFER) & LMA, 0);
    }

    #[kernel_test]
    fn paging_and_protection_are_on() {
        let cr0 = regs::cr0();
        assert_ne!(cr0 & 1, 0, "CR0.PE");
        assert_ne!(cr0 & (1 << 31), 0, "CR0.PG");
    }

    #[kernel_test]
    fn pae_and_sse_are_enabled() {
        let cr4 = regs::cr4();
        assert_ne!(cr4 & (1 << 5), 0, "CR4.PAE");
        assert_ne!(cr4 & (1 << 9), 0, "CR4.OSFXSR");
    }

    #[kernel_test]
    fn interrupts_are_disabled() {
        assert_eq!(regs::rflags() & (1 << 9), 0, "RFLAGS.IF");
    }

    #[kernel_test]
    fn code_segment_is_the_boot_gdt_entry() {
        let cs: u16;
        // SAFETY: reads a segment register.
        unsafe { asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
        assert_eq!(cs, 0x08);
    }

    #[kernel_test]
    fn cpuid_names_a_vendor() {
        let [max_leaf, ebx, ecx, edx] = regs::cpuid(0);
        assert!(max_leaf >= 1);
        let mut vendor = [0u8; 12];
        vendor[..4].copy_from_slice(&ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&edx.to_le_bytes());
        vendor[8..].copy_from_slice(&ecx.to_le_bytes());
        assert!(vendor.iter().all(u8::is_ascii_graphic), "vendor {vendor:?}");
    }

    #[kernel_test]
    fn cpuid_reports_long_mode() {
        let [max_extended, ..] = regs::cpuid(0x8000_0000);
        assert!(max_extended >= 0x8000_0001);
        let [.., edx] = regs::cpuid(0x8000_0001);
        assert_ne!(edx & (1 << 29), 0, "CPUID LM bit");
    }

    #[kernel_test]
    fn timestamp_counter_advances() {
        let before = regs::rdtsc();
        black_box((0..1000u64).sum::<u64>());
        assert!(regs::rdtsc() > before);
    }

    #[kernel_test]
    fn sse_floating_point_works() {
        use core::arch::x86_64::{_mm_cvtsd_f64, _mm_set_sd, _mm_sqrt_pd};
        // `sqrtpd`, an SSE2 instruction: it would trap if the boot code had not enabled SSE.
        // SAFETY: SSE2 is part of x86_64.
        let root = unsafe { _mm_cvtsd_f64(_mm_sqrt_pd(_mm_set_sd(black_box(2.25f64)))) };
        assert_eq!(root, 1.5);
        assert_eq!(black_box(0.1f64) + black_box(0.2), 0.30000000000000004);
    }
}

/// The 16550 UART at COM1 and formatting without an allocator.
mod serial {
    use core::fmt::Write;

    use rust_kernel::{COM1, Serial, inb, outb};

    use super::*;

    #[kernel_test]
    fn scratch_register_round_trips() {
        for value in [0x00, 0x5a, 0xa5, 0xff] {
            // SAFETY: the scratch register (base + 7) holds a byte and does nothing else.
            let read = unsafe {
                outb(COM1 + 7, value);
                inb(COM1 + 7)
            };
            assert_eq!(read, value);
        }
    }

    #[kernel_test]
    fn line_control_is_8n1() {
        // SAFETY: reading the line control register has no side effects.
        assert_eq!(unsafe { inb(COM1 + 3) }, 0x03);
    }

    #[kernel_test]
    fn transmitter_drains() {
        let mut serial = Serial;
        serial.print("draining the transmitter\n");
        // SAFETY: reading the line status register has no side effects.
        let empty = (0..100_000).any(|_| unsafe { inb(COM1 + 5) } & 0x40 != 0);
        assert!(empty, "the transmitter never emptied");
    }

    /// A `fmt::Write` into a fixed buffer.
    struct Buffer {
        bytes: [u8; 64],
        len: usize,
    }

    impl Write for Buffer {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len + s.len();
            if end > self.bytes.len() {
                return Err(core::fmt::Error);
            }
            self.bytes[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    #[kernel_test]
    fn formats_into_a_fixed_buffer() {
        let mut buffer = Buffer {
            bytes: [0; 64],
            len: 0,
        };
        write!(buffer, "{:#010x} {:>5} {:?}", 0xbeef, -42, "q").expect("fits");
        assert_eq!(&buffer.bytes[..buffer.len], b"0x0000beef   -42 \"q\"");
        assert!(write!(buffer, "{:100}", 1).is_err(), "overflow is an error");
    }
}

/// Memory: the stack, statics, .bss, and the memory functions in src/mem.rs.
mod memory {
    use super::*;

    #[kernel_test]
    fn volatile_writes_read_back() {
        let mut cells = [0u32; 16];
        for (i, cell) in cells.iter_mut().enumerate() {
            // SAFETY: `cell` is a valid, aligned u32.
            unsafe { (cell as *mut u32).write_volatile(0xdead_0000 | i as u32) };
        }
        for (i, cell) in cells.iter().enumerate() {
            // SAFETY: as above.
            assert_eq!(
                unsafe { (cell as *const u32).read_volatile() },
                0xdead_0000 | i as u32
            );
        }
    }

    #[kernel_test]
    fn statics_keep_writes() {
        static mut COUNTER: u64 = 0;
        for _ in 0..3 {
            // SAFETY: one CPU, no interrupts: nothing else touches the static.
            unsafe { COUNTER += black_box(1) };
        }
        // SAFETY: as above.
        assert_eq!(unsafe { (&raw const COUNTER).read() }, 3);
    }

    #[kernel_test]
    fn bss_is_zeroed() {
        static ZEROES: [u8; 4096] = [0; 4096];
        assert!(black_box(&ZEROES).iter().all(|&b| b == 0));
    }

    #[kernel_test]
    fn page_aligned_statics_are_aligned() {
        #[repr(align(4096))]
        struct Page([u8; 4096]);
        static PAGE: Page = Page([0; 4096]);
        assert_eq!(PAGE.0.as_ptr() as usize % 4096, 0);
    }

    #[kernel_test]
    fn memmove_handles_overlap_both_ways() {
        let mut bytes: [u8; 8] = black_box(*b"abcdefgh");
        bytes.copy_within(0..6, 2);
        assert_eq!(&bytes, b"ababcdef");
        bytes.copy_within(2..8, 0);
        assert_eq!(&bytes, b"abcdefef");
    }

    #[kernel_test]
    fn memset_and_memcmp_agree() {
        let mut a = [0u8; 512];
        let mut b = [0u8; 512];
        a.fill(black_box(0x33));
        b.fill(black_box(0x33));
        assert!(a == b);
        b[511] = 0x34;
        assert!(a < b);
    }
}

/// Allocation-free data structures a kernel uses early.
mod structures {
    use super::*;

    /// A fixed-capacity FIFO.
    struct Ring<const N: usize> {
        slots: [u32; N],
        head: usize,
        len: usize,
    }

    impl<const N: usize> Ring<N> {
        fn push(&mut self, value: u32) -> bool {
            if self.len == N {
                return false;
            }
            self.slots[(self.head + self.len) % N] = value;
            self.len += 1;
            true
        }

        fn pop(&mut self) -> Option<u32> {
            if self.len == 0 {
                return None;
            }
            let value = self.slots[self.head];
            self.head = (self.head + 1) % N;
            self.len -= 1;
            Some(value)
        }
    }

    #[kernel_test]
    fn ring_buffer_wraps_around() {
        let mut ring = Ring::<4> {
            slots: [0; 4],
            head: 0,
            len: 0,
        };
        for round in 0..10 {
            assert!(ring.push(round));
            assert!(ring.push(round + 100));
            assert_eq!(ring.pop(), Some(round));
            assert_eq!(ring.pop(), Some(round + 100));
        }
        assert!((0..4).all(|v| ring.push(v)));
        assert!(!ring.push(99), "a full ring refuses");
        assert_eq!(ring.pop(), Some(0));
    }

    /// A bitmap frame allocator over 256 frames of 4 KiB.
    struct Frames {
        used: [u64; 4],
    }

    impl Frames {
        fn allocate(&mut self) -> Option<u64> {
            let (word, bits) = self
                .used
                .iter_mut()
                .enumerate()
                .find(|(_, bits)| **bits != u64::MAX)?;
            let bit = bits.trailing_ones();
            *bits |= 1 << bit;
            Some((word as u64 * 64 + u64::from(bit)) * 4096)
        }

        fn free(&mut self, frame: u64) {
            let index = frame / 4096;
            self.used[(index / 64) as usize] &= !(1 << (index % 64));
        }
    }

    #[kernel_test]
    fn bitmap_allocator_reuses_freed_frames() {
        let mut frames = Frames { used: [0; 4] };
        assert_eq!(frames.allocate(), Some(0));
        assert_eq!(frames.allocate(), Some(4096));
        frames.free(0);
        assert_eq!(frames.allocate(), Some(0));
        while frames.allocate().is_some() {}
        assert_eq!(frames.used, [u64::MAX; 4]);
        frames.free(200 * 4096);
        assert_eq!(frames.allocate(), Some(200 * 4096));
    }

    #[kernel_test]
    fn sorts_and_searches_in_place() {
        let mut values = black_box([9u16, 3, 7, 1, 8, 2, 6, 4, 5, 0]);
        values.sort_unstable();
        assert_eq!(values, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(values.binary_search(&7), Ok(7));
        assert_eq!(values.binary_search(&10), Err(10));
    }
}

/// Tests that show the attribute's options.
mod options {
    use super::*;

    #[kernel_test(should_panic(expected = "index out of bounds"))]
    fn out_of_bounds_index_panics() {
        let table = black_box([0u8; 4]);
        black_box(table[black_box(4)]);
    }

    /// Skipped unless asked for (`cargo test -- --ignored`).
    #[kernel_test(ignore, timeout = "60s")]
    fn spins_a_long_time() {
        let mut x = 0u64;
        for i in 0..black_box(5_000_000u64) {
            x = x.wrapping_add(i);
        }
        black_box(x);
    }
}
