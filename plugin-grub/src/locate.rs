//! Where GRUB's BIOS core goes in a finished image, read from the image itself: the GPT BIOS
//! boot partition or the gap after an MBR's sector 0 on disks, the El Torito BIOS boot image in
//! ISOs.

use std::fs::File;
use std::path::Path;

use image_runner_core::Error;
use image_runner_disk_layout::gpt::{self, types};
use image_runner_disk_layout::mbr::{Mbr, kind};

use crate::install::read_at;

/// Disk sector size the partition tables and `boot.img` count in.
pub const SECTOR: usize = image_runner_disk_layout::SECTOR as usize;
/// ISO 9660 blocks.
const BLOCK: u64 = 2048;

/// Sectors of a disk reserved for the core image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    /// First sector.
    pub first: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// What it is, for messages.
    pub what: &'static str,
}

/// Finds where the core image goes on the disk image `file` (`path` for messages): the BIOS
/// boot partition of a GPT disk (what `grub-install` embeds into), else the sectors between
/// sector 0 and the first partition of an MBR disk.
pub fn embedding_area(file: &mut File, path: &Path) -> Result<Area, Error> {
    let mut sector0 = [0u8; SECTOR];
    read_at(file, path, 0, &mut sector0)?;
    let mbr = Mbr::decode(&sector0).map_err(|e| {
        Error::plugin_source(
            "grub",
            format!(
                "`{}` has no partition table, so GRUB's BIOS boot code has nowhere to go",
                path.display()
            ),
            e,
        )
    })?;
    if mbr.is_protective() {
        gpt_bios_boot_partition(file, path)
    } else {
        mbr_gap(path, &mbr)
    }
}

fn gpt_bios_boot_partition(file: &mut File, path: &Path) -> Result<Area, Error> {
    let table = gpt::read(file, 1).map_err(|e| {
        Error::plugin_source(
            "grub",
            format!("could not read the GPT of `{}`", path.display()),
            e,
        )
    })?;
    table
        .partitions()
        .find(|(_, entry)| entry.type_guid == types::BIOS_BOOT)
        .map(|(_, entry)| Area {
            first: entry.first_lba,
            sectors: entry.sectors(),
            what: "BIOS boot partition",
        })
        .ok_or_else(|| {
            Error::plugin(
                "grub",
                format!(
                    "the GPT disk `{}` has no BIOS boot partition (type {}), where GRUB's BIOS core goes; the gpt format adds one when `boot` is \"bios\" or \"hybrid\"",
                    path.display(),
                    types::BIOS_BOOT
                ),
            )
        })
}

fn mbr_gap(path: &Path, mbr: &Mbr) -> Result<Area, Error> {
    let first_partition = mbr
        .entries
        .iter()
        .filter(|entry| entry.is_used() && entry.kind != kind::EMPTY)
        .map(|entry| u64::from(entry.first_lba))
        .min()
        .ok_or_else(|| {
            Error::plugin(
                "grub",
                format!(
                    "the MBR of `{}` lists no partition, so there is no gap after it for GRUB's BIOS core",
                    path.display()
                ),
            )
        })?;
    Ok(Area {
        first: 1,
        sectors: first_partition.saturating_sub(1),
        what: "gap before the first partition",
    })
}

/// The first block of the BIOS boot image in the El Torito catalogue of the ISO `file`.
pub fn el_torito_bios_image(file: &mut File, path: &Path) -> Result<u64, Error> {
    let missing = |why: &str| {
        Error::plugin(
            "grub",
            format!(
                "`{}` has no El Torito BIOS boot entry ({why}), which GRUB needs to boot it as a disk",
                path.display()
            ),
        )
    };
    let mut descriptor = [0u8; BLOCK as usize];
    // Volume descriptors start at block 16 and end with a terminator (type 255); the boot
    // record (type 0, "EL TORITO SPECIFICATION") is normally at block 17.
    let mut catalog = None;
    for block in 16..64 {
        read_at(file, path, block * BLOCK, &mut descriptor)?;
        if &descriptor[1..6] != b"CD001" || descriptor[0] == 255 {
            break;
        }
        if descriptor[0] == 0 && descriptor[7..30] == *b"EL TORITO SPECIFICATION" {
            catalog = Some(u64::from(u32_at(&descriptor, 0x47)));
            break;
        }
    }
    let catalog = catalog.ok_or_else(|| missing("no boot record"))?;
    let mut entries = [0u8; 64];
    read_at(file, path, catalog * BLOCK, &mut entries)?;
    // The validation entry names the platform of the initial entry after it: 0 is 80x86 BIOS.
    if entries[0] != 1 || entries[30..32] != [0x55, 0xAA] {
        return Err(missing("the boot catalogue is not valid"));
    }
    if entries[1] != 0 || entries[32] != 0x88 {
        return Err(missing(
            "the initial entry is not a bootable x86 BIOS entry",
        ));
    }
    Ok(u64::from(u32_at(&entries, 32 + 8)))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_runner_disk_layout::Guid;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        std::fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        (dir, file, path)
    }

    #[test]
    fn disks_without_room_are_refused() {
        let (_dir, mut file, path) = file_with(&[0u8; 2048]);
        let err = embedding_area(&mut file, &path).unwrap_err().to_string();
        assert!(err.contains("no partition table"), "{err}");

        let mut gpt = vec![0u8; 128 * SECTOR];
        let esp = gpt::Entry::new(types::EFI_SYSTEM, Guid::NIL, 40, 90, "EFI System");
        let tables = gpt::Tables::new(128, Guid::NIL, &[esp]).unwrap();
        tables
            .write_to(&mut std::io::Cursor::new(&mut gpt[..]))
            .unwrap();
        let (_dir, mut file, path) = file_with(&gpt);
        let err = embedding_area(&mut file, &path).unwrap_err().to_string();
        assert!(err.contains("no BIOS boot partition"), "{err}");

        gpt[SECTOR + 40] ^= 1; // inside the CRC-protected header
        let (_dir, mut file, path) = file_with(&gpt);
        let err = embedding_area(&mut file, &path).unwrap_err().to_string();
        assert!(err.contains("could not read the GPT"), "{err}");

        let mbr = Mbr::new(7).encode();
        let (_dir, mut file, path) = file_with(&mbr);
        let err = embedding_area(&mut file, &path).unwrap_err().to_string();
        assert!(err.contains("lists no partition"), "{err}");
    }

    /// An ISO skeleton: a primary volume descriptor, a boot record, a terminator and a
    /// catalogue at block 20 whose initial entry is `platform`'s and points at block 33.
    fn iso(platform: u8) -> Vec<u8> {
        let mut iso = vec![0u8; 40 * BLOCK as usize];
        let at = |block: usize| block * BLOCK as usize;
        iso[at(16)] = 1;
        iso[at(16) + 1..at(16) + 6].copy_from_slice(b"CD001");
        iso[at(17) + 1..at(17) + 6].copy_from_slice(b"CD001");
        iso[at(17) + 7..at(17) + 30].copy_from_slice(b"EL TORITO SPECIFICATION");
        iso[at(17) + 0x47] = 20;
        iso[at(18)] = 255;
        iso[at(18) + 1..at(18) + 6].copy_from_slice(b"CD001");
        let c = at(20);
        iso[c] = 1;
        iso[c + 1] = platform;
        iso[c + 30] = 0x55;
        iso[c + 31] = 0xAA;
        iso[c + 32] = 0x88;
        iso[c + 40] = 33;
        iso
    }

    #[test]
    fn the_bios_entry_is_read_from_the_catalogue() {
        let (_dir, mut file, path) = file_with(&iso(0));
        assert_eq!(el_torito_bios_image(&mut file, &path).unwrap(), 33);
        let (_dir, mut file, path) = file_with(&iso(0xEF));
        let err = el_torito_bios_image(&mut file, &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a bootable x86 BIOS entry"), "{err}");
        let mut no_boot_record = iso(0);
        no_boot_record[17 * BLOCK as usize + 7] = b'X';
        let (_dir, mut file, path) = file_with(&no_boot_record);
        let err = el_torito_bios_image(&mut file, &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no boot record"), "{err}");
    }
}
