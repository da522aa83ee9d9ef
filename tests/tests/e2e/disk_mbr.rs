//! `format = "mbr"`: an EFI application on the one FAT partition of an MBR disk, checked with
//! sfdisk, fdisk, fsck.fat and mtools, and booted by OVMF. Needs fdisk, dosfstools and mtools
//! (`scripts/install-deps`); fails without them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;
use image_runner_tests::tools::checker as tool;

fn build(project: &Project, kernel: &Path) -> PathBuf {
    let run = project.run(["build".as_ref(), kernel.as_os_str()], &[]);
    run.assert_code(0);
    let image = PathBuf::from(run.stdout.trim());
    assert!(image.ends_with("image-mbr.img"), "{run}");
    image
}

/// The one partition line of `sfdisk -d`.
fn partition_line(image: &Path) -> String {
    let (ok, dump) = tool("sfdisk", "fdisk", &["-d", image.to_str().expect("UTF-8")]);
    assert!(ok && dump.contains("label: dos"), "{dump}");
    let lines: Vec<&str> = dump.lines().filter(|l| l.contains("start=")).collect();
    assert_eq!(lines.len(), 1, "{dump}");
    lines[0].to_owned()
}

#[test]
fn efi_app_boots_from_an_mbr_disk() {
    let project = Project::new(runner_bin!(), "format = \"mbr\"\n");
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    project
        .run([&kernel], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
    let image = build(&project, &kernel);
    let line = partition_line(&image);
    // UEFI-only: the partition is typed "EFI System" and not active.
    assert!(line.contains("start=        2048,"), "{line}");
    assert!(line.ends_with("type=ef"), "{line}");
}

#[test]
fn a_hybrid_mbr_disk_has_an_active_fat_partition_and_still_boots_uefi() {
    let project = Project::new(
        runner_bin!(),
        "format = \"mbr\"\nboot = \"hybrid\"\n[image]\nfat-type = 32\n",
    );
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    project
        .run([&kernel], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
    let image = build(&project, &kernel);
    let line = partition_line(&image);
    assert!(line.contains("start=        2048,"), "{line}");
    assert!(line.contains("type=c, bootable"), "{line}");
    let (ok, listing) = tool("fdisk", "fdisk", &["-l", image.to_str().expect("UTF-8")]);
    assert!(ok && listing.contains("W95 FAT32 (LBA)"), "{listing}");

    let bytes = std::fs::read(&image).expect("read the image");
    let esp = project.scratch().join("part.fat");
    std::fs::write(&esp, &bytes[2048 * 512..]).expect("extract the partition");
    let (ok, report) = tool(
        "fsck.fat",
        "dosfstools",
        &["-n", "-v", esp.to_str().expect("UTF-8")],
    );
    assert!(ok && report.contains("32 bit entries"), "{report}");
    let drive = format!("{}@@{}", image.to_str().expect("UTF-8"), 2048 * 512);
    let (ok, listing) = tool("mdir", "mtools", &["-i", &drive, "::/EFI/BOOT"]);
    assert!(ok && listing.contains("BOOTX64  EFI"), "{listing}");
}

#[test]
fn a_too_small_image_size_fails_naming_the_needed_size() {
    let project = Project::new(runner_bin!(), "format = \"mbr\"\n[image]\nsize = 1048576\n");
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let run = project.run(["build".as_ref(), kernel.as_os_str()], &[]);
    run.assert_code(2)
        .assert_stderr_contains("mbr: the MBR disk needs at least ")
        .assert_stderr_contains("`image.size` is 1048576 bytes");
    let out = project.output_dir(&kernel);
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|entries| entries.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let images: Vec<Vec<u8>> = (0..2u64)
        .map(|i| {
            let project = Project::new(runner_bin!(), "format = \"mbr\"\n");
            let kernel = project.add_kernel(
                &kernels::path(Kernel::EfiApp, Variant::Pass),
                "target/debug/kernel.efi",
            );
            // A different modification time on each copied kernel: a day apart.
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i * 86_400);
            image_runner_test_support::set_mtime(&kernel, time);
            std::fs::read(build(&project, &kernel)).expect("read the image")
        })
        .collect();
    assert!(images[0] == images[1], "two builds differ");
}
