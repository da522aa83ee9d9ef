//! Filling a freshly formatted volume: every directory, directory entry and cluster chain is
//! computed here from the staged tree, then written in a few large writes.
//!
//! All of it is known in advance, so nothing is searched for: each directory and each file gets
//! one contiguous run of clusters (directories first, in tree order, then files in tree order),
//! short names are chosen for a whole directory at once, and file contents can start copying
//! before a single directory is written (see `content`). fatfs, which did this before, scans a
//! directory for every entry it adds (for the name, for an alias, for free slots): 200 files in
//! one directory cost it about 40 ms, more than copying a 64 MiB kernel.
//!
//! Names: a name that is a valid 8.3 name once upper-cased is stored as that short name, with
//! long-name entries only if it has lowercase letters. Other names get long-name entries and a
//! generated alias (`BASIS~N.EXT`, the lowest free `N`). Aliases are chosen after every 8.3
//! name of the directory has its short name, so no alias can equal another entry's name.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};

use fatfs::DateTime;
use image_runner_core::Error;

use super::content::Placement;
use super::raw::Volume;
use super::{FatType, tree};

const ENTRY: usize = 32;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_LONG_NAME: u8 = 0x0F;
/// UTF-16 units per long-name entry.
const LONG_NAME_UNITS: usize = 13;
/// Characters allowed in short names besides `A`–`Z` and `0`–`9`.
const SHORT_NAME_PUNCTUATION: &str = "!#$%&'()-@^_`{}~";

/// Everything to write besides file contents.
#[derive(Debug)]
pub(super) struct Metadata {
    /// Each directory's entries, padded to its clusters (or to the root region), and where they
    /// go in the volume.
    dirs: Vec<(u64, Vec<u8>)>,
    /// Cluster chains as (first cluster, cluster count), each contiguous.
    chains: Vec<(u32, u32)>,
    /// The first cluster not allocated.
    next_free: u32,
}

/// The plan for a volume: its metadata, and where each file's content goes.
pub(super) struct Plan<'p> {
    pub(super) metadata: Metadata,
    /// In allocation order.
    pub(super) placements: Vec<Placement<'p>>,
}

/// One directory of the tree while planning.
struct Node<'p> {
    dir: &'p tree::Dir<'p>,
    /// Index of the parent in the node list; `None` for the root.
    parent: Option<usize>,
    /// Per entry of `dir`, in order: its short name and whether it needs long-name entries.
    names: Vec<([u8; 11], bool)>,
    first_cluster: u32,
}

/// Plans the volume described by `volume` for `root`: allocates clusters and encodes every
/// directory. `label` is the volume label (an entry in the root directory too); every entry is
/// dated `time`.
pub(super) fn plan<'p>(
    root: &'p tree::Dir<'p>,
    volume: &Volume,
    label: Option<[u8; 11]>,
    time: DateTime,
) -> Result<Plan<'p>, Error> {
    // Directories in tree order, parents before children.
    let mut nodes = vec![Node {
        dir: root,
        parent: None,
        names: Vec::new(),
        first_cluster: 0,
    }];
    let mut i = 0;
    while i < nodes.len() {
        let dir = nodes[i].dir;
        nodes[i].names = short_names(dir)?;
        for entry in dir.entries.values() {
            if let tree::Entry::Dir(sub) = entry {
                nodes.push(Node {
                    dir: sub,
                    parent: Some(i),
                    names: Vec::new(),
                    first_cluster: 0,
                });
            }
        }
        i += 1;
    }

    let cluster_size = volume.cluster_size();
    let clusters_for = |bytes: u64| -> u32 {
        // At most the volume's cluster count (checked below), within u32.
        bytes.div_ceil(cluster_size) as u32
    };
    let dir_bytes = |node: &Node<'_>| -> u64 {
        let own = match node.parent {
            None => u64::from(label.is_some()),
            Some(_) => 2,
        };
        let children: u64 = node
            .dir
            .entries
            .keys()
            .zip(&node.names)
            .map(|(name, (_, long))| 1 + if *long { long_entries(name) } else { 0 })
            .sum();
        (own + children) * ENTRY as u64
    };

    let mut chains = Vec::new();
    let mut next = 2u32;
    let mut allocate = |clusters: u32, chains: &mut Vec<(u32, u32)>| -> u32 {
        let first = next;
        next = next.saturating_add(clusters);
        chains.push((first, clusters));
        first
    };
    let root_bytes = dir_bytes(&nodes[0]);
    let root_place = match volume.root_region() {
        Some((offset, len)) => {
            if root_bytes > len {
                return Err(bug(format!(
                    "the root directory needs {root_bytes} bytes, and its region holds {len}"
                )));
            }
            (offset, len)
        }
        None => {
            let clusters = clusters_for(root_bytes).max(1);
            let first = allocate(clusters, &mut chains);
            if first != volume.root_cluster() {
                return Err(bug(format!(
                    "the root directory was formatted at cluster {}, not {first}",
                    volume.root_cluster()
                )));
            }
            nodes[0].first_cluster = first;
            (
                volume.cluster_offset(first),
                u64::from(clusters) * cluster_size,
            )
        }
    };
    let mut places = vec![root_place];
    for node in &mut nodes[1..] {
        let clusters = clusters_for(dir_bytes(node)).max(1);
        node.first_cluster = allocate(clusters, &mut chains);
        places.push((
            volume.cluster_offset(node.first_cluster),
            u64::from(clusters) * cluster_size,
        ));
    }
    // Files, and the first cluster of each (0 when empty), in directory order.
    let mut placements = Vec::new();
    let mut file_clusters: Vec<Vec<u32>> = Vec::with_capacity(nodes.len());
    for node in &nodes {
        let mut firsts = Vec::new();
        for entry in node.dir.entries.values() {
            if let tree::Entry::File(file) = entry {
                let clusters = clusters_for(file.len);
                if clusters == 0 {
                    firsts.push(0);
                    continue;
                }
                let first = allocate(clusters, &mut chains);
                firsts.push(first);
                placements.push(Placement {
                    file,
                    extents: vec![(volume.cluster_offset(first), file.len)],
                });
            }
        }
        file_clusters.push(firsts);
    }
    let used = u64::from(next - 2);
    if used > u64::from(volume.clusters()) {
        return Err(bug(format!(
            "the content needs {used} clusters, and the volume has {}",
            volume.clusters()
        )));
    }

    let stamp = Stamp::new(time);
    let fat_type = volume.fat_type();
    let mut dirs = Vec::with_capacity(nodes.len());
    for (index, node) in nodes.iter().enumerate() {
        let (offset, len) = places[index];
        let mut bytes = Vec::with_capacity(len as usize);
        match node.parent {
            None => {
                if let Some(label) = label {
                    let mut entry = [0u8; ENTRY];
                    entry[..11].copy_from_slice(&label);
                    entry[11] = ATTR_VOLUME_ID;
                    bytes.extend_from_slice(&entry);
                }
            }
            Some(parent) => {
                let up = match nodes[parent].parent {
                    // `..` of a directory in the root holds 0, whatever the root's cluster.
                    None => 0,
                    Some(_) => nodes[parent].first_cluster,
                };
                for (name, cluster) in
                    [(*b".          ", node.first_cluster), (*b"..         ", up)]
                {
                    bytes.extend_from_slice(&short_entry(
                        &name,
                        ATTR_DIRECTORY,
                        cluster,
                        0,
                        &stamp,
                        fat_type,
                    ));
                }
            }
        }
        let mut files = file_clusters[index].iter();
        let mut subdirs = nodes
            .iter()
            .filter(|other| other.parent == Some(index))
            .map(|other| other.first_cluster);
        for ((name, entry), (short, long)) in node.dir.entries.iter().zip(&node.names) {
            if *long {
                long_name_entries(name, short, &mut bytes);
            }
            let (attr, cluster, size) = match entry {
                tree::Entry::Dir(_) => (ATTR_DIRECTORY, subdirs.next().unwrap_or(0), 0),
                // Sizes were checked against 4 GiB when the tree was built.
                tree::Entry::File(file) => (
                    ATTR_ARCHIVE,
                    files.next().copied().unwrap_or(0),
                    file.len as u32,
                ),
            };
            bytes.extend_from_slice(&short_entry(short, attr, cluster, size, &stamp, fat_type));
        }
        // The plan sized every directory for exactly these entries.
        bytes.resize(len as usize, 0);
        dirs.push((offset, bytes));
    }
    Ok(Plan {
        metadata: Metadata {
            dirs,
            chains,
            next_free: next,
        },
        placements,
    })
}

fn bug(what: String) -> Error {
    Error::plugin(
        "fat",
        format!("{what}; this is a bug in the FAT writer, work around it by setting `image.size`"),
    )
}

impl Metadata {
    /// Writes the directories, both FATs' chains and, on FAT32, the free-cluster count. The
    /// volume must be freshly formatted (free clusters in the FAT read as 0).
    pub(super) fn write<D: Read + Write + Seek>(
        &self,
        disk: &mut D,
        volume: &Volume,
    ) -> io::Result<()> {
        for (offset, bytes) in &self.dirs {
            disk.seek(SeekFrom::Start(*offset))?;
            disk.write_all(bytes)?;
        }
        // The part of the FAT that covers the clusters used, as formatted (entries 0 and 1, and
        // the FAT32 root's first cluster), then with every chain.
        let fat_type = volume.fat_type();
        let entries = u64::from(self.next_free);
        let len = match fat_type {
            FatType::Fat12 => (entries * 3).div_ceil(2),
            FatType::Fat16 => entries * 2,
            FatType::Fat32 => entries * 4,
        };
        let mut fat = vec![0u8; len as usize];
        disk.seek(SeekFrom::Start(volume.fat_offset()))?;
        disk.read_exact(&mut fat)?;
        let end_of_chain = match fat_type {
            FatType::Fat12 => 0xFFF,
            FatType::Fat16 => 0xFFFF,
            FatType::Fat32 => 0x0FFF_FFFF,
        };
        for &(first, count) in &self.chains {
            for cluster in first..first + count {
                let next = if cluster + 1 == first + count {
                    end_of_chain
                } else {
                    cluster + 1
                };
                set_fat_entry(&mut fat, fat_type, cluster, next);
            }
        }
        for copy in 0..volume.fats() {
            disk.seek(SeekFrom::Start(
                volume.fat_offset() + copy * volume.fat_size(),
            ))?;
            disk.write_all(&fat)?;
        }
        if let Some(fs_info) = volume.fs_info_offset() {
            let used = self.next_free - 2;
            let free = volume.clusters() - used;
            let mut fields = [0u8; 8];
            fields[..4].copy_from_slice(&free.to_le_bytes());
            let hint = if free == 0 {
                0xFFFF_FFFF
            } else {
                self.next_free
            };
            fields[4..].copy_from_slice(&hint.to_le_bytes());
            disk.seek(SeekFrom::Start(fs_info + 488))?;
            disk.write_all(&fields)?;
        }
        Ok(())
    }
}

fn set_fat_entry(fat: &mut [u8], fat_type: FatType, cluster: u32, value: u32) {
    let cluster = cluster as usize;
    match fat_type {
        FatType::Fat12 => {
            let at = cluster * 3 / 2;
            let value = value & 0xFFF;
            if cluster.is_multiple_of(2) {
                fat[at] = value as u8;
                fat[at + 1] = (fat[at + 1] & 0xF0) | (value >> 8) as u8;
            } else {
                fat[at] = (fat[at] & 0x0F) | ((value & 0x0F) << 4) as u8;
                fat[at + 1] = (value >> 4) as u8;
            }
        }
        FatType::Fat16 => {
            fat[cluster * 2..cluster * 2 + 2].copy_from_slice(&(value as u16).to_le_bytes())
        }
        FatType::Fat32 => {
            let at = cluster * 4;
            // The top four bits are reserved and kept.
            let old = u32::from_le_bytes([fat[at], fat[at + 1], fat[at + 2], fat[at + 3]]);
            let new = (old & 0xF000_0000) | (value & 0x0FFF_FFFF);
            fat[at..at + 4].copy_from_slice(&new.to_le_bytes());
        }
    }
}

/// The instant every entry carries, in the fields' encodings.
struct Stamp {
    date: u16,
    time: u16,
    /// Hundredths of a second beyond `time` (which counts in 2-second steps).
    hundredths: u8,
}

impl Stamp {
    fn new(at: DateTime) -> Stamp {
        let (date, time) = (at.date, at.time);
        Stamp {
            date: (date.year.saturating_sub(1980) << 9) | (date.month << 5) | date.day,
            time: (time.hour << 11) | (time.min << 5) | (time.sec / 2),
            // At most 199.
            hundredths: ((time.sec % 2) * 100 + time.millis / 10) as u8,
        }
    }
}

fn short_entry(
    name: &[u8; 11],
    attr: u8,
    cluster: u32,
    size: u32,
    stamp: &Stamp,
    fat_type: FatType,
) -> [u8; ENTRY] {
    let mut entry = [0u8; ENTRY];
    entry[..11].copy_from_slice(name);
    entry[11] = attr;
    entry[13] = stamp.hundredths;
    entry[14..16].copy_from_slice(&stamp.time.to_le_bytes());
    entry[16..18].copy_from_slice(&stamp.date.to_le_bytes());
    entry[18..20].copy_from_slice(&stamp.date.to_le_bytes());
    // FAT12/FAT16 have no high half (the field belongs to extended attributes there).
    let high = match fat_type {
        FatType::Fat32 => (cluster >> 16) as u16,
        FatType::Fat12 | FatType::Fat16 => 0,
    };
    entry[20..22].copy_from_slice(&high.to_le_bytes());
    entry[22..24].copy_from_slice(&stamp.time.to_le_bytes());
    entry[24..26].copy_from_slice(&stamp.date.to_le_bytes());
    entry[26..28].copy_from_slice(&((cluster & 0xFFFF) as u16).to_le_bytes());
    entry[28..32].copy_from_slice(&size.to_le_bytes());
    entry
}

/// Long-name entries `name` takes.
fn long_entries(name: &str) -> u64 {
    (name.encode_utf16().count() as u64).div_ceil(LONG_NAME_UNITS as u64)
}

/// Appends the long-name entries of `name` (last part first, as they are stored) for the
/// short entry `short`.
fn long_name_entries(name: &str, short: &[u8; 11], out: &mut Vec<u8>) {
    let checksum = short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b));
    let units: Vec<u16> = name.encode_utf16().collect();
    let parts = units.len().div_ceil(LONG_NAME_UNITS);
    for part in (0..parts).rev() {
        let mut chars = [0xFFFFu16; LONG_NAME_UNITS];
        let piece = &units[part * LONG_NAME_UNITS..units.len().min((part + 1) * LONG_NAME_UNITS)];
        chars[..piece.len()].copy_from_slice(piece);
        if piece.len() < LONG_NAME_UNITS {
            chars[piece.len()] = 0;
        }
        let mut entry = [0u8; ENTRY];
        // Names are at most 255 units: at most 20 parts.
        entry[0] = (part + 1) as u8 | if part + 1 == parts { 0x40 } else { 0 };
        entry[11] = ATTR_LONG_NAME;
        entry[13] = checksum;
        for (i, unit) in chars.iter().enumerate() {
            let at = match i {
                0..5 => 1 + 2 * i,
                5..11 => 14 + 2 * (i - 5),
                _ => 28 + 2 * (i - 11),
            };
            entry[at..at + 2].copy_from_slice(&unit.to_le_bytes());
        }
        out.extend_from_slice(&entry);
    }
}

/// Short names for the entries of `dir`, in its order, and whether each needs long-name
/// entries.
fn short_names(dir: &tree::Dir<'_>) -> Result<Vec<([u8; 11], bool)>, Error> {
    let names: Vec<&str> = dir.entries.keys().copied().collect();
    let mut taken = HashSet::new();
    let mut out: Vec<Option<([u8; 11], bool)>> = names
        .iter()
        .map(|name| {
            let short = as_short_name(name)?;
            taken.insert(short);
            let long = name.bytes().any(|b| b.is_ascii_lowercase());
            Some((short, long))
        })
        .collect();
    // Per basis, the number to try next: names sharing a basis (`module-000.bin`,
    // `module-001.bin` ...) would otherwise probe every taken number again.
    let mut next = HashMap::new();
    for (name, slot) in names.iter().zip(&mut out) {
        if slot.is_none() {
            let alias = alias(name, &taken, &mut next).ok_or_else(|| {
                Error::plugin(
                    "fat",
                    format!(
                        "no short name is left for `/{}`: too many similar names in one \
                         directory",
                        join(&dir.path, name)
                    ),
                )
            })?;
            taken.insert(alias);
            *slot = Some((alias, true));
        }
    }
    Ok(out.into_iter().flatten().collect())
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

fn short_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || SHORT_NAME_PUNCTUATION.contains(c)
}

/// `name` as an 8.3 name, if upper-casing its ASCII letters makes it one.
fn as_short_name(name: &str) -> Option<[u8; 11]> {
    let upper = name.to_ascii_uppercase();
    let (base, extension) = upper.rsplit_once('.').unwrap_or((&upper, ""));
    if !(1..=8).contains(&base.len())
        || extension.len() > 3
        || upper.ends_with('.')
        || !base.chars().chain(extension.chars()).all(short_char)
    {
        return None;
    }
    Some(pack(base.as_bytes(), extension.as_bytes()))
}

/// A generated short name for `name`: its letters and digits (upper-cased, others as `_`), cut
/// to leave room for `~N`, with the lowest `N` not in `taken` from where the last alias of the
/// same basis left off (`next`).
fn alias(
    name: &str,
    taken: &HashSet<[u8; 11]>,
    next: &mut HashMap<(Vec<u8>, Vec<u8>), u32>,
) -> Option<[u8; 11]> {
    let trimmed: String = name.chars().filter(|c| *c != ' ').collect();
    let trimmed = trimmed.trim_start_matches('.');
    let (base, extension) = match trimmed.rsplit_once('.') {
        Some((base, extension)) => (base, extension),
        None => (trimmed, ""),
    };
    let convert = |part: &str, max: usize| -> Vec<u8> {
        part.chars()
            .filter(|c| *c != '.')
            .map(|c| c.to_ascii_uppercase())
            .map(|c| if short_char(c) { c as u8 } else { b'_' })
            .take(max)
            .collect()
    };
    let mut basis = convert(base, 8);
    if basis.is_empty() {
        basis.push(b'_');
    }
    let extension = convert(extension, 3);
    let first = next.entry((basis.clone(), extension.clone())).or_insert(1);
    let found = (*first..=999_999u32).find_map(|n| {
        let tail = format!("~{n}");
        let keep = basis.len().min(8 - tail.len());
        let mut base = basis[..keep].to_vec();
        base.extend_from_slice(tail.as_bytes());
        let candidate = pack(&base, &extension);
        (!taken.contains(&candidate)).then_some((n, candidate))
    });
    let (n, alias) = found?;
    *first = n + 1;
    Some(alias)
}

fn pack(base: &[u8], extension: &[u8]) -> [u8; 11] {
    let mut short = [b' '; 11];
    short[..base.len()].copy_from_slice(base);
    short[8..8 + extension.len()].copy_from_slice(extension);
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(short: &[u8; 11]) -> String {
        String::from_utf8_lossy(short).into_owned()
    }

    #[test]
    fn short_names_keep_8_3_names_and_alias_the_rest() {
        assert_eq!(
            as_short_name("BOOTX64.EFI").map(|s| text(&s)).as_deref(),
            Some("BOOTX64 EFI")
        );
        assert_eq!(
            as_short_name("kernel").map(|s| text(&s)).as_deref(),
            Some("KERNEL     ")
        );
        for long in [
            "module-000.bin",
            "a.b.c",
            ".hidden",
            "name.text",
            "sp ace",
            "é",
        ] {
            assert_eq!(as_short_name(long), None, "{long}");
        }
        let mut taken = HashSet::new();
        let mut next = HashMap::new();
        let first = alias("module-000.bin", &taken, &mut next).unwrap();
        assert_eq!(text(&first), "MODULE~1BIN");
        taken.insert(first);
        let second = alias("module-001.bin", &taken, &mut next).unwrap();
        assert_eq!(text(&second), "MODULE~2BIN");
        let other = alias(".config file.json", &taken, &mut next).unwrap();
        assert_eq!(text(&other), "CONFIG~1JSO");
        assert_eq!(
            text(&alias("é+x", &taken, &mut next).unwrap()),
            "__X~1      "
        );
        for n in 1..=9 {
            taken.insert(pack(format!("MODULE~{n}").as_bytes(), b"BIN"));
        }
        let tenth = alias("module-009.bin", &taken, &mut next).unwrap();
        assert_eq!(text(&tenth), "MODUL~10BIN");
        // A fresh start probes from 1 and skips what is taken.
        let fresh = alias("module-100.bin", &taken, &mut HashMap::new()).unwrap();
        assert_eq!(text(&fresh), "MODUL~10BIN");
    }

    #[test]
    fn long_names_split_into_parts_last_first() {
        let short = pack(b"MODULE~1", b"BIN");
        let mut out = Vec::new();
        long_name_entries("module-000.bin", &short, &mut out);
        assert_eq!(out.len(), 2 * ENTRY);
        // The last part ("n", then the terminator and padding) comes first, marked 0x40.
        assert_eq!(out[0], 0x42);
        assert_eq!(out[ENTRY], 0x01);
        assert_eq!(out[11], ATTR_LONG_NAME);
        assert_eq!(&out[1..7], &[b'n', 0, 0, 0, 0xFF, 0xFF]);
        let first: Vec<u8> = [1, 3, 5, 7, 9].iter().map(|&i| out[ENTRY + i]).collect();
        assert_eq!(first, b"modul");
        let sum = short
            .iter()
            .fold(0u8, |s, &b| s.rotate_right(1).wrapping_add(b));
        assert!(out[13] == sum && out[ENTRY + 13] == sum);
    }

    #[test]
    fn fat12_entries_pack_in_a_byte_and_a_half() {
        let mut fat = vec![0u8; 9];
        for (cluster, value) in [(2u32, 0xABC), (3, 0x123), (4, 0xFFF), (5, 0x456)] {
            set_fat_entry(&mut fat, FatType::Fat12, cluster, value);
        }
        assert_eq!(&fat[3..9], &[0xBC, 0x3A, 0x12, 0xFF, 0x6F, 0x45]);
    }
}
