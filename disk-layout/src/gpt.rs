//! GUID partition tables (UEFI specification, chapter 5): the header and entry array, encoded
//! and decoded with their CRCs checked, and the protective MBR + primary + backup tables of a
//! whole disk.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::mbr::Mbr;
use super::{Guid, SECTOR, crc32};

/// The first eight bytes of every header.
pub const SIGNATURE: [u8; 8] = *b"EFI PART";
/// Revision 1.0, the only one there is.
pub const REVISION: u32 = 0x0001_0000;
/// Bytes of the header the CRC covers; the rest of its sector is zero.
pub const HEADER_SIZE: u32 = 92;
/// Entries in the array: the minimum the specification allows for the array's 16 KiB, and what
/// every tool writes. Limine's `bios-install` puts its stage 2 into the unused tail.
pub const ENTRY_COUNT: u32 = 128;
/// Bytes per entry.
pub const ENTRY_SIZE: u32 = 128;
/// Sectors of the entry array.
pub const ARRAY_SECTORS: u64 = ENTRY_COUNT as u64 * ENTRY_SIZE as u64 / SECTOR;
/// Sectors of one copy of the table: the header and the entry array.
pub const TABLE_SECTORS: u64 = 1 + ARRAY_SECTORS;
/// The first sector a partition may use: after the MBR, the header and the array.
pub const FIRST_USABLE: u64 = 1 + TABLE_SECTORS;
/// The smallest disk the tables fit on with one usable sector between them.
pub const MIN_SECTORS: u64 = FIRST_USABLE + 1 + TABLE_SECTORS;
/// UTF-16 code units of a partition name.
pub const NAME_UNITS: usize = 36;

/// The last sector a partition may use on a disk of `total_sectors`: the backup array and
/// header take the 33 sectors after it.
pub fn last_usable(total_sectors: u64) -> u64 {
    total_sectors.saturating_sub(TABLE_SECTORS + 1)
}

/// Partition type GUIDs.
pub mod types {
    use super::Guid;

    /// EFI System Partition: a FAT file system the firmware boots from.
    pub const EFI_SYSTEM: Guid = Guid::from_fields(
        0xC12A_7328,
        0xF81F,
        0x11D2,
        [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
    );
    /// BIOS boot partition ("Hah!IdontNeedEFI"), where GRUB embeds its core image on GPT.
    pub const BIOS_BOOT: Guid = Guid::from_fields(
        0x2168_6148,
        0x6449,
        0x6E6F,
        [0x74, 0x4E, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49],
    );
    /// Microsoft basic data: FAT, exFAT or NTFS data; also what isohybrid images give the ISO
    /// 9660 area.
    pub const MICROSOFT_BASIC_DATA: Guid = Guid::from_fields(
        0xEBD0_A0A2,
        0xB9E5,
        0x4433,
        [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7],
    );
    /// Microsoft reserved partition.
    pub const MICROSOFT_RESERVED: Guid = Guid::from_fields(
        0xE3C9_E316,
        0x0B5C,
        0x4DB8,
        [0x81, 0x7D, 0xF9, 0x2D, 0xF0, 0x02, 0x15, 0xAE],
    );
    /// Linux file system data.
    pub const LINUX_FILESYSTEM: Guid = Guid::from_fields(
        0x0FC6_3DAF,
        0x8483,
        0x4772,
        [0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4],
    );
    /// Linux swap.
    pub const LINUX_SWAP: Guid = Guid::from_fields(
        0x0657_FD6D,
        0xA4AB,
        0x43C4,
        [0x84, 0xE5, 0x09, 0x33, 0xC8, 0x4B, 0x4F, 0x4F],
    );
}

/// A GPT header, field for field. [`Header::encode`] computes the header CRC; the array CRC is
/// `entries_crc32`, which the caller keeps in step with the array it writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub revision: u32,
    /// Bytes the header CRC covers, 92 to 512.
    pub header_size: u32,
    /// The sector this header is in.
    pub my_lba: u64,
    /// The sector of the other copy's header.
    pub alternate_lba: u64,
    pub first_usable_lba: u64,
    /// Inclusive.
    pub last_usable_lba: u64,
    pub disk_guid: Guid,
    /// The first sector of this copy's entry array.
    pub entries_lba: u64,
    pub entry_count: u32,
    /// 128 × 2^n bytes.
    pub entry_size: u32,
    pub entries_crc32: u32,
}

impl Header {
    /// Bytes of the entry array this header describes.
    pub fn array_len(&self) -> u64 {
        u64::from(self.entry_count) * u64::from(self.entry_size)
    }

    /// Sectors the entry array takes.
    pub fn array_sectors(&self) -> u64 {
        self.array_len().div_ceil(SECTOR)
    }

    /// The header's sector, with its CRC computed over `header_size` bytes (taken as 92 to 512)
    /// with the CRC field zero.
    pub fn encode(&self) -> [u8; SECTOR as usize] {
        let mut h = [0u8; SECTOR as usize];
        h[0..8].copy_from_slice(&SIGNATURE);
        h[8..12].copy_from_slice(&self.revision.to_le_bytes());
        h[12..16].copy_from_slice(&self.header_size.to_le_bytes());
        h[24..32].copy_from_slice(&self.my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&self.alternate_lba.to_le_bytes());
        h[40..48].copy_from_slice(&self.first_usable_lba.to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable_lba.to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.to_bytes());
        h[72..80].copy_from_slice(&self.entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&self.entry_count.to_le_bytes());
        h[84..88].copy_from_slice(&self.entry_size.to_le_bytes());
        h[88..92].copy_from_slice(&self.entries_crc32.to_le_bytes());
        let covered = self.header_size.clamp(HEADER_SIZE, SECTOR as u32) as usize;
        let crc = crc32(&h[..covered]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Reads a header from the start of `bytes` (its sector, or at least `header_size` bytes of
    /// it), checking the signature, the header size, the header CRC and the entry size.
    pub fn decode(bytes: &[u8]) -> Result<Header, GptError> {
        let Some(fixed) = bytes.first_chunk::<{ HEADER_SIZE as usize }>() else {
            return Err(GptError::Truncated {
                what: "the GPT header",
                needed: u64::from(HEADER_SIZE),
                got: bytes.len() as u64,
            });
        };
        let u32_at = |at: usize| {
            u32::from_le_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]])
        };
        let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
        let mut found = [0u8; 8];
        found.copy_from_slice(&fixed[0..8]);
        if found != SIGNATURE {
            return Err(GptError::Signature { found });
        }
        let header_size = u32_at(12);
        if !(HEADER_SIZE..=SECTOR as u32).contains(&header_size) {
            return Err(GptError::HeaderSize { size: header_size });
        }
        let Some(covered) = bytes.get(..header_size as usize) else {
            return Err(GptError::Truncated {
                what: "the GPT header",
                needed: u64::from(header_size),
                got: bytes.len() as u64,
            });
        };
        let stored = u32_at(16);
        let mut zeroed = covered.to_vec();
        zeroed[16..20].fill(0);
        let computed = crc32(&zeroed);
        if stored != computed {
            return Err(GptError::HeaderCrc { stored, computed });
        }
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&fixed[56..72]);
        let header = Header {
            revision: u32_at(8),
            header_size,
            my_lba: u64_at(24),
            alternate_lba: u64_at(32),
            first_usable_lba: u64_at(40),
            last_usable_lba: u64_at(48),
            disk_guid: Guid::from_bytes(guid),
            entries_lba: u64_at(72),
            entry_count: u32_at(80),
            entry_size: u32_at(84),
            entries_crc32: u32_at(88),
        };
        check_entry_size(header.entry_size)?;
        Ok(header)
    }

    /// Checks that `array` holds this header's entry array (extra bytes after it are ignored)
    /// and that its CRC matches.
    pub fn check_array(&self, array: &[u8]) -> Result<(), GptError> {
        let len = self.array_len();
        let Some(covered) = usize::try_from(len).ok().and_then(|n| array.get(..n)) else {
            return Err(GptError::Truncated {
                what: "the GPT entry array",
                needed: len,
                got: array.len() as u64,
            });
        };
        let computed = crc32(covered);
        if computed != self.entries_crc32 {
            return Err(GptError::ArrayCrc {
                stored: self.entries_crc32,
                computed,
            });
        }
        Ok(())
    }

    /// Every slot of the entry array, unused ones included (so indices are entry numbers − 1),
    /// after [`Header::check_array`].
    pub fn decode_array(&self, array: &[u8]) -> Result<Vec<Entry>, GptError> {
        self.check_array(array)?;
        let len = self.array_len() as usize; // fits: checked against `array` above
        Ok(array[..len]
            .chunks_exact(self.entry_size as usize)
            .map(Entry::decode)
            .collect())
    }
}

/// One slot of the entry array.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Entry {
    /// [`Guid::NIL`] for an unused slot.
    pub type_guid: Guid,
    pub guid: Guid,
    pub first_lba: u64,
    /// Inclusive, as GPT stores it.
    pub last_lba: u64,
    /// Bit 0 "required by the platform", bit 2 "legacy BIOS bootable", 48–63 type-specific.
    pub attributes: u64,
    /// At most [`NAME_UNITS`] UTF-16 code units.
    pub name: String,
}

impl Entry {
    /// A used entry with no attributes.
    pub fn new(
        type_guid: Guid,
        guid: Guid,
        first_lba: u64,
        last_lba: u64,
        name: impl Into<String>,
    ) -> Entry {
        Entry {
            type_guid,
            guid,
            first_lba,
            last_lba,
            attributes: 0,
            name: name.into(),
        }
    }

    pub fn is_used(&self) -> bool {
        !self.type_guid.is_nil()
    }

    /// Length in sectors (0 if `last_lba` is before `first_lba`).
    pub fn sectors(&self) -> u64 {
        (self.last_lba + 1).saturating_sub(self.first_lba)
    }

    /// The 128 bytes of the entry (an array with larger entries pads each with zeros).
    pub fn encode(&self) -> Result<[u8; ENTRY_SIZE as usize], GptError> {
        let mut slot = [0u8; ENTRY_SIZE as usize];
        slot[0..16].copy_from_slice(&self.type_guid.to_bytes());
        slot[16..32].copy_from_slice(&self.guid.to_bytes());
        slot[32..40].copy_from_slice(&self.first_lba.to_le_bytes());
        slot[40..48].copy_from_slice(&self.last_lba.to_le_bytes());
        slot[48..56].copy_from_slice(&self.attributes.to_le_bytes());
        let units: Vec<u16> = self.name.encode_utf16().collect();
        if units.len() > NAME_UNITS {
            return Err(GptError::NameTooLong {
                name: self.name.clone(),
            });
        }
        for (unit, at) in units.into_iter().zip((56..).step_by(2)) {
            slot[at..at + 2].copy_from_slice(&unit.to_le_bytes());
        }
        Ok(slot)
    }

    /// Reads the first 128 bytes of `slot` (shorter slots read as zero-padded). The name ends
    /// at its first NUL; unpaired surrogates become U+FFFD.
    pub fn decode(slot: &[u8]) -> Entry {
        let mut b = [0u8; ENTRY_SIZE as usize];
        let n = slot.len().min(b.len());
        b[..n].copy_from_slice(&slot[..n]);
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let guid_at = |at: usize| {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&b[at..at + 16]);
            Guid::from_bytes(bytes)
        };
        let units: Vec<u16> = b[56..]
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .take_while(|&unit| unit != 0)
            .collect();
        Entry {
            type_guid: guid_at(0),
            guid: guid_at(16),
            first_lba: u64_at(32),
            last_lba: u64_at(40),
            attributes: u64_at(48),
            name: String::from_utf16_lossy(&units),
        }
    }
}

/// An entry array of `entry_count` slots of `entry_size` bytes: `entries` in the first slots,
/// zeros after them.
pub fn encode_array(
    entries: &[Entry],
    entry_count: u32,
    entry_size: u32,
) -> Result<Vec<u8>, GptError> {
    check_entry_size(entry_size)?;
    if entries.len() > entry_count as usize {
        return Err(GptError::TooManyPartitions {
            count: entries.len(),
            max: entry_count,
        });
    }
    let len = entry_count as usize * entry_size as usize;
    let mut array = vec![0u8; len];
    for (slot, entry) in array.chunks_exact_mut(entry_size as usize).zip(entries) {
        slot[..ENTRY_SIZE as usize].copy_from_slice(&entry.encode()?);
    }
    Ok(array)
}

fn check_entry_size(size: u32) -> Result<(), GptError> {
    // 128 × 2^n, and within a sector so that entries never straddle one.
    if size < ENTRY_SIZE || !size.is_power_of_two() || u64::from(size) > SECTOR {
        return Err(GptError::EntrySize { size });
    }
    Ok(())
}

/// A GPT read back from a disk: one copy's header and every slot of its array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    pub header: Header,
    pub entries: Vec<Entry>,
}

impl Gpt {
    /// The used entries with their 1-based partition numbers.
    pub fn partitions(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_used())
            .map(|(i, e)| (i + 1, e))
    }
}

/// Reads and checks the header in sector `lba` of `disk`; it must name `lba` as its own.
pub fn read_header<R: Read + Seek + ?Sized>(disk: &mut R, lba: u64) -> Result<Header, GptError> {
    let sector = read_exactly(disk, lba, SECTOR, "the GPT header")?;
    let header = Header::decode(&sector)?;
    if header.my_lba != lba {
        return Err(GptError::MisplacedHeader {
            lba,
            my_lba: header.my_lba,
        });
    }
    Ok(header)
}

/// Reads one copy of the GPT: the header in sector `lba` (1 for the primary, the primary's
/// `alternate_lba` for the backup) and its entry array, with every check of
/// [`Header::decode`], [`read_header`] and [`Header::check_array`].
pub fn read<R: Read + Seek + ?Sized>(disk: &mut R, lba: u64) -> Result<Gpt, GptError> {
    let header = read_header(disk, lba)?;
    let array = read_exactly(
        disk,
        header.entries_lba,
        header.array_len(),
        "the GPT entry array",
    )?;
    let entries = header.decode_array(&array)?;
    Ok(Gpt { header, entries })
}

/// `len` bytes from sector `lba`. A header may claim an array of up to 2^64 bytes, so nothing
/// is allocated ahead: the buffer grows with what the disk actually holds.
fn read_exactly<R: Read + Seek + ?Sized>(
    disk: &mut R,
    lba: u64,
    len: u64,
    what: &'static str,
) -> Result<Vec<u8>, GptError> {
    let offset = lba.checked_mul(SECTOR).ok_or(GptError::Truncated {
        what,
        needed: len,
        got: 0,
    })?;
    disk.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    disk.take(len).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < len {
        return Err(GptError::Truncated {
            what,
            needed: len,
            got: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Everything a GPT disk holds outside its partitions: the protective MBR in sector 0, the
/// primary header in sector 1 and its array from sector 2, the backup array and the backup
/// header in the last 33 sectors. Both headers describe the same array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// [`Mbr::protective`] for the disk; callers may set a disk signature before writing.
    pub protective_mbr: Mbr,
    pub primary: Header,
    pub backup: Header,
    /// [`ENTRY_COUNT`] entries of [`ENTRY_SIZE`] bytes.
    pub array: Vec<u8>,
}

impl Tables {
    /// The tables of a disk of `total_sectors` holding `partitions` in entries 1, 2, …
    ///
    /// Each partition must be used (a type GUID), lie within the usable sectors and not overlap
    /// another.
    pub fn new(
        total_sectors: u64,
        disk_guid: Guid,
        partitions: &[Entry],
    ) -> Result<Tables, GptError> {
        if total_sectors < MIN_SECTORS {
            return Err(GptError::DiskTooSmall {
                sectors: total_sectors,
                minimum: MIN_SECTORS,
            });
        }
        let last_usable = last_usable(total_sectors);
        for (i, p) in partitions.iter().enumerate() {
            let number = i + 1;
            if !p.is_used() {
                return Err(GptError::NilType { number });
            }
            if p.first_lba > p.last_lba || p.first_lba < FIRST_USABLE || p.last_lba > last_usable {
                return Err(GptError::PartitionRange {
                    number,
                    first_lba: p.first_lba,
                    last_lba: p.last_lba,
                    first_usable: FIRST_USABLE,
                    last_usable,
                });
            }
            if let Some(other) = partitions[..i]
                .iter()
                .position(|o| o.first_lba <= p.last_lba && p.first_lba <= o.last_lba)
            {
                return Err(GptError::Overlap {
                    number,
                    other: other + 1,
                });
            }
        }
        let array = encode_array(partitions, ENTRY_COUNT, ENTRY_SIZE)?;
        let last = total_sectors - 1;
        let primary = Header {
            revision: REVISION,
            header_size: HEADER_SIZE,
            my_lba: 1,
            alternate_lba: last,
            first_usable_lba: FIRST_USABLE,
            last_usable_lba: last_usable,
            disk_guid,
            entries_lba: 2,
            entry_count: ENTRY_COUNT,
            entry_size: ENTRY_SIZE,
            entries_crc32: crc32(&array),
        };
        let backup = Header {
            my_lba: last,
            alternate_lba: 1,
            entries_lba: total_sectors - TABLE_SECTORS,
            ..primary.clone()
        };
        Ok(Tables {
            protective_mbr: Mbr::protective(total_sectors),
            primary,
            backup,
            array,
        })
    }

    /// Sectors 1 to 33: the primary header, then the array.
    pub fn primary_bytes(&self) -> Vec<u8> {
        let mut out = self.primary.encode().to_vec();
        out.extend_from_slice(&self.array);
        out
    }

    /// The last 33 sectors: the array, then the backup header in the very last sector.
    pub fn backup_bytes(&self) -> Vec<u8> {
        let mut out = self.array.clone();
        out.extend_from_slice(&self.backup.encode());
        out
    }

    /// Where [`Tables::backup_bytes`] go: the first sector of the backup array.
    pub fn backup_lba(&self) -> u64 {
        self.backup.entries_lba
    }

    /// Writes the MBR sector (boot code zero), the primary and the backup tables to a disk of
    /// the size the tables were made for. Sectors in between are not touched.
    pub fn write_to<W: Write + Seek + ?Sized>(&self, disk: &mut W) -> io::Result<()> {
        disk.seek(SeekFrom::Start(0))?;
        disk.write_all(&self.protective_mbr.encode())?;
        disk.write_all(&self.primary_bytes())?;
        disk.seek(SeekFrom::Start(self.backup_lba() * SECTOR))?;
        disk.write_all(&self.backup_bytes())
    }
}

/// What is wrong with a GPT being read, or with one being made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GptError {
    #[error("{what} needs {needed} bytes, but only {got} could be read")]
    Truncated {
        what: &'static str,
        needed: u64,
        got: u64,
    },
    #[error("no GPT header: the sector starts with `{}`, not `EFI PART`", found.escape_ascii())]
    Signature { found: [u8; 8] },
    #[error("the GPT header gives its size as {size} bytes; 92 to 512 are valid")]
    HeaderSize { size: u32 },
    #[error(
        "the GPT header's CRC-32 is {stored:#010x}, but its bytes give {computed:#010x}: the \
         header is corrupt"
    )]
    HeaderCrc { stored: u32, computed: u32 },
    #[error(
        "the GPT header gives partition entries {size} bytes each; valid sizes are 128 × 2^n, at \
         most a 512-byte sector"
    )]
    EntrySize { size: u32 },
    #[error(
        "the GPT entry array's CRC-32 is {computed:#010x}, but its header records \
         {stored:#010x}: the array is corrupt"
    )]
    ArrayCrc { stored: u32, computed: u32 },
    #[error("the GPT header in sector {lba} says it is in sector {my_lba}")]
    MisplacedHeader { lba: u64, my_lba: u64 },
    #[error("a GPT disk needs at least {minimum} sectors of 512 bytes, but this one has {sectors}")]
    DiskTooSmall { sectors: u64, minimum: u64 },
    #[error("{count} partitions do not fit a GPT entry array of {max} entries")]
    TooManyPartitions { count: usize, max: u32 },
    #[error("GPT partition {number} has the nil type GUID, which marks an unused entry")]
    NilType { number: usize },
    #[error(
        "GPT partition {number} spans sectors {first_lba} to {last_lba}, but partitions must lie \
         within sectors {first_usable} to {last_usable}"
    )]
    PartitionRange {
        number: usize,
        first_lba: u64,
        last_lba: u64,
        first_usable: u64,
        last_usable: u64,
    },
    #[error("GPT partition {number} overlaps partition {other}")]
    Overlap { number: usize, other: usize },
    #[error("the GPT partition name `{name}` is longer than 36 UTF-16 code units")]
    NameTooLong { name: String },
    #[error("could not read the GPT: {0}")]
    Io(#[from] io::Error),
}

#[cfg(test)]
mod tests;
