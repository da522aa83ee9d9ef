//! `bootloader = "grub"` under UEFI (OVMF): the multiboot test kernel booted as multiboot1 and
//! multiboot2 from a CD (the ESP the ISO writer builds from the staged `EFI/` tree) and from a
//! GPT disk's ESP. Needs GRUB (grub-efi-amd64-bin, grub-common), QEMU and OVMF
//! (`scripts/install-deps`). Each boot takes 3–5 s under TCG.

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

fn boots(protocol: &str, format: &str) {
    let project = Project::new(
        runner_bin!(),
        &format!(
            "bootloader = \"grub\"\nboot = \"uefi\"\nformat = \"{format}\"\nprotocol = \"{protocol}\"\n"
        ),
    );
    let kernel = kernels::path(Kernel::Multiboot, Variant::Pass);
    let run = project.run(["--test".as_ref(), kernel.as_os_str()], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    // GRUB found a GOP driver for the multiboot video request (without one it prints
    // "no suitable video mode found" before booting).
    assert!(!run.stdout.contains("no suitable video mode"), "{run}");
}

#[test]
fn multiboot2_from_a_cd() {
    boots("multiboot2", "iso");
}

#[test]
fn multiboot1_from_a_cd() {
    boots("multiboot1", "iso");
}

#[test]
fn multiboot2_from_a_gpt_disk() {
    boots("multiboot2", "gpt");
}

#[test]
fn multiboot1_from_a_gpt_disk() {
    boots("multiboot1", "gpt");
}
