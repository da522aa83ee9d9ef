//! The UEFI path: the EFI application test kernel on a FAT image, booted by OVMF.

use std::process::Command;

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

#[test]
fn efi_app_on_a_fat_image_boots_under_ovmf() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run([kernels::path(Kernel::EfiApp, Variant::Pass)], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
    let out = project.target_dir().join("image-runner/efi-app-pass");
    assert!(out.join("image.fat").is_file());
    // Each run has its own writable copy of the variable store, never the system template.
    assert!(out.join("uefi-vars.fd").is_file());
}

#[test]
fn build_prints_a_fat_image_that_fsck_accepts() {
    let project = Project::new(
        runner_bin!(),
        "[image]\nfat-type = 16\nlabel = \"KERNEL\"\n",
    );
    let run = project.run(
        [
            "build".into(),
            kernels::path(Kernel::EfiApp, Variant::Pass).into_os_string(),
        ],
        &[],
    );
    run.assert_code(0);
    let image = std::path::PathBuf::from(run.stdout.trim());
    assert!(image.is_file(), "{run}");
    let fsck = Command::new("fsck.fat")
        .args(["-n", "-v"])
        .arg(&image)
        .output()
        .expect("run fsck.fat (install dosfstools)");
    let report = String::from_utf8_lossy(&fsck.stdout);
    assert!(fsck.status.success(), "fsck.fat failed:\n{report}");
    assert!(report.contains("16 bit entries"), "not FAT16:\n{report}");
    let listing = Command::new("mdir")
        .args(["-i"])
        .arg(&image)
        .arg("::/EFI/BOOT")
        .output()
        .expect("run mdir (install mtools)");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("BOOTX64  EFI"), "{listing}");
}

#[test]
fn failing_efi_app_fails_the_test() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        [
            "--test".into(),
            kernels::path(Kernel::EfiApp, Variant::Fail).into_os_string(),
        ],
        &[],
    );
    run.assert_code(1)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Fail));
}
