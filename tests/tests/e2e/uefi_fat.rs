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
    let out = project.output_dir(&kernels::path(Kernel::EfiApp, Variant::Pass));
    assert!(out.join("image.fat").is_file());
}

#[test]
fn a_unified_firmware_image_is_preferred_when_installed() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        [
            "--print-cmd".into(),
            kernels::path(Kernel::EfiApp, Variant::Pass).into_os_string(),
        ],
        &[],
    );
    run.assert_code(0);
    assert!(
        run.stdout.contains(" -bios /usr/share/ovmf/OVMF.fd "),
        "{run}"
    );
}

#[test]
fn pflash_runs_get_their_own_vars_copy_warmed_by_the_last_pass() {
    let project = Project::new(
        runner_bin!(),
        "[ovmf]
unified = false
",
    );
    let out = project.output_dir(&kernels::path(Kernel::EfiApp, Variant::Pass));
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let first = project.run([&kernel], &[]);
    first
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
    // Each run writes only its own copy, never the system template.
    let template = std::fs::read("/usr/share/OVMF/OVMF_VARS_4M.fd").expect("Debian's ovmf");
    let copy = std::fs::read(out.join("uefi-vars.fd")).expect("the run's own copy");
    assert_eq!(copy.len(), template.len());
    assert_ne!(
        copy, template,
        "the firmware wrote nothing into the run's copy"
    );
    // The store of that passing run is kept for the next run of the same setup.
    let warm = std::fs::read(out.join("uefi-vars.warm.fd")).expect("warmed store kept");
    assert_eq!(warm, copy);
    let second = project.run([&kernel], &[]);
    second
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
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
