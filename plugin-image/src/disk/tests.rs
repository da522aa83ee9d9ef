use super::*;
use crate::test_support::{checker, pattern};
use std::path::PathBuf;
use std::process::Command;

use image_runner_core::Source;

/// Runs a checker: whether it succeeded, its output, and everything it printed.
fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let checked = checker(program, args);
    (
        checked.ok,
        String::from_utf8_lossy(&checked.stdout).into_owned(),
        checked.text,
    )
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn sample() -> Staging {
    let mut s = Staging::new();
    let mut add = |path: &str, bytes: Vec<u8>| s.add_file(path, Source::Bytes(bytes)).unwrap();
    add("EFI/BOOT/BOOTX64.EFI", pattern(30_000, 1));
    add("boot/kernel.elf", pattern(300_000, 2));
    add("boot/limine/limine.conf", b"timeout: 0\n".to_vec());
    add("a directory with a long name/file.txt", b"hello\n".to_vec());
    s
}

fn opts(boot: BootKind, size: Option<u64>, fat_type: Option<FatType>) -> DiskOptions {
    DiskOptions {
        fat_type,
        size,
        boot,
        ..DiskOptions::default()
    }
}

/// Copies the partition out and runs `fsck.fat -n` on it; it must not complain.
fn assert_fsck_clean(image: &Path, partition: &PartitionInfo) {
    let bytes = std::fs::read(image).unwrap();
    let start = partition.offset() as usize;
    let extracted = image.with_extension("part");
    std::fs::write(&extracted, &bytes[start..start + partition.size() as usize]).unwrap();
    let (ok, _, text) = run("fsck.fat", &["-n", arg(&extracted)]);
    let complaints: Vec<&str> = text
        .lines()
        .filter(|line| {
            !(line.starts_with("fsck.fat ")
                || (line.contains(" files, ") && line.ends_with(" clusters")))
        })
        .collect();
    assert!(
        ok && complaints.is_empty(),
        "fsck.fat -n complains:\n{text}"
    );
    std::fs::remove_file(extracted).unwrap();
}

/// `mtype` through mtools' `IMAGE@@OFFSET` syntax must give back every staged file.
fn assert_files_readable(image: &Path, partition: &PartitionInfo, staging: &Staging) {
    let drive = format!("{}@@{}", arg(image), partition.offset());
    for (path, source) in &staging.entries {
        let output = Command::new("mtype")
            .args(["-i", &drive, &format!("::/{}", path.as_str())])
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .expect("run mtype (install mtools)");
        assert!(output.status.success(), "mtype {path}: {output:?}");
        assert!(output.stdout == source.read().unwrap(), "{path} differs");
    }
}

/// `sgdisk -v` finds no problem; returns `sgdisk -p`.
fn sgdisk_checked(image: &Path) -> String {
    let (ok, _, verify) = run("sgdisk", &["-v", arg(image)]);
    assert!(ok && verify.contains("No problems found"), "{verify}");
    assert!(!verify.to_lowercase().contains("warning"), "{verify}");
    let (ok, print, text) = run("sgdisk", &["-p", arg(image)]);
    assert!(ok, "{text}");
    print
}

/// The partition lines of `sgdisk -p`: number, start, end, code, name.
fn sgdisk_partitions(print: &str) -> Vec<(u64, u64, u64, String, String)> {
    let table = print
        .split_once("Number  Start (sector)")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no partition table in:\n{print}"));
    table
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (
                words[0].parse().unwrap(),
                words[1].parse().unwrap(),
                words[2].parse().unwrap(),
                words[5].to_owned(),
                words[6..].join(" "),
            )
        })
        .collect()
}

fn image_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn a_uefi_gpt_disk_has_one_aligned_esp_that_sgdisk_and_fsck_accept() {
    let dir = tempfile::tempdir().unwrap();
    let image = image_in(&dir, "gpt.img");
    let staging = sample();
    let info = write_gpt_disk(&image, &staging, &DiskOptions::default()).unwrap();
    assert_eq!(std::fs::metadata(&image).unwrap().len(), info.size);
    assert_eq!(info.size % MIB, 0);
    let print = sgdisk_checked(&image);
    let esp = info.files_partition().unwrap();
    assert_eq!(
        sgdisk_partitions(&print),
        vec![(
            1,
            2048,
            esp.first_lba + esp.sectors - 1,
            "EF00".to_owned(),
            "EFI System".to_owned()
        )],
        "{print}"
    );
    let DiskId::Gpt(disk_guid) = info.id else {
        panic!("{info:?}")
    };
    assert!(
        print.contains(&format!("Disk identifier (GUID): {disk_guid}")),
        "{print}"
    );
    assert_eq!(esp.first_lba % ALIGN, 0);
    assert_eq!(esp.sectors % ALIGN, 0);
    assert_fsck_clean(&image, esp);
    assert_files_readable(&image, esp, &staging);
    let bytes = std::fs::read(&image).unwrap();
    assert!(
        bytes[..440].iter().all(|&b| b == 0),
        "boot code area not empty"
    );
    assert_eq!(&bytes[512..520], b"EFI PART");
}

#[test]
fn bios_and_hybrid_gpt_disks_start_with_a_bios_boot_partition() {
    let dir = tempfile::tempdir().unwrap();
    let staging = sample();
    for boot in [BootKind::Bios, BootKind::Hybrid] {
        let image = image_in(&dir, "hybrid.img");
        let info = write_gpt_disk(&image, &staging, &opts(boot, None, None)).unwrap();
        let parts = sgdisk_partitions(&sgdisk_checked(&image));
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(
            (
                parts[0].1,
                parts[0].2,
                parts[0].3.as_str(),
                parts[0].4.as_str()
            ),
            (2048, 4095, "EF02", "BIOS boot")
        );
        assert_eq!(
            (parts[1].1, parts[1].3.as_str(), parts[1].4.as_str()),
            (4096, "EF00", "EFI System")
        );
        assert_eq!(info.partitions[0].role, PartitionRole::BiosBoot);
        let esp = info.files_partition().unwrap();
        assert_fsck_clean(&image, esp);
        assert_files_readable(&image, esp, &staging);
        // Limine's bios-install puts its stage 2 into the unused tail of both entry arrays.
        let bytes = std::fs::read(&image).unwrap();
        let backup_array = (info.size / SECTOR - 33) * SECTOR;
        for array in [1024, backup_array] {
            let array = array as usize;
            assert!(bytes[array + 256..array + 16384].iter().all(|&b| b == 0));
        }
    }
}

#[test]
fn an_mbr_disk_has_one_fat_partition_at_1_mib() {
    let dir = tempfile::tempdir().unwrap();
    let staging = sample();
    for (boot, fat_type, type_id, bootable) in [
        (BootKind::Uefi, None, "ef", false),
        (BootKind::Bios, Some(FatType::Fat12), "1", true),
        (BootKind::Hybrid, Some(FatType::Fat16), "e", true),
        (BootKind::Bios, Some(FatType::Fat32), "c", true),
    ] {
        let image = image_in(&dir, "mbr.img");
        let info = write_mbr_disk(&image, &staging, &opts(boot, None, fat_type)).unwrap();
        if let Some(fat_type) = fat_type {
            assert_eq!(info.fat.fat_type, fat_type);
        }
        let part = info.files_partition().unwrap();
        assert_eq!(part.first_lba, 2048);
        assert_eq!(info.size, (2048 + part.sectors) * SECTOR);
        let (ok, dump, text) = run("sfdisk", &["-d", arg(&image)]);
        assert!(ok, "{text}");
        let DiskId::Mbr(signature) = info.id else {
            panic!("{info:?}")
        };
        assert!(dump.contains("label: dos"), "{dump}");
        assert!(
            dump.contains(&format!("label-id: {signature:#010x}")),
            "{dump}"
        );
        let line = dump
            .lines()
            .find(|l| l.contains("start="))
            .unwrap_or_else(|| panic!("{dump}"));
        let expected = format!(
            "start=        2048, size={:>12}, type={type_id}",
            part.sectors
        );
        assert!(line.contains(&expected), "{line} lacks {expected}");
        assert_eq!(line.contains("bootable"), bootable, "{line}");
        assert_eq!(dump.matches("start=").count(), 1, "{dump}");
        let (ok, listing, text) = run("fdisk", &["-l", arg(&image)]);
        assert!(ok && listing.contains("Disklabel type: dos"), "{text}");
        assert_fsck_clean(&image, part);
        assert_files_readable(&image, part, &staging);
        let bytes = std::fs::read(&image).unwrap();
        assert!(
            bytes[..440].iter().all(|&b| b == 0),
            "boot code area not empty"
        );
    }
}

#[test]
fn a_given_size_is_used_whole_and_too_small_names_the_needed_size() {
    let dir = tempfile::tempdir().unwrap();
    let staging = sample();
    let image = image_in(&dir, "sized.img");
    let info = write_gpt_disk(
        &image,
        &staging,
        &opts(BootKind::Uefi, Some(64 * MIB), None),
    )
    .unwrap();
    assert_eq!(info.size, 64 * MIB);
    // The ESP ends at the last whole MiB before the backup table.
    assert_eq!(info.files_partition().unwrap().sectors, 62 * ALIGN);
    sgdisk_checked(&image);
    assert_fsck_clean(&image, info.files_partition().unwrap());

    let info = write_mbr_disk(
        &image,
        &staging,
        &opts(BootKind::Bios, Some(64 * MIB), None),
    )
    .unwrap();
    assert_eq!(info.files_partition().unwrap().sectors, 63 * ALIGN);

    let automatic = write_gpt_disk(&image, &staging, &DiskOptions::default()).unwrap();
    let minimum = automatic.size - ALIGN * SECTOR + gpt::TABLE_SECTORS * SECTOR;
    std::fs::remove_file(&image).unwrap();
    for size in [minimum - SECTOR, MIB] {
        let err = write_gpt_disk(&image, &staging, &opts(BootKind::Uefi, Some(size), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("at least {minimum} bytes")) && err.contains("`image.size`"),
            "{err}"
        );
        assert!(!image.exists(), "a failed image was left behind");
    }
    // Exactly the minimum works.
    write_gpt_disk(&image, &staging, &opts(BootKind::Uefi, Some(minimum), None)).unwrap();
    sgdisk_checked(&image);

    let err = write_mbr_disk(&image, &staging, &opts(BootKind::Bios, Some(MIB), None))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("mbr: the MBR disk needs at least"), "{err}");
    let err = write_mbr_disk(&image, &staging, &opts(BootKind::Bios, Some(MIB + 1), None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("multiple of 512"), "{err}");
}

#[test]
fn mbr_disks_beyond_2_tib_are_refused_before_anything_is_written() {
    let mut staging = Staging::new();
    staging.add_file("kernel", Source::Bytes(vec![1])).unwrap();
    let plan_err = plan(
        Scheme::Mbr,
        &staging,
        &opts(BootKind::Bios, Some(3 << 40), None),
    )
    .unwrap_err()
    .to_string();
    assert!(
        plan_err.contains("2 TiB") && plan_err.contains("gpt"),
        "{plan_err}"
    );
}

#[test]
fn output_is_reproducible_and_ids_follow_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let staging = sample();
    let (a, b, c) = (
        image_in(&dir, "a.img"),
        image_in(&dir, "b.img"),
        image_in(&dir, "c.img"),
    );
    for write in [write_gpt_disk, write_mbr_disk] {
        let first = write(&a, &staging, &DiskOptions::default()).unwrap();
        let second = write(&b, &staging, &DiskOptions::default()).unwrap();
        assert_eq!(first, second);
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());

        let mut changed = sample();
        changed
            .replace(
                image_runner_core::ImagePath::new("boot/kernel.elf").unwrap(),
                Source::Bytes(pattern(300_000, 3)),
            )
            .unwrap();
        let other = write(&c, &changed, &DiskOptions::default()).unwrap();
        assert_ne!(first.id, other.id);
        assert_eq!(first.size, other.size);
    }
    let first = write_gpt_disk(&a, &staging, &opts(BootKind::Hybrid, None, None)).unwrap();
    let guids: Vec<_> = first.partitions.iter().map(|p| p.guid).collect();
    assert_ne!(guids[0], guids[1]);
}

#[cfg(unix)]
#[test]
fn large_disks_stay_sparse() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let image = image_in(&dir, "large.img");
    let size = 2u64 << 30;
    write_gpt_disk(&image, &sample(), &opts(BootKind::Uefi, Some(size), None)).unwrap();
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), size);
    // FAT32 with its two FATs of a few MiB each, the files and the tables.
    assert!(
        meta.blocks() * 512 < 32 * MIB,
        "{} bytes allocated",
        meta.blocks() * 512
    );
    sgdisk_checked(&image);
}

#[test]
fn a_64_mib_kernel_and_200_files_make_a_clean_disk() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel.elf");
    let content = pattern(64 << 20, 42);
    std::fs::write(&kernel, &content).unwrap();
    let mut staging = Staging::new();
    staging
        .add_file("boot/kernel.elf", Source::File(kernel))
        .unwrap();
    for i in 0..200 {
        staging
            .add_file(
                &format!("boot/modules/module-{i:03}.bin"),
                Source::Bytes(pattern(1000 + i * 13, i as u32)),
            )
            .unwrap();
    }
    for (name, write) in [
        (
            "gpt",
            write_gpt_disk as fn(&Path, &Staging, &DiskOptions) -> _,
        ),
        ("mbr", write_mbr_disk),
    ] {
        let image = image_in(&dir, "kernel.img");
        let info = write(&image, &staging, &opts(BootKind::Hybrid, None, None)).unwrap();
        // Speed is measured in bench/image-build.sh, not here.
        eprintln!(
            "{name}: 64 MiB kernel + 200 files, {} bytes, {}",
            info.size, info.fat.fat_type
        );
        let part = info.files_partition().unwrap();
        assert_fsck_clean(&image, part);
    }
}
