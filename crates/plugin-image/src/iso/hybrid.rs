//! The system area that makes an ISO boot as a disk too: a protective MBR whose boot code bytes
//! stay zero for a bootloader's installer, and a GPT (primary in the system area, backup at the
//! end of the image) with a partition over the ISO 9660 data and one on the ESP image.

/// Disk sector size the partition tables count in.
pub(super) const SECTOR: u64 = 512;
/// Partition entries in each array: the standard 128 of 128 bytes (32 sectors). Limine's BIOS
/// installer hides its stage 2 in the unused tail of both arrays.
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
const ARRAY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR;
/// The primary header at sector 1 and its array from sector 2.
const ARRAY_LBA: u64 = 2;
const FIRST_USABLE: u64 = ARRAY_LBA + ARRAY_SECTORS;
/// Sectors the backup array and header take at the end of the image.
pub(super) const BACKUP_SECTORS: u64 = ARRAY_SECTORS + 1;
/// Where the first partition starts: the ISO volume descriptors, at 32 KiB.
pub(super) const DATA_START: u64 = 64;

/// EFI System Partition, C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
pub(super) const ESP_TYPE: [u8; 16] = guid(
    0xC12A_7328,
    0xF81F,
    0x11D2,
    [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
);
/// Basic data, EBD0A0A2-B9E5-4433-87C0-68B6B72699C7.
pub(super) const BASIC_DATA_TYPE: [u8; 16] = guid(
    0xEBD0_A0A2,
    0xB9E5,
    0x4433,
    [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7],
);

/// A GUID in its on-disk form: the first three fields little-endian.
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes());
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// A version-4-shaped GUID from 16 bytes of derived material (so tools that check the variant
/// bits accept it), for reproducible disk and partition ids.
pub(super) fn derived_guid(mut bytes: [u8; 16]) -> [u8; 16] {
    bytes[7] = (bytes[7] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    bytes
}

#[derive(Debug, Clone)]
pub(super) struct Partition {
    pub(super) type_guid: [u8; 16],
    pub(super) guid: [u8; 16],
    /// First and last sector, inclusive.
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) name: &'static str,
}

/// The partition tables of an image of `sectors` 512-byte sectors.
#[derive(Debug, Clone)]
pub(super) struct Gpt {
    pub(super) sectors: u64,
    pub(super) disk_guid: [u8; 16],
    pub(super) mbr_signature: u32,
    pub(super) partitions: Vec<Partition>,
}

impl Gpt {
    /// The last sector a partition may use.
    pub(super) fn last_usable(sectors: u64) -> u64 {
        sectors - BACKUP_SECTORS - 1
    }

    /// Sectors 0 to 33: the protective MBR, the primary header and the primary array.
    pub(super) fn primary(&self) -> Vec<u8> {
        let mut out = vec![0u8; (FIRST_USABLE * SECTOR) as usize];
        out[..SECTOR as usize].copy_from_slice(&self.protective_mbr());
        let array = self.array();
        let header = self.header(1, self.sectors - 1, ARRAY_LBA, &array);
        out[SECTOR as usize..2 * SECTOR as usize].copy_from_slice(&header);
        out[(ARRAY_LBA * SECTOR) as usize..].copy_from_slice(&array);
        out
    }

    /// The last 33 sectors: the backup array, then the backup header in the last sector.
    pub(super) fn backup(&self) -> Vec<u8> {
        let array = self.array();
        let array_lba = self.sectors - BACKUP_SECTORS;
        let header = self.header(self.sectors - 1, 1, array_lba, &array);
        let mut out = array;
        out.extend_from_slice(&header);
        out
    }

    /// One MBR entry of type 0xEE from sector 1 over the whole disk (as far as 32 bits reach).
    /// Bytes 0–439 (boot code) and the status byte stay zero: a BIOS bootloader's installer
    /// fills the code, and UEFI wants a protective partition that is not marked active.
    fn protective_mbr(&self) -> [u8; SECTOR as usize] {
        let mut mbr = [0u8; SECTOR as usize];
        mbr[440..444].copy_from_slice(&self.mbr_signature.to_le_bytes());
        let entry = &mut mbr[446..462];
        entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of sector 1
        entry[4] = 0xEE;
        entry[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]); // CHS beyond reach
        entry[8..12].copy_from_slice(&1u32.to_le_bytes());
        let size = u32::try_from(self.sectors - 1).unwrap_or(u32::MAX);
        entry[12..16].copy_from_slice(&size.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        mbr
    }

    fn array(&self) -> Vec<u8> {
        let mut out = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
        for (slot, part) in out
            .chunks_exact_mut(ENTRY_SIZE as usize)
            .zip(&self.partitions)
        {
            slot[0..16].copy_from_slice(&part.type_guid);
            slot[16..32].copy_from_slice(&part.guid);
            slot[32..40].copy_from_slice(&part.first.to_le_bytes());
            slot[40..48].copy_from_slice(&part.last.to_le_bytes());
            for (i, unit) in part.name.encode_utf16().take(36).enumerate() {
                slot[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
            }
        }
        out
    }

    fn header(&self, own: u64, other: u64, array_lba: u64, array: &[u8]) -> [u8; SECTOR as usize] {
        let mut h = [0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&own.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        h[40..48].copy_from_slice(&FIRST_USABLE.to_le_bytes());
        h[48..56].copy_from_slice(&Self::last_usable(self.sectors).to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid);
        h[72..80].copy_from_slice(&array_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&crc32(array).to_le_bytes());
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }
}

/// CRC-32 (IEEE 802.3, reflected), as GPT headers and arrays use it.
pub(super) fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn type_guids_are_in_disk_order() {
        assert_eq!(
            ESP_TYPE,
            [
                0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
                0xC9, 0x3B
            ]
        );
    }

    #[test]
    fn headers_point_at_each_other_and_check_out() {
        let gpt = Gpt {
            sectors: 4096,
            disk_guid: derived_guid([7; 16]),
            mbr_signature: 0x1234_5678,
            partitions: vec![Partition {
                type_guid: BASIC_DATA_TYPE,
                guid: derived_guid([9; 16]),
                first: DATA_START,
                last: 4000,
                name: "ISO9660",
            }],
        };
        let primary = gpt.primary();
        assert_eq!(primary.len(), 34 * 512);
        assert!(
            primary[..440].iter().all(|&b| b == 0),
            "boot code area is zero"
        );
        assert_eq!(&primary[510..512], &[0x55, 0xAA]);
        assert_eq!(primary[450], 0xEE);
        let header = &primary[512..1024];
        assert_eq!(&header[..8], b"EFI PART");
        assert_eq!((u64_at(header, 24), u64_at(header, 32)), (1, 4095));
        assert_eq!((u64_at(header, 40), u64_at(header, 48)), (34, 4062));
        let mut zeroed = header[..92].to_vec();
        zeroed[16..20].fill(0);
        assert_eq!(crc32(&zeroed).to_le_bytes(), header[16..20]);
        let backup = gpt.backup();
        assert_eq!(backup.len(), 33 * 512);
        let tail = &backup[32 * 512..];
        assert_eq!(
            (u64_at(tail, 24), u64_at(tail, 32), u64_at(tail, 72)),
            (4095, 1, 4063)
        );
        assert_eq!(&backup[..32 * 512], &primary[1024..]);
    }
}
