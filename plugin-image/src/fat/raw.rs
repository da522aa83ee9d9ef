//! Direct edits of a finished volume, for what fatfs 0.3.6 gets wrong or cannot know.
//!
//! fatfs creates a subdirectory's `.` and `..` through its general entry writer, so each gets a
//! long-name entry in front of it: the directory starts `[LFN "."] [.] [LFN ".."] [..]`.
//! `fsck.fat` and other strict readers require `.` and `..` as the first two entries. fatfs also
//! fills `..` with the parent's first cluster, which for a FAT32 root is 2; a `..` pointing at
//! the root must hold 0. [`fix_subdirectories`] rewrites every subdirectory as `[.] [..]`
//! followed by its other entries unchanged, with both cluster fields set. Doing this once after
//! fatfs is done (instead of working around it entry by entry) keeps fatfs in charge of
//! allocation and short-name generation; the only cost is the two entries per directory the
//! long names took, left free at the end.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::FatType;

const ENTRY: usize = 32;
const ATTR_LONG_NAME: u8 = 0x0F;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
const DELETED: u8 = 0xE5;
const DOT: [u8; 11] = *b".          ";
const DOT_DOT: [u8; 11] = *b"..         ";

/// Where things are on a volume, read back from its boot sector.
#[derive(Debug)]
pub(super) struct Volume {
    fat_type: FatType,
    fat_offset: u64,
    cluster_size: u64,
    data_offset: u64,
    /// FAT12/FAT16: the fixed root directory region (offset, length).
    root_region: Option<(u64, u64)>,
    root_cluster: u32,
    clusters: u32,
    backup_boot_sector: Option<u64>,
    bytes_per_sector: u64,
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Volume {
    /// Reads the boot sector of a volume fatfs has just formatted as `fat_type`.
    pub(super) fn read<D: Read + Seek>(disk: &mut D, fat_type: FatType) -> io::Result<Self> {
        let mut boot = [0u8; 512];
        disk.seek(SeekFrom::Start(0))?;
        disk.read_exact(&mut boot)?;
        let bytes_per_sector = u64::from(u16_at(&boot, 11));
        let sectors_per_cluster = u64::from(boot[13]);
        let reserved = u64::from(u16_at(&boot, 14));
        let fats = u64::from(boot[16]);
        let root_entries = u64::from(u16_at(&boot, 17));
        let total_sectors = match u16_at(&boot, 19) {
            0 => u64::from(u32_at(&boot, 32)),
            n => u64::from(n),
        };
        let fat_sectors = match u16_at(&boot, 22) {
            0 => u64::from(u32_at(&boot, 36)),
            n => u64::from(n),
        };
        if bytes_per_sector == 0 || sectors_per_cluster == 0 {
            return Err(invalid("the boot sector has no geometry".into()));
        }
        let fat_offset = reserved * bytes_per_sector;
        let root_offset = fat_offset + fats * fat_sectors * bytes_per_sector;
        let root_len = (root_entries * ENTRY as u64).next_multiple_of(bytes_per_sector);
        let data_offset = root_offset + root_len;
        let cluster_size = sectors_per_cluster * bytes_per_sector;
        let clusters =
            (total_sectors * bytes_per_sector).saturating_sub(data_offset) / cluster_size;
        let is_fat32 = fat_type == FatType::Fat32;
        Ok(Self {
            fat_type,
            fat_offset,
            cluster_size,
            data_offset,
            root_region: (!is_fat32).then_some((root_offset, root_len)),
            root_cluster: if is_fat32 { u32_at(&boot, 44) } else { 0 },
            clusters: u32::try_from(clusters)
                .map_err(|_| invalid(format!("{clusters} clusters is too many")))?,
            backup_boot_sector: is_fat32.then(|| u64::from(u16_at(&boot, 50))),
            bytes_per_sector,
        })
    }

    /// Where the data region (cluster 2) begins.
    pub(super) fn data_offset(&self) -> u64 {
        self.data_offset
    }

    fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_offset + u64::from(cluster - 2) * self.cluster_size
    }

    fn next_cluster<D: Read + Seek>(&self, disk: &mut D, cluster: u32) -> io::Result<Option<u32>> {
        let (offset, end_of_chain) = match self.fat_type {
            FatType::Fat12 => (u64::from(cluster) * 3 / 2, 0xFF8),
            FatType::Fat16 => (u64::from(cluster) * 2, 0xFFF8),
            FatType::Fat32 => (u64::from(cluster) * 4, 0x0FFF_FFF8),
        };
        let mut raw = [0u8; 4];
        disk.seek(SeekFrom::Start(self.fat_offset + offset))?;
        let width = if self.fat_type == FatType::Fat32 {
            4
        } else {
            2
        };
        disk.read_exact(&mut raw[..width])?;
        let value = match self.fat_type {
            FatType::Fat12 if cluster % 2 == 1 => u32::from(u16_at(&raw, 0) >> 4),
            FatType::Fat12 => u32::from(u16_at(&raw, 0) & 0x0FFF),
            FatType::Fat16 => u32::from(u16_at(&raw, 0)),
            FatType::Fat32 => u32_at(&raw, 0) & 0x0FFF_FFFF,
        };
        if value >= end_of_chain {
            Ok(None)
        } else if value < 2 || value >= self.clusters + 2 {
            Err(invalid(format!(
                "cluster {cluster} links to invalid cluster {value}"
            )))
        } else {
            Ok(Some(value))
        }
    }

    fn chain<D: Read + Seek>(&self, disk: &mut D, first: u32) -> io::Result<Vec<u32>> {
        let mut chain = vec![first];
        let mut current = first;
        while let Some(next) = self.next_cluster(disk, current)? {
            if chain.len() > self.clusters as usize {
                return Err(invalid(format!("the chain from cluster {first} loops")));
            }
            chain.push(next);
            current = next;
        }
        Ok(chain)
    }

    /// The byte ranges a directory occupies: the root region, or its clusters.
    fn extents<D: Read + Seek>(&self, disk: &mut D, first: u32) -> io::Result<Vec<(u64, u64)>> {
        match (first, self.root_region) {
            (0, Some(region)) => Ok(vec![region]),
            _ => Ok(self
                .chain(disk, first)?
                .into_iter()
                .map(|cluster| (self.cluster_offset(cluster), self.cluster_size))
                .collect()),
        }
    }
}

fn read_extents<D: Read + Seek>(disk: &mut D, extents: &[(u64, u64)]) -> io::Result<Vec<u8>> {
    let total: u64 = extents.iter().map(|(_, len)| len).sum();
    let mut bytes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for &(offset, len) in extents {
        disk.seek(SeekFrom::Start(offset))?;
        disk.by_ref().take(len).read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

fn write_extents<D: Write + Seek>(
    disk: &mut D,
    extents: &[(u64, u64)],
    mut bytes: &[u8],
) -> io::Result<()> {
    for &(offset, len) in extents {
        // Extent lengths are cluster or root-region sizes, well within usize.
        let (now, rest) = bytes.split_at((len as usize).min(bytes.len()));
        disk.seek(SeekFrom::Start(offset))?;
        disk.write_all(now)?;
        bytes = rest;
    }
    Ok(())
}

fn first_cluster(entry: &[u8], fat_type: FatType) -> u32 {
    let high = match fat_type {
        FatType::Fat32 => u32::from(u16_at(entry, 20)),
        FatType::Fat12 | FatType::Fat16 => 0,
    };
    (high << 16) | u32::from(u16_at(entry, 26))
}

fn set_first_cluster(entry: &mut [u8], cluster: u32, fat_type: FatType) {
    // FAT12/FAT16 have no high half (the field belongs to extended attributes there).
    let high = match fat_type {
        FatType::Fat32 => (cluster >> 16) as u16,
        FatType::Fat12 | FatType::Fat16 => 0,
    };
    entry[20..22].copy_from_slice(&high.to_le_bytes());
    entry[26..28].copy_from_slice(&((cluster & 0xFFFF) as u16).to_le_bytes());
}

fn is_subdirectory(entry: &[u8]) -> bool {
    let attr = entry[11];
    attr != ATTR_LONG_NAME
        && attr & ATTR_DIRECTORY != 0
        && attr & ATTR_VOLUME_ID == 0
        && entry[0] != DELETED
        && entry[..11] != DOT
        && entry[..11] != DOT_DOT
}

/// Puts `.` and `..` first in every subdirectory, without long-name entries, pointing at the
/// directory itself and at its parent (0 for the root).
pub(super) fn fix_subdirectories<D: Read + Write + Seek>(
    disk: &mut D,
    volume: &Volume,
) -> io::Result<()> {
    // (first cluster, parent's first cluster as `..` must record it)
    let mut pending: Vec<(u32, u32)> = Vec::new();
    let root_extents = volume.extents(disk, volume.root_cluster)?;
    let root = read_extents(disk, &root_extents)?;
    push_subdirectories(&root, 0, volume.fat_type, &mut pending);
    while let Some((cluster, parent)) = pending.pop() {
        let extents = volume.extents(disk, cluster)?;
        let old = read_extents(disk, &extents)?;
        let new = reorder_dot_entries(&old, cluster, parent, volume.fat_type)
            .map_err(|what| invalid(format!("directory at cluster {cluster}: {what}")))?;
        write_extents(disk, &extents, &new)?;
        push_subdirectories(&new, cluster, volume.fat_type, &mut pending);
    }
    Ok(())
}

fn push_subdirectories(dir: &[u8], own: u32, fat_type: FatType, pending: &mut Vec<(u32, u32)>) {
    for entry in dir.chunks_exact(ENTRY).take_while(|e| e[0] != 0) {
        if is_subdirectory(entry) {
            pending.push((first_cluster(entry, fat_type), own));
        }
    }
}

/// The directory `dir` rewritten as `.`, `..`, then its other entries in their order, padded
/// with zeros to the same length. Long-name entries directly before `.` or `..` are dropped.
fn reorder_dot_entries(
    dir: &[u8],
    own: u32,
    parent: u32,
    fat_type: FatType,
) -> Result<Vec<u8>, &'static str> {
    let mut dot = None;
    let mut dot_dot = None;
    let mut others: Vec<u8> = Vec::with_capacity(dir.len());
    // Long-name entries not yet followed by their short entry.
    let mut long_name: Vec<&[u8]> = Vec::new();
    for entry in dir.chunks_exact(ENTRY).take_while(|e| e[0] != 0) {
        if entry[11] == ATTR_LONG_NAME && entry[0] != DELETED {
            long_name.push(entry);
            continue;
        }
        if entry[..11] == DOT {
            dot = Some(entry.to_vec());
            long_name.clear();
        } else if entry[..11] == DOT_DOT {
            dot_dot = Some(entry.to_vec());
            long_name.clear();
        } else {
            long_name
                .drain(..)
                .for_each(|e| others.extend_from_slice(e));
            others.extend_from_slice(entry);
        }
    }
    long_name
        .drain(..)
        .for_each(|e| others.extend_from_slice(e));
    let mut dot = dot.ok_or("no `.` entry")?;
    let mut dot_dot = dot_dot.ok_or("no `..` entry")?;
    set_first_cluster(&mut dot, own, fat_type);
    set_first_cluster(&mut dot_dot, parent, fat_type);
    let mut out = Vec::with_capacity(dir.len());
    out.extend_from_slice(&dot);
    out.extend_from_slice(&dot_dot);
    out.extend_from_slice(&others);
    out.resize(dir.len(), 0);
    Ok(out)
}

/// Writes the volume serial number into the boot sector (and the FAT32 backup boot sector).
pub(super) fn set_volume_id<D: Write + Seek>(
    disk: &mut D,
    volume: &Volume,
    volume_id: u32,
) -> io::Result<()> {
    let field = match volume.fat_type {
        FatType::Fat32 => 0x43,
        FatType::Fat12 | FatType::Fat16 => 0x27,
    };
    let sectors = std::iter::once(0).chain(volume.backup_boot_sector);
    for sector in sectors {
        disk.seek(SeekFrom::Start(sector * volume.bytes_per_sector + field))?;
        disk.write_all(&volume_id.to_le_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(name: &[u8; 11], attr: u8, cluster: u32) -> Vec<u8> {
        let mut entry = vec![0u8; ENTRY];
        entry[..11].copy_from_slice(name);
        entry[11] = attr;
        set_first_cluster(&mut entry, cluster, FatType::Fat32);
        entry
    }

    fn long(order: u8) -> Vec<u8> {
        let mut entry = vec![0u8; ENTRY];
        entry[0] = order;
        entry[11] = ATTR_LONG_NAME;
        entry
    }

    #[test]
    fn dot_entries_come_first_without_long_names() {
        // The layout fatfs 0.3.6 writes for a new directory at cluster 7 below a FAT32 root,
        // followed by one file with a long name.
        let mut dir = Vec::new();
        dir.extend(long(0x41));
        dir.extend(short(&DOT, ATTR_DIRECTORY, 7));
        dir.extend(long(0x41));
        dir.extend(short(&DOT_DOT, ATTR_DIRECTORY, 2));
        dir.extend(long(0x42));
        dir.extend(long(0x01));
        dir.extend(short(b"LONGNA~1TXT", 0x20, 9));
        dir.resize(512, 0);
        let fixed = reorder_dot_entries(&dir, 7, 0, FatType::Fat32).unwrap();
        let entries: Vec<&[u8]> = fixed.chunks_exact(ENTRY).collect();
        assert_eq!(entries[0][..11], DOT);
        assert_eq!(first_cluster(entries[0], FatType::Fat32), 7);
        assert_eq!(entries[1][..11], DOT_DOT);
        assert_eq!(first_cluster(entries[1], FatType::Fat32), 0);
        assert_eq!(entries[2][0], 0x42);
        assert_eq!(entries[3][0], 0x01);
        assert_eq!(entries[4][..11], *b"LONGNA~1TXT");
        assert!(fixed[5 * ENTRY..].iter().all(|&b| b == 0));
        assert_eq!(fixed.len(), 512);
    }

    #[test]
    fn a_directory_without_dot_entries_is_an_error() {
        let mut dir = short(b"FILE    TXT", 0x20, 5);
        dir.resize(512, 0);
        assert!(reorder_dot_entries(&dir, 5, 0, FatType::Fat16).is_err());
    }
}
