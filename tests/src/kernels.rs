//! The prebuilt test kernels (`tests/kernels/*.S`, built by `build.rs`).
//!
//! Every kernel prints one line on its machine's first serial port (see
//! [`marker`]) and then, depending on the [`Variant`], makes QEMU exit with a
//! "pass" or "fail" status or halts for ever. The statuses are the same on
//! every architecture (see [`Variant::qemu_exit_status`]); how the kernel
//! produces them is not:
//!
//! - x86 kernels write to the `isa-debug-exit` device: boot them with
//!   `-device` [`ISA_DEBUG_EXIT_DEVICE`].
//! - [`Kernel::EfiAppAa64`] calls semihosting `SYS_EXIT`: boot it with
//!   `-semihosting-config` [`AARCH64_SEMIHOSTING_CONFIG`].
//! - [`Kernel::Riscv64`] writes to the SiFive test device that QEMU's
//!   RISC-V `virt` machine always has.
//!
//! Always capture the serial port (`-serial stdio`) and keep a host-side
//! timeout.

use std::path::PathBuf;

/// The `-device` value the x86 kernels expect: port 0xf4, 4 bytes wide.
pub const ISA_DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// The `-semihosting-config` value [`Kernel::EfiAppAa64`] needs to end QEMU.
/// Without semihosting its exit call is an undefined instruction: the
/// firmware reports a "Synchronous Exception" and QEMU keeps running.
pub const AARCH64_SEMIHOSTING_CONFIG: &str = "enable=on,target=native";

/// One of the test kernel sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// `multiboot.S`: a 32-bit ELF loaded at 1 MiB with a Multiboot 1
    /// header, a Multiboot 2 header and a Xen PVH note. QEMU `-kernel`
    /// boots it directly (as Multiboot 1); GRUB and Limine boot it with
    /// their `multiboot`/`multiboot2` protocols. Its Multiboot 1 header
    /// asks for no video mode, so Limine refuses it as `multiboot1` on
    /// UEFI ("Cannot use text mode"): use `multiboot2` there.
    Multiboot,
    /// `efi_app.S`: a PE32+ x86_64 UEFI application (subsystem 10). Boots
    /// from `\EFI\BOOT\BOOTX64.EFI` on a FAT volume, or through OVMF's
    /// support for QEMU `-kernel`.
    EfiApp,
    /// `limine.S`: an ELF64 kernel linked at `0xffffffff80000000` for the
    /// Limine boot protocol (base revision 3, with request markers).
    Limine,
    /// `efi_app_aa64.S`: a PE32+ AArch64 UEFI application (machine 0xAA64,
    /// subsystem 10) for QEMU's `virt` machine. AAVMF boots it from
    /// `\EFI\BOOT\BOOTAA64.EFI` on a FAT volume (virtio-blk, PCI or MMIO)
    /// or through QEMU `-kernel`. It writes its line to the PL011 UART at
    /// 0x0900_0000 and exits through semihosting.
    EfiAppAa64,
    /// `riscv64.S`: an ELF64 RISC-V kernel linked at `0x8020_0000`, started
    /// in S-mode by QEMU `virt`'s default OpenSBI (`-bios default -kernel`).
    /// It writes its line to the NS16550A UART at 0x1000_0000 and exits
    /// through the SiFive test device at 0x10_0000.
    Riscv64,
    /// `bios_cd.S`: a flat 2048-byte, 16-bit El Torito "no emulation" boot
    /// image, entered in real mode at 0000:7C00. It prints its line only if
    /// the ISO writer patched a boot info table into it (primary volume
    /// descriptor at block 16, image length 2048); otherwise it exits with
    /// the fail status at once.
    BiosCd,
    /// `efi_args.S`: a PE32+ x86_64 UEFI application like [`Kernel::EfiApp`] that first prints
    /// its load options (the command line a UEFI shell passes) as `ARGS: <text>`.
    EfiArgs,
}

impl Kernel {
    /// Every kernel, in declaration order.
    pub const ALL: [Kernel; 7] = [
        Kernel::Multiboot,
        Kernel::EfiApp,
        Kernel::Limine,
        Kernel::EfiAppAa64,
        Kernel::Riscv64,
        Kernel::BiosCd,
        Kernel::EfiArgs,
    ];

    /// The name used in the file name and in the printed line.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Multiboot => "multiboot",
            Kernel::EfiApp => "efi-app",
            Kernel::Limine => "limine",
            Kernel::EfiAppAa64 => "efi-app-aa64",
            Kernel::Riscv64 => "riscv64",
            Kernel::BiosCd => "bios-cd",
            Kernel::EfiArgs => "efi-args",
        }
    }

    /// The QEMU system emulator for the kernel's architecture.
    pub fn qemu_program(self) -> &'static str {
        match self {
            Kernel::Multiboot
            | Kernel::EfiApp
            | Kernel::Limine
            | Kernel::BiosCd
            | Kernel::EfiArgs => "qemu-system-x86_64",
            Kernel::EfiAppAa64 => "qemu-system-aarch64",
            Kernel::Riscv64 => "qemu-system-riscv64",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Kernel::Multiboot | Kernel::Limine | Kernel::Riscv64 => "elf",
            Kernel::EfiApp | Kernel::EfiAppAa64 | Kernel::EfiArgs => "efi",
            Kernel::BiosCd => "bin",
        }
    }
}

/// What a kernel does after printing its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// QEMU exits with status 33: on x86 the kernel writes 0x10 to
    /// `isa-debug-exit`, on aarch64 it calls semihosting `SYS_EXIT` with
    /// `ADP_Stopped_ApplicationExit` and subcode 33, on riscv64 it writes
    /// `(33 << 16) | 0x3333` to the SiFive test device.
    Pass,
    /// QEMU exits with status 35: `isa-debug-exit` value 0x11, semihosting
    /// subcode 35, SiFive test value `(35 << 16) | 0x3333`.
    Fail,
    /// Disables interrupts and halts for ever: QEMU never exits by itself.
    Hang,
    /// Multiboot kernel only: prints its line, then triple-faults (QEMU exits 0 under
    /// `-no-reboot`).
    TripleFault,
    /// Multiboot kernel only: prints its line and `login: `, reads one byte from COM1, and exits
    /// like [`Variant::Pass`] if it is `y`, like [`Variant::Fail`] otherwise.
    Input,
    /// Multiboot kernel only: prints its line, then powers the machine off through ACPI (QEMU
    /// exits 0, as for a reset under `-no-reboot`).
    PowerOff,
}

impl Variant {
    /// Every variant, in declaration order.
    pub const ALL: [Variant; 3] = [Variant::Pass, Variant::Fail, Variant::Hang];

    /// The word used in the file name and in the printed line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Pass => "pass",
            Variant::Fail => "fail",
            Variant::Hang => "hang",
            Variant::TripleFault => "triple",
            Variant::Input => "input",
            Variant::PowerOff => "poweroff",
        }
    }

    /// The value the x86 kernels write to the `isa-debug-exit` port, if any.
    pub fn exit_value(self) -> Option<u32> {
        match self {
            Variant::Pass => Some(0x10),
            Variant::Fail => Some(0x11),
            Variant::Hang | Variant::TripleFault | Variant::Input | Variant::PowerOff => None,
        }
    }

    /// The exit status QEMU reports for this variant, for every kernel:
    /// 33 for [`Variant::Pass`] and 35 for [`Variant::Fail`].
    ///
    /// On x86 that is `(value << 1) | 1` of [`Variant::exit_value`]; the
    /// other kernels pass the status itself (semihosting subcode, SiFive
    /// test code). None of them uses 0, which QEMU also reports for a
    /// shutdown, a reset under `-no-reboot` or the SiFive "pass" value.
    pub fn qemu_exit_status(self) -> Option<i32> {
        self.exit_value().map(|v| ((v << 1) | 1) as i32)
    }
}

/// The file name of a built kernel, e.g. `multiboot-pass.elf`.
pub fn file_name(kernel: Kernel, variant: Variant) -> String {
    format!(
        "{}-{}.{}",
        kernel.name(),
        variant.name(),
        kernel.extension()
    )
}

/// Absolute path of a built kernel inside this crate's `OUT_DIR`.
pub fn path(kernel: Kernel, variant: Variant) -> PathBuf {
    PathBuf::from(env!("OUT_DIR"))
        .join("kernels")
        .join(file_name(kernel, variant))
}

/// Absolute path of the C test kernel (`tests/kernels/c_ktest.c`, built by `build.rs`): a
/// 32-bit Multiboot 1/2 ELF whose `kernel_tests` section is the protocol's ELF32 table, and
/// which reads `ktest=` from its Multiboot command line (see the source for its tests).
pub fn c_ktest_path() -> PathBuf {
    PathBuf::from(env!("OUT_DIR"))
        .join("kernels")
        .join("c-ktest.elf")
}

/// The exact line the kernel prints on its serial port, without the line
/// ending.
///
/// The kernel sends `"\n"` before and after it, so it is always a line of
/// its own on the captured serial output, even after firmware escape
/// sequences.
pub fn marker(kernel: Kernel, variant: Variant) -> &'static str {
    match (kernel, variant) {
        (Kernel::Multiboot, Variant::Pass) => "KERNEL: multiboot pass",
        (Kernel::Multiboot, Variant::Fail) => "KERNEL: multiboot fail",
        (Kernel::Multiboot, Variant::Hang) => "KERNEL: multiboot hang",
        (Kernel::Multiboot, Variant::TripleFault) => "KERNEL: multiboot triple",
        (Kernel::Multiboot, Variant::Input) => "KERNEL: multiboot input",
        (Kernel::Multiboot, Variant::PowerOff) => "KERNEL: multiboot poweroff",
        (kernel, Variant::TripleFault | Variant::Input | Variant::PowerOff) => {
            panic!("the {} kernel has no {variant:?} variant", kernel.name())
        }
        (Kernel::EfiApp, Variant::Pass) => "KERNEL: efi-app pass",
        (Kernel::EfiApp, Variant::Fail) => "KERNEL: efi-app fail",
        (Kernel::EfiApp, Variant::Hang) => "KERNEL: efi-app hang",
        (Kernel::Limine, Variant::Pass) => "KERNEL: limine pass",
        (Kernel::Limine, Variant::Fail) => "KERNEL: limine fail",
        (Kernel::Limine, Variant::Hang) => "KERNEL: limine hang",
        (Kernel::EfiAppAa64, Variant::Pass) => "KERNEL: efi-app-aa64 pass",
        (Kernel::EfiAppAa64, Variant::Fail) => "KERNEL: efi-app-aa64 fail",
        (Kernel::EfiAppAa64, Variant::Hang) => "KERNEL: efi-app-aa64 hang",
        (Kernel::Riscv64, Variant::Pass) => "KERNEL: riscv64 pass",
        (Kernel::Riscv64, Variant::Fail) => "KERNEL: riscv64 fail",
        (Kernel::Riscv64, Variant::Hang) => "KERNEL: riscv64 hang",
        (Kernel::BiosCd, Variant::Pass) => "KERNEL: bios-cd pass",
        (Kernel::BiosCd, Variant::Fail) => "KERNEL: bios-cd fail",
        (Kernel::BiosCd, Variant::Hang) => "KERNEL: bios-cd hang",
        (Kernel::EfiArgs, Variant::Pass) => "KERNEL: efi-args pass",
        (Kernel::EfiArgs, Variant::Fail) => "KERNEL: efi-args fail",
        (Kernel::EfiArgs, Variant::Hang) => "KERNEL: efi-args hang",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ELFCLASS32: u8 = 1;
    const ELFCLASS64: u8 = 2;
    const EM_386: u16 = 3;
    const EM_X86_64: u16 = 62;
    const EM_RISCV: u16 = 243;
    const ET_EXEC: u16 = 2;
    const PT_LOAD: u32 = 1;
    const PT_NOTE: u32 = 4;
    const PF_X: u32 = 1;
    const PF_W: u32 = 2;

    fn read(kernel: Kernel, variant: Variant) -> Vec<u8> {
        let path = path(kernel, variant);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// A program header, widened to 64 bits.
    #[derive(Debug)]
    struct Phdr {
        kind: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        filesz: u64,
    }

    /// Checks the ELF identification and returns (entry, program headers).
    fn parse_elf(b: &[u8], class: u8, machine: u16) -> (u64, Vec<Phdr>) {
        assert_eq!(&b[..4], b"\x7fELF", "ELF magic");
        assert_eq!(b[4], class, "ELF class");
        assert_eq!(b[5], 1, "little endian");
        assert_eq!(u16_at(b, 16), ET_EXEC, "e_type");
        assert_eq!(u16_at(b, 18), machine, "e_machine");
        let (entry, phoff, phentsize, phnum) = if class == ELFCLASS64 {
            (
                u64_at(b, 24),
                u64_at(b, 32) as usize,
                u16_at(b, 54) as usize,
                u16_at(b, 56) as usize,
            )
        } else {
            (
                u64::from(u32_at(b, 24)),
                u32_at(b, 28) as usize,
                u16_at(b, 42) as usize,
                u16_at(b, 44) as usize,
            )
        };
        let phdrs = (0..phnum)
            .map(|i| {
                let p = phoff + i * phentsize;
                if class == ELFCLASS64 {
                    Phdr {
                        kind: u32_at(b, p),
                        flags: u32_at(b, p + 4),
                        offset: u64_at(b, p + 8),
                        vaddr: u64_at(b, p + 16),
                        filesz: u64_at(b, p + 32),
                    }
                } else {
                    Phdr {
                        kind: u32_at(b, p),
                        offset: u64::from(u32_at(b, p + 4)),
                        vaddr: u64::from(u32_at(b, p + 8)),
                        filesz: u64::from(u32_at(b, p + 16)),
                        flags: u32_at(b, p + 24),
                    }
                }
            })
            .collect();
        (entry, phdrs)
    }

    fn assert_no_rwx(phdrs: &[Phdr]) {
        for p in phdrs.iter().filter(|p| p.kind == PT_LOAD) {
            assert_ne!(p.flags & (PF_W | PF_X), PF_W | PF_X, "RWX segment {p:?}");
        }
    }

    /// File offset of the first `needle` starting at a multiple of `align`
    /// within the first `limit` bytes.
    fn find_aligned(b: &[u8], needle: &[u8], align: usize, limit: usize) -> Option<usize> {
        (0..b.len().min(limit))
            .step_by(align)
            .find(|&off| b[off..].starts_with(needle))
    }

    fn le_words(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn every_kernel_is_built_and_contains_its_line() {
        for kernel in Kernel::ALL {
            for variant in Variant::ALL {
                let bytes = read(kernel, variant);
                let line = format!("\n{}\n", marker(kernel, variant));
                assert!(
                    bytes.windows(line.len()).any(|w| w == line.as_bytes()),
                    "{} lacks {line:?}",
                    file_name(kernel, variant)
                );
            }
        }
    }

    #[test]
    fn paths_are_absolute_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for kernel in Kernel::ALL {
            for variant in Variant::ALL {
                let p = path(kernel, variant);
                assert!(p.is_absolute(), "{}", p.display());
                assert!(seen.insert(p));
            }
        }
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(Variant::Pass.qemu_exit_status(), Some(33));
        assert_eq!(Variant::Fail.qemu_exit_status(), Some(35));
        assert_eq!(Variant::Hang.qemu_exit_status(), None);
    }

    #[test]
    fn multiboot_kernel_is_elf32_with_multiboot1_header() {
        for variant in Variant::ALL {
            let b = read(Kernel::Multiboot, variant);
            let (_, phdrs) = parse_elf(&b, ELFCLASS32, EM_386);
            assert_no_rwx(&phdrs);
            // Multiboot 1: 4-byte aligned within the first 8 KiB, and
            // magic + flags + checksum == 0 (mod 2^32).
            let off = find_aligned(&b, &0x1bad_b002u32.to_le_bytes(), 4, 8192)
                .expect("Multiboot 1 magic in the first 8 KiB");
            let sum = (0..3).fold(0u32, |s, i| s.wrapping_add(u32_at(&b, off + 4 * i)));
            assert_eq!(sum, 0, "Multiboot 1 checksum");
            let flags = u32_at(&b, off + 4);
            assert_eq!(
                flags & 0x0001_0000,
                0,
                "ELF kernel should not use the a.out kludge"
            );
        }
    }

    #[test]
    fn multiboot_kernel_has_multiboot2_header() {
        for variant in Variant::ALL {
            let b = read(Kernel::Multiboot, variant);
            // Multiboot 2: 8-byte aligned within the first 32 KiB.
            let off = find_aligned(&b, &0xe852_50d6u32.to_le_bytes(), 8, 32768)
                .expect("Multiboot 2 magic in the first 32 KiB");
            let arch = u32_at(&b, off + 4);
            let len = u32_at(&b, off + 8) as usize;
            assert_eq!(arch, 0, "i386 architecture");
            let sum = (0..4).fold(0u32, |s, i| s.wrapping_add(u32_at(&b, off + 4 * i)));
            assert_eq!(sum, 0, "Multiboot 2 checksum");
            // Walk the tags (each 8-byte aligned) up to the end tag, which
            // must close the header exactly.
            let mut tag = off + 16;
            loop {
                let (kind, size) = (u16_at(&b, tag), u32_at(&b, tag + 4) as usize);
                assert!(size >= 8, "tag size {size}");
                if kind == 0 {
                    assert_eq!(size, 8, "end tag size");
                    assert_eq!(tag + size, off + len, "end tag closes the header");
                    break;
                }
                tag += size.next_multiple_of(8);
                assert!(tag < off + len, "ran past the header without an end tag");
            }
        }
    }

    #[test]
    fn multiboot_kernel_has_pvh_note_pointing_at_entry() {
        for variant in Variant::ALL {
            let b = read(Kernel::Multiboot, variant);
            let (entry, phdrs) = parse_elf(&b, ELFCLASS32, EM_386);
            let mut found = None;
            for p in phdrs.iter().filter(|p| p.kind == PT_NOTE) {
                let (mut n, end) = (p.offset as usize, (p.offset + p.filesz) as usize);
                while n + 12 <= end {
                    let namesz = u32_at(&b, n) as usize;
                    let descsz = u32_at(&b, n + 4) as usize;
                    let kind = u32_at(&b, n + 8);
                    let name = &b[n + 12..n + 12 + namesz];
                    let desc = n + 12 + namesz.next_multiple_of(4);
                    if name == b"Xen\0" && kind == 18 {
                        assert_eq!(descsz, 4);
                        found = Some(u32_at(&b, desc));
                    }
                    n = desc + descsz.next_multiple_of(4);
                }
            }
            let pvh_entry = found.expect("XEN_ELFNOTE_PHYS32_ENTRY note in a PT_NOTE segment");
            assert_eq!(u64::from(pvh_entry), entry, "PVH entry is the ELF entry");
        }
    }

    /// Checks that `b` is a PE32+ EFI application for `machine` that the
    /// firmware may load at any address.
    fn assert_pe32plus_efi_application(b: &[u8], machine: u16) {
        const IMAGE_FILE_RELOCS_STRIPPED: u16 = 0x0001;
        const IMAGE_FILE_EXECUTABLE_IMAGE: u16 = 0x0002;
        assert_eq!(&b[..2], b"MZ", "DOS header");
        let pe = u32_at(b, 0x3c) as usize;
        assert_eq!(&b[pe..pe + 4], b"PE\0\0", "PE signature");
        let coff = pe + 4;
        assert_eq!(u16_at(b, coff), machine, "machine");
        let characteristics = u16_at(b, coff + 18);
        assert_ne!(characteristics & IMAGE_FILE_EXECUTABLE_IMAGE, 0);
        // Firmware loads the image wherever it likes; it must not claim
        // to be fixed at its image base.
        assert_eq!(characteristics & IMAGE_FILE_RELOCS_STRIPPED, 0);
        let opt = coff + 20;
        assert_eq!(u16_at(b, opt), 0x20b, "PE32+ optional header");
        assert_ne!(u32_at(b, opt + 16), 0, "entry point");
        assert_eq!(u16_at(b, opt + 68), 10, "subsystem EFI application");
    }

    #[test]
    fn efi_app_is_pe32plus_efi_application() {
        const IMAGE_FILE_MACHINE_AMD64: u16 = 0x8664;
        for variant in Variant::ALL {
            let b = read(Kernel::EfiApp, variant);
            assert_pe32plus_efi_application(&b, IMAGE_FILE_MACHINE_AMD64);
        }
    }

    #[test]
    fn efi_app_aa64_is_pe32plus_efi_application() {
        const IMAGE_FILE_MACHINE_ARM64: u16 = 0xaa64;
        for variant in Variant::ALL {
            let b = read(Kernel::EfiAppAa64, variant);
            assert_pe32plus_efi_application(&b, IMAGE_FILE_MACHINE_ARM64);
            // What the linker script and the source arrange for objcopy:
            // 4 KiB section alignment with page-aligned sections (edk2
            // maps each section with its own permissions), and a base
            // relocation directory that is present but empty (the code is
            // position independent; without one objcopy would mark the
            // image "relocations stripped").
            let pe = u32_at(&b, 0x3c) as usize;
            let sections = u16_at(&b, pe + 6) as usize;
            let opt = pe + 24;
            let opt_size = u16_at(&b, pe + 20) as usize;
            let section_alignment = u32_at(&b, opt + 32);
            assert_eq!(section_alignment, 0x1000, "section alignment");
            let reloc_dir = (u32_at(&b, opt + 152), u32_at(&b, opt + 156));
            assert_ne!(reloc_dir.0, 0, "base relocation directory");
            assert_eq!(reloc_dir.1, 8, "one empty base relocation block");
            for i in 0..sections {
                let header = opt + opt_size + 40 * i;
                let rva = u32_at(&b, header + 12);
                assert_eq!(rva % section_alignment, 0, "section {i} at RVA {rva:#x}");
            }
        }
    }

    #[test]
    fn bios_cd_image_is_one_block_with_room_for_the_boot_info_table() {
        for variant in Variant::ALL {
            let b = read(Kernel::BiosCd, variant);
            assert_eq!(b.len(), 2048, "one CD block");
            // A short jump over bytes 8..64, which the ISO writer overwrites.
            assert_eq!(b[0], 0xEB, "short jump first");
            assert_eq!(usize::from(b[1]) + 2, 64, "jump lands after the table");
            assert!(b[8..64].iter().all(|&x| x == 0), "table area is empty");
        }
    }

    #[test]
    fn riscv64_kernel_is_elf64_starting_at_its_lowest_address() {
        const LOAD_ADDRESS: u64 = 0x8020_0000;
        for variant in Variant::ALL {
            let b = read(Kernel::Riscv64, variant);
            let (entry, phdrs) = parse_elf(&b, ELFCLASS64, EM_RISCV);
            assert_no_rwx(&phdrs);
            // QEMU jumps to the lowest loaded address, not to the entry:
            // the two must be the same, at OpenSBI's default next address.
            let lowest = phdrs
                .iter()
                .filter(|p| p.kind == PT_LOAD)
                .map(|p| p.vaddr)
                .min()
                .expect("a loaded segment");
            assert_eq!(lowest, LOAD_ADDRESS, "lowest loaded address");
            assert_eq!(entry, LOAD_ADDRESS, "entry");
        }
    }

    #[test]
    fn limine_kernel_is_higher_half_elf64_with_requests() {
        const HIGHER_HALF: u64 = 0xffff_ffff_8000_0000;
        for variant in Variant::ALL {
            let b = read(Kernel::Limine, variant);
            let (entry, phdrs) = parse_elf(&b, ELFCLASS64, EM_X86_64);
            assert!(entry >= HIGHER_HALF, "entry {entry:#x}");
            let loads: Vec<_> = phdrs.iter().filter(|p| p.kind == PT_LOAD).collect();
            assert!(!loads.is_empty());
            for p in &loads {
                assert!(p.vaddr >= HIGHER_HALF, "segment {p:?}");
            }
            assert_no_rwx(&phdrs);

            let start = le_words(&[
                0xf6b8_f4b3_9de7_d1ae,
                0xfab9_1a69_40fc_b9cf,
                0x785c_6ed0_15d3_e316,
                0x181e_920a_7852_b9d9,
            ]);
            let base_revision = le_words(&[0xf956_2b2d_5c95_a6c8, 0x6a7b_3849_4453_6bdc, 3]);
            let end = le_words(&[0xadc0_e053_1bb1_0d03, 0x9572_709f_3176_4c62]);
            let start_at = find_aligned(&b, &start, 8, usize::MAX).expect("start marker");
            let rev_at =
                find_aligned(&b, &base_revision, 8, usize::MAX).expect("base revision 3 tag");
            let end_at = find_aligned(&b, &end, 8, usize::MAX).expect("end marker");
            assert!(
                start_at < rev_at && rev_at < end_at,
                "markers around the tag"
            );
            // Limine writes to the tag, so it must be in a writable segment
            // (file offsets and addresses are 4 KiB-congruent, so the file
            // offset is enough to find the segment).
            let segment = loads
                .iter()
                .find(|p| (p.offset..p.offset + p.filesz).contains(&(rev_at as u64)))
                .expect("base revision tag inside a loaded segment");
            assert_ne!(segment.flags & PF_W, 0, "base revision tag is writable");
        }
    }
}
