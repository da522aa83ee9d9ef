//! The master boot record in sector 0: the four-entry partition table of MBR disks, and the
//! protective MBR in front of a GPT.

use super::SECTOR;

/// Partition type bytes.
pub(super) mod kind {
    pub(in super::super) const FAT12: u8 = 0x01;
    /// FAT16 addressed by LBA (0x06 would promise CHS addressing as well).
    pub(in super::super) const FAT16_LBA: u8 = 0x0E;
    pub(in super::super) const FAT32_LBA: u8 = 0x0C;
    /// An EFI System Partition on an MBR disk (UEFI specification, "Legacy MBR").
    pub(in super::super) const EFI_SYSTEM: u8 = 0xEF;
    /// The one entry of a protective MBR, covering the whole GPT disk.
    pub(in super::super) const GPT_PROTECTIVE: u8 = 0xEE;
}

/// One partition table entry. Start and length are 32-bit sector numbers; callers check that
/// the disk fits (2 TiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) active: bool,
    pub(super) kind: u8,
    pub(super) first_lba: u32,
    pub(super) sectors: u32,
}

const SIGNATURE_AT: usize = 440;
const TABLE_AT: usize = 446;

/// Sector 0 with `entries` (at most four) and disk signature `signature`. Bytes 0–439 stay zero:
/// the boot code area, which a bootloader's install step fills (Limine's `bios-install` keeps
/// bytes 440–509, the signature and the table, as they are).
pub(super) fn sector(signature: u32, entries: &[Entry]) -> [u8; SECTOR as usize] {
    let mut sector = [0u8; SECTOR as usize];
    sector[SIGNATURE_AT..SIGNATURE_AT + 4].copy_from_slice(&signature.to_le_bytes());
    for (slot, entry) in sector[TABLE_AT..TABLE_AT + 64]
        .chunks_exact_mut(16)
        .zip(entries)
    {
        let last = u64::from(entry.first_lba) + u64::from(entry.sectors).max(1) - 1;
        slot[0] = if entry.active { 0x80 } else { 0x00 };
        slot[1..4].copy_from_slice(&chs(u64::from(entry.first_lba)));
        slot[4] = entry.kind;
        slot[5..8].copy_from_slice(&chs(last));
        slot[8..12].copy_from_slice(&entry.first_lba.to_le_bytes());
        slot[12..16].copy_from_slice(&entry.sectors.to_le_bytes());
    }
    sector[510] = 0x55;
    sector[511] = 0xAA;
    sector
}

/// The protective MBR of a GPT disk of `total_sectors`: one 0xEE entry from LBA 1 to the end
/// (0xFFFFFFFF sectors when the disk is larger than 2 TiB), not active, signature zero, as the
/// UEFI specification asks.
pub(super) fn protective(total_sectors: u64) -> [u8; SECTOR as usize] {
    let entry = Entry {
        active: false,
        kind: kind::GPT_PROTECTIVE,
        first_lba: 1,
        sectors: u32::try_from(total_sectors - 1).unwrap_or(u32::MAX),
    };
    sector(0, &[entry])
}

/// The cylinder/head/sector address of `lba` in the usual translated geometry (255 heads, 63
/// sectors per track), or the "beyond CHS" marker 1023/254/63 for what lies past cylinder 1023.
/// Nothing modern reads these fields, but partitioning tools check them against the LBA ones.
fn chs(lba: u64) -> [u8; 3] {
    const HEADS: u64 = 255;
    const SECTORS: u64 = 63;
    let cylinder = lba / (HEADS * SECTORS);
    if cylinder > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let head = (lba / SECTORS) % HEADS;
    let sector = lba % SECTORS + 1;
    // Fits: head < 255, sector <= 63, cylinder <= 1023 split into 2 + 8 bits.
    [
        head as u8,
        (sector as u8) | ((cylinder >> 2) as u8 & 0xC0),
        cylinder as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_addresses_follow_the_255_63_geometry() {
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(1), [0, 2, 0]);
        assert_eq!(chs(2048), [32, 33, 0]);
        // Cylinder 1023, head 254, sector 63: the last addressable sector.
        assert_eq!(chs(1024 * 255 * 63 - 1), [254, 63 | 0xC0, 0xFF]);
        assert_eq!(chs(1024 * 255 * 63), [0xFE, 0xFF, 0xFF]);
    }

    #[test]
    fn the_table_sits_at_446_with_the_signature_at_440() {
        let entry = Entry {
            active: true,
            kind: kind::FAT32_LBA,
            first_lba: 2048,
            sectors: 4096,
        };
        let s = sector(0xDEAD_BEEF, &[entry]);
        assert!(s[..440].iter().all(|&b| b == 0), "boot code area not empty");
        assert_eq!(&s[440..446], &[0xEF, 0xBE, 0xAD, 0xDE, 0, 0]);
        assert_eq!(s[446], 0x80);
        assert_eq!(s[450], 0x0C);
        assert_eq!(&s[454..462], &[0, 8, 0, 0, 0, 16, 0, 0]);
        assert!(s[462..510].iter().all(|&b| b == 0), "only one entry");
        assert_eq!(&s[510..], &[0x55, 0xAA]);
    }

    #[test]
    fn the_protective_entry_covers_the_disk_up_to_2_tib() {
        let s = protective(4 << 11);
        assert_eq!((s[446], s[450]), (0x00, 0xEE));
        assert_eq!(&s[447..450], &[0, 2, 0]);
        assert_eq!(&s[454..458], &1u32.to_le_bytes());
        assert_eq!(&s[458..462], &((4u32 << 11) - 1).to_le_bytes());
        let huge = protective(1 << 40);
        assert_eq!(&huge[458..462], &[0xFF; 4]);
        assert_eq!(&huge[451..454], &[0xFE, 0xFF, 0xFF]);
    }
}
