//! GRUB's BIOS boot code put into a finished image, as `grub-bios-setup` does it: `boot.img`'s
//! code into sector 0, the core image where the BIOS can read it, and the block list that tells
//! `diskboot` where the rest of the core is.
//!
//! The offsets, from GRUB 2.06 (`include/grub/i386/pc/boot.h`, `grub-core/boot/i386/pc/boot.S`,
//! `diskboot.S`, `util/setup.c`):
//!
//! - `boot.img` (one sector, loaded at 0x7C00) starts with a 3-byte jump over a BIOS parameter
//!   block at 0x03..0x5A. At 0x5A it holds the core's load address (0x8000), at 0x5C the 64-bit
//!   LBA of the core's first sector (`GRUB_BOOT_MACHINE_KERNEL_SECTOR`), at 0x64 the boot drive
//!   (0xFF: the drive the BIOS booted from), and at 0x66 (`GRUB_BOOT_MACHINE_DRIVE_CHECK`) a
//!   2-byte jump that `grub-bios-setup` replaces by two NOPs on hard disks, so that a BIOS that
//!   passes a drive number without bit 0x80 gets 0x80. Bytes 0x1B8..0x1FE (disk signature and
//!   partition table) and 0x55AA belong to the disk: setup keeps the disk's, and its BPB.
//! - `boot.img` loads that one sector at 0x8000 and jumps there: `diskboot.img`, the first
//!   sector of an `i386-pc` core image. `diskboot` reads block lists that grow down from its
//!   end: the first at 0x200 − 12 is a u64 start LBA, a u16 sector count and a u16 load segment
//!   (0x820: 0x8200, right after itself); a count of 0 ends the list. `grub-mkimage` writes the
//!   count (the core's sectors after diskboot) and the segment; setup writes the start LBA and
//!   zeroes the entry below as the terminator.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use image_runner_core::Error;

use crate::locate::{self, SECTOR};

const BPB_START: usize = 0x03;
const BPB_END: usize = 0x5A;
const KERNEL_SECTOR: usize = 0x5C;
const BOOT_DRIVE: usize = 0x64;
const DRIVE_CHECK: usize = 0x66;
/// Where the disk's own bytes start again: the Windows NT disk signature, then the table.
const DISK_BYTES: usize = 0x1B8;
const LIST_SIZE: usize = 12;
const FIRST_LIST: usize = SECTOR - LIST_SIZE;
/// `GRUB_BOOT_I386_PC_KERNEL_SEG` (0x800) + 0x200 / 16: where diskboot loads the core.
const CORE_SEGMENT: u16 = 0x820;
/// The core may not reach 0x78000 when loaded at 0x9000 (`GRUB_KERNEL_I386_PC_LINK_ADDR`):
/// setup's `maxsec`, in sectors.
const MAX_CORE_SECTORS: u64 = (0x78000 - 0x9000) / SECTOR as u64;
/// An El Torito core image starts with `cdboot.img`, one CD block.
const CDBOOT_LEN: usize = 2048;

/// Writes `boot.img`'s code into `sector0` (a disk's first sector), pointing it at the core's
/// first sector `core_lba`. The disk's BPB area, signature and partition table stay.
pub fn patch_boot_sector(sector0: &mut [u8], boot_img: &[u8], core_lba: u64) -> Result<(), Error> {
    if boot_img.len() != SECTOR || boot_img[510..] != [0x55, 0xAA] {
        return Err(Error::plugin(
            "grub",
            format!(
                "GRUB's boot.img is {} bytes without the boot signature 0x55AA; reinstall grub-pc-bin",
                boot_img.len()
            ),
        ));
    }
    sector0[..BPB_START].copy_from_slice(&boot_img[..BPB_START]);
    sector0[BPB_END..DISK_BYTES].copy_from_slice(&boot_img[BPB_END..DISK_BYTES]);
    sector0[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&core_lba.to_le_bytes());
    sector0[BOOT_DRIVE] = 0xFF;
    sector0[DRIVE_CHECK..DRIVE_CHECK + 2].copy_from_slice(&[0x90, 0x90]);
    sector0[510..].copy_from_slice(&[0x55, 0xAA]);
    Ok(())
}

/// Points `diskboot` (the first sector of an `i386-pc` core image) at the `count` sectors that
/// follow it on the disk, from `start`.
pub fn patch_block_list(diskboot: &mut [u8], start: u64, count: u16) -> Result<(), Error> {
    let segment = u16::from_le_bytes([diskboot[SECTOR - 2], diskboot[SECTOR - 1]]);
    if segment != CORE_SEGMENT {
        return Err(Error::plugin(
            "grub",
            format!(
                "the core image does not start with GRUB's diskboot (its block list loads at segment {segment:#x}, not {CORE_SEGMENT:#x}); was it made with `grub-mkimage --format=i386-pc`?"
            ),
        ));
    }
    // Clear lists left from before, down to the terminator, as setup does. The lists share
    // the sector with diskboot's code, so a missing terminator must not wipe it.
    let mut at = FIRST_LIST;
    while diskboot[at + 8..at + 10] != [0, 0] {
        if at < SECTOR / 2 {
            return Err(Error::plugin(
                "grub",
                "the core image's block lists have no terminator; was it made with `grub-mkimage --format=i386-pc`?",
            ));
        }
        diskboot[at..at + LIST_SIZE].fill(0);
        at -= LIST_SIZE;
    }
    diskboot[FIRST_LIST..FIRST_LIST + 8].copy_from_slice(&start.to_le_bytes());
    diskboot[FIRST_LIST + 8..FIRST_LIST + 10].copy_from_slice(&count.to_le_bytes());
    diskboot[FIRST_LIST + 10..SECTOR].copy_from_slice(&CORE_SEGMENT.to_le_bytes());
    diskboot[FIRST_LIST - LIST_SIZE..FIRST_LIST].fill(0);
    Ok(())
}

/// Installs GRUB into the partitioned disk image at `path`: `core` (an `i386-pc` core image)
/// into the GPT BIOS boot partition, or into the gap between sector 0 and the first partition
/// of an MBR disk, and `boot_img` into sector 0.
pub fn into_disk(path: &Path, core: &[u8], boot_img: &[u8]) -> Result<(), Error> {
    let mut file = open(path)?;
    let area = locate::embedding_area(&mut file, path)?;
    let sectors = (core.len() as u64).div_ceil(SECTOR as u64);
    if !(2..=MAX_CORE_SECTORS).contains(&sectors) {
        return Err(Error::plugin(
            "grub",
            format!(
                "the core image is {} bytes; GRUB's BIOS loader takes 2 to {MAX_CORE_SECTORS} sectors; embed fewer `grub.extra-modules`",
                core.len()
            ),
        ));
    }
    if sectors > area.sectors {
        return Err(Error::plugin(
            "grub",
            format!(
                "the core image needs {sectors} sectors but the {} of `{}` has {}; make it larger",
                area.what,
                path.display(),
                area.sectors
            ),
        ));
    }
    let mut padded = core.to_vec();
    padded.resize(sectors as usize * SECTOR, 0);
    let count = u16::try_from(sectors - 1).unwrap_or(u16::MAX);
    patch_block_list(&mut padded[..SECTOR], area.first + 1, count)?;
    write_at(&mut file, path, area.first * SECTOR as u64, &padded)?;
    install_boot_sector(&mut file, path, boot_img, area.first)
}

/// Makes the hybrid ISO at `path` boot as a disk too: `boot.img` in sector 0 loads the
/// `diskboot` sector inside the El Torito core image `eltorito` (what the ISO's BIOS boot
/// entry points at), whose block list then loads the rest of that file. An ISO without an MBR
/// in its system area cannot boot as a disk and is left alone.
pub fn into_hybrid_iso(path: &Path, eltorito: &[u8], boot_img: &[u8]) -> Result<(), Error> {
    let mut file = open(path)?;
    let mut sector0 = [0u8; SECTOR];
    read_at(&mut file, path, 0, &mut sector0)?;
    if sector0[510..] != [0x55, 0xAA] {
        return Ok(());
    }
    let entry = locate::el_torito_bios_image(&mut file, path)?;
    let wanted = CDBOOT_LEN + SECTOR;
    if eltorito.len() <= wanted {
        return Err(Error::plugin(
            "grub",
            format!(
                "the El Torito core image is only {} bytes; was it made with `grub-mkimage --format=i386-pc-eltorito`?",
                eltorito.len()
            ),
        ));
    }
    // The catalogue must point at our image: compare its diskboot sector (the boot info table
    // the ISO writer patched in lies in the cdboot part before it).
    let diskboot_at = entry * 2048 + CDBOOT_LEN as u64;
    let mut diskboot = [0u8; SECTOR];
    read_at(&mut file, path, diskboot_at, &mut diskboot)?;
    if diskboot[..] != eltorito[CDBOOT_LEN..wanted] {
        return Err(Error::plugin(
            "grub",
            format!(
                "the BIOS boot entry of `{}` (block {entry}) is not GRUB's El Torito image; another bootloader's boot image?",
                path.display()
            ),
        ));
    }
    let diskboot_lba = diskboot_at / SECTOR as u64;
    let rest = ((eltorito.len() - wanted) as u64).div_ceil(SECTOR as u64);
    let count = u16::try_from(rest).map_err(|_| {
        Error::plugin(
            "grub",
            format!(
                "the El Torito core image is too large ({} bytes)",
                eltorito.len()
            ),
        )
    })?;
    patch_block_list(&mut diskboot, diskboot_lba + 1, count)?;
    write_at(&mut file, path, diskboot_at, &diskboot)?;
    install_boot_sector(&mut file, path, boot_img, diskboot_lba)
}

fn install_boot_sector(
    file: &mut File,
    path: &Path,
    boot_img: &[u8],
    core_lba: u64,
) -> Result<(), Error> {
    let mut sector0 = [0u8; SECTOR];
    read_at(file, path, 0, &mut sector0)?;
    patch_boot_sector(&mut sector0, boot_img, core_lba)?;
    write_at(file, path, 0, &sector0)?;
    file.sync_all()
        .map_err(|e| Error::io("write the boot code into", path, e))
}

fn open(path: &Path) -> Result<File, Error> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))
}

pub(crate) fn read_at(file: &mut File, path: &Path, at: u64, buf: &mut [u8]) -> Result<(), Error> {
    file.seek(SeekFrom::Start(at))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| Error::io("read", path, e))
}

fn write_at(file: &mut File, path: &Path, at: u64, bytes: &[u8]) -> Result<(), Error> {
    file.seek(SeekFrom::Start(at))
        .and_then(|_| file.write_all(bytes))
        .map_err(|e| Error::io("write the boot code into", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `boot.img`: recognisable bytes, a signature.
    fn boot_img() -> Vec<u8> {
        let mut b: Vec<u8> = (0..SECTOR).map(|i| (i % 251) as u8 | 1).collect();
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    /// A stand-in for an `i386-pc` core image of `sectors` sectors: diskboot with
    /// grub-mkimage's block list (start 2, count, segment 0x820), then the rest.
    fn core(sectors: usize) -> Vec<u8> {
        let mut c = vec![0xC0u8; sectors * SECTOR - 100];
        c[..FIRST_LIST].fill(0xD0);
        c[FIRST_LIST - 2 * LIST_SIZE..SECTOR].fill(0);
        c[FIRST_LIST..FIRST_LIST + 8].copy_from_slice(&2u64.to_le_bytes());
        c[FIRST_LIST + 8..FIRST_LIST + 10].copy_from_slice(&((sectors - 1) as u16).to_le_bytes());
        c[SECTOR - 2..SECTOR].copy_from_slice(&CORE_SEGMENT.to_le_bytes());
        c
    }

    #[test]
    fn the_boot_sector_keeps_the_disk_bytes() {
        let mut sector = [0u8; SECTOR];
        sector[BPB_START..BPB_END].fill(0xBB);
        sector[DISK_BYTES..510].fill(0xEE);
        sector[510] = 0x55;
        sector[511] = 0xAA;
        let boot = boot_img();
        patch_boot_sector(&mut sector, &boot, 0x0012_3456_789A).unwrap();
        assert_eq!(sector[..3], boot[..3]);
        assert!(sector[BPB_START..BPB_END].iter().all(|&b| b == 0xBB));
        assert_eq!(sector[BPB_END..KERNEL_SECTOR], boot[BPB_END..KERNEL_SECTOR]);
        assert_eq!(
            sector[KERNEL_SECTOR..KERNEL_SECTOR + 8],
            0x0012_3456_789A_u64.to_le_bytes()
        );
        assert_eq!(sector[BOOT_DRIVE], 0xFF);
        assert_eq!(sector[DRIVE_CHECK..DRIVE_CHECK + 2], [0x90, 0x90]);
        assert_eq!(
            sector[DRIVE_CHECK + 2..DISK_BYTES],
            boot[DRIVE_CHECK + 2..DISK_BYTES]
        );
        assert!(sector[DISK_BYTES..510].iter().all(|&b| b == 0xEE));
        assert_eq!(sector[510..], [0x55, 0xAA]);

        let err = patch_boot_sector(&mut sector, &boot[..100], 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("grub-pc-bin"), "{err}");
    }

    #[test]
    fn the_block_list_points_past_diskboot() {
        let mut c = core(10);
        c[FIRST_LIST - LIST_SIZE + 8] = 7; // a stale second list
        patch_block_list(&mut c[..SECTOR], 2049, 9).unwrap();
        assert_eq!(c[FIRST_LIST..FIRST_LIST + 8], 2049u64.to_le_bytes());
        assert_eq!(c[FIRST_LIST + 8..FIRST_LIST + 10], 9u16.to_le_bytes());
        assert_eq!(c[SECTOR - 2..SECTOR], [0x20, 0x08]);
        assert!(
            c[FIRST_LIST - LIST_SIZE..FIRST_LIST]
                .iter()
                .all(|&b| b == 0)
        );
        assert!(c[..FIRST_LIST - 2 * LIST_SIZE].iter().all(|&b| b == 0xD0));

        let mut no_terminator = core(2);
        no_terminator[..SECTOR - 2].fill(0xD0);
        let err = patch_block_list(&mut no_terminator[..SECTOR], 1, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no terminator"), "{err}");

        let mut not_diskboot = vec![0u8; SECTOR];
        let err = patch_block_list(&mut not_diskboot, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("diskboot"), "{err}");
    }

    /// A GPT disk as plugin-image writes it: protective MBR, a BIOS boot partition at
    /// 2048–4095 and an ESP after it.
    fn gpt_disk(path: &Path) {
        use image_runner_disk_layout::Guid;
        use image_runner_disk_layout::gpt::{self, types};
        let total = 6144;
        let partitions = [
            gpt::Entry::new(types::BIOS_BOOT, Guid::NIL, 2048, 4095, "BIOS boot"),
            gpt::Entry::new(types::EFI_SYSTEM, Guid::NIL, 4096, 6100, "EFI System"),
        ];
        let mut disk = vec![0u8; total * SECTOR];
        gpt::Tables::new(total as u64, Guid::NIL, &partitions)
            .unwrap()
            .write_to(&mut std::io::Cursor::new(&mut disk[..]))
            .unwrap();
        std::fs::write(path, disk).unwrap();
    }

    #[test]
    fn gpt_disks_get_the_core_in_the_bios_boot_partition() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        gpt_disk(&path);
        let c = core(300);
        into_disk(&path, &c, &boot_img()).unwrap();
        let disk = std::fs::read(&path).unwrap();
        assert_eq!(
            disk[KERNEL_SECTOR..KERNEL_SECTOR + 8],
            2048u64.to_le_bytes()
        );
        assert_eq!(disk[446 + 4], 0xEE, "the partition table stays");
        let at = 2048 * SECTOR;
        assert_eq!(
            disk[at + FIRST_LIST..at + FIRST_LIST + 10],
            [1, 8, 0, 0, 0, 0, 0, 0, 43, 1],
            "start 2049, 299 sectors"
        );
        assert_eq!(disk[at + SECTOR..at + c.len()], c[SECTOR..]);
        assert!(
            disk[at + c.len()..at + 300 * SECTOR]
                .iter()
                .all(|&b| b == 0)
        );

        let err = into_disk(&path, &core(900), &boot_img())
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 to 888 sectors"), "{err}");
    }

    #[test]
    fn mbr_disks_get_the_core_after_sector_0() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        use image_runner_disk_layout::mbr::{self, Mbr, kind};
        let table = |first: u32| {
            let mut table = Mbr::new(0x0403_0201);
            table.entries[0] = mbr::Entry::new(true, kind::FAT32_LBA, first, 2048);
            // An unused slot with a start but no type does not count.
            table.entries[1] = mbr::Entry::new(false, kind::EMPTY, 5, 0);
            table.encode()
        };
        let mut disk = vec![0u8; 4096 * SECTOR];
        disk[..SECTOR].copy_from_slice(&table(2048));
        std::fs::write(&path, &disk).unwrap();
        into_disk(&path, &core(100), &boot_img()).unwrap();
        let disk = std::fs::read(&path).unwrap();
        assert_eq!(disk[KERNEL_SECTOR..KERNEL_SECTOR + 8], 1u64.to_le_bytes());
        assert_eq!(disk[440..444], [1, 2, 3, 4], "the disk signature stays");
        assert_eq!(disk[446], 0x80);
        assert_eq!(
            disk[SECTOR + FIRST_LIST..SECTOR + FIRST_LIST + 10],
            [2, 0, 0, 0, 0, 0, 0, 0, 99, 0]
        );
        let mut small_gap = disk.clone();
        small_gap[..SECTOR].copy_from_slice(&table(63));
        std::fs::write(&path, &small_gap).unwrap();
        let err = into_disk(&path, &core(100), &boot_img())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs 100 sectors")
                && err.contains("gap before the first partition")
                && err.contains("has 62"),
            "{err}"
        );
    }
}
