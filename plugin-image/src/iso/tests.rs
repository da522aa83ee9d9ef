//! Unit tests of the ISO writer: structure read back by hand, and by independent readers
//! (xorriso, isoinfo, sgdisk, mtools) where a test says so.

use super::*;
use crate::test_support::{checker, pattern};
use std::path::PathBuf;

fn add(staging: &mut Staging, path: &str, bytes: Vec<u8>) {
    staging.add_file(path, Source::Bytes(bytes)).unwrap();
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

/// Runs a checker: whether it succeeded, and everything it printed.
fn run(program: &str, args: &[&str]) -> (bool, String) {
    let checked = checker(program, args);
    (checked.ok, checked.text)
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A small BIOS boot image: a jump over the boot info table area, then filler.
fn boot_image(len: usize) -> Vec<u8> {
    let mut image = pattern(len, 9);
    image[..2].copy_from_slice(&[0xEB, 0x3E]);
    image[8..64].fill(0);
    image
}

fn sample() -> Staging {
    let mut staging = Staging::new();
    add(&mut staging, "boot/kernel.elf", pattern(300_000, 1));
    add(
        &mut staging,
        "boot/limine/limine.conf",
        b"timeout: 0\n".to_vec(),
    );
    add(
        &mut staging,
        "boot/limine/limine-bios-cd.bin",
        boot_image(6000),
    );
    add(&mut staging, "EFI/BOOT/BOOTX64.EFI", pattern(40_000, 2));
    add(&mut staging, "README", b"read me\n".to_vec());
    add(&mut staging, "empty", Vec::new());
    add(
        &mut staging,
        "Mixed Case Name With Spaces.txt",
        b"spaces\n".to_vec(),
    );
    add(
        &mut staging,
        &format!("deep/{}.conf", "long".repeat(40)),
        b"a long name\n".to_vec(),
    );
    staging.hints.bios_cd_image = Some(ImagePath::new("boot/limine/limine-bios-cd.bin").unwrap());
    staging.hints.bios_cd_boot_info_table = true;
    staging
}

fn hybrid_options() -> IsoOptions {
    IsoOptions {
        boot: Some(BootKind::Hybrid),
        ..IsoOptions::default()
    }
}

#[test]
fn descriptors_catalogue_and_boot_info_table_are_where_they_belong() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("a.iso");
    let staging = sample();
    let info = write_iso(&iso, &staging, &hybrid_options()).unwrap();
    let bytes = std::fs::read(&iso).unwrap();
    assert_eq!(bytes.len() as u64, info.size);
    assert_eq!(info.size % 2048, 0);

    let block = |n: usize| &bytes[n * 2048..(n + 1) * 2048];
    let pvd = block(16);
    assert_eq!(&pvd[..7], b"\x01CD001\x01");
    assert_eq!(&pvd[40..48], b"KERNEL  ");
    assert_eq!(u32_at(pvd, 80) as u64 * 2048, info.size);
    let boot_record = block(17);
    assert_eq!(&boot_record[..7], b"\x00CD001\x01");
    assert_eq!(&boot_record[7..30], b"EL TORITO SPECIFICATION");
    assert_eq!(&block(18)[..7], b"\x02CD001\x01");
    assert_eq!(&block(18)[88..91], b"%/E");
    assert_eq!(&block(19)[..7], b"\xffCD001\x01");

    let catalog = block(u32_at(boot_record, 71) as usize);
    let bios = info.bios_boot.clone().unwrap();
    let uefi = info.uefi_boot.clone().unwrap();
    assert_eq!(catalog[32], 0x88);
    assert_eq!(u16_at(catalog, 38), 4);
    assert_eq!(u32_at(catalog, 40), bios.lba);
    assert_eq!(&catalog[64..66], &[0x91, 0xEF]);
    assert_eq!(u32_at(catalog, 104), uefi.lba);
    assert_eq!(u64::from(u16_at(catalog, 102)), uefi.len / 512);
    assert_eq!(uefi.path, None);

    // The boot info table in the image's copy; the rest of the copy is the original.
    let original = staging.entries[bios.path.as_ref().unwrap()].read().unwrap();
    let start = bios.lba as usize * 2048;
    let copy = &bytes[start..start + original.len()];
    assert_eq!(u32_at(copy, 8), 16);
    assert_eq!(u32_at(copy, 12), bios.lba);
    assert_eq!(u32_at(copy, 16) as usize, original.len());
    let mut tail = original[64..].to_vec();
    tail.resize(tail.len().next_multiple_of(4), 0);
    let sum = tail
        .chunks_exact(4)
        .fold(0u32, |s, w| s.wrapping_add(u32_at(w, 0)));
    assert_eq!(u32_at(copy, 20), sum);
    assert!(copy[24..64].iter().all(|&b| b == 0));
    assert_eq!(&copy[..8], &original[..8]);
    assert_eq!(&copy[64..], &original[64..]);

    // Protective MBR with an empty boot code area; GPT at sector 1.
    assert!(bytes[..440].iter().all(|&b| b == 0));
    assert_eq!((bytes[446], bytes[450]), (0, 0xEE));
    assert_eq!(&bytes[510..512], &[0x55, 0xAA]);
    assert_eq!(&bytes[512..520], b"EFI PART");
    assert_eq!(&bytes[bytes.len() - 512..bytes.len() - 504], b"EFI PART");
}

#[test]
fn independent_readers_see_the_tree_names_and_boot_entries() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("a.iso");
    let staging = sample();
    write_iso(&iso, &staging, &hybrid_options()).unwrap();

    let long = format!("{}.conf", "long".repeat(40));
    let (ok, listing) = run("isoinfo", &["-R", "-l", "-i", arg(&iso)]);
    assert!(ok, "{listing}");
    for name in [
        "kernel.elf",
        "limine.conf",
        "Mixed Case Name With Spaces.txt",
        &long,
    ] {
        assert!(
            listing.contains(name),
            "Rock Ridge lacks {name}:\n{listing}"
        );
    }
    let (ok, listing) = run("isoinfo", &["-J", "-l", "-i", arg(&iso)]);
    assert!(ok, "{listing}");
    for name in [
        "kernel.elf",
        "Mixed Case Name With Spaces.txt",
        "limine-bios-cd.bin",
    ] {
        assert!(listing.contains(name), "Joliet lacks {name}:\n{listing}");
    }
    let (ok, listing) = run("isoinfo", &["-l", "-i", arg(&iso)]);
    assert!(ok && listing.contains("KERNEL.ELF;1"), "{listing}");

    let (ok, report) = run(
        "xorriso",
        &[
            "-indev",
            arg(&iso),
            "-report_el_torito",
            "plain",
            "-report_system_area",
            "plain",
        ],
    );
    assert!(ok, "{report}");
    assert!(
        report.contains("BIOS") && report.contains("UEFI"),
        "{report}"
    );
    assert!(report.contains("GPT"), "{report}");

    let out = dir.path().join("x");
    let (ok, text) = run(
        "osirrox",
        &["-indev", arg(&iso), "-extract", "/", arg(&out)],
    );
    assert!(ok, "{text}");
    for (path, source) in &staging.entries {
        let got = std::fs::read(out.join(path.as_str())).unwrap();
        let mut want = source.read().unwrap();
        if Some(path) == staging.hints.bios_cd_image.as_ref() {
            // The boot info table was patched into the copy.
            want[8..64].copy_from_slice(&got[8..64]);
        }
        assert!(got == want, "{path} differs");
    }

    let (ok, text) = run("sgdisk", &["-v", arg(&iso)]);
    assert!(ok && text.contains("No problems found"), "{text}");
}

#[test]
fn the_built_esp_is_a_fat_volume_with_the_efi_tree() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("a.iso");
    let staging = sample();
    let info = write_iso(&iso, &staging, &hybrid_options()).unwrap();
    let uefi = info.uefi_boot.unwrap();
    let image = format!("{}@@{}", iso.display(), u64::from(uefi.lba) * 2048);
    let (ok, text) = run("fsck.fat", &["-n", arg(&extract(&iso, uefi.lba, uefi.len))]);
    assert!(ok, "{text}");
    let copy = dir.path().join("BOOTX64.EFI");
    let (ok, text) = run(
        "mcopy",
        &["-n", "-i", &image, "::/EFI/BOOT/BOOTX64.EFI", arg(&copy)],
    );
    assert!(ok, "{text}");
    let want = staging.entries[&ImagePath::new("EFI/BOOT/BOOTX64.EFI").unwrap()]
        .read()
        .unwrap();
    assert!(std::fs::read(&copy).unwrap() == want);
}

/// Copies `len` bytes from block `lba` of `iso` into a file beside it.
fn extract(iso: &Path, lba: u32, len: u64) -> PathBuf {
    let bytes = std::fs::read(iso).unwrap();
    let start = lba as usize * 2048;
    let path = iso.with_extension(format!("{lba}.img"));
    std::fs::write(&path, &bytes[start..start + len as usize]).unwrap();
    path
}

#[test]
fn output_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.iso"), dir.path().join("b.iso"));
    let staging = sample();
    write_iso(&a, &staging, &hybrid_options()).unwrap();
    write_iso(&b, &staging, &hybrid_options()).unwrap();
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());

    // Other content, other disk GUID.
    let mut other = sample();
    add(&mut other, "extra", vec![1]);
    write_iso(&b, &other, &hybrid_options()).unwrap();
    let guid = |p: &Path| std::fs::read(p).unwrap()[512 + 56..512 + 72].to_vec();
    assert_ne!(guid(&a), guid(&b));
}

#[test]
fn an_exact_size_is_kept_and_a_small_one_says_what_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("sized.iso");
    let staging = sample();
    let natural = write_iso(&iso, &staging, &hybrid_options()).unwrap().size;
    let sized = IsoOptions {
        size: Some(8 << 20),
        ..hybrid_options()
    };
    let info = write_iso(&iso, &staging, &sized).unwrap();
    assert_eq!(
        (info.size, std::fs::metadata(&iso).unwrap().len()),
        (8 << 20, 8 << 20)
    );
    let (ok, text) = run("sgdisk", &["-v", arg(&iso)]);
    assert!(ok && text.contains("No problems found"), "{text}");

    std::fs::remove_file(&iso).unwrap();
    // Issue 18, item 22: a huge odd size was answered "use 9223372036854775808".
    for (size, needle) in [
        (natural - 2048, format!("at least {natural} bytes")),
        (natural + 1, "multiple of 2048".to_owned()),
        (
            i64::MAX as u64,
            "more than an ISO 9660 volume can hold (8796093020160 bytes".to_owned(),
        ),
        (u64::MAX, "more than an ISO 9660 volume can hold".to_owned()),
    ] {
        let opts = IsoOptions {
            size: Some(size),
            ..hybrid_options()
        };
        let err = write_iso(&iso, &staging, &opts).unwrap_err().to_string();
        assert!(
            err.contains(&needle) && err.contains("`image.size"),
            "{err}"
        );
    }
    assert!(!iso.exists(), "a failed image is left behind");
}

#[test]
fn files_over_4_gib_are_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((4 << 30) + 1)
        .unwrap();
    let mut staging = Staging::new();
    staging.add_file("data/big.bin", Source::File(big)).unwrap();
    let err = write_iso(&dir.path().join("x.iso"), &staging, &IsoOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/data/big.bin") && err.contains("4294967295"),
        "{err}"
    );
}

#[test]
fn boot_kinds_choose_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("b.iso");
    let with = |boot| IsoOptions {
        boot,
        ..IsoOptions::default()
    };
    let uefi = write_iso(&iso, &sample(), &with(Some(BootKind::Uefi))).unwrap();
    assert!(uefi.bios_boot.is_none() && uefi.uefi_boot.is_some());
    let bytes = std::fs::read(&iso).unwrap();
    let catalog = u32_at(&bytes, 17 * 2048 + 71) as usize * 2048;
    assert_eq!((bytes[catalog + 1], bytes[catalog + 32]), (0xEF, 0x88));
    assert_eq!(bytes[catalog + 64], 0, "one entry only");

    let bios = write_iso(&iso, &sample(), &with(Some(BootKind::Bios))).unwrap();
    assert!(bios.bios_boot.is_some() && bios.uefi_boot.is_none());
    let auto = write_iso(&iso, &sample(), &with(None)).unwrap();
    assert!(auto.bios_boot.is_some() && auto.uefi_boot.is_some());

    // Nothing bootable staged: a plain data disc without a boot record, unless asked for.
    let mut data = Staging::new();
    add(&mut data, "notes.txt", b"x".to_vec());
    let plain = write_iso(&iso, &data, &with(None)).unwrap();
    assert!(plain.bios_boot.is_none() && plain.uefi_boot.is_none());
    assert_eq!(
        std::fs::read(&iso).unwrap()[17 * 2048],
        2,
        "Joliet follows the PVD"
    );
    for (boot, needle) in [
        (BootKind::Uefi, "`EFI/`"),
        (BootKind::Hybrid, "BIOS boot image"),
    ] {
        let err = write_iso(&iso, &data, &with(Some(boot)))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }

    // Hints a bootloader got wrong.
    let mut wrong = sample();
    wrong.hints.uefi_cd_image = wrong.hints.bios_cd_image.clone();
    let err = write_iso(&iso, &wrong, &with(None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("both the BIOS and the UEFI"), "{err}");
    let mut wrong = sample();
    wrong.hints.uefi_cd_image = Some(ImagePath::new("empty").unwrap());
    let err = write_iso(&iso, &wrong, &with(None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`/empty`") && err.contains("is empty"),
        "{err}"
    );
    let mut wrong = sample();
    wrong.hints.bios_cd_image = Some(ImagePath::new("nowhere.bin").unwrap());
    let err = write_iso(&iso, &wrong, &with(None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`/nowhere.bin`") && err.contains("not among"),
        "{err}"
    );
    let mut wrong = sample();
    add(&mut wrong, "short.bin", vec![0xEB; 63]);
    wrong.hints.bios_cd_image = Some(ImagePath::new("short.bin").unwrap());
    let err = write_iso(&iso, &wrong, &with(None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("63 bytes") && err.contains("boot info table"),
        "{err}"
    );
}

#[test]
fn a_staged_esp_image_is_used_as_it_is_and_placed_last() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("s.iso");
    let mut staging = sample();
    let esp = pattern(3 << 20, 5);
    add(&mut staging, "boot/limine/limine-uefi-cd.bin", esp.clone());
    staging.hints.uefi_cd_image = Some(ImagePath::new("boot/limine/limine-uefi-cd.bin").unwrap());
    let info = write_iso(&iso, &staging, &hybrid_options()).unwrap();
    let uefi = info.uefi_boot.unwrap();
    assert_eq!(uefi.path, staging.hints.uefi_cd_image);
    assert_eq!((uefi.len, uefi.load_sectors), (3 << 20, 6144));
    let bytes = std::fs::read(&iso).unwrap();
    let start = uefi.lba as usize * 2048;
    assert!(bytes[start..start + esp.len()] == esp[..]);
    // Nothing but the backup GPT's room after it.
    assert!(info.size - (u64::from(uefi.lba) * 2048 + uefi.len) < 10 * 2048);
    let (ok, text) = run("sgdisk", &["-i", "2", arg(&iso)]);
    assert!(
        ok && text.contains(&format!("First sector: {} ", u64::from(uefi.lba) * 4)),
        "{text}"
    );
}

#[test]
fn without_hybrid_the_system_area_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("plain.iso");
    let opts = IsoOptions {
        hybrid: false,
        ..IsoOptions::default()
    };
    write_iso(&iso, &sample(), &opts).unwrap();
    let bytes = std::fs::read(&iso).unwrap();
    assert!(bytes[..32 * 1024].iter().all(|&b| b == 0));
    assert_eq!(u32_at(&bytes, 16 * 2048 + 80) as usize * 2048, bytes.len());
}

#[test]
fn big_directories_and_many_long_names_span_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("many.iso");
    let mut staging = Staging::new();
    for i in 0..300 {
        add(
            &mut staging,
            &format!("many/file number {i:03}.txt"),
            vec![i as u8],
        );
    }
    for i in 0..30 {
        let name = format!("{i:02}{}", "x".repeat(240));
        add(&mut staging, &format!("long/{name}"), vec![i as u8; 3]);
    }
    // Deeper than ISO 9660's eight levels: written as it is, readers cope.
    add(
        &mut staging,
        "1/2/3/4/5/6/7/8/9/10/11/12/deep.txt",
        b"deep".to_vec(),
    );
    write_iso(&iso, &staging, &IsoOptions::default()).unwrap();
    let out = dir.path().join("out");
    let (ok, text) = run(
        "osirrox",
        &["-indev", arg(&iso), "-extract", "/", arg(&out)],
    );
    assert!(ok, "{text}");
    for (path, source) in &staging.entries {
        let got = std::fs::read(out.join(path.as_str())).unwrap();
        assert!(got == source.read().unwrap(), "{path}");
    }
    let (ok, listing) = run("isoinfo", &["-J", "-l", "-i", arg(&iso)]);
    assert!(
        ok && listing.matches("file number").count() == 300,
        "{listing}"
    );
}

#[test]
fn a_64_mib_kernel_and_200_files_make_a_valid_hybrid_iso() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel.elf");
    std::fs::write(&kernel, pattern(64 << 20, 3)).unwrap();
    let mut staging = sample();
    staging
        .replace(
            ImagePath::new("boot/kernel.elf").unwrap(),
            Source::File(kernel),
        )
        .unwrap();
    for i in 0..200 {
        add(
            &mut staging,
            &format!("modules/m{i:03}.ko"),
            pattern(1000 + i, i as u32),
        );
    }
    let iso = dir.path().join("big.iso");
    write_iso(&iso, &staging, &hybrid_options()).unwrap();
    let (ok, text) = run("sgdisk", &["-v", arg(&iso)]);
    assert!(ok && text.contains("No problems found"), "{text}");
}

#[test]
fn large_files_start_on_4_kib_boundaries() {
    // Reflinks (btrfs, XFS) need file contents block-aligned in the image file; one-block
    // files before the large ones would otherwise leave them at odd blocks.
    for small_files in 0..4 {
        let mut staging = Staging::new();
        for i in 0..small_files {
            add(&mut staging, &format!("a{i}"), vec![1; 100]);
        }
        add(&mut staging, "big", pattern(3 << 20, 3));
        add(&mut staging, "bigger", pattern((5 << 20) + 2048, 4));
        let tree = Tree::build(&staging).unwrap();
        let opts = IsoOptions::default();
        let boot = BootPlan::new(&staging, &tree, &opts).unwrap();
        let time = volume::Instant::from_unix(0);
        let layout = Layout::plan(&tree, &boot, &opts, time).unwrap();
        for name in ["big", "bigger"] {
            let node = tree.find(&ImagePath::new(name).unwrap()).unwrap();
            let (lba, _) = layout.iso[node];
            assert_eq!(
                lba % 2,
                0,
                "{name} after {small_files} small files at block {lba}"
            );
        }
    }
}
