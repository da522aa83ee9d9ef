//! The FAT image writer: plans a FAT12/16/32 volume for a staging list, formats it with fatfs
//! and fills it, reproducibly.
//!
//! fatfs formats the volume (boot sector, FSInfo, empty FATs and root directory); the
//! directories, their entries and the cluster chains are then computed and written here (see
//! `fill`), and file contents go straight to their clusters (see `content`), in parallel with
//! the directories when writing to a file.

mod cache;
mod clock;
mod content;
mod fill;
mod layout;
mod raw;
mod tree;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use image_runner_core::{Error, Staging};

use crate::digest::Digests;
use cache::BlockCache;
use content::Sink;
use layout::Layout;

/// A FAT variant. UEFI firmware reads all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

impl fmt::Display for FatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FatType::Fat12 => "FAT12",
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        })
    }
}

impl From<FatType> for fatfs::FatType {
    fn from(fat_type: FatType) -> Self {
        match fat_type {
            FatType::Fat12 => fatfs::FatType::Fat12,
            FatType::Fat16 => fatfs::FatType::Fat16,
            FatType::Fat32 => fatfs::FatType::Fat32,
        }
    }
}

impl From<fatfs::FatType> for FatType {
    fn from(fat_type: fatfs::FatType) -> Self {
        match fat_type {
            fatfs::FatType::Fat12 => FatType::Fat12,
            fatfs::FatType::Fat16 => FatType::Fat16,
            fatfs::FatType::Fat32 => FatType::Fat32,
        }
    }
}

/// How to build a FAT volume.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FatOptions {
    /// `None`: the smallest type that suits the content (FAT12 up to about 16 MiB, FAT16 up to
    /// about 256 MiB, FAT32 beyond).
    pub fat_type: Option<FatType>,
    /// Volume size in bytes; `None`: the content plus directories, FATs and a little free space,
    /// rounded up to a MiB. Used by [`write_fat_file`]; [`format_into`] takes its size as an
    /// argument.
    pub size: Option<u64>,
    /// Volume label: 1 to 11 ASCII letters, digits, spaces (not first) or ``!#$%&'()-@^_`{}~``.
    /// Lowercase letters are stored uppercase, as FAT labels are.
    pub label: Option<String>,
    /// Volume serial number; `None`: derived from the staged paths, lengths and content
    /// digests, so that the same input always gives the same image.
    pub volume_id: Option<u32>,
    /// Content digests known before the build (see [`Digests`]); the writer adds those it
    /// computes. Files whose digest is known are copied kernel-side, without being read.
    pub digests: Arc<Digests>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FatInfo {
    pub fat_type: FatType,
    /// Size of the volume in bytes (a multiple of 512).
    pub size: u64,
    pub cluster_size: u32,
}

/// Formats `storage` (exactly `size` bytes, already that long) and writes every staged file into it.
///
/// Areas the volume does not use (free clusters, the tails of last clusters) are left as
/// `storage` has them, so give it zeroed storage (a new sparse file) for reproducible images.
/// `opts.size` is not used: `size` is.
pub fn format_into<S: Read + Write + Seek>(
    storage: S,
    size: u64,
    staging: &Staging,
    opts: &FatOptions,
) -> Result<FatInfo, Error> {
    let prepared = Prepared::new(staging, opts)?;
    let layout = layout::plan(&prepared.content, opts.fat_type, Some(size))?;
    prepared.write(storage, &layout, None)
}

/// Like [`format_into`] for a volume inside an image file: `storage` is the `size` bytes of
/// `file` starting at byte `offset`. File contents are then copied by a second thread, straight
/// into `file`, while fatfs writes the directories through `storage`.
pub(crate) fn format_region<S: Read + Write + Seek>(
    storage: S,
    file: &File,
    offset: u64,
    size: u64,
    staging: &Staging,
    opts: &FatOptions,
) -> Result<FatInfo, Error> {
    let prepared = Prepared::new(staging, opts)?;
    let layout = layout::plan(&prepared.content, opts.fat_type, Some(size))?;
    prepared.write(storage, &layout, Some((file, offset)))
}

/// The size in bytes `format_into` would need for this staging list and FAT type.
///
/// This is the size chosen when no size is given: content, directories, FATs and a little free
/// space, rounded up to a MiB.
pub fn required_size(staging: &Staging, fat_type: Option<FatType>) -> Result<u64, Error> {
    let tree = tree::build(staging)?;
    Ok(layout::plan(&tree.content(), fat_type, None)?.bytes())
}

/// Creates/truncates the file at `out`, sizes it, formats it (convenience for the `fat` format).
///
/// On failure the file is removed, so that a half-written image is never mistaken for one.
pub fn write_fat_file(out: &Path, staging: &Staging, opts: &FatOptions) -> Result<FatInfo, Error> {
    let prepared = Prepared::new(staging, opts)?;
    let layout = layout::plan(&prepared.content, opts.fat_type, opts.size)?;
    let size = opts.size.unwrap_or_else(|| layout.bytes());
    let result = crate::copy::create_zeroed(out, size)
        .and_then(|file| prepared.write(&file, &layout, Some((&file, 0))));
    if result.is_err() {
        // Best effort: the error being returned matters more than one about the cleanup.
        let _ = std::fs::remove_file(out);
    }
    result
}

/// Everything checked and measured before any byte is written.
struct Prepared<'a> {
    tree: tree::Dir<'a>,
    content: layout::Content,
    label: Option<[u8; 11]>,
    volume_id: Option<u32>,
    time: &'static clock::FixedTime,
    digests: Arc<Digests>,
}

impl<'a> Prepared<'a> {
    fn new(staging: &'a Staging, opts: &FatOptions) -> Result<Self, Error> {
        let label = opts.label.as_deref().map(parse_label).transpose()?;
        let tree = tree::build(staging)?;
        Ok(Self {
            content: tree.content(),
            tree,
            label,
            volume_id: opts.volume_id,
            time: clock::from_env()?,
            digests: Arc::clone(&opts.digests),
        })
    }

    /// Formats `storage` and fills it. File contents are copied by a second thread straight
    /// into `region` (the file holding `storage`, and where in it the volume starts) while the
    /// directories and FATs are written, if given; else into `storage` afterwards.
    fn write<S: Read + Write + Seek>(
        &self,
        storage: S,
        layout: &Layout,
        region: Option<(&File, u64)>,
    ) -> Result<FatInfo, Error> {
        let mut disk = BlockCache::new(storage, layout.bytes());
        let volume = format_aligned(&mut disk, layout, self.label, self.volume_id)?;
        disk.write_back_all().map_err(image_error)?;
        let mut storage = disk.into_inner();
        let time = fatfs::TimeProvider::get_current_date_time(self.time);
        let fill::Plan {
            metadata,
            placements,
        } = fill::plan(&self.tree, &volume, self.label, time)?;
        let digests = &*self.digests;
        let seed = match region {
            Some((file, offset)) => std::thread::scope(|scope| {
                let copier = std::thread::Builder::new()
                    .name("fat-content".into())
                    .spawn_scoped(scope, move || {
                        content::copy_all(placements, &mut Sink::file(file, offset), digests)
                    })
                    .map_err(|e| {
                        Error::plugin_source("fat", "could not start the content copy", e)
                    })?;
                let written = metadata.write(&mut storage, &volume);
                let copied = copier
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                written.map_err(image_error)?;
                copied
            })?,
            None => {
                metadata.write(&mut storage, &volume).map_err(image_error)?;
                content::copy_all(placements, &mut Sink::Stream(&mut storage), digests)?
            }
        };
        if self.volume_id.is_none() {
            raw::set_volume_id(&mut storage, &volume, seed.finish32()).map_err(image_error)?;
        }
        storage.flush().map_err(image_error)?;
        Ok(FatInfo {
            fat_type: layout.fat_type,
            size: layout.bytes(),
            // At most 32 KiB.
            cluster_size: layout.cluster_size as u32,
        })
    }
}

/// Checks that fatfs formatted the volume that was planned: it picks the FAT type from the
/// cluster count and ignores the one asked for, and the plan chose sizes to get it.
fn check_formatted(volume: &raw::Volume, layout: &Layout) -> Result<(), Error> {
    let clusters = volume.clusters();
    let made = match clusters {
        0..4085 => FatType::Fat12,
        4085..65525 => FatType::Fat16,
        _ => FatType::Fat32,
    };
    if made != layout.fat_type || made != volume.fat_type() || u64::from(clusters) < layout.needed {
        return Err(Error::plugin(
            "fat",
            format!(
                "fatfs formatted a {made} volume with {clusters} clusters of {} bytes where a {} \
                 volume with at least {} clusters was planned ({} bytes); this is a bug in the \
                 FAT writer, work around it by setting `image.size`",
                volume.cluster_size(),
                layout.fat_type,
                layout.needed,
                layout.bytes(),
            ),
        ));
    }
    Ok(())
}

/// File contents start on multiples of this in the volume where the layout allows it.
const CONTENT_ALIGN: u64 = 4096;

/// Formats the volume as planned and reads its geometry back. On FAT12/FAT16 with clusters of
/// 4 KiB or more, the root directory region is grown by a few sectors so that the data
/// region, and with it every cluster, starts on a 4 KiB boundary of the volume: file systems
/// with shared extents (btrfs, XFS) can then reflink file contents into the image rather than
/// copy them. (FAT32 puts its root directory in clusters, so there is nothing to grow.)
fn format_aligned<S: Read + Write + Seek>(
    disk: &mut BlockCache<S>,
    layout: &Layout,
    label: Option<[u8; 11]>,
    volume_id: Option<u32>,
) -> Result<raw::Volume, Error> {
    let mut format_with = |root_entries: u64| -> Result<raw::Volume, Error> {
        format(disk, layout, root_entries, label, volume_id)?;
        disk.seek(SeekFrom::Start(0)).map_err(image_error)?;
        raw::Volume::read(disk, layout.fat_type).map_err(image_error)
    };
    let mut good = (layout.root_entries, format_with(layout.root_entries)?);
    check_formatted(&good.1, layout)?;
    if layout.fat_type == FatType::Fat32 || layout.cluster_size < CONTENT_ALIGN {
        return Ok(good.1);
    }
    let mut current = good.0;
    // The FATs may grow by a sector as the data region shrinks: a few rounds at most.
    for _ in 0..4 {
        let off = good.1.data_offset() % CONTENT_ALIGN;
        if off == 0 {
            break;
        }
        let entries = good.0 + (CONTENT_ALIGN - off) / 32;
        if entries > u64::from(u16::MAX) {
            break;
        }
        current = entries;
        let volume = format_with(entries)?;
        if check_formatted(&volume, layout).is_err() {
            break;
        }
        good = (entries, volume);
    }
    if current != good.0 {
        // The last attempt did not keep the planned type or cluster count.
        good.1 = format_with(good.0)?;
    }
    Ok(good.1)
}

/// Formats the volume with fatfs; `volume_id` `None` leaves 0 for the content hash set later.
fn format<S: Read + Write + Seek>(
    disk: &mut BlockCache<S>,
    layout: &Layout,
    root_entries: u64,
    label: Option<[u8; 11]>,
    volume_id: Option<u32>,
) -> Result<(), Error> {
    // The plan keeps sectors within u32, root entries within u16 and clusters at 32 KiB.
    let mut options = fatfs::FormatVolumeOptions::new()
        .total_sectors(layout.sectors as u32)
        .bytes_per_cluster(layout.cluster_size as u32)
        .fat_type(layout.fat_type.into())
        .volume_id(volume_id.unwrap_or(0));
    if root_entries > 0 {
        options = options.max_root_dir_entries(root_entries as u16);
    }
    if let Some(label) = label {
        options = options.volume_label(label);
    }
    disk.seek(SeekFrom::Start(0)).map_err(image_error)?;
    fatfs::format_volume(&mut *disk, options).map_err(image_error)
}

fn image_error(e: io::Error) -> Error {
    Error::plugin_source("fat", "could not write the FAT volume", e)
}

/// Checks a volume label and encodes it as the 11 space-padded bytes FAT stores.
fn parse_label(label: &str) -> Result<[u8; 11], Error> {
    const PUNCTUATION: &str = "!#$%&'()-@^_`{}~ ";
    let bad = |why: String| {
        Error::plugin(
            "fat",
            format!(
                "volume label `{label}` {why}; set `image.label` to 1 to 11 ASCII letters, \
                 digits, spaces (not first) or any of !#$%&'()-@^_`{{}}~"
            ),
        )
    };
    if let Some(c) = label
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !PUNCTUATION.contains(*c))
    {
        return Err(bad(format!("contains `{c}`")));
    }
    if label.is_empty() {
        return Err(bad("is empty".into()));
    }
    if label.len() > 11 {
        return Err(bad(format!("is {} characters long", label.len())));
    }
    if label.starts_with(' ') {
        return Err(bad("starts with a space".into()));
    }
    let mut encoded = [b' '; 11];
    for (slot, byte) in encoded.iter_mut().zip(label.bytes()) {
        *slot = byte.to_ascii_uppercase();
    }
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{checker, pattern};
    use image_runner_core::Source;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    /// Runs a checker: whether it succeeded, its output, and everything it printed.
    fn run(program: &str, args: &[&str]) -> (bool, Vec<u8>, String) {
        let checked = checker(program, args);
        (checked.ok, checked.stdout, checked.text)
    }

    fn arg(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    /// `fsck.fat -n` must pass and print nothing but its banner and the summary line.
    fn assert_fsck_clean(image: &Path) {
        let (ok, _, text) = run("fsck.fat", &["-n", arg(image)]);
        let complaints: Vec<&str> = text
            .lines()
            .filter(|line| {
                let banner = line.starts_with("fsck.fat ");
                let summary = line.contains(" files, ") && line.ends_with(" clusters");
                !(banner || summary)
            })
            .collect();
        assert!(
            ok && complaints.is_empty(),
            "fsck.fat -n complains:\n{text}"
        );
    }

    /// The FAT type and cluster size as fsck.fat reads them from the image.
    fn fsck_geometry(image: &Path) -> (FatType, u32) {
        let (_, _, text) = run("fsck.fat", &["-n", "-v", arg(image)]);
        let fat_type = if text.contains("12 bit entries") {
            FatType::Fat12
        } else if text.contains("16 bit entries") {
            FatType::Fat16
        } else if text.contains("32 bit entries") {
            FatType::Fat32
        } else {
            panic!("no FAT type in fsck.fat -v output:\n{text}")
        };
        let cluster = text
            .lines()
            .find_map(|line| line.trim().strip_suffix(" bytes per cluster"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no cluster size in:\n{text}"));
        (fat_type, cluster)
    }

    fn mtype(image: &Path, path: &str) -> Vec<u8> {
        let (ok, stdout, text) = run("mtype", &["-i", arg(image), &format!("::/{path}")]);
        assert!(ok, "mtype ::/{path}: {text}");
        stdout
    }

    /// Every file path mtools lists, recursively, with long names.
    fn mdir_files(image: &Path) -> BTreeSet<String> {
        let (ok, stdout, text) = run("mdir", &["-/", "-b", "-a", "-i", arg(image), "::/"]);
        // What mdir says for a volume without any entry.
        if !ok && text.trim() == "mdir: File \"::/\" not found" {
            return BTreeSet::new();
        }
        assert!(ok, "mdir: {text}");
        String::from_utf8(stdout)
            .unwrap()
            .lines()
            .filter_map(|line| line.strip_prefix("::/"))
            .filter(|path| !path.ends_with('/') && !path.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn add(staging: &mut Staging, path: &str, bytes: Vec<u8>) {
        staging.add_file(path, Source::Bytes(bytes)).unwrap();
    }

    /// Nested directories (5 levels), long names, spaces, non-ASCII, a directory spanning many
    /// clusters, empty and cluster-sized files, and a `~` name equal to a generated alias.
    fn sample() -> Staging {
        let mut s = Staging::new();
        add(&mut s, "EFI/BOOT/BOOTX64.EFI", pattern(3000, 1));
        add(&mut s, "boot/kernel.elf", pattern(100_000, 2));
        add(&mut s, "boot/limine/limine.conf", b"timeout: 0\n".to_vec());
        add(
            &mut s,
            "deep/level two/Level Three With A Long Name/and four/file name with spaces.txt",
            pattern(5000, 3),
        );
        add(&mut s, "deep/level two/short.txt", pattern(10, 4));
        for i in 0..150u32 {
            add(
                &mut s,
                &format!("many/file-{i:03}-with-a-rather-long-name.bin"),
                pattern(i as usize * 37, i + 10),
            );
        }
        add(&mut s, "README", b"read me\n".to_vec());
        add(&mut s, "readme-lower.md", b"lower\n".to_vec());
        add(&mut s, "Grüße und Küsse.txt", pattern(77, 5));
        add(&mut s, "a.b.c.d.txt", pattern(20, 6));
        add(&mut s, ".hidden", pattern(21, 7));
        add(&mut s, "empty", Vec::new());
        add(&mut s, "exactly-4096", pattern(4096, 8));
        add(&mut s, "Long File Name.txt", pattern(30, 9));
        add(&mut s, "LONGFI~1.TXT", pattern(31, 10));
        // Sorts before the 8.3 name its alias would equal.
        add(&mut s, "B b~c.txt", pattern(32, 11));
        add(&mut s, "BB~C~1.TXT", pattern(33, 12));
        s
    }

    fn staged_bytes(staging: &Staging) -> Vec<(String, Vec<u8>)> {
        staging
            .entries
            .iter()
            .map(|(path, source)| (path.as_str().to_owned(), source.read().unwrap()))
            .collect()
    }

    /// fsck.fat is clean, mtools sees exactly the staged files with their content, and the type
    /// is the one reported.
    fn check_image(image: &Path, staging: &Staging, info: &FatInfo) {
        assert_fsck_clean(image);
        assert_eq!(fsck_geometry(image), (info.fat_type, info.cluster_size));
        assert_eq!(std::fs::metadata(image).unwrap().len(), info.size);
        let expected: BTreeSet<String> = staging
            .entries
            .keys()
            .map(|p| p.as_str().to_owned())
            .collect();
        let listed = mdir_files(image);
        let missing: Vec<_> = expected.difference(&listed).collect();
        let unexpected: Vec<_> = listed.difference(&expected).collect();
        assert!(
            missing.is_empty() && unexpected.is_empty(),
            "mdir lists {unexpected:?} it should not, misses {missing:?}"
        );
        for (path, bytes) in staged_bytes(staging) {
            assert!(mtype(image, &path) == bytes, "content of /{path} differs");
        }
    }

    fn options(fat_type: Option<FatType>, size: Option<u64>) -> FatOptions {
        FatOptions {
            fat_type,
            size,
            ..FatOptions::default()
        }
    }

    fn image_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
        dir.path().join(name)
    }

    #[test]
    fn every_fat_type_passes_fsck_and_reads_back_with_mtools() {
        let dir = tempfile::tempdir().unwrap();
        let staging = sample();
        for fat_type in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
            let image = image_in(&dir, &format!("{fat_type}.img"));
            let info = write_fat_file(&image, &staging, &options(Some(fat_type), None)).unwrap();
            assert_eq!(info.fat_type, fat_type);
            check_image(&image, &staging, &info);
        }
    }

    #[test]
    fn directories_start_with_dot_entries_pointing_at_the_right_clusters() {
        // fsck.fat checks this too; here the raw bytes are looked at directly, for FAT32 where
        // fatfs gets `..` of first-level directories wrong.
        let dir = tempfile::tempdir().unwrap();
        let image = image_in(&dir, "fat32.img");
        let mut staging = Staging::new();
        add(&mut staging, "top/middle/file", vec![1]);
        write_fat_file(&image, &staging, &options(Some(FatType::Fat32), None)).unwrap();
        let mut disk = std::fs::File::open(&image).unwrap();
        let bytes = {
            let mut v = Vec::new();
            disk.read_to_end(&mut v).unwrap();
            v
        };
        let boot = &bytes[..512];
        let sector = u64::from(u16::from_le_bytes([boot[11], boot[12]]));
        let cluster = sector * u64::from(boot[13]);
        let reserved = u64::from(u16::from_le_bytes([boot[14], boot[15]]));
        let fat = u64::from(u32::from_le_bytes([boot[36], boot[37], boot[38], boot[39]]));
        let data = (reserved + 2 * fat) * sector;
        let entries_at = |cluster_no: u64| {
            let at = (data + (cluster_no - 2) * cluster) as usize;
            bytes[at..at + cluster as usize].to_vec()
        };
        let cluster_of = |e: &[u8]| {
            u64::from(u16::from_le_bytes([e[20], e[21]])) << 16
                | u64::from(u16::from_le_bytes([e[26], e[27]]))
        };
        let find = |dir: &[u8], name: &[u8; 11]| {
            dir.chunks(32)
                .find(|e| &e[..11] == name)
                .map(|e| e.to_vec())
                .unwrap()
        };
        let root = entries_at(2);
        let top = cluster_of(&find(&root, b"TOP        "));
        let top_dir = entries_at(top);
        assert_eq!(&top_dir[..11], b".          ");
        assert_eq!(cluster_of(&top_dir[..32]), top);
        assert_eq!(&top_dir[32..43], b"..         ");
        assert_eq!(cluster_of(&top_dir[32..64]), 0);
        let middle = cluster_of(&find(&top_dir, b"MIDDLE     "));
        let middle_dir = entries_at(middle);
        assert_eq!(cluster_of(&middle_dir[..32]), middle);
        assert_eq!(cluster_of(&middle_dir[32..64]), top);
    }

    #[test]
    fn the_asked_type_is_produced_even_where_fatfs_would_pick_another() {
        let dir = tempfile::tempdir().unwrap();
        let mut staging = Staging::new();
        add(&mut staging, "EFI/BOOT/BOOTX64.EFI", pattern(10_000, 1));
        // fatfs alone makes FAT12 from a 4 MiB FAT16 request and FAT16 from small FAT32 ones.
        let cases = [
            (FatType::Fat16, Some(4 << 20)),
            (FatType::Fat16, None),
            (FatType::Fat32, Some(40 << 20)),
            (FatType::Fat32, None),
            (FatType::Fat12, Some(16 << 20)),
        ];
        for (fat_type, size) in cases {
            let image = image_in(&dir, "typed.img");
            let info = write_fat_file(&image, &staging, &options(Some(fat_type), size)).unwrap();
            assert_eq!(info.fat_type, fat_type, "{size:?}");
            if let Some(size) = size {
                assert_eq!(info.size, size);
            }
            check_image(&image, &staging, &info);
        }
    }

    #[test]
    fn large_clusters_on_large_volumes_pass_fsck() {
        let dir = tempfile::tempdir().unwrap();
        let staging = sample();
        let mib = 1u64 << 20;
        for (fat_type, size, cluster) in [
            (FatType::Fat12, 100 * mib, 32_768),
            (FatType::Fat16, 1000 * mib, 16_384),
            (FatType::Fat32, 600 * mib, 1024),
        ] {
            let image = image_in(&dir, "large.img");
            let info =
                write_fat_file(&image, &staging, &options(Some(fat_type), Some(size))).unwrap();
            assert_eq!((info.fat_type, info.cluster_size), (fat_type, cluster));
            check_image(&image, &staging, &info);
        }
    }

    #[test]
    fn automatic_type_and_size_follow_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut tiny = Staging::new();
        add(&mut tiny, "EFI/BOOT/BOOTX64.EFI", pattern(40_000, 1));
        let image = image_in(&dir, "auto.img");
        let info = write_fat_file(&image, &tiny, &FatOptions::default()).unwrap();
        assert_eq!((info.fat_type, info.size), (FatType::Fat12, 1 << 20));
        assert_eq!(required_size(&tiny, None).unwrap(), info.size);
        check_image(&image, &tiny, &info);

        // A sparse 20 MiB file: too much for FAT12 with sensible clusters.
        let big = dir.path().join("big.bin");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(20 << 20)
            .unwrap();
        let mut medium = Staging::new();
        medium
            .add_file("boot/kernel", Source::File(big.clone()))
            .unwrap();
        let info = write_fat_file(&image, &medium, &FatOptions::default()).unwrap();
        assert_eq!(info.fat_type, FatType::Fat16);
        assert_eq!(info.size % (1 << 20), 0);
        assert!(info.size >= 20 << 20 && info.size <= 22 << 20, "{info:?}");
        assert_fsck_clean(&image);

        // Only sized, not written: 300 MiB goes to FAT32.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(300 << 20)
            .unwrap();
        let layout = layout::plan(&tree::build(&medium).unwrap().content(), None, None).unwrap();
        assert_eq!(layout.fat_type, FatType::Fat32);
        assert_eq!(required_size(&medium, None).unwrap(), layout.bytes());
    }

    #[test]
    fn a_size_too_small_says_what_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let image = image_in(&dir, "small.img");
        let mut staging = Staging::new();
        add(&mut staging, "kernel", pattern(3 << 20, 1));
        let err = write_fat_file(&image, &staging, &options(None, Some(2 << 20)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at least") && err.contains("MiB") && err.contains("`image.size`"),
            "{err}"
        );
        assert!(!image.exists(), "a failed image is left behind");
        let err = write_fat_file(
            &image,
            &staging,
            &options(Some(FatType::Fat32), Some(8 << 20)),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("FAT32") && err.contains("`image.size`"),
            "{err}"
        );
        let err = format_into(
            io::Cursor::new(vec![0u8; 1 << 20]),
            1 << 20,
            &staging,
            &FatOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`image.size`"), "{err}");
    }

    #[test]
    fn output_is_reproducible_and_the_volume_id_follows_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let staging = sample();
        let (a, b, c) = (
            image_in(&dir, "a.img"),
            image_in(&dir, "b.img"),
            image_in(&dir, "c.img"),
        );
        write_fat_file(&a, &staging, &FatOptions::default()).unwrap();
        write_fat_file(&b, &staging, &FatOptions::default()).unwrap();
        let (a_bytes, b_bytes) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(a_bytes == b_bytes, "two runs differ");

        let mut changed = sample();
        changed
            .replace(
                image_runner_core::ImagePath::new("README").unwrap(),
                Source::Bytes(b"read me!\n".to_vec()),
            )
            .unwrap();
        write_fat_file(&c, &changed, &FatOptions::default()).unwrap();
        let volume_id = |bytes: &[u8]| bytes[0x27..0x2B].to_vec();
        let c_bytes = std::fs::read(&c).unwrap();
        assert_ne!(volume_id(&a_bytes), volume_id(&c_bytes));

        let fixed = FatOptions {
            volume_id: Some(0x1234_ABCD),
            ..FatOptions::default()
        };
        write_fat_file(&c, &staging, &fixed).unwrap();
        assert_eq!(
            volume_id(&std::fs::read(&c).unwrap()),
            0x1234_ABCDu32.to_le_bytes()
        );

        // Every entry carries the fixed instant (SOURCE_DATE_EPOCH, else 1980-01-01).
        let now = fatfs::TimeProvider::get_current_date(clock::from_env().unwrap());
        let date = format!("{:04}-{:02}-{:02}", now.year, now.month, now.day);
        let (ok, stdout, text) = run("mdir", &["-/", "-a", "-i", arg(&a), "::/"]);
        assert!(ok, "{text}");
        let listing = String::from_utf8_lossy(&stdout);
        let is_date = |token: &&str| {
            token.len() == 10
                && token.char_indices().all(|(i, c)| match i {
                    4 | 7 => c == '-',
                    _ => c.is_ascii_digit(),
                })
        };
        let dates: Vec<&str> = listing
            .lines()
            .filter_map(|line| line.split_whitespace().find(is_date))
            .collect();
        assert!(dates.len() > staging.entries.len(), "{listing}");
        assert!(
            dates.iter().all(|d| *d == date),
            "not all dated {date}:\n{listing}"
        );
    }

    #[test]
    fn names_fat_cannot_hold_are_refused_with_the_path() {
        let long = "x".repeat(256);
        let bad = [
            "boot/a\"b",
            "boot/a*b",
            "a:b",
            "dir/a<b/file",
            "a>b",
            "a?b",
            "a\\b",
            "a|b",
            "tab\there",
            "trailing.",
            "trailing ",
            "dir./file",
            long.as_str(),
            "emoji 🦀",
        ];
        for name in bad {
            let mut staging = Staging::new();
            add(&mut staging, name, vec![1]);
            let err = required_size(&staging, None).unwrap_err().to_string();
            let shown = image_runner_core::ImagePath::new(name).unwrap().to_string();
            assert!(err.contains(&shown), "{name:?}: {err}");
        }
        // Exactly 255 UTF-16 units is fine.
        let mut staging = Staging::new();
        add(&mut staging, &"é".repeat(120), vec![1]);
        required_size(&staging, None).unwrap();
    }

    #[test]
    fn names_equal_but_for_case_are_refused_naming_both() {
        let mut staging = Staging::new();
        add(&mut staging, "EFI/BOOT/BOOTX64.EFI", vec![1]);
        add(&mut staging, "efi/boot/grub.cfg", vec![2]);
        let err = required_size(&staging, None).unwrap_err().to_string();
        assert!(err.contains("`/EFI`") && err.contains("`/efi`"), "{err}");

        let mut staging = Staging::new();
        add(&mut staging, "boot/Kernel.ELF", vec![1]);
        add(&mut staging, "boot/kernel.elf", vec![2]);
        let err = required_size(&staging, None).unwrap_err().to_string();
        assert!(
            err.contains("/boot/Kernel.ELF") && err.contains("/boot/kernel.elf"),
            "{err}"
        );
    }

    #[test]
    fn labels_are_checked_and_stored_uppercase() {
        let dir = tempfile::tempdir().unwrap();
        let image = image_in(&dir, "label.img");
        let mut staging = Staging::new();
        add(&mut staging, "file", vec![1]);
        let labelled = FatOptions {
            label: Some("boot disk".into()),
            ..FatOptions::default()
        };
        for fat_type in [FatType::Fat12, FatType::Fat32] {
            let opts = FatOptions {
                fat_type: Some(fat_type),
                ..labelled.clone()
            };
            write_fat_file(&image, &staging, &opts).unwrap();
            assert_fsck_clean(&image);
            let (ok, _, text) = run("mlabel", &["-s", "-i", arg(&image), "::"]);
            assert!(ok && text.contains("BOOT DISK"), "{text}");
        }
        for bad in ["", "TWELVE CHARS", "a.b", " lead", "ümlaut"] {
            let opts = FatOptions {
                label: Some(bad.into()),
                ..FatOptions::default()
            };
            let err = write_fat_file(&image, &staging, &opts)
                .unwrap_err()
                .to_string();
            assert!(err.contains("volume label"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn large_root_directories_fit_every_type() {
        let dir = tempfile::tempdir().unwrap();
        let mut staging = Staging::new();
        for i in 0..400 {
            add(
                &mut staging,
                &format!("root file number {i:04}.txt"),
                pattern(5, i),
            );
        }
        for fat_type in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
            let image = image_in(&dir, "root.img");
            let info = write_fat_file(&image, &staging, &options(Some(fat_type), None)).unwrap();
            check_image(&image, &staging, &info);
        }
    }

    #[test]
    fn empty_staging_gives_an_empty_volume() {
        let dir = tempfile::tempdir().unwrap();
        let image = image_in(&dir, "empty.img");
        let info = write_fat_file(&image, &Staging::new(), &FatOptions::default()).unwrap();
        assert_eq!((info.fat_type, info.size), (FatType::Fat12, 1 << 20));
        check_image(&image, &Staging::new(), &info);
    }

    #[test]
    fn any_seekable_storage_can_be_formatted() {
        let staging = sample();
        let size = required_size(&staging, Some(FatType::Fat16)).unwrap();
        let mut storage = io::Cursor::new(vec![0u8; size as usize]);
        let info = format_into(
            &mut storage,
            size,
            &staging,
            &options(Some(FatType::Fat16), None),
        )
        .unwrap();
        assert_eq!((info.fat_type, info.size), (FatType::Fat16, size));
        let dir = tempfile::tempdir().unwrap();
        let image = image_in(&dir, "cursor.img");
        std::fs::write(&image, storage.into_inner()).unwrap();
        check_image(&image, &staging, &info);
    }

    #[test]
    fn files_and_other_storage_get_the_same_image() {
        // write_fat_file copies contents beside fatfs in a second thread; format_into copies
        // them afterwards through the storage. Both must give the same bytes.
        let mut staging = sample();
        add(&mut staging, "boot/initrd", pattern(3 << 20, 77));
        let dir = tempfile::tempdir().unwrap();
        for fat_type in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
            let size = required_size(&staging, Some(fat_type)).unwrap();
            let opts = options(Some(fat_type), Some(size));
            let image = image_in(&dir, "file.img");
            let info = write_fat_file(&image, &staging, &opts).unwrap();
            let mut storage = io::Cursor::new(vec![0u8; size as usize]);
            format_into(&mut storage, size, &staging, &opts).unwrap();
            assert!(
                std::fs::read(&image).unwrap() == storage.into_inner(),
                "{fat_type}: the two images differ"
            );
            check_image(&image, &staging, &info);
        }
    }

    /// Storage that keeps only the 4 KiB blocks written to, for formatting large volumes in tests.
    #[derive(Default)]
    struct SparseDisk {
        blocks: std::collections::HashMap<u64, Vec<u8>>,
        pos: u64,
    }

    impl Read for SparseDisk {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let (block, offset) = (self.pos / 4096, (self.pos % 4096) as usize);
            let n = buf.len().min(4096 - offset);
            match self.blocks.get(&block) {
                Some(data) => buf[..n].copy_from_slice(&data[offset..offset + n]),
                None => buf[..n].fill(0),
            }
            self.pos += n as u64;
            Ok(n)
        }
    }

    impl Write for SparseDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (block, offset) = (self.pos / 4096, (self.pos % 4096) as usize);
            let n = buf.len().min(4096 - offset);
            let data = self.blocks.entry(block).or_insert_with(|| vec![0; 4096]);
            data[offset..offset + n].copy_from_slice(&buf[..n]);
            self.pos += n as u64;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for SparseDisk {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            match pos {
                SeekFrom::Start(n) => self.pos = n,
                _ => unimplemented!("only absolute seeks happen through the cache"),
            }
            Ok(self.pos)
        }
    }

    #[test]
    fn planned_cluster_counts_match_what_fatfs_formats() {
        // The plan's margins assume fatfs ends up within a few clusters of its own estimate.
        let content = tree::build(&sample()).unwrap().content();
        let mib = 1u64 << 20;
        for (fat_type, size) in [
            (FatType::Fat12, mib),
            (FatType::Fat12, 16 * mib),
            (FatType::Fat12, 100 * mib),
            (FatType::Fat16, 3 * mib),
            (FatType::Fat16, 64 * mib),
            (FatType::Fat16, 1000 * mib),
            (FatType::Fat32, 33 * mib),
            (FatType::Fat32, 700 * mib),
            (FatType::Fat32, 20_000 * mib),
        ] {
            let planned = layout::plan(&content, Some(fat_type), Some(size)).unwrap();
            let mut disk = BlockCache::new(SparseDisk::default(), planned.bytes());
            format(&mut disk, &planned, planned.root_entries, None, None).unwrap();
            disk.seek(SeekFrom::Start(0)).unwrap();
            let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).unwrap();
            let made = u64::from(fs.stats().unwrap().total_clusters());
            assert_eq!(FatType::from(fs.fat_type()), fat_type, "{planned:?}");
            assert!(
                made <= planned.clusters && made + 8 >= planned.clusters,
                "fatfs made {made} clusters for {planned:?}"
            );
        }
    }

    #[test]
    fn clusters_of_4_kib_or_more_start_on_4_kib_boundaries() {
        // Reflinks (btrfs, XFS) need file contents block-aligned in the image file.
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.bin");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(40 << 20)
            .unwrap();
        let mut staging = sample();
        staging
            .add_file("boot/big.bin", Source::File(big.clone()))
            .unwrap();
        for (fat_type, size) in [
            (FatType::Fat12, 44 << 20),
            (FatType::Fat16, 200 << 20),
            (FatType::Fat16, 300 << 20),
        ] {
            let image = image_in(&dir, "aligned.img");
            let info =
                write_fat_file(&image, &staging, &options(Some(fat_type), Some(size))).unwrap();
            assert!(
                info.fat_type == fat_type && info.cluster_size >= 4096,
                "{info:?}"
            );
            let mut file = std::fs::File::open(&image).unwrap();
            let volume = raw::Volume::read(&mut file, fat_type).unwrap();
            assert_eq!(
                volume.data_offset() % 4096,
                0,
                "{fat_type} {size}: {volume:?}"
            );
            check_image(&image, &staging, &info);
        }
    }

    #[test]
    fn a_64_mib_kernel_streams_in_whole() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("kernel.elf");
        let content = pattern(64 << 20, 42);
        std::fs::write(&kernel, &content).unwrap();
        let mut staging = Staging::new();
        staging
            .add_file("boot/kernel.elf", Source::File(kernel))
            .unwrap();
        add(&mut staging, "boot/limine.conf", b"timeout: 0\n".to_vec());
        for fat_type in [None, Some(FatType::Fat32)] {
            let image = image_in(&dir, "kernel.img");
            write_fat_file(&image, &staging, &options(fat_type, None)).unwrap();
            assert_fsck_clean(&image);
            assert!(mtype(&image, "boot/kernel.elf") == content);
        }
    }
}
