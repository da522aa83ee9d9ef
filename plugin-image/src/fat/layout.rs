//! Volume geometry: which FAT type, cluster size and volume size hold the staged content.
//!
//! fatfs derives the FAT type from the cluster count alone (whatever type was asked for), so the
//! asked type is obtained by choosing a cluster size that puts the count in that type's range.

use image_runner_core::Error;

use super::FatType;

pub(super) const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
const FATS: u64 = 2;
const DIR_ENTRY: u64 = 32;
const CLUSTER_SIZES: [u64; 7] = [512, 1024, 2048, 4096, 8192, 16_384, 32_768];
/// Automatic choices stay at or below this cluster size for FAT12/FAT16, which puts FAT12 up to
/// about 16 MiB and FAT16 up to about 256 MiB of content, FAT32 beyond.
const SENSIBLE_CLUSTER: u64 = 4096;
/// Clusters kept away from every limit. fatfs rounds its FAT size up a little more than
/// [`cluster_count`] does, so it may end up with a few clusters fewer, and readers disagree by
/// one or two on where FAT12 ends and FAT16 begins.
const MARGIN: u64 = 16;
/// A FAT32 volume whose size is given keeps growing its clusters while it would have more than
/// this many (a FAT over 4 MiB per copy), as long as the type still fits: big FATs are slow to
/// write and to search for free space.
const FAT32_CLUSTER_TARGET: u64 = 1 << 20;
/// fatfs writes the sector count as 32 bits.
const MAX_SECTORS: u64 = u32::MAX as u64;

/// What the staged tree occupies, as far as sizing goes.
#[derive(Debug, Clone, Default)]
pub(super) struct Content {
    pub(super) file_sizes: Vec<u64>,
    /// Raw 32-byte entries of each subdirectory.
    pub(super) subdir_entries: Vec<u64>,
    /// Raw 32-byte entries of the root directory, volume label included.
    pub(super) root_entries: u64,
}

impl Content {
    /// Clusters needed for files and directories with clusters of `cluster` bytes.
    pub(super) fn clusters(&self, fat_type: FatType, cluster: u64) -> u64 {
        let files: u64 = self
            .file_sizes
            .iter()
            .map(|len| len.div_ceil(cluster))
            .sum();
        let dirs: u64 = self
            .subdir_entries
            .iter()
            .map(|&entries| dir_clusters(entries, cluster))
            .sum();
        let root = match fat_type {
            FatType::Fat32 => dir_clusters(self.root_entries, cluster),
            FatType::Fat12 | FatType::Fat16 => 0,
        };
        files + dirs + root
    }

    /// Entries of the fixed FAT12/FAT16 root directory region: the usual 512, or more when the
    /// root holds more (with one spare entry, because fatfs reads past the last used entry to
    /// find the end). `None` when even the largest region is too small.
    fn root_region_entries(&self, fat_type: FatType) -> Option<u64> {
        match fat_type {
            FatType::Fat32 => Some(0),
            FatType::Fat12 | FatType::Fat16 => {
                let entries = (self.root_entries + 1).next_multiple_of(16).max(512);
                (entries <= u64::from(u16::MAX)).then_some(entries)
            }
        }
    }
}

fn dir_clusters(entries: u64, cluster: u64) -> u64 {
    (entries * DIR_ENTRY).div_ceil(cluster).max(1)
}

/// A planned volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) fat_type: FatType,
    pub(super) cluster_size: u64,
    pub(super) sectors: u64,
    /// Root directory region entries (FAT12/FAT16; 0 for FAT32).
    pub(super) root_entries: u64,
    /// Data clusters, as estimated here.
    pub(super) clusters: u64,
    /// Clusters the content needs.
    pub(super) needed: u64,
}

impl Layout {
    pub(super) fn bytes(&self) -> u64 {
        self.sectors * SECTOR
    }
}

/// Valid data cluster counts per type, as the FAT specification and fatfs define them.
fn cluster_limits(fat_type: FatType) -> (u64, u64) {
    match fat_type {
        FatType::Fat12 => (1, 4084),
        FatType::Fat16 => (4085, 65_524),
        FatType::Fat32 => (65_525, 0x0FFF_FFF4),
    }
}

fn lowest_count(fat_type: FatType) -> u64 {
    match fat_type {
        FatType::Fat12 => cluster_limits(fat_type).0,
        FatType::Fat16 | FatType::Fat32 => cluster_limits(fat_type).0 + MARGIN,
    }
}

fn highest_count(fat_type: FatType) -> u64 {
    cluster_limits(fat_type).1 - MARGIN
}

/// Sectors before the FATs; the values fatfs uses when formatting.
fn reserved_sectors(fat_type: FatType) -> u64 {
    match fat_type {
        FatType::Fat32 => 8,
        FatType::Fat12 | FatType::Fat16 => 1,
    }
}

fn bits_per_entry(fat_type: FatType) -> u64 {
    match fat_type {
        FatType::Fat12 => 12,
        FatType::Fat16 => 16,
        FatType::Fat32 => 32,
    }
}

/// Sectors of one FAT copy for `clusters` data clusters (plus the two reserved entries).
fn fat_sectors(fat_type: FatType, clusters: u64) -> u64 {
    ((clusters + 2) * bits_per_entry(fat_type)).div_ceil(SECTOR * 8)
}

fn overhead_sectors(fat_type: FatType, root_entries: u64) -> u64 {
    reserved_sectors(fat_type) + (root_entries * DIR_ENTRY).div_ceil(SECTOR)
}

/// Data clusters of a volume of `sectors` sectors.
pub(super) fn cluster_count(
    fat_type: FatType,
    cluster: u64,
    sectors: u64,
    root_entries: u64,
) -> u64 {
    let per_cluster = cluster / SECTOR;
    let available = sectors.saturating_sub(overhead_sectors(fat_type, root_entries));
    let clusters_with = |fat: u64| available.saturating_sub(FATS * fat) / per_cluster;
    // The smallest FAT that covers all the clusters it leaves room for. A bigger FAT always
    // covers, a smaller one never does once one fails, so bisect.
    let covers = |fat: u64| fat_sectors(fat_type, clusters_with(fat)) <= fat;
    let (mut low, mut high) = (1, fat_sectors(fat_type, available / per_cluster).max(1));
    while low < high {
        let mid = low + (high - low) / 2;
        if covers(mid) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    clusters_with(high)
}

/// The smallest volume, in sectors, with at least `clusters` data clusters.
fn sectors_for(fat_type: FatType, cluster: u64, clusters: u64, root_entries: u64) -> u64 {
    overhead_sectors(fat_type, root_entries)
        + FATS * fat_sectors(fat_type, clusters)
        + clusters * (cluster / SECTOR)
}

/// The layout of a volume of exactly `sectors` sectors, if it has the type and holds the content.
fn layout_of(content: &Content, fat_type: FatType, cluster: u64, sectors: u64) -> Option<Layout> {
    let root_entries = content.root_region_entries(fat_type)?;
    let needed = content.clusters(fat_type, cluster);
    let clusters = cluster_count(fat_type, cluster, sectors, root_entries);
    let fits = sectors <= MAX_SECTORS
        && clusters >= lowest_count(fat_type)
        && clusters <= highest_count(fat_type)
        && clusters >= needed + MARGIN;
    fits.then_some(Layout {
        fat_type,
        cluster_size: cluster,
        sectors,
        root_entries,
        clusters,
        needed,
    })
}

/// The smallest volume of this type and cluster size for the content; with `slack`, some free
/// space is added and the size rounded up to a MiB.
fn smallest(content: &Content, fat_type: FatType, cluster: u64, slack: bool) -> Option<Layout> {
    let root_entries = content.root_region_entries(fat_type)?;
    let needed = content.clusters(fat_type, cluster);
    let extra = if slack { needed / 32 } else { 0 };
    let clusters = (needed + extra + MARGIN).max(lowest_count(fat_type));
    let mut sectors = sectors_for(fat_type, cluster, clusters, root_entries);
    if slack {
        sectors = sectors.next_multiple_of(MIB / SECTOR);
    }
    layout_of(content, fat_type, cluster, sectors)
}

/// The cluster sizes automatic choices consider for a type.
fn sensible_clusters(fat_type: FatType) -> impl Iterator<Item = u64> {
    CLUSTER_SIZES
        .into_iter()
        .filter(move |&cluster| fat_type == FatType::Fat32 || cluster <= SENSIBLE_CLUSTER)
}

/// The smallest automatically sized volume of this type among `clusters`; on equal sizes the
/// larger cluster wins (fewer FAT updates while writing, a smaller FAT).
fn best_sized(
    content: &Content,
    fat_type: FatType,
    clusters: impl Iterator<Item = u64>,
) -> Option<Layout> {
    clusters
        .filter_map(|cluster| smallest(content, fat_type, cluster, true))
        .min_by_key(|layout| (layout.sectors, std::cmp::Reverse(layout.cluster_size)))
}

/// The layout for a volume of a given size: the smallest cluster size that gives the type,
/// except that FAT32 keeps to about a million clusters when it can.
fn best_for_size(
    content: &Content,
    fat_type: FatType,
    clusters: impl Iterator<Item = u64>,
    sectors: u64,
) -> Option<Layout> {
    let valid: Vec<Layout> = clusters
        .filter_map(|cluster| layout_of(content, fat_type, cluster, sectors))
        .collect();
    valid
        .iter()
        .find(|l| l.fat_type != FatType::Fat32 || l.clusters <= FAT32_CLUSTER_TARGET)
        .or(valid.first())
        .copied()
}

const ALL_TYPES: [FatType; 3] = [FatType::Fat12, FatType::Fat16, FatType::Fat32];

/// Chooses the volume: `fat_type` `None` picks the smallest sensible type, `size` `None` sizes
/// the volume from the content.
pub(super) fn plan(
    content: &Content,
    fat_type: Option<FatType>,
    size: Option<u64>,
) -> Result<Layout, Error> {
    let found = match (fat_type, size) {
        (Some(t), None) => best_sized(content, t, CLUSTER_SIZES.into_iter()),
        (None, None) => ALL_TYPES
            .into_iter()
            .find_map(|t| best_sized(content, t, sensible_clusters(t))),
        (Some(t), Some(size)) => {
            best_for_size(content, t, CLUSTER_SIZES.into_iter(), size / SECTOR)
        }
        (None, Some(size)) => {
            let sectors = size / SECTOR;
            ALL_TYPES
                .into_iter()
                .find_map(|t| best_for_size(content, t, sensible_clusters(t), sectors))
                .or_else(|| {
                    ALL_TYPES
                        .into_iter()
                        .rev()
                        .find_map(|t| best_for_size(content, t, CLUSTER_SIZES.into_iter(), sectors))
                })
        }
    };
    found.ok_or_else(|| no_layout(content, fat_type, size))
}

/// Explains why no volume fits, with the size that would.
fn no_layout(content: &Content, fat_type: Option<FatType>, size: Option<u64>) -> Error {
    let types: Vec<FatType> = fat_type.map_or(ALL_TYPES.to_vec(), |t| vec![t]);
    let what = fat_type.map_or("FAT".to_owned(), |t| t.to_string());
    let minimal = types
        .iter()
        .flat_map(|&t| CLUSTER_SIZES.map(|cluster| smallest(content, t, cluster, false)))
        .flatten()
        .min_by_key(|layout| layout.sectors);
    let content_bytes: u64 = content.file_sizes.iter().sum();
    let message = match (minimal, size) {
        (None, _) => format!(
            "the staged files ({content_bytes} bytes in {} files) do not fit any {what} volume; \
             {}",
            content.file_sizes.len(),
            match fat_type {
                Some(FatType::Fat12) | Some(FatType::Fat16) =>
                    "set `image.fat-type` to 32 (FAT32 holds up to 2 TiB), or remove it",
                _ => "FAT volumes hold at most 2 TiB",
            }
        ),
        (Some(minimal), Some(size)) if minimal.bytes() > size => format!(
            "the {what} image needs at least {} bytes ({} MiB) for the staged files \
             ({content_bytes} bytes of file content, directories and FAT), but `image.size` is \
             {size} bytes ({} MiB); raise `image.size`, or remove it to size the image \
             automatically",
            minimal.bytes(),
            minimal.bytes().div_ceil(MIB),
            size / MIB,
        ),
        (Some(_), Some(size)) => {
            let (_, max_clusters) = cluster_limits(fat_type.unwrap_or(FatType::Fat32));
            format!(
                "a {what} volume cannot be {size} bytes ({} MiB): {}; lower `image.size`{}",
                size / MIB,
                if size / SECTOR > MAX_SECTORS {
                    "FAT volumes hold at most 2 TiB".to_owned()
                } else {
                    format!(
                        "it would need more than {max_clusters} clusters, or clusters larger \
                         than 32 KiB"
                    )
                },
                if fat_type.is_some() {
                    " or set `image.fat-type` to a bigger type (or remove it)"
                } else {
                    ""
                },
            )
        }
        // Automatic sizing adds slack to the minimal size, which can only fail near a type's
        // upper limit; the next cluster size or type then fits.
        (Some(minimal), None) => format!(
            "found no {what} volume size for the staged files ({content_bytes} bytes); a volume \
             of {} bytes would hold them: set `image.size` to that",
            minimal.bytes(),
        ),
    };
    Error::plugin("fat", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(file_sizes: &[u64]) -> Content {
        Content {
            file_sizes: file_sizes.to_vec(),
            subdir_entries: vec![],
            root_entries: file_sizes.len() as u64 * 2,
        }
    }

    #[test]
    fn cluster_count_matches_the_layout_it_came_from() {
        for fat_type in ALL_TYPES {
            for cluster in CLUSTER_SIZES {
                for clusters in [10, 4000, 4085, 60_000, 65_525, 200_000] {
                    let root = if fat_type == FatType::Fat32 { 0 } else { 512 };
                    let sectors = sectors_for(fat_type, cluster, clusters, root);
                    let counted = cluster_count(fat_type, cluster, sectors, root);
                    // Never fewer, and at most what one more FAT sector per copy would cost.
                    assert!(
                        counted >= clusters,
                        "{fat_type} {cluster} {clusters}: {counted}"
                    );
                    assert!(
                        counted <= clusters + 2,
                        "{fat_type} {cluster} {clusters}: {counted}"
                    );
                }
            }
        }
    }

    #[test]
    fn automatic_type_grows_with_the_content() {
        let pick = |size| plan(&content(&[size]), None, None).unwrap();
        let tiny = pick(10_000);
        assert_eq!((tiny.fat_type, tiny.bytes()), (FatType::Fat12, MIB));
        assert_eq!(pick(10 * MIB).fat_type, FatType::Fat12);
        assert_eq!(pick(20 * MIB).fat_type, FatType::Fat16);
        assert_eq!(pick(64 * MIB).fat_type, FatType::Fat16);
        assert_eq!(pick(300 * MIB).fat_type, FatType::Fat32);
        for size in [
            0,
            10_000,
            3 * MIB,
            20 * MIB,
            64 * MIB,
            300 * MIB,
            5000 * MIB,
        ] {
            let layout = pick(size);
            assert_eq!(layout.bytes() % MIB, 0);
            assert!(layout.bytes() > size);
            // "A little slack": at most a MiB plus about 1/32 plus the FAT over the content.
            assert!(
                layout.bytes() < size + size / 16 + 2 * MIB,
                "{size}: {layout:?}"
            );
        }
    }

    #[test]
    fn asked_types_get_cluster_counts_in_their_range() {
        for fat_type in ALL_TYPES {
            for size in [0, 100_000, 3 * MIB] {
                let layout = plan(&content(&[size]), Some(fat_type), None).unwrap();
                let (min, max) = cluster_limits(fat_type);
                assert!(
                    layout.clusters >= min && layout.clusters <= max,
                    "{layout:?}"
                );
            }
        }
        let fat32 = plan(&content(&[0]), Some(FatType::Fat32), None).unwrap();
        assert_eq!(fat32.bytes(), 33 * MIB);
    }

    #[test]
    fn fixed_sizes_pick_a_cluster_size_for_the_type() {
        let small = content(&[1000]);
        let fat16 = plan(&small, Some(FatType::Fat16), Some(64 * MIB)).unwrap();
        // 1 KiB clusters give about 65,260 clusters, just inside FAT16.
        assert_eq!(fat16.cluster_size, 1024);
        assert!(fat16.clusters > 65_000, "{fat16:?}");
        let fat32 = plan(&small, Some(FatType::Fat32), Some(4096 * MIB)).unwrap();
        assert!(fat32.clusters <= FAT32_CLUSTER_TARGET, "{fat32:?}");
        let auto = plan(&small, None, Some(64 * MIB)).unwrap();
        assert_eq!(auto.fat_type, FatType::Fat16);
        let auto = plan(&small, None, Some(8 * MIB)).unwrap();
        assert_eq!(auto.fat_type, FatType::Fat12);
    }

    #[test]
    fn impossible_sizes_explain_themselves() {
        let err = plan(&content(&[5 * MIB]), Some(FatType::Fat16), Some(4 * MIB))
            .unwrap_err()
            .to_string();
        assert!(err.contains("image.size") && err.contains("MiB"), "{err}");
        let err = plan(&content(&[1000]), Some(FatType::Fat32), Some(16 * MIB))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at least 34") && err.contains("image.size"),
            "{err}"
        );
        let err = plan(&content(&[1000]), Some(FatType::Fat12), Some(1024 * MIB))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lower `image.size`"), "{err}");
        let err = plan(&content(&[200 * MIB]), Some(FatType::Fat12), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not fit any FAT12 volume"), "{err}");
    }
}
