//! Partitioned disk images: a GPT or MBR partition table around one FAT partition that holds
//! the staged files, formatted in place inside a sparse image file.

mod window;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use image_runner_core::{
    BootKind, BuildRequest, Context, Error, Image, ImageFormat, ImageKind, Staging,
};
use image_runner_disk_layout::{self as partition, GuidSeed, Mbr, gpt, mbr};

use crate::digest::Digests;
use crate::fat::{self, FatInfo, FatOptions, FatType};
pub use image_runner_disk_layout::Guid;
use window::Window;

/// Disk images here use 512-byte logical sectors, what QEMU's disks and every firmware expect.
const SECTOR: u64 = partition::SECTOR;
/// Partitions start on 1 MiB boundaries (2048 sectors), as current partitioning tools align
/// them. On MBR disks this also leaves a gap of almost 1 MiB after sector 0, where BIOS
/// bootloaders put their second stage (Limine needs the first partition at LBA 63 or later).
const ALIGN: u64 = (1 << 20) / SECTOR;
const MIB: u64 = 1 << 20;

/// How to build a disk image.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiskOptions {
    /// FAT type of the partition holding the files; `None`: chosen from its size.
    pub fat_type: Option<FatType>,
    /// Disk size in bytes (a multiple of 512); `None`: just large enough for the content.
    pub size: Option<u64>,
    /// FAT volume label (see [`FatOptions::label`]).
    pub label: Option<String>,
    /// What the disk must boot with. `Bios`/`Hybrid` add a BIOS boot partition on GPT and mark
    /// the MBR partition active; `Uefi` makes the MBR partition type "EFI System" (0xEF).
    pub boot: BootKind,
    /// Content digests known before the build (see [`Digests`]); the writer adds those it
    /// computes. Files whose digest is known are copied kernel-side, without being read.
    pub digests: Arc<Digests>,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            fat_type: None,
            size: None,
            label: None,
            boot: BootKind::Uefi,
            digests: Arc::default(),
        }
    }
}

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartitionRole {
    /// The FAT partition with the staged files (the EFI System Partition on GPT).
    Files,
    /// An empty GPT BIOS boot partition, for bootloaders that embed code there (GRUB).
    BiosBoot,
}

/// One partition of a written disk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionInfo {
    pub role: PartitionRole,
    /// First sector (512 bytes each).
    pub first_lba: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// The partition's unique GUID (GPT only).
    pub guid: Option<Guid>,
}

impl PartitionInfo {
    /// Byte offset of the partition in the image.
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }

    /// Size of the partition in bytes.
    pub fn size(&self) -> u64 {
        self.sectors * SECTOR
    }
}

/// The disk's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiskId {
    /// A GPT disk GUID.
    Gpt(Guid),
    /// An MBR disk signature (bytes 440–443).
    Mbr(u32),
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskInfo {
    /// Image size in bytes.
    pub size: u64,
    pub id: DiskId,
    /// In table order.
    pub partitions: Vec<PartitionInfo>,
    /// The FAT volume in the [`PartitionRole::Files`] partition.
    pub fat: FatInfo,
}

impl DiskInfo {
    /// The partition holding the staged files.
    pub fn files_partition(&self) -> Option<&PartitionInfo> {
        self.partitions
            .iter()
            .find(|p| p.role == PartitionRole::Files)
    }
}

/// Writes a GPT disk at `out` (created or truncated): a protective MBR, a BIOS boot partition
/// when `opts.boot` includes BIOS, and an EFI System Partition holding every staged file.
///
/// Bytes 0–439 of sector 0 are left zero for a BIOS bootloader's first stage. GUIDs are
/// derived from the content, so the same input gives the same bytes. On failure `out` is
/// removed.
pub fn write_gpt_disk(
    out: &Path,
    staging: &Staging,
    opts: &DiskOptions,
) -> Result<DiskInfo, Error> {
    write_disk(Scheme::Gpt, out, staging, opts)
}

/// Writes an MBR disk at `out` (created or truncated) with one FAT partition at 1 MiB holding
/// every staged file; the partition is active when `opts.boot` includes BIOS.
///
/// Bytes 0–439 of sector 0 are left zero for a BIOS bootloader's first stage; the disk
/// signature is derived from the content. On failure `out` is removed.
pub fn write_mbr_disk(
    out: &Path,
    staging: &Staging,
    opts: &DiskOptions,
) -> Result<DiskInfo, Error> {
    write_disk(Scheme::Mbr, out, staging, opts)
}

/// The `gpt` format: `image-gpt.img`, see [`write_gpt_disk`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GptFormat;

impl ImageFormat for GptFormat {
    fn name(&self) -> &str {
        "gpt"
    }

    fn kind(&self) -> ImageKind {
        ImageKind::Disk
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error> {
        build(Scheme::Gpt, request)
    }
}

/// The `mbr` format: `image-mbr.img`, see [`write_mbr_disk`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MbrFormat;

impl ImageFormat for MbrFormat {
    fn name(&self) -> &str {
        "mbr"
    }

    fn kind(&self) -> ImageKind {
        ImageKind::Disk
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error> {
        build(Scheme::Mbr, request)
    }
}

fn build(scheme: Scheme, request: &BuildRequest<'_>) -> Result<Image, Error> {
    let ctx = request.ctx;
    let opts = options_from(ctx)?;
    // One file name per scheme: the build stamps are per format, so two formats sharing a file
    // could each believe the other's image is theirs.
    let path = ctx
        .output_dir
        .join(format!("image-{}.img", scheme.format_name()));
    crate::reuse::build_or_reuse(
        request,
        scheme.format_name(),
        ImageKind::Disk,
        &path,
        |temp, digests| {
            let opts = DiskOptions {
                digests: Arc::clone(digests),
                ..opts
            };
            write_disk(scheme, temp, request.staging, &opts).map(|_| ())
        },
    )
}

fn options_from(ctx: &Context) -> Result<DiskOptions, Error> {
    let image = &ctx.config.image;
    let fat_type = crate::configured_fat_type(ctx)?;
    Ok(DiskOptions {
        fat_type,
        size: image.size,
        label: image.label.clone(),
        boot: ctx.decisions.boot,
        digests: Arc::default(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Gpt,
    Mbr,
}

impl Scheme {
    fn format_name(self) -> &'static str {
        match self {
            Scheme::Gpt => "gpt",
            Scheme::Mbr => "mbr",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Scheme::Gpt => "GPT",
            Scheme::Mbr => "MBR",
        }
    }
}

fn includes_bios(boot: BootKind) -> bool {
    matches!(boot, BootKind::Bios | BootKind::Hybrid)
}

/// Where everything goes, in sectors, decided before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    total: u64,
    /// The GPT BIOS boot partition: first sector and length.
    bios_boot: Option<(u64, u64)>,
    files_first: u64,
    files_sectors: u64,
}

/// Sizes the disk. The FAT partition gets all the space the disk has for it (rounded down to
/// whole MiB on GPT so that the backup table sits in the disk's last, partial MiB).
fn plan(scheme: Scheme, staging: &Staging, opts: &DiskOptions) -> Result<Plan, Error> {
    let required = fat::required_size(staging, opts.fat_type)?.div_ceil(SECTOR);
    let bios_boot = (scheme == Scheme::Gpt && includes_bios(opts.boot)).then_some((ALIGN, ALIGN));
    let files_first = if bios_boot.is_some() {
        2 * ALIGN
    } else {
        ALIGN
    };
    let tail = match scheme {
        Scheme::Gpt => gpt::TABLE_SECTORS,
        Scheme::Mbr => 0,
    };
    let minimum = files_first + required + tail;
    let total = match opts.size {
        None => minimum.next_multiple_of(ALIGN),
        Some(size) if size % SECTOR != 0 => {
            return Err(Error::plugin(
                scheme.format_name(),
                format!(
                    "`image.size` is {size} bytes, not a whole number of 512-byte sectors; use a \
                     multiple of 512 (a multiple of 1 MiB, {MIB} bytes, is best)"
                ),
            ));
        }
        Some(size) if size / SECTOR < minimum => {
            return Err(too_small(
                scheme,
                size,
                minimum,
                required,
                bios_boot.is_some(),
            ));
        }
        Some(size) => size / SECTOR,
    };
    let files_sectors = match scheme {
        Scheme::Gpt => {
            let available = gpt::last_usable(total) + 1 - files_first;
            let aligned = available / ALIGN * ALIGN;
            if aligned >= required {
                aligned
            } else {
                available
            }
        }
        Scheme::Mbr => total - files_first,
    };
    // An MBR entry holds 32-bit sector numbers.
    if scheme == Scheme::Mbr && total > u64::from(u32::MAX) {
        return Err(Error::plugin(
            "mbr",
            format!(
                "the disk would be {} bytes ({} GiB), but an MBR partition table addresses at \
                 most 2 TiB; use `format = \"gpt\"`{}",
                total * SECTOR,
                (total * SECTOR) >> 30,
                if opts.size.is_some() {
                    " or lower `image.size`"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(Plan {
        total,
        bios_boot,
        files_first,
        files_sectors,
    })
}

fn too_small(scheme: Scheme, size: u64, minimum: u64, required: u64, bios_boot: bool) -> Error {
    let needed = minimum * SECTOR;
    Error::plugin(
        scheme.format_name(),
        format!(
            "the {} disk needs at least {needed} bytes ({} MiB) for the staged files: a FAT \
             partition of {} bytes{}, the 1 MiB before the first partition{}; but `image.size` \
             is {size} bytes ({} MiB); raise `image.size` to {} MiB or more, or remove it to \
             size the disk from the content",
            scheme.title(),
            needed.div_ceil(MIB),
            required * SECTOR,
            if bios_boot {
                ", a 1 MiB BIOS boot partition"
            } else {
                ""
            },
            if scheme == Scheme::Gpt {
                " and the backup GPT at the end"
            } else {
                ""
            },
            size / MIB,
            needed.div_ceil(MIB),
        ),
    )
}

fn write_disk(
    scheme: Scheme,
    out: &Path,
    staging: &Staging,
    opts: &DiskOptions,
) -> Result<DiskInfo, Error> {
    let plan = plan(scheme, staging, opts)?;
    // The file stays sparse: only the tables and the FAT volume's used parts are written,
    // everything else reads as the zeros a fresh file has.
    let result = crate::copy::create_zeroed(out, plan.total * SECTOR)
        .and_then(|file| fill(scheme, &file, out, &plan, staging, opts));
    if result.is_err() {
        // Best effort: the error being returned matters more than one about the cleanup.
        let _ = std::fs::remove_file(out);
    }
    result
}

fn fill(
    scheme: Scheme,
    file: &File,
    out: &Path,
    plan: &Plan,
    staging: &Staging,
    opts: &DiskOptions,
) -> Result<DiskInfo, Error> {
    let (offset, len) = (plan.files_first * SECTOR, plan.files_sectors * SECTOR);
    let fat_opts = FatOptions {
        fat_type: opts.fat_type,
        label: opts.label.clone(),
        digests: Arc::clone(&opts.digests),
        ..FatOptions::default()
    };
    let window = Window::new(file, offset, len);
    let fat = fat::format_region(window, file, offset, len, staging, &fat_opts).map_err(|e| {
        Error::plugin_source(
            scheme.format_name(),
            format!(
                "could not write the FAT partition ({len} bytes at byte {offset}) of `{}`",
                out.display()
            ),
            e,
        )
    })?;
    let seed = seed(scheme, file, out, plan, staging)?;
    let mut partitions = Vec::new();
    let id = match scheme {
        Scheme::Gpt => {
            let disk_guid = Guid::derive(&seed, "disk");
            let mut entries = Vec::new();
            let mut add = |role, first_lba, sectors, type_guid, name| {
                let guid = Guid::derive(&seed, &format!("partition {}", entries.len() + 1));
                entries.push(gpt::Entry::new(
                    type_guid,
                    guid,
                    first_lba,
                    first_lba + sectors - 1,
                    name,
                ));
                partitions.push(PartitionInfo {
                    role,
                    first_lba,
                    sectors,
                    guid: Some(guid),
                });
            };
            if let Some((first, sectors)) = plan.bios_boot {
                add(
                    PartitionRole::BiosBoot,
                    first,
                    sectors,
                    gpt::types::BIOS_BOOT,
                    "BIOS boot",
                );
            }
            add(
                PartitionRole::Files,
                plan.files_first,
                plan.files_sectors,
                gpt::types::EFI_SYSTEM,
                "EFI System",
            );
            // The plan keeps the partitions inside the usable sectors, so this does not fail.
            let tables = gpt::Tables::new(plan.total, disk_guid, &entries).map_err(|e| {
                Error::plugin_source(
                    "gpt",
                    format!(
                        "could not lay out the partition table of `{}`",
                        out.display()
                    ),
                    e,
                )
            })?;
            let mut writer = file;
            tables
                .write_to(&mut writer)
                .map_err(|e| Error::io("write the partition table of", out, e))?;
            DiskId::Gpt(disk_guid)
        }
        Scheme::Mbr => {
            let signature = seed.finish32();
            let kind = match (opts.boot, fat.fat_type) {
                (BootKind::Uefi, _) => mbr::kind::EFI_SYSTEM,
                (_, FatType::Fat12) => mbr::kind::FAT12,
                (_, FatType::Fat16) => mbr::kind::FAT16_LBA,
                (_, FatType::Fat32) => mbr::kind::FAT32_LBA,
            };
            // The plan keeps the whole disk below 2^32 sectors.
            let mut table = Mbr::new(signature);
            table.entries[0] = mbr::Entry::new(
                includes_bios(opts.boot),
                kind,
                u32::try_from(plan.files_first).unwrap_or(u32::MAX),
                u32::try_from(plan.files_sectors).unwrap_or(u32::MAX),
            );
            // Bytes 0–439 stay zero for a BIOS bootloader's first stage.
            write_at(file, out, 0, &table.encode())?;
            partitions.push(PartitionInfo {
                role: PartitionRole::Files,
                first_lba: plan.files_first,
                sectors: plan.files_sectors,
                guid: None,
            });
            DiskId::Mbr(signature)
        }
    };
    Ok(DiskInfo {
        size: plan.total * SECTOR,
        id,
        partitions,
        fat,
    })
}

/// What the disk's identifiers are derived from: the layout, the FAT boot sector (its volume
/// id is a hash of every staged path and byte, and it carries the geometry and label) and the
/// staged paths. Host paths and times are left out, so a rebuild elsewhere gives the same ids.
fn seed(
    scheme: Scheme,
    file: &File,
    out: &Path,
    plan: &Plan,
    staging: &Staging,
) -> Result<GuidSeed, Error> {
    let mut boot_sector = [0u8; SECTOR as usize];
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(plan.files_first * SECTOR))
        .and_then(|_| reader.read_exact(&mut boot_sector))
        .map_err(|e| Error::io("read back the FAT boot sector of", out, e))?;
    let mut seed = GuidSeed::new();
    seed.update(scheme.format_name().as_bytes());
    for number in [
        plan.total,
        plan.bios_boot.map_or(0, |(first, _)| first),
        plan.files_first,
        plan.files_sectors,
    ] {
        seed.update(&number.to_le_bytes());
    }
    seed.update(&boot_sector);
    for path in staging.entries.keys() {
        seed.update(path.as_str().as_bytes());
    }
    Ok(seed)
}

fn write_at(file: &File, out: &Path, offset: u64, bytes: &[u8]) -> Result<(), Error> {
    let mut writer = file;
    writer
        .seek(SeekFrom::Start(offset))
        .and_then(|_| writer.write_all(bytes))
        .map_err(|e| Error::io("write the partition table of", out, e))
}

#[cfg(test)]
mod tests;
