//! GUID partition tables (UEFI specification, chapter 5): the header and entry array, written
//! as a primary copy after the protective MBR and a backup copy at the end of the disk.

use super::SECTOR;
use super::guid::Guid;

/// Entries in the array: the minimum the specification allows for the array's 16 KiB, and what
/// every tool writes. Limine's `bios-install` puts its stage 2 into the unused tail.
const ENTRIES: u32 = 128;
const ENTRY_SIZE: usize = 128;
const HEADER_SIZE: u32 = 92;
/// Sectors of the entry array.
const ARRAY_SECTORS: u64 = (ENTRIES as u64 * ENTRY_SIZE as u64) / SECTOR;
/// Sectors of one copy of the table: the header and the entry array.
pub(super) const TABLE_SECTORS: u64 = 1 + ARRAY_SECTORS;
/// The first sector a partition may use: after the MBR, the header and the array.
pub(super) const FIRST_USABLE: u64 = 1 + TABLE_SECTORS;

/// Partition type GUIDs.
pub(super) mod types {
    use super::Guid;

    /// EFI System Partition.
    pub(in super::super) const EFI_SYSTEM: Guid = Guid::from_fields(
        0xC12A_7328,
        0xF81F,
        0x11D2,
        [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
    );
    /// BIOS boot partition ("Hah!IdontNeedEFI"), where GRUB embeds its core image on GPT.
    pub(in super::super) const BIOS_BOOT: Guid = Guid::from_fields(
        0x2168_6148,
        0x6449,
        0x6E6F,
        [0x74, 0x4E, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49],
    );
}

/// One used entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Partition {
    pub(super) type_guid: Guid,
    pub(super) guid: Guid,
    pub(super) first_lba: u64,
    /// Inclusive, as GPT stores it.
    pub(super) last_lba: u64,
    /// At most 36 UTF-16 code units.
    pub(super) name: &'static str,
}

/// Both copies of the table, ready to write.
#[derive(Debug)]
pub(super) struct Tables {
    /// LBA 1 (header) and 2–33 (entries).
    pub(super) primary: Vec<u8>,
    /// The last 33 sectors: entries, then the header in the very last sector.
    pub(super) backup: Vec<u8>,
    /// Where `backup` starts.
    pub(super) backup_lba: u64,
}

/// The last sector a partition may use on a disk of `total_sectors`.
pub(super) fn last_usable(total_sectors: u64) -> u64 {
    total_sectors - TABLE_SECTORS - 1
}

/// Encodes the tables of a disk of `total_sectors` sectors holding `partitions`.
pub(super) fn tables(disk_guid: Guid, total_sectors: u64, partitions: &[Partition]) -> Tables {
    let mut array = vec![0u8; ENTRIES as usize * ENTRY_SIZE];
    for (slot, partition) in array.chunks_exact_mut(ENTRY_SIZE).zip(partitions) {
        slot[0..16].copy_from_slice(&partition.type_guid.to_bytes());
        slot[16..32].copy_from_slice(&partition.guid.to_bytes());
        slot[32..40].copy_from_slice(&partition.first_lba.to_le_bytes());
        slot[40..48].copy_from_slice(&partition.last_lba.to_le_bytes());
        // Attributes (48..56) stay zero: nothing here is firmware-required or hidden.
        for (unit, at) in partition.name.encode_utf16().zip((56..128).step_by(2)) {
            slot[at..at + 2].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let array_crc = crc32(&array);
    let last = total_sectors - 1;
    let backup_lba = total_sectors - TABLE_SECTORS;
    let header = |own: u64, other: u64, array_lba: u64| {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
        h[24..32].copy_from_slice(&own.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        h[40..48].copy_from_slice(&FIRST_USABLE.to_le_bytes());
        h[48..56].copy_from_slice(&last_usable(total_sectors).to_le_bytes());
        h[56..72].copy_from_slice(&disk_guid.to_bytes());
        h[72..80].copy_from_slice(&array_lba.to_le_bytes());
        h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        // The header CRC covers the header with its own CRC field zero.
        let crc = crc32(&h[..HEADER_SIZE as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let mut primary = header(1, last, 2);
    primary.extend_from_slice(&array);
    let mut backup = array;
    backup.extend_from_slice(&header(last, 1, backup_lba));
    Tables {
        primary,
        backup,
        backup_lba,
    }
}

/// CRC-32 as GPT uses it: the IEEE 802.3 polynomial, reflected, initial value and final XOR
/// all ones (the same as zlib's and PNG's).
pub(super) fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| {
        CRC_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn type_guids_read_as_the_specification_writes_them() {
        assert_eq!(
            types::EFI_SYSTEM.to_string(),
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
        );
        assert_eq!(
            types::BIOS_BOOT.to_string(),
            "21686148-6449-6E6F-744E-656564454649"
        );
    }

    #[test]
    fn primary_and_backup_point_at_each_other_with_valid_crcs() {
        let disk = Guid::from_fields(1, 2, 3, [4; 8]);
        let total = 8192;
        let esp = Partition {
            type_guid: types::EFI_SYSTEM,
            guid: Guid::from_fields(5, 6, 7, [8; 8]),
            first_lba: 2048,
            last_lba: 6143,
            name: "EFI System",
        };
        let t = tables(disk, total, std::slice::from_ref(&esp));
        assert_eq!(t.primary.len(), 33 * 512);
        assert_eq!(t.backup.len(), 33 * 512);
        assert_eq!(t.backup_lba, total - 33);
        let primary = &t.primary[..512];
        let backup = &t.backup[32 * 512..];
        for (header, own, other, array_lba, array) in [
            (primary, 1, total - 1, 2, &t.primary[512..]),
            (backup, total - 1, 1, total - 33, &t.backup[..32 * 512]),
        ] {
            assert_eq!(&header[..8], b"EFI PART");
            assert_eq!(u64_at(header, 24), own);
            assert_eq!(u64_at(header, 32), other);
            assert_eq!(u64_at(header, 40), 34);
            assert_eq!(u64_at(header, 48), total - 34);
            assert_eq!(u64_at(header, 72), array_lba);
            assert_eq!(u32_at(header, 88), crc32(array));
            let mut zeroed = header[..92].to_vec();
            zeroed[16..20].fill(0);
            assert_eq!(u32_at(header, 16), crc32(&zeroed));
            assert!(header[92..].iter().all(|&b| b == 0));
        }
        let entry = &t.primary[512..640];
        assert_eq!(&entry[..16], &types::EFI_SYSTEM.to_bytes());
        assert_eq!((u64_at(entry, 32), u64_at(entry, 40)), (2048, 6143));
        assert_eq!(&entry[56..66], b"E\0F\0I\0 \0S\0");
        assert!(t.primary[640..].iter().all(|&b| b == 0), "one entry only");
    }
}
