//! `bootloader = "grub"` on BIOS machines: the multiboot test kernel booted as multiboot1 and
//! multiboot2 from a CD (El Torito), from GPT and MBR disks (boot code installed into sector 0
//! and the core image embedded) and from the hybrid ISO attached as a disk; the failing and
//! hanging kernels; core images made once. Needs GRUB (grub-pc-bin, grub-common), QEMU and
//! gdisk (`scripts/install-deps`).

use std::path::{Path, PathBuf};
use std::process::Command;

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{Project, Run};
use image_runner_tests::runner_bin;

fn project(config: &str) -> Project {
    Project::new(runner_bin!(), &format!("bootloader = \"grub\"\n{config}"))
}

fn test_run(project: &Project, variant: Variant) -> Run {
    let kernel = kernels::path(Kernel::Multiboot, variant);
    project.run(["--test".as_ref(), kernel.as_os_str()], &[])
}

/// Boots the passing kernel with `protocol` and `config`; returns the project for checks.
fn boots(protocol: &str, config: &str) -> Project {
    let project = project(&format!("protocol = \"{protocol}\"\n{config}"));
    test_run(&project, Variant::Pass)
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    project
}

fn image(project: &Project, name: &str) -> PathBuf {
    project
        .output_dir(&kernels::path(Kernel::Multiboot, Variant::Pass))
        .join(name)
}

#[test]
fn multiboot2_from_a_cd() {
    boots("multiboot2", "format = \"iso\"\nboot = \"bios\"\n");
}

#[test]
fn multiboot1_from_a_cd() {
    let project = boots("multiboot1", "boot = \"bios\"\n");
    assert!(image(&project, "image.iso").is_file(), "auto picks an ISO");
}

/// `sgdisk -v` finds the GPT intact after GRUB's boot code went into sector 0.
fn assert_gpt_intact(image: &Path) {
    let out = Command::new("sgdisk")
        .arg("-v")
        .arg(image)
        .output()
        .unwrap_or_else(|e| panic!("could not run sgdisk ({e}); install gdisk"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No problems found"), "{text}");
}

/// GRUB's `boot.img` code is in sector 0 (its error strings) and points past sector 0.
fn assert_boot_code(image: &Path) {
    let bytes = std::fs::read(image).expect("read the image");
    let sector = &bytes[..512];
    assert!(
        sector.windows(5).any(|w| w == b"GRUB "),
        "no GRUB boot code in sector 0"
    );
    let core = u64::from_le_bytes(sector[0x5c..0x64].try_into().expect("8 bytes"));
    assert!(core > 0, "the core sector is not set");
}

#[test]
fn multiboot2_from_a_gpt_disk() {
    let project = boots("multiboot2", "format = \"gpt\"\nboot = \"bios\"\n");
    let disk = image(&project, "image-gpt.img");
    assert_boot_code(&disk);
    assert_gpt_intact(&disk);
}

#[test]
fn multiboot1_from_a_gpt_disk() {
    boots("multiboot1", "format = \"gpt\"\nboot = \"bios\"\n");
}

#[test]
fn multiboot2_from_an_mbr_disk() {
    let project = boots("multiboot2", "format = \"mbr\"\nboot = \"bios\"\n");
    let disk = image(&project, "image-mbr.img");
    assert_boot_code(&disk);
    let bytes = std::fs::read(&disk).expect("read the disk");
    assert_eq!(bytes[446], 0x80, "the partition table stays, active");
}

#[test]
fn multiboot1_from_an_mbr_disk() {
    boots("multiboot1", "format = \"mbr\"\nboot = \"bios\"\n");
}

/// The hybrid ISO of this tiny kernel, attached as a disk (the ISO writer pads hybrid images
/// to 1 MiB, as SeaBIOS cannot read a disk smaller than one cylinder).
const HYBRID: &str = "format = \"iso\"\nboot = \"bios\"\n[qemu]\nattach = \"disk\"\n";

#[test]
fn multiboot2_from_the_hybrid_iso_as_a_disk() {
    let project = boots("multiboot2", HYBRID);
    assert_boot_code(&image(&project, "image.iso"));
}

#[test]
fn multiboot1_from_the_hybrid_iso_as_a_disk() {
    boots("multiboot1", HYBRID);
}

#[test]
fn a_failing_kernel_fails() {
    let project = project("");
    test_run(&project, Variant::Fail)
        .assert_code(1)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Fail));
}

#[test]
fn a_hanging_kernel_times_out() {
    let project = project("[test]\ntimeout = 3\n");
    test_run(&project, Variant::Hang)
        .assert_code(3)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Hang));
}

#[test]
fn core_images_are_made_once() {
    let project = project("");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::Multiboot, Variant::Pass),
        "target/kernel.elf",
    );
    let build = || project.run(["build".as_ref(), "-v".as_ref(), kernel.as_os_str()], &[]);
    let first = build();
    first.assert_code(0);
    first.assert_stderr_contains("GRUB i386-pc-eltorito core image made:");
    let again = build();
    again
        .assert_code(0)
        .assert_stderr_contains("GRUB i386-pc-eltorito core image reused:")
        .assert_stderr_contains("Reusing");
    // A new kernel makes a new image around the same core image.
    std::fs::copy(kernels::path(Kernel::Multiboot, Variant::Fail), &kernel).expect("copy");
    let changed = build();
    changed
        .assert_code(0)
        .assert_stderr_contains("GRUB i386-pc-eltorito core image reused:");
    assert!(!changed.stderr.contains("Reusing"), "{changed}");
    let cached: Vec<_> = std::fs::read_dir(project.output_dir(&kernel).join("grub"))
        .expect("the core image cache")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("eltorito-"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
}

/// A `grub.cfg` template naming the kernel by the executable's name (the kernel is staged at
/// `/boot/kernel`) fails before QEMU starts, saying what the image holds, instead of leaving
/// GRUB in its menu until the timeout; a template naming staged files boots.
#[test]
fn a_template_naming_a_file_the_image_lacks_fails_before_booting() {
    let project = project("format = \"iso\"\nboot = \"bios\"\n[grub]\nconfig = \"grub.cfg\"\n");
    project.write(
        "grub.cfg",
        "{{CONSOLE}}set timeout=0\nmenuentry 'mine' {\n\tmultiboot2 /boot/{{EXECUTABLE_NAME}}\n\tboot\n}\n",
    );
    let run = test_run(&project, Variant::Pass);
    run.assert_code(2)
        .assert_stderr_contains(
            "line 6: `multiboot2 /boot/multiboot-pass.elf`: /boot/multiboot-pass.elf is not in the image",
        )
        .assert_stderr_contains(", /boot/kernel.\n")
        .assert_stderr_contains("{{KERNEL}}");
    assert!(project.qemu_processes().is_empty());

    project.write(
        "grub.cfg",
        "{{CONSOLE}}set timeout=0\nmenuentry 'mine' {\n\tmultiboot2 ($root)/boot/kernel\n\tboot\n}\n",
    );
    test_run(&project, Variant::Pass)
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
}
