//! `limine bios-install` in Rust: writes Limine's BIOS stages into an MBR or GPT disk image (or
//! the GPT system area of a hybrid ISO), refusing what Limine's own tool refuses.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;

use crc32fast::hash as crc32;

use crate::stages::{BiosStages, STAGE1_LEN};

/// Where stage 1 records the sizes and byte offsets of the two halves of stage 2.
pub const PATCH_AT: u64 = 0x1A4;
/// Sector 0 bytes kept as they were: a timestamp some disk tools write.
const TIMESTAMP: Range<u64> = 218..224;
/// Sector 0 bytes kept as they were: disk signature, copy-protect word and partition table.
const PARTITION_TABLE: Range<u64> = 440..510;
/// MBR partitions must start at this LBA or later: stage 2 lives in the sectors before.
pub const MIN_MBR_PARTITION_START: u32 = 63;
/// Blocks the installer takes each GPT entry array to span (128 entries of 128 bytes on
/// 512-byte blocks); it does not read the array size from the header.
const GPT_ARRAY_BLOCKS: u64 = 32;
/// Bytes of a GPT header the installer reads, checksums and rewrites.
const GPT_HEADER_LEN: usize = 92;

/// The partition table found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableKind {
    /// A classic MBR partition table.
    Mbr,
    /// A GUID partition table with this logical block size (512 or 4096).
    Gpt {
        /// Bytes per logical block.
        block_size: u64,
    },
}

/// One half of stage 2 as installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Half {
    /// Byte offset in the image.
    pub offset: u64,
    /// Size recorded in stage 1, in bytes (whole sectors; the second half's last sector may
    /// hold fewer bytes of stage 2).
    pub size: u16,
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Installed {
    /// The partition table the stages were installed for.
    pub table: TableKind,
    /// Where the two halves of stage 2 went.
    pub stage2: [Half; 2],
    /// GPT: the entry count of the headers before and after (stage 2 takes the arrays' tails).
    pub gpt_entries: Option<(u32, u32)>,
    /// MBR: no partition was active, so partition 1 was marked active (as the tool does, since
    /// some BIOSes boot only disks with an active partition).
    pub activated_first_partition: bool,
}

/// Why an install did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The image is not one the stages can go into; nothing was written.
    #[error("{0}")]
    Refused(String),
    /// Reading or writing the image failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Installs `stages` into the image file at `path` (see [`install`]).
pub fn install_file(
    path: &Path,
    stages: &BiosStages,
) -> Result<Installed, image_runner_core::Error> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| image_runner_core::Error::io("open", path, e))?;
    let installed = install(&mut file, stages).map_err(|e| match e {
        InstallError::Refused(reason) => image_runner_core::Error::plugin(
            "limine",
            format!(
                "cannot install Limine's BIOS stages into `{}`: {reason}",
                path.display()
            ),
        ),
        InstallError::Io { action, source } => image_runner_core::Error::io(action, path, source),
    })?;
    file.sync_all()
        .map_err(|e| image_runner_core::Error::io("flush", path, e))?;
    Ok(installed)
}

/// Installs `stages` into the image `device`, as Limine's tool (`limine.c` of the 8.x binary
/// releases) does:
///
/// 1. GPT if `EFI PART` is at byte 512 or 4096 (the logical block size); the backup header
///    the primary names must carry the signature too.
/// 2. Otherwise the MBR is checked: every status byte 0x00 or 0x80, every used entry starting
///    at LBA 63 or later, and sector 0 no file system boot sector (`_ECH_FS_`, `NTFS`, `FAT`
///    at byte 54 or 82, `FAT32`, or an ext2 superblock magic at byte 1080). With no active
///    partition, partition 1 is marked active.
/// 3. Stage 2 is split into two halves of whole sectors (the first takes the odd one). On MBR
///    they follow sector 0. On GPT they go into the tails of the primary and backup entry
///    arrays (each taken as 32 blocks long), aligned down to a block; the entry count of both
///    headers shrinks to the entries before the first half, entries past the last used one are
///    zeroed, and the array and header CRCs are recomputed.
/// 4. Stage 1 goes into sector 0, keeping bytes 218–223 (a disk timestamp some systems
///    write) and 440–509 (disk signature and partition table); at 0x1A4 it records
///    `u16 size_a, u16 size_b, u64 loc_a, u64 loc_b` (little-endian byte offsets).
///
/// Everything is checked before the first byte is written, so a refusal leaves the image as it
/// was. Besides the tool's refusals, installs that would overwrite a partition or the backup
/// GPT header are refused; the tool would write them and leave a broken disk. (With the real
/// stages that never happens on the disks the tool accepts: 42 sectors fit below LBA 63, and
/// the GPT halves stay inside standard entry arrays.)
pub fn install<D: Read + Write + Seek>(
    device: &mut D,
    stages: &BiosStages,
) -> Result<Installed, InstallError> {
    let len = device
        .seek(SeekFrom::End(0))
        .map_err(io("size the image"))?;
    let mut image = Image { device, len };
    let mut writes = Writes::default();
    let (size_a, size_b) = stages.half_sizes();

    let gpt = probe_gpt(&mut image)?;
    let (table, loc_a, loc_b, gpt_entries, activated) = match gpt {
        Some((block_size, primary)) => {
            let (loc_a, loc_b, counts) =
                plan_gpt(&mut image, &mut writes, block_size, primary, size_a, size_b)?;
            (
                TableKind::Gpt { block_size },
                loc_a,
                loc_b,
                Some(counts),
                false,
            )
        }
        None => {
            let activated = check_mbr(&mut image, &mut writes, stages)?;
            let loc_a = STAGE1_LEN as u64;
            (
                TableKind::Mbr,
                loc_a,
                loc_a + size_a as u64,
                None,
                activated,
            )
        }
    };

    // Sector 0 as it will be once the table updates above are written: the kept bytes are
    // read after them, as the tool does.
    let mut sector0 = image.read(0, STAGE1_LEN, "sector 0")?;
    writes.apply_to(0, &mut sector0);
    let mut boot = stages.stage1().to_vec();
    let (a, b) = (size_a as u16, size_b as u16);
    let mut patch = Vec::with_capacity(20);
    patch.extend_from_slice(&a.to_le_bytes());
    patch.extend_from_slice(&b.to_le_bytes());
    patch.extend_from_slice(&loc_a.to_le_bytes());
    patch.extend_from_slice(&loc_b.to_le_bytes());
    put(&mut boot, PATCH_AT, &patch);
    for keep in [TIMESTAMP, PARTITION_TABLE] {
        let range = keep.start as usize..keep.end as usize;
        boot[range.clone()].copy_from_slice(&sector0[range]);
    }
    writes.push(0, boot);
    let stage2 = stages.stage2();
    writes.push(loc_a, stage2[..size_a].to_vec());
    writes.push(loc_b, stage2[size_a..].to_vec());

    for (offset, bytes) in &writes.0 {
        let end = offset.checked_add(bytes.len() as u64);
        if end.is_none_or(|end| end > image.len) {
            return Err(InstallError::Refused(format!(
                "{} bytes would be written at byte {offset}, past the end of the image ({} bytes)",
                bytes.len(),
                image.len
            )));
        }
    }
    for (offset, bytes) in &writes.0 {
        image.write(*offset, bytes)?;
    }
    image.device.flush().map_err(io("flush the image"))?;
    Ok(Installed {
        table,
        stage2: [
            Half {
                offset: loc_a,
                size: a,
            },
            Half {
                offset: loc_b,
                size: b,
            },
        ],
        gpt_entries,
        activated_first_partition: activated,
    })
}

/// The image being installed into.
struct Image<'a, D> {
    device: &'a mut D,
    len: u64,
}

impl<D: Read + Write + Seek> Image<'_, D> {
    /// `n` bytes at `offset`; `what` names them when the image is too short.
    fn read(&mut self, offset: u64, n: usize, what: &str) -> Result<Vec<u8>, InstallError> {
        if offset
            .checked_add(n as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(InstallError::Refused(format!(
                "the image is {} bytes, too short to hold {what} (bytes {offset} to {})",
                self.len,
                offset.saturating_add(n as u64)
            )));
        }
        let mut buf = vec![0; n];
        self.device
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.device.read_exact(&mut buf))
            .map_err(io("read the image"))?;
        Ok(buf)
    }

    fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), InstallError> {
        self.device
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.device.write_all(bytes))
            .map_err(io("write the image"))
    }
}

/// The writes an install makes, in the tool's order (later ones win where they overlap).
#[derive(Default)]
struct Writes(Vec<(u64, Vec<u8>)>);

impl Writes {
    fn push(&mut self, offset: u64, bytes: Vec<u8>) {
        self.0.push((offset, bytes));
    }

    /// Applies the writes so far to `buf`, a copy of the image bytes from `base` on.
    fn apply_to(&self, base: u64, buf: &mut [u8]) {
        for (offset, bytes) in &self.0 {
            let (start, end) = (*offset, offset + bytes.len() as u64);
            let (from, to) = (start.max(base), end.min(base + buf.len() as u64));
            if from < to {
                let src = &bytes[(from - start) as usize..(to - start) as usize];
                buf[(from - base) as usize..(to - base) as usize].copy_from_slice(src);
            }
        }
    }
}

fn io(action: &'static str) -> impl Fn(std::io::Error) -> InstallError {
    move |source| InstallError::Io { action, source }
}

fn put(buf: &mut [u8], at: u64, bytes: &[u8]) {
    let at = at as usize;
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The logical block size and primary header, if the image has a GPT.
fn probe_gpt<D: Read + Write + Seek>(
    image: &mut Image<'_, D>,
) -> Result<Option<(u64, Vec<u8>)>, InstallError> {
    for block_size in [512u64, 4096] {
        let header = image.read(block_size, GPT_HEADER_LEN, "a GPT header")?;
        if header.starts_with(b"EFI PART") {
            return Ok(Some((block_size, header)));
        }
    }
    Ok(None)
}

/// The fields of a GPT header the installer uses.
struct GptHeader {
    bytes: Vec<u8>,
    alternate_lba: u64,
    array_lba: u64,
    entries: u32,
    entry_size: u32,
}

impl GptHeader {
    fn parse(bytes: Vec<u8>) -> GptHeader {
        GptHeader {
            alternate_lba: u64_at(&bytes, 32),
            array_lba: u64_at(&bytes, 72),
            entries: u32_at(&bytes, 80),
            entry_size: u32_at(&bytes, 84),
            bytes,
        }
    }

    /// The header with a new entry count and array CRC, and its own CRC (over 92 bytes with
    /// the CRC field zero) recomputed.
    fn updated(&self, entries: u32, array_crc: u32) -> Vec<u8> {
        let mut h = self.bytes.clone();
        h[80..84].copy_from_slice(&entries.to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        h[16..20].fill(0);
        let crc = crc32(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }
}

/// Plans the GPT embedding; returns the halves' offsets and the entry count before and after.
fn plan_gpt<D: Read + Write + Seek>(
    image: &mut Image<'_, D>,
    writes: &mut Writes,
    block: u64,
    primary: Vec<u8>,
    size_a: usize,
    size_b: usize,
) -> Result<(u64, u64, (u32, u32)), InstallError> {
    let refuse = |what: String| Err(InstallError::Refused(what));
    let primary = GptHeader::parse(primary);
    let Some(backup_at) = primary.alternate_lba.checked_mul(block) else {
        return refuse(format!(
            "the GPT names LBA {} for its backup header, beyond any image",
            primary.alternate_lba
        ));
    };
    let backup = image.read(backup_at, GPT_HEADER_LEN, "the backup GPT header")?;
    if !backup.starts_with(b"EFI PART") {
        return refuse(format!(
            "the primary GPT header names LBA {} for the backup header, but there is none there (Limine's installer refuses this too); repair the GPT (`sgdisk -e`) or rebuild the image",
            primary.alternate_lba
        ));
    }
    let backup = GptHeader::parse(backup);
    for (which, header) in [("primary", &primary), ("backup", &backup)] {
        let size = header.entry_size;
        if size < 128 || !size.is_power_of_two() || u64::from(size) > block {
            return refuse(format!(
                "the {which} GPT header gives partition entries {size} bytes; the installer needs 128 × 2^n bytes, at most one {block}-byte block"
            ));
        }
    }
    let entry_size = u64::from(primary.entry_size);
    let table_bytes = u64::from(primary.entries) * entry_size;
    let array_at = primary.array_lba.saturating_mul(block);
    if table_bytes > image.len {
        return refuse(format!(
            "the GPT header claims {} partition entries of {entry_size} bytes, more than the whole image holds",
            primary.entries
        ));
    }
    let array = image.read(array_at, table_bytes as usize, "the GPT entry array")?;
    let used: Option<u64> = array
        .chunks_exact(entry_size as usize)
        .enumerate()
        .filter(|(_, entry)| entry[16..32].iter().any(|&b| b != 0))
        .map(|(i, _)| i as u64)
        .next_back();

    // The tool takes each array to span 32 blocks and puts the halves at their ends.
    let tail = |array_lba: u64, size: usize, which: &str| -> Result<u64, InstallError> {
        array_lba
            .checked_add(GPT_ARRAY_BLOCKS)
            .and_then(|end| end.checked_mul(block))
            .and_then(|end| end.checked_sub(size as u64))
            .map(|at| at & !(block - 1))
            .filter(|&at| at / block >= array_lba)
            .ok_or_else(|| {
                InstallError::Refused(format!(
                    "a stage 2 half of {size} bytes does not fit in the {which} partition entry array at LBA {array_lba}"
                ))
            })
    };
    let loc_a = tail(primary.array_lba, size_a, "primary")?;
    let loc_b = tail(backup.array_lba, size_b, "backup")?;
    let per_block = block / entry_size;
    let new_count = (loc_a / block - primary.array_lba) * per_block;
    if used.is_some_and(|last| new_count <= last) {
        return refuse(format!(
            "partition entry {} is in use, but with stage 2 embedded the GPT keeps room for {new_count} entries only (Limine's installer refuses this too); use fewer partitions or put them in the first entries",
            used.unwrap_or(0) + 1
        ));
    }
    let Ok(new_count_u32) = u32::try_from(new_count) else {
        return refuse(format!("{new_count} GPT entries do not fit the header"));
    };
    // Where the tool would write over partition data or the backup header (it would, and
    // then leave a broken disk).
    let partitions: Vec<(usize, Range<u64>)> = array
        .chunks_exact(entry_size as usize)
        .enumerate()
        .filter(|(_, entry)| entry[16..32].iter().any(|&b| b != 0))
        .map(|(i, entry)| {
            let first = u64_at(entry, 32).saturating_mul(block);
            let end = u64_at(entry, 40).saturating_add(1).saturating_mul(block);
            (i + 1, first..end)
        })
        .collect();
    for (half, at, size) in [("first", loc_a, size_a), ("second", loc_b, size_b)] {
        let range = at..at + size as u64;
        if let Some((n, part)) = partitions.iter().find(|(_, p)| overlap(p, &range)) {
            return refuse(format!(
                "the {half} half of stage 2 would go to bytes {} to {}, into partition {n} (bytes {} to {})",
                range.start, range.end, part.start, part.end
            ));
        }
        if overlap(&range, &(backup_at..backup_at + GPT_HEADER_LEN as u64)) {
            return refuse(format!(
                "the {half} half of stage 2 would go to bytes {} to {}, over the backup GPT header at byte {backup_at}: the backup entry array has no room for it",
                range.start, range.end
            ));
        }
    }

    let first_unused = used.map_or(0, |last| last + 1);
    let empty = vec![0u8; entry_size as usize];
    for i in first_unused..new_count {
        writes.push(array_at + i * entry_size, empty.clone());
    }
    let backup_array_at = backup.array_lba.saturating_mul(block);
    let backup_entry = u64::from(backup.entry_size);
    for i in first_unused..new_count {
        writes.push(
            backup_array_at + i * backup_entry,
            vec![0u8; backup_entry as usize],
        );
    }
    // The CRC covers the shrunk primary array as it is after the zeroing.
    let mut kept = image.read(
        array_at,
        (new_count * entry_size) as usize,
        "the GPT entry array",
    )?;
    writes.apply_to(array_at, &mut kept);
    let array_crc = crc32(&kept);
    writes.push(block, primary.updated(new_count_u32, array_crc));
    writes.push(backup_at, backup.updated(new_count_u32, array_crc));
    Ok((loc_a, loc_b, (primary.entries, new_count_u32)))
}

/// Checks an MBR as the tool does; marks partition 1 active if none is. Returns whether it did.
fn check_mbr<D: Read + Write + Seek>(
    image: &mut Image<'_, D>,
    writes: &mut Writes,
    stages: &BiosStages,
) -> Result<bool, InstallError> {
    let sector = image.read(0, STAGE1_LEN, "sector 0")?;
    let mut problems = Vec::new();
    let mut any_active = false;
    let mut partitions: Vec<(usize, Range<u64>)> = Vec::new();
    for n in 0..4 {
        let entry = &sector[446 + 16 * n..462 + 16 * n];
        let status = entry[0];
        if status != 0x00 && status != 0x80 {
            problems.push(format!(
                "partition entry {} has status byte {status:#04x} (0x00 or 0x80 expected)",
                n + 1
            ));
        }
        any_active |= status & 0x80 != 0;
        if entry[4] != 0 {
            let start = u32_at(entry, 8);
            if start < MIN_MBR_PARTITION_START {
                return Err(InstallError::Refused(format!(
                    "partition {} starts at LBA {start}; Limine needs ≥ {MIN_MBR_PARTITION_START} (its stage 2 goes into the sectors before the first partition; Limine's installer refuses this too)",
                    n + 1
                )));
            }
            let first = u64::from(start) * 512;
            partitions.push((n + 1, first..first + u64::from(u32_at(entry, 12)) * 512));
        }
    }
    let signatures: [(usize, &[u8], &str); 5] = [
        (4, b"_ECH_FS_", "an echfs"),
        (3, b"NTFS", "an NTFS"),
        (54, b"FAT", "a FAT12/16"),
        (82, b"FAT", "a FAT32"),
        (3, b"FAT32", "a FAT32"),
    ];
    for (at, signature, what) in signatures {
        if sector[at..at + signature.len()] == *signature {
            problems.push(format!(
                "it looks like {what} boot sector (\"{}\" at byte {at})",
                String::from_utf8_lossy(signature)
            ));
        }
    }
    let ext = image.read(1080, 2, "an ext2 superblock magic")?;
    if u16_at(&ext, 0) == 0xEF53 {
        problems.push("it holds an ext2/3/4 superblock (magic 0xEF53 at byte 1080)".into());
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(InstallError::Refused(format!(
            "it has no GPT (no `EFI PART` header at byte 512 or 4096), and sector 0 is no MBR Limine accepts: {} (Limine's installer refuses this too); build a partitioned image: `format = \"gpt\"`, `\"mbr\"` or `\"iso\"`",
            problems.join("; ")
        )));
    }
    let (a, b) = stages.half_sizes();
    let stage2 = STAGE1_LEN as u64..(STAGE1_LEN + a + b) as u64;
    if let Some((n, part)) = partitions.iter().find(|(_, p)| overlap(p, &stage2)) {
        return Err(InstallError::Refused(format!(
            "stage 2 takes bytes {} to {}, but partition {n} starts at LBA {} (byte {}): it would overwrite the partition",
            stage2.start,
            stage2.end,
            part.start / 512,
            part.start
        )));
    }
    if !any_active {
        writes.push(446, vec![0x80]);
    }
    Ok(!any_active)
}

fn overlap(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

#[cfg(test)]
mod tests;
