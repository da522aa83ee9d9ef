//! The geometry of a volume fatfs has just formatted, read back from its boot sector, and the
//! one field set after the content is known: the volume serial number.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::FatType;

const ENTRY: u64 = 32;

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
    fats: u64,
    /// Bytes of one FAT.
    fat_size: u64,
    /// FAT32: the FSInfo sector's offset.
    fs_info: Option<u64>,
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
        let root_len = (root_entries * ENTRY).next_multiple_of(bytes_per_sector);
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
            fats,
            fat_size: fat_sectors * bytes_per_sector,
            fs_info: is_fat32.then(|| u64::from(u16_at(&boot, 48)) * bytes_per_sector),
        })
    }

    pub(super) fn fat_type(&self) -> FatType {
        self.fat_type
    }

    /// Where the first FAT begins.
    pub(super) fn fat_offset(&self) -> u64 {
        self.fat_offset
    }

    /// Bytes of one FAT; the copies follow each other.
    pub(super) fn fat_size(&self) -> u64 {
        self.fat_size
    }

    pub(super) fn fats(&self) -> u64 {
        self.fats
    }

    pub(super) fn cluster_size(&self) -> u64 {
        self.cluster_size
    }

    /// Data clusters (numbered from 2).
    pub(super) fn clusters(&self) -> u32 {
        self.clusters
    }

    /// FAT12/FAT16: the fixed root directory region (offset, length).
    pub(super) fn root_region(&self) -> Option<(u64, u64)> {
        self.root_region
    }

    /// FAT32: the root directory's first cluster.
    pub(super) fn root_cluster(&self) -> u32 {
        self.root_cluster
    }

    /// FAT32: where the FSInfo sector is.
    pub(super) fn fs_info_offset(&self) -> Option<u64> {
        self.fs_info
    }

    /// Where the data region (cluster 2) begins.
    pub(super) fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Where cluster `cluster` (2 or more) begins.
    pub(super) fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_offset + u64::from(cluster - 2) * self.cluster_size
    }
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
