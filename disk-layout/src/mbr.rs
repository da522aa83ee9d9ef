//! The master boot record in sector 0: the disk signature and four-entry partition table of MBR
//! disks, and the protective MBR in front of a GPT.

use super::SECTOR;

/// Bytes 0–439: boot code, which a BIOS bootloader's install step fills.
pub const BOOT_CODE_LEN: usize = 440;
/// Where the 32-bit disk signature sits.
pub const SIGNATURE_OFFSET: usize = 440;
/// Where the four 16-byte entries start.
pub const TABLE_OFFSET: usize = 446;
/// The boot signature in bytes 510–511, without which BIOS does not boot the sector.
pub const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xAA];
/// The status byte of an active ("bootable") entry.
pub const ACTIVE: u8 = 0x80;

/// Partition type bytes.
pub mod kind {
    /// An unused entry.
    pub const EMPTY: u8 = 0x00;
    pub const FAT12: u8 = 0x01;
    /// FAT16 addressed by LBA (0x06 would promise CHS addressing as well).
    pub const FAT16_LBA: u8 = 0x0E;
    pub const FAT32_LBA: u8 = 0x0C;
    pub const LINUX: u8 = 0x83;
    /// An EFI System Partition on an MBR disk (UEFI specification, "Legacy MBR").
    pub const EFI_SYSTEM: u8 = 0xEF;
    /// The one entry of a protective MBR, covering the whole GPT disk.
    pub const GPT_PROTECTIVE: u8 = 0xEE;
}

/// A cylinder/head/sector address as an entry stores it: head, then sector (bits 0–5) with the
/// cylinder's top two bits (6–7), then the cylinder's low eight bits.
///
/// Nothing modern reads these, but partitioning tools check them against the LBA fields, so
/// the writers fill them in the usual translated geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Chs([u8; 3]);

impl Chs {
    /// Heads per cylinder of the translated geometry every BIOS since the 1990s reports.
    pub const HEADS: u64 = 255;
    /// Sectors per track of that geometry.
    pub const SECTORS_PER_TRACK: u64 = 63;
    /// Cylinder 1023, head 254, sector 63: what [`Chs::from_lba`] gives for an LBA past the last
    /// addressable cylinder, as partitioning tools write it.
    pub const BEYOND: Chs = Chs([0xFE, 0xFF, 0xFF]);
    /// All ones: the UEFI specification's "not representable" value for a protective MBR's end.
    pub const UNREPRESENTABLE: Chs = Chs([0xFF, 0xFF, 0xFF]);

    /// The address of `lba` in the 255-head, 63-sector geometry, or [`Chs::BEYOND`].
    pub fn from_lba(lba: u64) -> Chs {
        let cylinder = lba / (Self::HEADS * Self::SECTORS_PER_TRACK);
        if cylinder > 1023 {
            return Chs::BEYOND;
        }
        let head = (lba / Self::SECTORS_PER_TRACK) % Self::HEADS;
        let sector = lba % Self::SECTORS_PER_TRACK + 1;
        // Fits: head < 255, sector <= 63, cylinder <= 1023 split into 2 + 8 bits.
        Chs([
            head as u8,
            (sector as u8) | ((cylinder >> 2) as u8 & 0xC0),
            cylinder as u8,
        ])
    }

    pub const fn from_bytes(bytes: [u8; 3]) -> Chs {
        Chs(bytes)
    }

    pub const fn to_bytes(self) -> [u8; 3] {
        self.0
    }

    pub fn cylinder(self) -> u16 {
        (u16::from(self.0[1] & 0xC0) << 2) | u16::from(self.0[2])
    }

    pub fn head(self) -> u8 {
        self.0[0]
    }

    /// 1-based, as CHS sectors count.
    pub fn sector(self) -> u8 {
        self.0[1] & 0x3F
    }
}

/// One partition table entry, field for field, so that decoding and encoding again gives the
/// same bytes. Start and length are 32-bit sector numbers: an MBR reaches 2 TiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Entry {
    /// [`ACTIVE`] or 0; anything else is invalid, and installers refuse such tables.
    pub status: u8,
    pub first_chs: Chs,
    /// A [`kind`] byte; [`kind::EMPTY`] marks an unused entry.
    pub kind: u8,
    pub last_chs: Chs,
    pub first_lba: u32,
    pub sectors: u32,
}

impl Entry {
    /// An unused entry: all zeros.
    pub const EMPTY: Entry = Entry {
        status: 0,
        first_chs: Chs([0; 3]),
        kind: kind::EMPTY,
        last_chs: Chs([0; 3]),
        first_lba: 0,
        sectors: 0,
    };

    /// An entry with its CHS fields computed from the LBA ones (a zero-length entry gets its
    /// start as end address).
    pub fn new(active: bool, kind: u8, first_lba: u32, sectors: u32) -> Entry {
        let last = u64::from(first_lba) + u64::from(sectors).max(1) - 1;
        Entry {
            status: if active { ACTIVE } else { 0 },
            first_chs: Chs::from_lba(u64::from(first_lba)),
            kind,
            last_chs: Chs::from_lba(last),
            first_lba,
            sectors,
        }
    }

    pub fn is_used(&self) -> bool {
        self.kind != kind::EMPTY
    }

    pub fn is_active(&self) -> bool {
        self.status & ACTIVE != 0
    }

    /// The sector after the partition.
    pub fn end_lba(&self) -> u64 {
        u64::from(self.first_lba) + u64::from(self.sectors)
    }

    pub fn encode(&self) -> [u8; 16] {
        let mut slot = [0u8; 16];
        slot[0] = self.status;
        slot[1..4].copy_from_slice(&self.first_chs.0);
        slot[4] = self.kind;
        slot[5..8].copy_from_slice(&self.last_chs.0);
        slot[8..12].copy_from_slice(&self.first_lba.to_le_bytes());
        slot[12..16].copy_from_slice(&self.sectors.to_le_bytes());
        slot
    }

    pub fn decode(slot: &[u8; 16]) -> Entry {
        let [
            s,
            c0,
            c1,
            c2,
            kind,
            e0,
            e1,
            e2,
            l0,
            l1,
            l2,
            l3,
            n0,
            n1,
            n2,
            n3,
        ] = *slot;
        Entry {
            status: s,
            first_chs: Chs([c0, c1, c2]),
            kind,
            last_chs: Chs([e0, e1, e2]),
            first_lba: u32::from_le_bytes([l0, l1, l2, l3]),
            sectors: u32::from_le_bytes([n0, n1, n2, n3]),
        }
    }
}

/// Sector 0 apart from its boot code: the disk signature, the two bytes after it and the four
/// entries. The boot code is not kept here: [`Mbr::encode_into`] leaves it as it is, so an
/// installer can rewrite the table around its own code and the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mbr {
    /// Bytes 440–443; 0 means "no signature".
    pub disk_signature: u32,
    /// Bytes 444–445: zero, or 0x5A5A for "copy-protected" on Windows.
    pub reserved: [u8; 2],
    pub entries: [Entry; 4],
}

impl Mbr {
    /// A table with no entries.
    pub fn new(disk_signature: u32) -> Mbr {
        Mbr {
            disk_signature,
            reserved: [0; 2],
            entries: [Entry::EMPTY; 4],
        }
    }

    /// The protective MBR of a GPT disk of `total_sectors`: one 0xEE entry from LBA 1 to the end
    /// (0xFFFFFFFF sectors when the disk is larger than 2 TiB), not active, signature zero, as
    /// the UEFI specification asks.
    pub fn protective(total_sectors: u64) -> Mbr {
        let sectors = u32::try_from(total_sectors.saturating_sub(1)).unwrap_or(u32::MAX);
        let mut mbr = Mbr::new(0);
        mbr.entries[0] = Entry::new(false, kind::GPT_PROTECTIVE, 1, sectors);
        mbr
    }

    /// Whether an entry is of type 0xEE: a GPT follows (the UEFI specification's test).
    pub fn is_protective(&self) -> bool {
        self.entries.iter().any(|e| e.kind == kind::GPT_PROTECTIVE)
    }

    /// The whole sector, boot code zero: what a partitioning tool leaves for the bootloader
    /// installer to fill.
    pub fn encode(&self) -> [u8; SECTOR as usize] {
        let mut sector = [0u8; SECTOR as usize];
        self.encode_into(&mut sector);
        sector
    }

    /// Writes bytes 440–511 of `sector` (signature, table, boot signature); the boot code stays.
    pub fn encode_into(&self, sector: &mut [u8; SECTOR as usize]) {
        sector[SIGNATURE_OFFSET..SIGNATURE_OFFSET + 4]
            .copy_from_slice(&self.disk_signature.to_le_bytes());
        sector[SIGNATURE_OFFSET + 4..TABLE_OFFSET].copy_from_slice(&self.reserved);
        for (slot, entry) in sector[TABLE_OFFSET..TABLE_OFFSET + 64]
            .chunks_exact_mut(16)
            .zip(&self.entries)
        {
            slot.copy_from_slice(&entry.encode());
        }
        sector[510..512].copy_from_slice(&BOOT_SIGNATURE);
    }

    /// Reads the table of a sector 0 (at least 512 bytes), which must end in 0x55 0xAA.
    /// Entries are taken as they are; callers check what they rely on.
    pub fn decode(sector: &[u8]) -> Result<Mbr, MbrError> {
        let Some(sector) = sector.first_chunk::<{ SECTOR as usize }>() else {
            return Err(MbrError::Truncated { len: sector.len() });
        };
        let found = [sector[510], sector[511]];
        if found != BOOT_SIGNATURE {
            return Err(MbrError::BootSignature { found });
        }
        let mut mbr = Mbr::new(u32::from_le_bytes([
            sector[440],
            sector[441],
            sector[442],
            sector[443],
        ]));
        mbr.reserved = [sector[444], sector[445]];
        for (entry, slot) in mbr
            .entries
            .iter_mut()
            .zip(sector[TABLE_OFFSET..510].chunks_exact(16))
        {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(slot);
            *entry = Entry::decode(&bytes);
        }
        Ok(mbr)
    }
}

/// Why a sector is not an MBR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MbrError {
    #[error("an MBR is 512 bytes, but only {len} were given")]
    Truncated { len: usize },
    #[error(
        "sector 0 ends in {:#04x} {:#04x}, not the boot signature 0x55 0xaa: it holds no MBR",
        found[0],
        found[1]
    )]
    BootSignature { found: [u8; 2] },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_addresses_follow_the_255_63_geometry() {
        assert_eq!(Chs::from_lba(0).to_bytes(), [0, 1, 0]);
        assert_eq!(Chs::from_lba(1).to_bytes(), [0, 2, 0]);
        assert_eq!(Chs::from_lba(2048).to_bytes(), [32, 33, 0]);
        // Cylinder 1023, head 254, sector 63: the last addressable sector.
        let last = Chs::from_lba(1024 * 255 * 63 - 1);
        assert_eq!(last.to_bytes(), [254, 63 | 0xC0, 0xFF]);
        assert_eq!(
            (last.cylinder(), last.head(), last.sector()),
            (1023, 254, 63)
        );
        assert_eq!(Chs::from_lba(1024 * 255 * 63), Chs::BEYOND);
        // Head and sector give back the LBA: c * 255 * 63 + h * 63 + (s - 1).
        for lba in [0u64, 62, 63, 16_064, 16_065, 1_000_000] {
            let c = Chs::from_lba(lba);
            let back = (u64::from(c.cylinder()) * 255 + u64::from(c.head())) * 63
                + u64::from(c.sector())
                - 1;
            assert_eq!(back, lba);
        }
    }

    #[test]
    fn the_table_sits_at_446_with_the_signature_at_440() {
        let mut mbr = Mbr::new(0xDEAD_BEEF);
        mbr.entries[0] = Entry::new(true, kind::FAT32_LBA, 2048, 4096);
        let s = mbr.encode();
        assert!(s[..440].iter().all(|&b| b == 0), "boot code area not empty");
        assert_eq!(&s[440..446], &[0xEF, 0xBE, 0xAD, 0xDE, 0, 0]);
        assert_eq!(s[446], 0x80);
        assert_eq!(&s[447..450], &[32, 33, 0]);
        assert_eq!(s[450], 0x0C);
        assert_eq!(&s[454..462], &[0, 8, 0, 0, 0, 16, 0, 0]);
        assert!(s[462..510].iter().all(|&b| b == 0), "only one entry");
        assert_eq!(&s[510..], &[0x55, 0xAA]);
    }

    #[test]
    fn decoding_gives_back_what_was_encoded_and_keeps_boot_code() {
        let mut mbr = Mbr::new(0x0102_0304);
        mbr.reserved = [0x5A, 0x5A];
        mbr.entries[0] = Entry::new(true, kind::FAT16_LBA, 63, 1000);
        mbr.entries[2] = Entry::new(false, kind::LINUX, 4096, 1 << 20);
        mbr.entries[3] = Entry {
            status: 0x12,
            first_chs: Chs::UNREPRESENTABLE,
            ..Entry::new(false, kind::EFI_SYSTEM, u32::MAX - 1, 1)
        };
        let encoded = mbr.encode();
        let decoded = Mbr::decode(&encoded).unwrap();
        assert_eq!(decoded, mbr);
        assert_eq!(decoded.encode(), encoded);
        assert!(decoded.entries[0].is_active() && !decoded.entries[2].is_active());
        assert!(!decoded.entries[1].is_used());
        assert_eq!(decoded.entries[2].end_lba(), 4096 + (1 << 20));
        assert!(!decoded.is_protective());

        let mut sector = [0x90u8; 512];
        mbr.encode_into(&mut sector);
        assert!(sector[..440].iter().all(|&b| b == 0x90), "boot code kept");
        assert_eq!(&sector[440..], &encoded[440..]);
        assert_eq!(Mbr::decode(&sector).unwrap(), mbr);
    }

    #[test]
    fn decoding_rejects_short_sectors_and_a_missing_boot_signature() {
        assert_eq!(
            Mbr::decode(&[0; 100]),
            Err(MbrError::Truncated { len: 100 })
        );
        let mut sector = Mbr::new(1).encode();
        sector[511] = 0;
        let error = Mbr::decode(&sector).unwrap_err();
        assert_eq!(error, MbrError::BootSignature { found: [0x55, 0] });
        assert!(error.to_string().contains("0x55 0x00"), "{error}");
    }

    #[test]
    fn the_protective_entry_covers_the_disk_up_to_2_tib() {
        let mbr = Mbr::protective(4 << 11);
        assert!(mbr.is_protective());
        let s = mbr.encode();
        assert_eq!(&s[440..444], &[0; 4], "signature zero");
        assert_eq!((s[446], s[450]), (0x00, 0xEE));
        assert_eq!(&s[447..450], &[0, 2, 0]);
        assert_eq!(&s[451..454], &Chs::from_lba((4 << 11) - 1).to_bytes());
        assert_eq!(&s[454..458], &1u32.to_le_bytes());
        assert_eq!(&s[458..462], &((4u32 << 11) - 1).to_le_bytes());
        let huge = Mbr::protective(1 << 40).encode();
        assert_eq!(&huge[458..462], &[0xFF; 4]);
        assert_eq!(&huge[451..454], &[0xFE, 0xFF, 0xFF]);
    }
}
