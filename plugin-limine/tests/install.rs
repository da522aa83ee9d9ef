//! The BIOS stage install on images written by plugin-image (GPT and MBR disks, the hybrid
//! ISO's system area) with the fixture's synthetic stages: where each piece lands, what is
//! kept, and CRCs checked bit by bit here and by sgdisk. Needs gdisk, fdisk and mtools
//! (`scripts/install-deps`); fails without them.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use image_runner_core::{BootKind, ImagePath, Source, Staging};
use image_runner_image::disk::{DiskOptions, write_gpt_disk, write_mbr_disk};
use image_runner_image::iso::{IsoOptions, write_iso};
use image_runner_limine::BiosStages;
use image_runner_limine::install::{Half, TableKind, install_file};

fn stages() -> (Vec<u8>, BiosStages) {
    let bytes = common::hdd_stages("8.2.0");
    let parsed = BiosStages::parse_c_array(&common::hdd_header(&bytes)).unwrap();
    assert_eq!(parsed.as_bytes(), bytes.as_slice());
    (bytes, parsed)
}

fn staging() -> Staging {
    let mut staging = Staging::new();
    for (path, bytes) in [
        ("boot/kernel", vec![0x4B; 70_000]),
        ("boot/limine/limine.conf", b"timeout: 0\n".to_vec()),
        ("boot/limine/limine-bios.sys", b"LIMINE-BIOS-SYS".to_vec()),
        ("boot/limine/limine-bios-cd.bin", vec![0xCD; 4096]),
        ("EFI/BOOT/BOOTX64.EFI", b"BOOTX64".to_vec()),
    ] {
        staging.add_file(path, Source::Bytes(bytes)).unwrap();
    }
    staging
}

/// Runs a checking tool; a missing one fails the test, naming the package.
fn tool(program: &str, package: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("could not run `{program}` ({e}); install {package}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{text}"
    );
    text
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `sgdisk -v` finds no problem and `sgdisk -p` reports the shrunk entry array.
fn assert_gpt_clean(image: &Path, entries: u32) {
    let verify = tool("sgdisk", "gdisk", &["-v", arg(image)]);
    assert!(verify.contains("No problems found"), "{verify}");
    let print = tool("sgdisk", "gdisk", &["-p", arg(image)]);
    assert!(
        print.contains(&format!("Partition table holds up to {entries} entries")),
        "{print}"
    );
}

/// A CRC-32 written bit by bit, independent of the crate's table.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Checks sector 0 and both stage 2 halves of `after` against the fixture stages.
fn assert_placed(before: &[u8], after: &[u8], stages: &[u8], halves: [Half; 2]) {
    assert_eq!(after[..218], stages[..218]);
    assert_eq!(after[218..224], before[218..224]);
    assert_eq!(after[224..0x1A4], stages[224..0x1A4]);
    assert_eq!(after[440..510], before[440..510]);
    assert_eq!(after[510..512], [0x55, 0xAA]);
    let [a, b] = halves;
    assert_eq!(u16::from_le_bytes([after[0x1A4], after[0x1A5]]), a.size);
    assert_eq!(u16::from_le_bytes([after[0x1A6], after[0x1A7]]), b.size);
    assert_eq!(u64_le(after, 0x1A8), a.offset);
    assert_eq!(u64_le(after, 0x1B0), b.offset);
    let stage2 = &stages[512..];
    let (a_at, b_at, a_len) = (a.offset as usize, b.offset as usize, a.size as usize);
    assert_eq!(after[a_at..a_at + a_len], stage2[..a_len]);
    assert_eq!(after[b_at..b_at + stage2.len() - a_len], stage2[a_len..]);
    // Sector n of stage 2 starts with its tag.
    assert_eq!(&after[a_at..a_at + 6], b"S2 000");
    assert_eq!(&after[b_at..b_at + 6], b"S2 021");
}

/// Both GPT headers: entry count `entries` and CRCs that match.
fn assert_gpt_crcs(image: &[u8], entries: u32) {
    let primary = &image[512..604];
    let backup_at = u64_le(primary, 32) as usize * 512;
    for header in [primary, &image[backup_at..backup_at + 92]] {
        assert_eq!(u32_le(header, 80), entries);
        let mut zeroed = header.to_vec();
        zeroed[16..20].fill(0);
        assert_eq!(u32_le(header, 16), crc32(&zeroed), "header CRC");
        let array = u64_le(header, 72) as usize * 512;
        let size = u32_le(header, 84) as usize;
        assert_eq!(
            u32_le(header, 88),
            crc32(&image[array..array + entries as usize * size]),
            "array CRC"
        );
    }
}

fn disk_options(boot: BootKind) -> DiskOptions {
    let mut opts = DiskOptions::default();
    opts.boot = boot;
    opts
}

#[test]
fn gpt_disks_for_bios_and_hybrid() {
    let (raw, stages) = stages();
    for boot in [BootKind::Bios, BootKind::Hybrid] {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        let info = write_gpt_disk(&image, &staging(), &disk_options(boot)).unwrap();
        assert_eq!(info.partitions.len(), 2, "BIOS boot partition and ESP");
        let before = std::fs::read(&image).unwrap();
        let installed = install_file(&image, &stages).unwrap();
        let after = std::fs::read(&image).unwrap();
        assert_eq!(installed.table, TableKind::Gpt { block_size: 512 });
        assert_eq!(installed.gpt_entries, Some((128, 44)));
        let backup_array = (before.len() / 512 - 33) as u64;
        assert_eq!(
            installed.stage2,
            [
                Half {
                    offset: 13 * 512,
                    size: 21 * 512
                },
                Half {
                    offset: (backup_array + 12) * 512,
                    size: 20 * 512
                }
            ]
        );
        assert_placed(&before, &after, &raw, installed.stage2);
        assert_gpt_crcs(&after, 44);
        assert_gpt_clean(&image, 44);
        // The partitions' contents (up to the backup GPT) are untouched.
        let (first, tail) = (
            info.partitions[0].offset() as usize,
            before.len() - 33 * 512,
        );
        assert_eq!(after[first..tail], before[first..tail]);
        let esp = info.files_partition().unwrap().offset();
        let listing = tool(
            "mdir",
            "mtools",
            &[
                "-i",
                &format!("{}@@{esp}", arg(&image)),
                "-/",
                "::/boot/limine",
            ],
        );
        assert!(
            listing.contains("limine-bios") && listing.contains("limine"),
            "{listing}"
        );
    }
}

#[test]
fn mbr_disks_keep_their_table_and_get_an_active_partition() {
    let (raw, stages) = stages();
    for (boot, active_before) in [(BootKind::Bios, true), (BootKind::Uefi, false)] {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        write_mbr_disk(&image, &staging(), &disk_options(boot)).unwrap();
        let before = std::fs::read(&image).unwrap();
        assert_eq!(before[446] == 0x80, active_before);
        let installed = install_file(&image, &stages).unwrap();
        let after = std::fs::read(&image).unwrap();
        assert_eq!(installed.table, TableKind::Mbr);
        assert_eq!(installed.activated_first_partition, !active_before);
        assert_eq!(after[446], 0x80, "partition 1 active");
        let mut expected_table = before.clone();
        expected_table[446] = 0x80;
        assert_eq!(after[440..510], expected_table[440..510]);
        assert_placed(&expected_table, &after, &raw, installed.stage2);
        assert_eq!(installed.stage2[0].offset, 512);
        assert_eq!(installed.stage2[1].offset, 512 + 21 * 512);
        // Everything from the end of stage 2 on is as it was.
        let end = raw.len();
        assert_eq!(after[end..], before[end..]);
        let dump = tool("sfdisk", "fdisk", &["--dump", arg(&image)]);
        assert!(
            dump.contains("start=        2048") && dump.contains("bootable"),
            "{dump}"
        );
    }
}

#[test]
fn hybrid_iso_system_area() {
    let (raw, stages) = stages();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.iso");
    let mut staging = staging();
    staging.hints.bios_cd_image = Some(ImagePath::new("boot/limine/limine-bios-cd.bin").unwrap());
    staging.hints.bios_cd_boot_info_table = true;
    let mut opts = IsoOptions::default();
    opts.boot = Some(BootKind::Hybrid);
    write_iso(&image, &staging, &opts).unwrap();
    let before = std::fs::read(&image).unwrap();
    let installed = install_file(&image, &stages).unwrap();
    let after = std::fs::read(&image).unwrap();
    assert_eq!(installed.table, TableKind::Gpt { block_size: 512 });
    assert_eq!(installed.gpt_entries, Some((128, 44)));
    assert_placed(&before, &after, &raw, installed.stage2);
    assert_gpt_crcs(&after, 44);
    assert_gpt_clean(&image, 44);
    // The ISO 9660 volume (from 32 KiB) is untouched up to the backup GPT.
    let tail = before.len() - 33 * 512;
    assert_eq!(after[32 * 1024..tail], before[32 * 1024..tail]);
    let report = tool(
        "xorriso",
        "xorriso",
        &["-indev", arg(&image), "-report_el_torito", "plain"],
    );
    assert!(report.contains("El Torito boot img"), "{report}");
}

#[test]
fn a_bare_fat_volume_is_refused_untouched() {
    let (_, stages) = stages();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.fat");
    image_runner_image::fat::write_fat_file(&image, &staging(), &Default::default()).unwrap();
    let before = std::fs::read(&image).unwrap();
    let err = install_file(&image, &stages).unwrap_err().to_string();
    assert!(
        err.contains("cannot install Limine's BIOS stages into")
            && err.contains("boot sector (\"FAT\" at byte"),
        "{err}"
    );
    assert_eq!(std::fs::read(&image).unwrap(), before);
}
