//! The `iso` format: an ISO 9660 image with Rock Ridge and Joliet names, an El Torito catalogue
//! for BIOS and UEFI, and an MBR + GPT system area so the same file boots as a CD and as a disk.
//!
//! Written here rather than with a crate because the system area must be exactly what BIOS
//! bootloader installers accept: Limine's `bios-install` refuses an MBR partition starting at
//! LBA 0 (what hadris-iso writes) and hides its stage 2 in the tails of the GPT entry arrays, so
//! the arrays keep the standard 128 entries and MBR bytes 0–439 stay free for boot code.

mod eltorito;
mod esp;
mod hybrid;
mod joliet;
mod rock_ridge;
mod tree;
mod volume;

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use image_runner_core::{
    BootKind, BuildRequest, Error, Image, ImageFormat, ImageKind, ImagePath, Source, Staging,
};
use image_runner_disk_layout::gpt;

use crate::copy::{Copier, CopyError, Digested, PARALLEL_DIGEST_MIN};
use crate::digest::{Digests, IdSeed, Streaming};
use tree::{Addresses, Tree};
use volume::{BLOCK, FIRST_DESCRIPTOR};

/// The `iso` format: `<output>/image.iso`, with the boot entries `ctx.boot` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct IsoFormat;

impl ImageFormat for IsoFormat {
    fn name(&self) -> &str {
        "iso"
    }

    fn kind(&self) -> ImageKind {
        ImageKind::Iso
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error> {
        let ctx = request.ctx;
        let options = IsoOptions {
            volume_id: ctx.config.image.label.clone(),
            boot: Some(ctx.decisions.boot),
            size: ctx.config.image.size,
            ..IsoOptions::default()
        };
        let path = ctx.output_dir.join("image.iso");
        crate::reuse::build_or_reuse(request, "iso", ImageKind::Iso, &path, |temp, digests| {
            let options = IsoOptions {
                digests: Arc::clone(digests),
                ..options
            };
            write_iso(temp, request.staging, &options).map(|_| ())
        })
    }
}

/// How to build an ISO image.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IsoOptions {
    /// Volume id: 1 to 32 of `A`–`Z`, `0`–`9`, `_` (lowercase letters are stored uppercase);
    /// `None`: `KERNEL`. Joliet readers see it as given, up to 16 characters.
    pub volume_id: Option<String>,
    /// Which El Torito entries to write: `Bios` a BIOS entry (the staging list must name a
    /// BIOS boot image), `Uefi` a UEFI entry (a staged ESP image, else one built from the
    /// staged `EFI/` tree), `Hybrid` both. `None`: whatever the staging list provides.
    pub boot: Option<BootKind>,
    /// Image size in bytes, a multiple of 2048; `None`: as small as the content allows.
    pub size: Option<u64>,
    /// Write a protective MBR and a GPT into the system area (and a backup GPT at the end), so
    /// the image also boots as a disk. Default: on.
    pub hybrid: bool,
    /// Content digests known before the build (see [`Digests`]); the writer adds those it
    /// computes. Files whose digest is known are copied kernel-side, without being read.
    pub digests: Arc<Digests>,
}

impl Default for IsoOptions {
    fn default() -> Self {
        IsoOptions {
            volume_id: None,
            boot: None,
            size: None,
            hybrid: true,
            digests: Arc::default(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IsoInfo {
    /// Image size in bytes (a multiple of 2048).
    pub size: u64,
    /// The volume id as recorded.
    pub volume_id: String,
    /// The El Torito BIOS entry, if written.
    pub bios_boot: Option<BootEntry>,
    /// The El Torito UEFI entry, if written.
    pub uefi_boot: Option<BootEntry>,
    /// Whether the system area holds an MBR and a GPT.
    pub hybrid: bool,
}

/// One El Torito entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BootEntry {
    /// The staged file booted, or `None` for the ESP image built from `EFI/` (which has no
    /// directory entry).
    pub path: Option<ImagePath>,
    /// First 2048-byte block of the image.
    pub lba: u32,
    /// Image length in bytes.
    pub len: u64,
    /// Sector count in the catalogue: 512-byte sectors the firmware loads.
    pub load_sectors: u16,
}

/// Writes the ISO image for `staging` to `out` (created or truncated).
///
/// Reproducible: entries sorted, every date `SOURCE_DATE_EPOCH` (else 1980-01-01), the disk
/// GUIDs and MBR signature derived from the content. On failure the file is removed.
pub fn write_iso(out: &Path, staging: &Staging, opts: &IsoOptions) -> Result<IsoInfo, Error> {
    let volume_id = volume::volume_id(opts.volume_id.as_deref())?;
    let time = volume::Instant::from_env()?;
    let tree = Tree::build(staging)?;
    let boot = BootPlan::new(staging, &tree, opts)?;
    let layout = Layout::plan(&tree, &boot, opts, time)?;
    // Sized first: what is never written (system area gaps, padding) reads as zeros.
    let total = u64::from(layout.blocks) * BLOCK as u64;
    let result = crate::copy::create_zeroed(out, total).and_then(|file| {
        let writer = Writer {
            file: &file,
            out,
            tree: &tree,
            boot: &boot,
            layout: &layout,
            volume_id: &volume_id,
            opts,
            time,
        };
        writer.write()
    });
    match result {
        Ok(()) => Ok(layout.info(&tree, &boot, volume_id, opts.hybrid)),
        Err(e) => {
            // Best effort: the error being returned matters more than one about the cleanup.
            let _ = std::fs::remove_file(out);
            Err(e)
        }
    }
}

/// Which boot images go into the catalogue.
#[derive(Debug)]
struct BootPlan {
    /// The BIOS boot image's node, and whether it wants a boot info table.
    bios: Option<(usize, bool)>,
    uefi: Option<Uefi>,
}

#[derive(Debug)]
enum Uefi {
    /// A staged FAT image (the bootloader's), used as it is.
    Staged(usize),
    /// An ESP built from the staged `EFI/` tree, of this size.
    Built(Staging, u64),
}

impl BootPlan {
    fn new(staging: &Staging, tree: &Tree<'_>, opts: &IsoOptions) -> Result<Self, Error> {
        let hints = &staging.hints;
        let (want_bios, want_uefi) = match opts.boot {
            None => (hints.bios_cd_image.is_some(), true),
            Some(BootKind::Bios) => (true, false),
            Some(BootKind::Uefi) => (false, true),
            Some(_) => (true, true),
        };
        let required = opts.boot.is_some();
        let staged = |path: &ImagePath, what: &str| {
            let bug = |why: &str| {
                Error::plugin(
                    "iso",
                    format!(
                        "the {what} `{path}` the bootloader named {why}; this is a bug in the \
                         bootloader plugin"
                    ),
                )
            };
            let node = tree
                .find(path)
                .ok_or_else(|| bug("is not among the staged files"))?;
            match tree.file(node) {
                Some(file) if file.len == 0 => Err(bug("is empty")),
                _ => Ok(node),
            }
        };
        let bios = match &hints.bios_cd_image {
            Some(path) if want_bios => {
                let node = staged(path, "BIOS boot image")?;
                if hints.bios_cd_boot_info_table {
                    let len = tree.file(node).map_or(0, |f| f.len);
                    if len < eltorito::TABLE_END {
                        return Err(Error::plugin(
                            "iso",
                            format!(
                                "the BIOS boot image `{path}` is {len} bytes, too short for the \
                                 boot info table it asks for (bytes 8 to 63)"
                            ),
                        ));
                    }
                }
                Some((node, hints.bios_cd_boot_info_table))
            }
            None if want_bios && required => {
                return Err(Error::plugin(
                    "iso",
                    "a BIOS-bootable ISO needs a BIOS boot image from the bootloader, and the \
                     bootloader gave none; use a bootloader that provides one (limine, grub) or \
                     set `boot = \"uefi\"`",
                ));
            }
            _ => None,
        };
        let uefi = match &hints.uefi_cd_image {
            _ if !want_uefi => None,
            Some(path) if hints.bios_cd_image.as_ref() == Some(path) => {
                return Err(Error::plugin(
                    "iso",
                    format!(
                        "the bootloader named `{path}` as both the BIOS and the UEFI boot image; \
                         this is a bug in the bootloader plugin"
                    ),
                ));
            }
            Some(path) => Some(Uefi::Staged(staged(path, "UEFI boot image")?)),
            None => match esp::staging(staging)? {
                Some(esp) => {
                    let size = esp::size(&esp)?;
                    Some(Uefi::Built(esp, size))
                }
                None if required => {
                    return Err(Error::plugin(
                        "iso",
                        "a UEFI-bootable ISO needs an ESP: an image from the bootloader or staged \
                         files under `EFI/` (such as `EFI/BOOT/BOOTX64.EFI`), and there are \
                         none; stage the UEFI loader there or set `boot = \"bios\"`",
                    ));
                }
                None => None,
            },
        };
        Ok(BootPlan { bios, uefi })
    }

    fn el_torito(&self) -> bool {
        self.bios.is_some() || self.uefi.is_some()
    }

    fn staged_uefi(&self) -> Option<usize> {
        match self.uefi {
            Some(Uefi::Staged(node)) => Some(node),
            _ => None,
        }
    }
}

/// Files at least this long start on a 4 KiB boundary of the image (two blocks).
const ALIGNED_FILE_MIN: u64 = 1 << 20;

/// The smallest hybrid image, in blocks: 1 MiB.
const MIN_HYBRID_BLOCKS: u64 = (1 << 20) / BLOCK as u64;

/// Where everything goes, in 2048-byte blocks.
#[derive(Debug)]
struct Layout {
    boot_record: Option<u32>,
    joliet_descriptor: u32,
    terminator: u32,
    /// Path tables: ISO 9660 little- and big-endian, then Joliet's.
    path_tables: [u32; 4],
    path_table_lens: [u32; 2],
    catalog: Option<u32>,
    continuations: tree::Continuations,
    continuation_base: u32,
    /// Per node, extent and length in the ISO 9660 and the Joliet tree.
    iso: Vec<(u32, u32)>,
    joliet: Vec<(u32, u32)>,
    /// File nodes in the order their data is written.
    data_order: Vec<usize>,
    /// The ESP (built or staged): first block and length in bytes.
    esp: Option<(u32, u64)>,
    data_end: u32,
    blocks: u32,
    date: [u8; 7],
}

impl Layout {
    fn plan(
        tree: &Tree<'_>,
        boot: &BootPlan,
        opts: &IsoOptions,
        time: volume::Instant,
    ) -> Result<Self, Error> {
        let mut cursor = Cursor(u64::from(FIRST_DESCRIPTOR) + 1);
        let boot_record = boot.el_torito().then(|| cursor.take(1));
        let joliet_descriptor = cursor.take(1);
        let terminator = cursor.take(1);
        let iso_entries = tree.path_entries(false);
        let joliet_entries = tree.path_entries(true);
        let iso_len = volume::path_table_len(iso_entries.iter().map(|e| e.0));
        let joliet_len = volume::path_table_len(joliet_entries.iter().map(|e| e.0));
        let (iso_blocks, joliet_blocks) =
            (blocks_for(iso_len as u64), blocks_for(joliet_len as u64));
        let path_tables = [
            cursor.take(iso_blocks),
            cursor.take(iso_blocks),
            cursor.take(joliet_blocks),
            cursor.take(joliet_blocks),
        ];
        let catalog = boot.el_torito().then(|| cursor.take(1));

        let continuations = tree.plan_continuations();
        let n = tree.nodes.len();
        let mut layout = Layout {
            boot_record: boot_record.map(block),
            joliet_descriptor: block(joliet_descriptor),
            terminator: block(terminator),
            path_tables: path_tables.map(block),
            // Path tables hold at most 65535 entries of at most 136 bytes.
            path_table_lens: [iso_len as u32, joliet_len as u32],
            catalog: catalog.map(block),
            continuations,
            continuation_base: 0,
            iso: vec![(0, 0); n],
            joliet: vec![(0, 0); n],
            data_order: Vec::new(),
            esp: None,
            data_end: 0,
            blocks: 0,
            date: time.record_date(),
        };
        // Directory sizes do not depend on where anything is: measure with zero addresses.
        let (iso_sizes, joliet_sizes) = {
            let at = layout.addresses();
            let iso: Vec<u64> = (0..n)
                .map(|d| tree.iso_directory(d, &at).len() as u64)
                .collect();
            let joliet: Vec<u64> = (0..n)
                .map(|d| tree.joliet_directory(d, &at).len() as u64)
                .collect();
            (iso, joliet)
        };
        for &dir in &tree.iso_dirs {
            layout.iso[dir] = extent(cursor.take(iso_sizes[dir] / BLOCK as u64), iso_sizes[dir])?;
        }
        for &dir in &tree.joliet_dirs {
            layout.joliet[dir] = extent(
                cursor.take(joliet_sizes[dir] / BLOCK as u64),
                joliet_sizes[dir],
            )?;
        }
        layout.continuation_base = block(cursor.take(u64::from(layout.continuations.blocks)));

        // File data: the BIOS boot image first (early in the image, where every BIOS reaches
        // it), the ESP last, so that one GPT partition covers everything before it.
        let bios = boot.bios.map(|(node, _)| node);
        let staged_esp = boot.staged_uefi();
        layout.data_order.extend(bios);
        layout.data_order.extend(
            (0..n).filter(|&k| tree.file(k).is_some() && Some(k) != bios && Some(k) != staged_esp),
        );
        layout.data_order.extend(staged_esp);
        for i in 0..layout.data_order.len() {
            let node = layout.data_order[i];
            let len = tree.file(node).map_or(0, |f| f.len);
            // 4 KiB alignment for the ESP partition, and for large files so that file systems
            // with shared extents (btrfs, XFS) can reflink them into the image.
            if Some(node) == staged_esp || len >= ALIGNED_FILE_MIN {
                cursor.align(2);
            }
            let at = extent(cursor.take(blocks_for(len)), len)?;
            layout.iso[node] = at;
            layout.joliet[node] = at;
        }
        layout.esp = match &boot.uefi {
            Some(Uefi::Staged(node)) => Some((layout.iso[*node].0, u64::from(layout.iso[*node].1))),
            Some(Uefi::Built(_, size)) => {
                cursor.align(2);
                Some((block_checked(cursor.take(blocks_for(*size)))?, *size))
            }
            None => None,
        };
        let next = cursor.0;
        layout.data_end = block_checked(next)?;

        let tail = if opts.hybrid {
            blocks_for(hybrid::BACKUP_SECTORS * hybrid::SECTOR)
        } else {
            0
        };
        let needed = next + tail;
        let blocks = match opts.size {
            // A hybrid image is also a disk, and SeaBIOS cannot read a disk smaller than one
            // cylinder of the geometry QEMU guesses (16 heads × 63 sectors = 504 KiB): pad
            // small hybrid images to 1 MiB so they boot from a (virtual) USB stick too.
            None if opts.hybrid => needed.max(MIN_HYBRID_BLOCKS),
            None => needed,
            Some(size) if size > MAX_BYTES => {
                return Err(Error::plugin(
                    "iso",
                    format!(
                        "`image.size = {size}` is more than an ISO 9660 volume can hold \
                         ({MAX_BYTES} bytes: 2^32 blocks of 2048 bytes); use a smaller size or \
                         remove it"
                    ),
                ));
            }
            Some(size) if size % BLOCK as u64 != 0 => {
                return Err(Error::plugin(
                    "iso",
                    format!(
                        "`image.size = {size}` is not a multiple of 2048 bytes, the ISO 9660 \
                         block size; use {} or remove it",
                        size.next_multiple_of(BLOCK as u64)
                    ),
                ));
            }
            Some(size) if size / (BLOCK as u64) < needed => {
                let bytes = needed * BLOCK as u64;
                return Err(Error::plugin(
                    "iso",
                    format!(
                        "the content needs an ISO of at least {bytes} bytes ({:.1} MiB), more \
                         than `image.size = {size}`; raise `image.size` to at least {bytes} or \
                         remove it",
                        bytes as f64 / f64::from(1 << 20)
                    ),
                ));
            }
            Some(size) => size / BLOCK as u64,
        };
        layout.blocks = block_checked(blocks)?;
        Ok(layout)
    }

    fn addresses(&self) -> Addresses<'_> {
        Addresses {
            iso: self.iso.clone(),
            joliet: self.joliet.clone(),
            continuations: &self.continuations,
            continuation_base: self.continuation_base,
            date: self.date,
        }
    }

    fn bios_entry(&self, tree: &Tree<'_>, boot: &BootPlan) -> Option<BootEntry> {
        let (node, table) = boot.bios?;
        let file = tree.file(node)?;
        Some(BootEntry {
            path: Some(file.path.clone()),
            lba: self.iso[node].0,
            len: file.len,
            load_sectors: eltorito::bios_load_sectors(file.len, table),
        })
    }

    fn uefi_entry(&self, tree: &Tree<'_>, boot: &BootPlan) -> Option<BootEntry> {
        let (lba, len) = self.esp?;
        let path = match &boot.uefi {
            Some(Uefi::Staged(node)) => tree.file(*node).map(|f| f.path.clone()),
            _ => None,
        };
        Some(BootEntry {
            path,
            lba,
            len,
            load_sectors: eltorito::uefi_load_sectors(len),
        })
    }

    fn info(&self, tree: &Tree<'_>, boot: &BootPlan, volume_id: String, hybrid: bool) -> IsoInfo {
        IsoInfo {
            size: u64::from(self.blocks) * BLOCK as u64,
            volume_id,
            bios_boot: self.bios_entry(tree, boot),
            uefi_boot: self.uefi_entry(tree, boot),
            hybrid,
        }
    }
}

/// The next free block while planning.
#[derive(Debug)]
struct Cursor(u64);

impl Cursor {
    fn take(&mut self, blocks: u64) -> u64 {
        let at = self.0;
        self.0 += blocks;
        at
    }

    fn align(&mut self, blocks: u64) {
        self.0 = self.0.next_multiple_of(blocks);
    }
}

fn blocks_for(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK as u64)
}

/// A block number known to be small (the descriptors and path tables come first).
fn block(at: u64) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// The largest ISO 9660 volume: its block numbers are 32-bit.
const MAX_BYTES: u64 = (u32::MAX as u64) * BLOCK as u64;

fn block_checked(at: u64) -> Result<u32, Error> {
    u32::try_from(at).map_err(|_| {
        Error::plugin(
            "iso",
            format!(
                "the image would be {} bytes, more than ISO 9660's 32-bit block numbers reach; \
                 stage less",
                at * BLOCK as u64
            ),
        )
    })
}

fn extent(at: u64, len: u64) -> Result<(u32, u32), Error> {
    // File lengths were checked against 4 GiB when the tree was built.
    Ok((block_checked(at)?, u32::try_from(len).unwrap_or(u32::MAX)))
}

/// Writes a planned image into its file.
struct Writer<'a> {
    file: &'a File,
    out: &'a Path,
    tree: &'a Tree<'a>,
    boot: &'a BootPlan,
    layout: &'a Layout,
    volume_id: &'a str,
    opts: &'a IsoOptions,
    time: volume::Instant,
}

impl Writer<'_> {
    fn write(&self) -> Result<(), Error> {
        let layout = self.layout;
        let mut seed = IdSeed::new();
        seed.text(self.volume_id);
        let mut out = Output::at(self.file, self.out, u64::from(FIRST_DESCRIPTOR))?;
        self.write_metadata(&mut out)?;
        let checksum = self.write_files(&mut out, &mut seed)?;
        out.finish()?;
        if let Some(Uefi::Built(esp, size)) = &self.boot.uefi
            && let Some((lba, _)) = layout.esp
        {
            let at = u64::from(lba) * BLOCK as u64;
            esp::write(self.file, at, *size, esp, &self.opts.digests)?;
        }
        if let (Some(entry), Some(checksum)) = (layout.bios_entry(self.tree, self.boot), checksum) {
            // Lengths are within 4 GiB (checked when the tree was built).
            let table =
                eltorito::boot_info_table(FIRST_DESCRIPTOR, entry.lba, entry.len as u32, checksum);
            let at = u64::from(entry.lba) * BLOCK as u64 + eltorito::TABLE_OFFSET;
            self.write_at(at, &table)?;
        }
        if self.opts.hybrid {
            let tables = self.partition_tables(seed.finish64())?;
            let mut file = self.file;
            tables
                .write_to(&mut file)
                .map_err(|e| Error::io("write", self.out, e))?;
        }
        Ok(())
    }

    /// Volume descriptors, path tables, boot catalogue, directories, continuation areas.
    fn write_metadata(&self, out: &mut Output<'_>) -> Result<(), Error> {
        let (layout, tree) = (self.layout, self.tree);
        let joliet_id = self
            .opts
            .volume_id
            .as_deref()
            .unwrap_or(volume::DEFAULT_VOLUME_ID);
        let info = volume::VolumeInfo {
            volume_id: self.volume_id,
            joliet_volume_id: joliet_id,
            blocks: layout.blocks,
            time: self.time,
        };
        let [iso_l, iso_m, joliet_l, joliet_m] = layout.path_tables;
        let iso_tree = volume::TreeInfo {
            root: layout.iso[tree::ROOT],
            path_table: (layout.path_table_lens[0], iso_l, iso_m),
        };
        let joliet_tree = volume::TreeInfo {
            root: layout.joliet[tree::ROOT],
            path_table: (layout.path_table_lens[1], joliet_l, joliet_m),
        };
        out.write(&volume::primary(&info, &iso_tree))?;
        if let (Some(at), Some(catalog)) = (layout.boot_record, layout.catalog) {
            out.expect_block(at)?;
            out.write(&volume::boot_record(catalog))?;
        }
        out.expect_block(layout.joliet_descriptor)?;
        out.write(&volume::joliet(&info, &joliet_tree))?;
        out.expect_block(layout.terminator)?;
        out.write(&volume::terminator())?;

        for (joliet, tables) in [(false, [iso_l, iso_m]), (true, [joliet_l, joliet_m])] {
            let entries = tree.path_entries(joliet);
            let extents = if joliet { &layout.joliet } else { &layout.iso };
            let entries: Vec<volume::PathEntry<'_>> = entries
                .iter()
                .map(|&(id, dir, parent)| volume::PathEntry {
                    id,
                    extent: extents[dir].0,
                    parent,
                })
                .collect();
            for (big_endian, at) in [(false, tables[0]), (true, tables[1])] {
                out.expect_block(at)?;
                out.write(&volume::path_table(&entries, big_endian))?;
                out.pad_to_block()?;
            }
        }
        if let Some(at) = layout.catalog {
            out.expect_block(at)?;
            let bios = layout.bios_entry(tree, self.boot).map(|e| eltorito::Entry {
                lba: e.lba,
                sectors: e.load_sectors,
            });
            let uefi = layout.uefi_entry(tree, self.boot).map(|e| eltorito::Entry {
                lba: e.lba,
                sectors: e.load_sectors,
            });
            out.write(&eltorito::catalog(bios, uefi))?;
        }
        let at = layout.addresses();
        for &dir in &tree.iso_dirs {
            out.expect_block(layout.iso[dir].0)?;
            out.write(&tree.iso_directory(dir, &at))?;
        }
        for &dir in &tree.joliet_dirs {
            out.expect_block(layout.joliet[dir].0)?;
            out.write(&tree.joliet_directory(dir, &at))?;
        }
        out.expect_block(layout.continuation_base)?;
        out.write(&tree.continuation_blocks(&layout.continuations))?;
        Ok(())
    }

    /// Puts every file's content in place and adds each file to `seed`; returns the BIOS boot
    /// image's boot info table checksum when it wants one. Content whose digest is known (and
    /// that needs no checksum) is copied kernel-side; the rest is read, hashed and written.
    fn write_files(&self, out: &mut Output<'_>, seed: &mut IdSeed) -> Result<Option<u32>, Error> {
        let digests = &*self.opts.digests;
        let mut buffer = Vec::new();
        let mut copier = Copier::new();
        let mut checksum = None;
        for &node in &self.layout.data_order {
            let Some(file) = self.tree.file(node) else {
                continue;
            };
            let (lba, _) = self.layout.iso[node];
            if file.len > 0 {
                out.expect_block(lba)?;
            }
            let wants_table = self.boot.bios == Some((node, true));
            let mut sum = wants_table.then(eltorito::Checksum::default);
            let changed = |read: String| {
                Error::plugin(
                    "iso",
                    format!(
                        "the content for `{}` changed while the ISO was written: it was {} \
                         bytes, then {read} bytes were read; build again",
                        file.path, file.len,
                    ),
                )
            };
            let known = digests.known(file.source);
            let digest = match (file.source, known, &sum) {
                (Source::File(path), Some(digest), None) => {
                    let input = File::open(path).map_err(|e| Error::io("open", path, e))?;
                    let copied = out.copy_from(&input, file.len, &mut copier, path)?;
                    let now = input
                        .metadata()
                        .map_err(|e| Error::io("read", path, e))?
                        .len();
                    if copied != file.len || now != file.len {
                        return Err(changed(if now > file.len {
                            "more".into()
                        } else {
                            copied.to_string()
                        }));
                    }
                    digest
                }
                // Large and not hashed yet: the kernel copies it while a second thread reads it
                // for the digest.
                (Source::File(path), None, None)
                    if file.len >= PARALLEL_DIGEST_MIN && copier.kernel_side() =>
                {
                    let input = File::open(path).map_err(|e| Error::io("open", path, e))?;
                    let done = out.copy_with_digest(&input, file.len, &mut copier, path)?;
                    let now = input
                        .metadata()
                        .map_err(|e| Error::io("read", path, e))?
                        .len();
                    match done.digest {
                        Some(digest)
                            if done.copied == file.len && now == file.len && !done.changed =>
                        {
                            digests.insert(path, digest);
                            digest
                        }
                        _ if now > file.len => return Err(changed("more".into())),
                        _ if now < file.len || done.copied < file.len => {
                            return Err(changed(done.copied.min(now).to_string()));
                        }
                        _ => {
                            return Err(Error::plugin(
                                "iso",
                                format!(
                                    "`{}` (for `{}`) was modified while the ISO was written; \
                                     build again",
                                    path.display(),
                                    file.path
                                ),
                            ));
                        }
                    }
                }
                (source, known, _) => {
                    let read_error = |e: io::Error| match source {
                        Source::File(path) => Error::io("read", path, e),
                        _ => Error::plugin_source(
                            "iso",
                            format!("could not read the content for `{}`", file.path),
                            e,
                        ),
                    };
                    if buffer.is_empty() {
                        buffer = vec![0u8; 1 << 20];
                    }
                    let mut streamed = known.is_none().then(|| Streaming::new(file.len));
                    let mut input = source.open()?;
                    let mut written = 0u64;
                    loop {
                        let n = match input.read(&mut buffer) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(read_error(e)),
                        };
                        written += n as u64;
                        if written > file.len {
                            break;
                        }
                        let bytes = &buffer[..n];
                        if let Some(streamed) = &mut streamed {
                            streamed.update(bytes);
                        }
                        if let Some(sum) = &mut sum {
                            sum.update(bytes);
                        }
                        out.write(bytes)?;
                    }
                    // The layout was planned with the length seen earlier.
                    if written != file.len {
                        return Err(changed(if written > file.len {
                            "more".into()
                        } else {
                            written.to_string()
                        }));
                    }
                    match (known, streamed, source) {
                        (Some(digest), _, _) => digest,
                        (None, Some(streamed), Source::File(path)) => {
                            let digest = streamed.finish();
                            digests.insert(path, digest);
                            digest
                        }
                        (None, Some(streamed), _) => streamed.finish(),
                        // `streamed` is only `None` when the digest was known.
                        (None, None, _) => 0,
                    }
                }
            };
            seed.file(file.path.as_str(), file.len, digest);
            out.pad_to_block()?;
            if let Some(sum) = sum {
                checksum = Some(sum.finish());
            }
        }
        Ok(checksum)
    }

    /// The MBR and GPT: one partition over the ISO 9660 data before the ESP, one on the ESP.
    fn partition_tables(&self, seed: u64) -> Result<gpt::Tables, Error> {
        let layout = self.layout;
        let per_block = BLOCK as u64 / hybrid::SECTOR;
        let sectors = u64::from(layout.blocks) * per_block;
        let data_end = match layout.esp {
            Some((lba, _)) => u64::from(lba),
            None => u64::from(layout.data_end),
        } * per_block;
        let material = |i: u64| {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&splitmix(seed ^ (2 * i)).to_le_bytes());
            bytes[8..].copy_from_slice(&splitmix(seed ^ (2 * i + 1)).to_le_bytes());
            hybrid::derived_guid(bytes)
        };
        let mut partitions = vec![gpt::Entry::new(
            gpt::types::MICROSOFT_BASIC_DATA,
            material(1),
            hybrid::DATA_START,
            data_end - 1,
            "ISO9660",
        )];
        if let Some((lba, len)) = layout.esp {
            let first = u64::from(lba) * per_block;
            partitions.push(gpt::Entry::new(
                gpt::types::EFI_SYSTEM,
                material(2),
                first,
                first + len.div_ceil(hybrid::SECTOR) - 1,
                "EFI System",
            ));
        }
        // Truncation intended: 32 bits of the seed.
        let mbr_signature = splitmix(seed ^ 0xFFFF) as u32;
        hybrid::tables(sectors, material(0), mbr_signature, &partitions)
    }

    fn write_at(&self, at: u64, bytes: &[u8]) -> Result<(), Error> {
        let mut file = self.file;
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.write_all(bytes))
            .map_err(|e| Error::io("write", self.out, e))
    }
}

/// Sequential, buffered writing into the image file, tracking the position.
struct Output<'f> {
    inner: BufWriter<&'f File>,
    path: &'f Path,
    pos: u64,
}

impl<'f> Output<'f> {
    fn at(file: &'f File, path: &'f Path, block: u64) -> Result<Self, Error> {
        let pos = block * BLOCK as u64;
        let mut handle = file;
        handle
            .seek(SeekFrom::Start(pos))
            .map_err(|e| Error::io("write", path, e))?;
        Ok(Output {
            inner: BufWriter::with_capacity(1 << 20, file),
            path,
            pos,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner
            .write_all(bytes)
            .map_err(|e| Error::io("write", self.path, e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Copies `len` bytes of `input` (the file at `path`) to the current position without
    /// reading them here; returns the bytes copied (fewer only if `input` is shorter).
    fn copy_from(
        &mut self,
        input: &File,
        len: u64,
        copier: &mut Copier,
        path: &Path,
    ) -> Result<u64, Error> {
        self.inner
            .flush()
            .map_err(|e| Error::io("write", self.path, e))?;
        let copied = copier
            .copy(input, 0, self.inner.get_ref(), self.pos, len)
            .map_err(|e| {
                Error::plugin_source(
                    "iso",
                    format!(
                        "could not copy `{}` into `{}`",
                        path.display(),
                        self.path.display()
                    ),
                    e,
                )
            })?;
        self.pos += copied;
        self.inner
            .seek(SeekFrom::Start(self.pos))
            .map_err(|e| Error::io("write", self.path, e))?;
        Ok(copied)
    }

    /// Like [`Output::copy_from`], while a second thread reads `input` for its digest (see
    /// [`Copier::copy_with_digest`]).
    fn copy_with_digest(
        &mut self,
        input: &File,
        len: u64,
        copier: &mut Copier,
        path: &Path,
    ) -> Result<Digested, Error> {
        self.inner
            .flush()
            .map_err(|e| Error::io("write", self.path, e))?;
        let done = copier
            .copy_with_digest(input, len, self.inner.get_ref(), &[(self.pos, len)])
            .map_err(|e| match e {
                CopyError::Read(e) => Error::io("read", path, e),
                CopyError::Write(e) => Error::io("write", self.path, e),
                CopyError::Either(e) => Error::plugin_source(
                    "iso",
                    format!(
                        "could not copy `{}` into `{}`",
                        path.display(),
                        self.path.display()
                    ),
                    e,
                ),
            })?;
        self.pos += done.copied;
        self.inner
            .seek(SeekFrom::Start(self.pos))
            .map_err(|e| Error::io("write", self.path, e))?;
        Ok(done)
    }

    fn pad_to_block(&mut self) -> Result<(), Error> {
        const ZEROS: [u8; BLOCK] = [0; BLOCK];
        let gap = self.pos.next_multiple_of(BLOCK as u64) - self.pos;
        // Less than a block.
        self.write(&ZEROS[..gap as usize])
    }

    /// Moves on to `block` (never back): skipped blocks are zeros already.
    fn expect_block(&mut self, block: u32) -> Result<(), Error> {
        let target = u64::from(block) * BLOCK as u64;
        if target < self.pos {
            return Err(Error::plugin(
                "iso",
                format!(
                    "internal layout error: block {block} was planned, but writing is at byte {}; \
                     please report this",
                    self.pos
                ),
            ));
        }
        if target > self.pos {
            self.inner
                .seek(SeekFrom::Start(target))
                .map_err(|e| Error::io("write", self.path, e))?;
            self.pos = target;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        self.inner
            .flush()
            .map_err(|e| Error::io("write", self.path, e))
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
