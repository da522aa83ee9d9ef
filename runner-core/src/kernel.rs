//! What the kernel executable is: ELF or PE, which architecture, which boot protocols it carries.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::media::ImageKind;

/// A guest architecture, named as QEMU's `qemu-system-<arch>` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Arch {
    /// x86_64 (also runs 32-bit x86 kernels).
    X86_64,
    /// 64-bit ARM.
    Aarch64,
    /// 64-bit RISC-V.
    Riscv64,
    /// 64-bit LoongArch.
    LoongArch64,
}

impl Arch {
    /// The name used in config and in `qemu-system-<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::LoongArch64 => "loongarch64",
        }
    }

    /// Parses a config value.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "x86_64" | "x86-64" | "amd64" | "i386" | "i686" | "x86" => Some(Arch::X86_64),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            "riscv64" => Some(Arch::Riscv64),
            "loongarch64" => Some(Arch::LoongArch64),
            _ => None,
        }
    }

    /// The removable-media file name UEFI firmware boots on this architecture.
    pub fn efi_boot_file(self) -> &'static str {
        match self {
            Arch::X86_64 => "BOOTX64.EFI",
            Arch::Aarch64 => "BOOTAA64.EFI",
            Arch::Riscv64 => "BOOTRISCV64.EFI",
            Arch::LoongArch64 => "BOOTLOONGARCH64.EFI",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The container format of the kernel file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum KernelFormat {
    /// ELF; `bits` is 32 or 64.
    Elf { bits: u8 },
    /// PE32+ image (a UEFI application when `efi_app` is set).
    Pe { efi_app: bool },
    /// Not a kernel but a ready bootable image (ISO 9660, FAT, or a partitioned disk), booted
    /// as it is.
    Image(ImageKind),
}

/// The facts about a kernel file that decide how it can boot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Kernel {
    /// Path of the executable.
    pub path: PathBuf,
    /// ELF or PE.
    pub format: KernelFormat,
    /// Architecture from the machine field.
    pub arch: Arch,
    /// Carries a valid multiboot1 header.
    pub multiboot1: bool,
    /// Carries a valid multiboot2 header.
    pub multiboot2: bool,
    /// Carries a Xen PVH entry note (QEMU `-kernel` boots it directly).
    pub pvh: bool,
}

impl Kernel {
    /// A kernel described in memory, for plugin unit tests: `format` and `arch` as given, no
    /// boot headers (set the public fields to add them). Nothing is read.
    pub fn described(path: impl Into<PathBuf>, format: KernelFormat, arch: Arch) -> Kernel {
        Kernel {
            path: path.into(),
            format,
            arch,
            multiboot1: false,
            multiboot2: false,
            pvh: false,
        }
    }

    /// Reads and classifies the kernel at `path`. Only the headers are read, so a large
    /// kernel costs no more than a small one.
    pub fn inspect(path: &Path) -> Result<Kernel, Error> {
        let mut file = File::open(path).map_err(|e| Error::io("open the kernel", path, e))?;
        // Boot headers live in the first 32 KiB (multiboot2's limit; an ISO's primary volume
        // descriptor sits at 32 KiB + 1).
        let mut head = Vec::with_capacity(HEAD + 8);
        (&mut file)
            .take(HEAD as u64 + 8)
            .read_to_end(&mut head)
            .map_err(|e| Error::io("read the kernel", path, e))?;
        if head.starts_with(b"\x7fELF") {
            let mut reader = Ranges { file, head: &head };
            Self::from_elf(path, &mut reader)
        } else if head.starts_with(b"MZ") {
            Self::from_pe(path, &head)
        } else if let Some(kind) = image_kind(&head) {
            Ok(Kernel {
                path: path.to_path_buf(),
                format: KernelFormat::Image(kind),
                arch: Arch::X86_64,
                multiboot1: false,
                multiboot2: false,
                pvh: false,
            })
        } else {
            Err(Error::kernel(
                path,
                "not an ELF or PE executable, nor an ISO, FAT or disk image; pass the kernel binary cargo built",
            ))
        }
    }

    /// Whether the file follows Linux's x86 boot protocol: the setup header's magic `HdrS` at
    /// offset 0x202 (a bzImage, with or without an EFI stub).
    pub fn is_bzimage(path: &Path) -> bool {
        let mut magic = [0u8; 4];
        File::open(path)
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(0x202))?;
                f.read_exact(&mut magic)
            })
            .is_ok()
            && &magic == b"HdrS"
    }

    /// A ready image's kind, when the "kernel" is one.
    pub fn prebuilt_image(&self) -> Option<ImageKind> {
        match self.format {
            KernelFormat::Image(kind) => Some(kind),
            _ => None,
        }
    }

    /// Whether this is a UEFI application.
    pub fn is_efi_app(&self) -> bool {
        matches!(self.format, KernelFormat::Pe { efi_app: true })
    }

    /// Whether QEMU's `-kernel` boots it without a bootloader: on x86_64 a multiboot1 32-bit
    /// ELF or an ELF with a PVH note; on aarch64 any ELF (loaded at its addresses); on riscv64
    /// any ELF (started by the built-in OpenSBI firmware).
    pub fn boots_directly(&self) -> bool {
        match (self.arch, self.format) {
            (Arch::X86_64, KernelFormat::Elf { bits }) => {
                self.pvh || (self.multiboot1 && bits == 32)
            }
            (Arch::Aarch64 | Arch::Riscv64, KernelFormat::Elf { .. }) => true,
            _ => false,
        }
    }

    fn from_pe(path: &Path, head: &[u8]) -> Result<Kernel, Error> {
        let bad = || Error::kernel(path, "truncated or malformed PE header");
        let pe_offset = u32_le(head, 0x3c).ok_or_else(bad)? as usize;
        if head.get(pe_offset..pe_offset + 4) != Some(b"PE\0\0") {
            return Err(bad());
        }
        let machine = u16_le(head, pe_offset + 4).ok_or_else(bad)?;
        let optional = pe_offset + 24;
        let magic = u16_le(head, optional).ok_or_else(bad)?;
        let subsystem = u16_le(head, optional + 68).ok_or_else(bad)?;
        let arch = match machine {
            0x8664 | 0x14c => Arch::X86_64,
            0xaa64 => Arch::Aarch64,
            0x5064 => Arch::Riscv64,
            0x6264 => Arch::LoongArch64,
            other => {
                return Err(Error::kernel(
                    path,
                    format!("PE machine type {other:#06x} is not supported"),
                ));
            }
        };
        Ok(Kernel {
            path: path.to_path_buf(),
            format: KernelFormat::Pe {
                efi_app: magic == 0x20b && (10..=13).contains(&subsystem),
            },
            arch,
            multiboot1: false,
            multiboot2: false,
            pvh: false,
        })
    }

    fn from_elf(path: &Path, reader: &mut Ranges<'_>) -> Result<Kernel, Error> {
        let bytes = reader.head;
        let bad = || Error::kernel(path, "truncated or malformed ELF header");
        let bits = match bytes.get(4) {
            Some(1) => 32,
            Some(2) => 64,
            _ => return Err(bad()),
        };
        if bytes.get(5) != Some(&1) {
            return Err(Error::kernel(
                path,
                "big-endian ELF files are not supported",
            ));
        }
        let machine = u16_le(bytes, 18).ok_or_else(bad)?;
        let arch = match machine {
            3 | 62 => Arch::X86_64,
            183 => Arch::Aarch64,
            243 => Arch::Riscv64,
            258 => Arch::LoongArch64,
            other => {
                return Err(Error::kernel(
                    path,
                    format!("ELF machine type {other} is not supported"),
                ));
            }
        };
        check_extent(path, reader, bits == 64)?;
        let head = &bytes[..bytes.len().min(HEAD)];
        Ok(Kernel {
            path: path.to_path_buf(),
            format: KernelFormat::Elf { bits },
            arch,
            multiboot1: has_multiboot1(head),
            multiboot2: has_multiboot2(head),
            pvh: has_pvh_note(reader, bits == 64).unwrap_or(false),
        })
    }
}

/// How much of the file is read up front.
const HEAD: usize = 32 * 1024;

/// Reads byte ranges of the kernel: from the already read head when they are in it, else from
/// the file.
struct Ranges<'a> {
    file: File,
    head: &'a [u8],
}

impl Ranges<'_> {
    fn read(&mut self, offset: usize, len: usize) -> Option<Vec<u8>> {
        let end = offset.checked_add(len)?;
        if let Some(bytes) = self.head.get(offset..end) {
            return Some(bytes.to_vec());
        }
        // A note larger than this is not a boot note; refuse rather than read a whole file.
        if len > 1024 * 1024 {
            return None;
        }
        let mut buf = vec![0; len];
        self.file.seek(SeekFrom::Start(offset as u64)).ok()?;
        self.file.read_exact(&mut buf).ok()?;
        Some(buf)
    }
}

/// Recognises ready images: ISO 9660 ("CD001" at 32 KiB + 1), a FAT boot sector, or a disk
/// with an MBR boot signature.
fn image_kind(head: &[u8]) -> Option<ImageKind> {
    if head.get(0x8001..0x8006) == Some(b"CD001") {
        return Some(ImageKind::Iso);
    }
    if head.get(510..512) != Some(&[0x55, 0xAA]) {
        return None;
    }
    let fat_label = |at: usize| head.get(at..at + 3) == Some(b"FAT");
    if fat_label(0x36) || fat_label(0x52) {
        Some(ImageKind::Fat)
    } else {
        Some(ImageKind::Disk)
    }
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_le(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Multiboot1: magic, flags, checksum summing to zero, 4-aligned, within the first 8 KiB.
fn has_multiboot1(head: &[u8]) -> bool {
    (0..head.len().min(8192).saturating_sub(11))
        .step_by(4)
        .any(|at| {
            let (Some(magic), Some(flags), Some(sum)) =
                (u32_le(head, at), u32_le(head, at + 4), u32_le(head, at + 8))
            else {
                return false;
            };
            magic == 0x1BAD_B002 && magic.wrapping_add(flags).wrapping_add(sum) == 0
        })
}

/// Multiboot2: magic, architecture, length, checksum summing to zero, 8-aligned, first 32 KiB.
fn has_multiboot2(head: &[u8]) -> bool {
    (0..head.len().saturating_sub(15)).step_by(8).any(|at| {
        let (Some(magic), Some(arch), Some(len), Some(sum)) = (
            u32_le(head, at),
            u32_le(head, at + 4),
            u32_le(head, at + 8),
            u32_le(head, at + 12),
        ) else {
            return false;
        };
        magic == 0xE852_50D6 && magic.wrapping_add(arch).wrapping_add(len).wrapping_add(sum) == 0
    })
}

/// Refuses a truncated ELF (an interrupted copy or link): its program header table and the
/// file bytes of every segment must lie within the file. Left alone, a truncated kernel fails
/// only in the boot, as QEMU's or the bootloader's load error.
fn check_extent(path: &Path, reader: &mut Ranges<'_>, is64: bool) -> Result<(), Error> {
    let bytes = reader.head;
    let fields = if is64 {
        u64_le(bytes, 32)
            .zip(u16_le(bytes, 54))
            .zip(u16_le(bytes, 56))
    } else {
        u32_le(bytes, 28)
            .map(u64::from)
            .zip(u16_le(bytes, 42))
            .zip(u16_le(bytes, 44))
    };
    let Some(((phoff, phentsize), phnum)) = fields else {
        return Err(Error::kernel(path, "truncated or malformed ELF header"));
    };
    // No program headers, or more than fit the field (PN_XNUM): nothing to check here.
    if phnum == 0 || phnum == 0xffff {
        return Ok(());
    }
    let len = reader
        .file
        .metadata()
        .map_err(|e| Error::io("read the kernel", path, e))?
        .len();
    let truncated = |what: String, end: u64| {
        Error::kernel(
            path,
            format!(
                "is truncated: {what} ends at byte {end}, past the end of the file (the file ends at byte {len}); rebuild it (was its copy or link interrupted?)"
            ),
        )
    };
    let (entry, size) = (
        u64::from(phentsize),
        u64::from(phentsize) * u64::from(phnum),
    );
    let table_end = phoff.saturating_add(size);
    if table_end > len {
        return Err(truncated("its program header table".into(), table_end));
    }
    let min_entry = if is64 { 56 } else { 32 };
    let (Ok(offset), Ok(size)) = (usize::try_from(phoff), usize::try_from(size)) else {
        return Ok(());
    };
    if entry < min_entry {
        return Err(Error::kernel(
            path,
            format!("malformed ELF: program header entries of {entry} bytes"),
        ));
    }
    let Some(table) = reader.read(offset, size) else {
        return Ok(());
    };
    for i in 0..usize::from(phnum) {
        let ph = i * usize::from(phentsize);
        let (offset, filesz) = if is64 {
            (u64_le(&table, ph + 8), u64_le(&table, ph + 32))
        } else {
            (
                u32_le(&table, ph + 4).map(u64::from),
                u32_le(&table, ph + 16).map(u64::from),
            )
        };
        let (Some(offset), Some(filesz)) = (offset, filesz) else {
            continue;
        };
        let end = offset.saturating_add(filesz);
        if filesz > 0 && end > len {
            return Err(truncated(
                format!("segment {i} (file bytes {offset:#x}..{end:#x})"),
                end,
            ));
        }
    }
    Ok(())
}

/// A `PT_NOTE` segment holding a "Xen" note of type 18 (`XEN_ELFNOTE_PHYS32_ENTRY`).
fn has_pvh_note(reader: &mut Ranges<'_>, is64: bool) -> Option<bool> {
    let bytes = reader.head;
    let (phoff, phentsize, phnum) = if is64 {
        (
            u64_le(bytes, 32)? as usize,
            u16_le(bytes, 54)? as usize,
            u16_le(bytes, 56)? as usize,
        )
    } else {
        (
            u32_le(bytes, 28)? as usize,
            u16_le(bytes, 42)? as usize,
            u16_le(bytes, 44)? as usize,
        )
    };
    let table = reader.read(phoff, phentsize.checked_mul(phnum)?)?;
    for i in 0..phnum {
        let ph = i * phentsize;
        if u32_le(&table, ph)? != 4 {
            continue;
        }
        let (offset, size) = if is64 {
            (
                u64_le(&table, ph + 8)? as usize,
                u64_le(&table, ph + 32)? as usize,
            )
        } else {
            (
                u32_le(&table, ph + 4)? as usize,
                u32_le(&table, ph + 16)? as usize,
            )
        };
        let notes = reader.read(offset, size)?;
        let mut at = 0;
        while at + 12 <= notes.len() {
            let namesz = u32_le(&notes, at)? as usize;
            let descsz = u32_le(&notes, at + 4)? as usize;
            let kind = u32_le(&notes, at + 8)?;
            let name = notes.get(at + 12..at + 12 + namesz)?;
            if kind == 18 && name.starts_with(b"Xen") {
                return Some(true);
            }
            at += 12 + namesz.next_multiple_of(4) + descsz.next_multiple_of(4);
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf32_with(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 1;
        b[5] = 1;
        b[18] = 3;
        b[1024..1024 + payload.len()].copy_from_slice(payload);
        b
    }

    fn header(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn multiboot_headers_are_recognised_only_with_valid_checksums() {
        let good = header(&[0x1BAD_B002, 3, 0u32.wrapping_sub(0x1BAD_B002 + 3)]);
        assert!(has_multiboot1(&elf32_with(&good)));
        let bad = header(&[0x1BAD_B002, 3, 0]);
        assert!(!has_multiboot1(&elf32_with(&bad)));
        let mb2 = header(&[0xE852_50D6, 0, 16, 0u32.wrapping_sub(0xE852_50D6 + 16)]);
        assert!(has_multiboot2(&elf32_with(&mb2)));
    }

    /// An ELF32 file of `len` bytes whose one segment holds file bytes `offset..offset+filesz`.
    fn elf32_segment(len: usize, offset: u32, filesz: u32) -> Vec<u8> {
        let mut b = elf32_with(&[]);
        b.resize(len.max(52 + 32), 0);
        b[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
        b[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
        b[44..46].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        b[52..56].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        b[56..60].copy_from_slice(&offset.to_le_bytes());
        b[68..72].copy_from_slice(&filesz.to_le_bytes());
        b.truncate(len);
        b
    }

    #[test]
    fn a_truncated_elf_is_refused_with_where_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernel");
        std::fs::write(&path, elf32_segment(0x3000, 0x1000, 0x2000)).unwrap();
        assert!(
            Kernel::inspect(&path).is_ok(),
            "a segment up to the end is fine"
        );
        std::fs::write(&path, elf32_segment(0x2fff, 0x1000, 0x2000)).unwrap();
        let err = Kernel::inspect(&path).unwrap_err().to_string();
        assert!(
            err.contains("is truncated: segment 0 (file bytes 0x1000..0x3000) ends at byte 12288, past the end of the file (the file ends at byte 12287)"),
            "{err}"
        );
        // Cut inside the program header table.
        std::fs::write(&path, &elf32_segment(0x3000, 0x1000, 0x2000)[..70]).unwrap();
        let err = Kernel::inspect(&path).unwrap_err().to_string();
        assert!(
            err.contains("its program header table ends at byte 84"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernel");
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        let err = Kernel::inspect(&path).unwrap_err().to_string();
        assert!(err.contains("not an ELF or PE"), "{err}");
        let mut iso = vec![0u8; 0x8010];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        std::fs::write(&path, &iso).unwrap();
        assert_eq!(
            Kernel::inspect(&path).unwrap().prebuilt_image(),
            Some(ImageKind::Iso)
        );
        let mut disk = vec![0u8; 1024];
        disk[510] = 0x55;
        disk[511] = 0xAA;
        std::fs::write(&path, &disk).unwrap();
        assert_eq!(
            Kernel::inspect(&path).unwrap().prebuilt_image(),
            Some(ImageKind::Disk)
        );
        disk[0x52..0x55].copy_from_slice(b"FAT");
        std::fs::write(&path, &disk).unwrap();
        assert_eq!(
            Kernel::inspect(&path).unwrap().prebuilt_image(),
            Some(ImageKind::Fat)
        );
        std::fs::write(&path, b"\x7fELF").unwrap();
        let err = Kernel::inspect(&path).unwrap_err().to_string();
        assert!(err.contains("malformed ELF"), "{err}");
    }
}
