//! The system area that makes an ISO boot as a disk too: a protective MBR whose boot code bytes
//! stay zero for a bootloader's installer, and a GPT (primary in the system area, backup at the
//! end of the image) with a partition over the ISO 9660 data and one on the ESP image.

use image_runner_core::Error;
use image_runner_disk_layout::mbr::Chs;
use image_runner_disk_layout::{self as partition, Guid, gpt};

/// Disk sector size the partition tables count in.
pub(super) const SECTOR: u64 = partition::SECTOR;
/// Sectors the backup array and header take at the end of the image. The arrays keep the
/// standard 128 entries: Limine's BIOS installer hides its stage 2 in their unused tails.
pub(super) const BACKUP_SECTORS: u64 = gpt::TABLE_SECTORS;
/// Where the first partition starts: the ISO volume descriptors, at 32 KiB.
pub(super) const DATA_START: u64 = 64;

/// A version-4-shaped GUID from 16 bytes of derived material (so tools that check the variant
/// bits accept it), for reproducible disk and partition ids.
pub(super) fn derived_guid(bytes: [u8; 16]) -> Guid {
    Guid::from_bytes(bytes).with_version(4)
}

/// The MBR and both GPT copies of an image of `sectors` 512-byte sectors.
pub(super) fn tables(
    sectors: u64,
    disk_guid: Guid,
    mbr_signature: u32,
    partitions: &[gpt::Entry],
) -> Result<gpt::Tables, Error> {
    let mut tables = gpt::Tables::new(sectors, disk_guid, partitions).map_err(|e| {
        Error::plugin_source("iso", "could not lay out the isohybrid partition tables", e)
    })?;
    // Unlike on the plain GPT disks, the MBR carries a content-derived disk signature, as
    // isohybrid images usually do.
    tables.protective_mbr.disk_signature = mbr_signature;
    // The end address of the 0xEE entry is the UEFI specification's "not representable" value
    // whatever the image size: an ISO has no CHS geometry to express it in.
    tables.protective_mbr.entries[0].last_chs = Chs::UNREPRESENTABLE;
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_runner_disk_layout::Mbr;
    use std::io::Cursor;

    #[test]
    fn the_system_area_reads_back_as_a_protective_mbr_and_two_gpts() {
        let partitions = [gpt::Entry::new(
            gpt::types::MICROSOFT_BASIC_DATA,
            derived_guid([9; 16]),
            DATA_START,
            4000,
            "ISO9660",
        )];
        let tables = tables(4096, derived_guid([7; 16]), 0x1234_5678, &partitions).unwrap();
        let mut image = Cursor::new(vec![0u8; 4096 * 512]);
        tables.write_to(&mut image).unwrap();
        let bytes = image.get_ref();
        assert!(
            bytes[..440].iter().all(|&b| b == 0),
            "boot code area is zero"
        );
        let mbr = Mbr::decode(&bytes[..512]).unwrap();
        assert_eq!(mbr.disk_signature, 0x1234_5678);
        assert_eq!(
            mbr.entries[0].encode()[1..8],
            [0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF]
        );
        let primary = gpt::read(&mut image, 1).unwrap();
        assert_eq!(
            (primary.header.alternate_lba, primary.header.last_usable_lba),
            (4095, 4062)
        );
        assert_eq!(primary.entries[0].name, "ISO9660");
        assert_eq!(primary.header.disk_guid.version(), 4);
        let backup = gpt::read(&mut image, 4095).unwrap();
        assert_eq!(backup.header.entries_lba, 4096 - BACKUP_SECTORS);
        assert_eq!(backup.entries, primary.entries);
    }
}
