//! Boots the Multiboot test kernel with QEMU's own `-kernel` loader, without
//! the runner: checks the fixtures themselves and the QEMU setup they need.
//! Needs `qemu-system-x86_64` (`.ci/run` installs it); fails without it.

use std::process::Command;
use std::time::Duration;

use image_runner_tests::fixture_boot::{assert_fixture, boot_fixture};
use image_runner_tests::kernels::{self, ISA_DEBUG_EXIT_DEVICE, Kernel, Variant};

/// Generous: the boot takes ~0.2 s under TCG, but CI machines can be slow.
const TIMEOUT: Duration = Duration::from_secs(30);

fn boots(variant: Variant) {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-machine", "q35", "-kernel"])
        .arg(kernels::path(Kernel::Multiboot, variant))
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .args([
            "-no-reboot",
            "-nic",
            "none",
            "-device",
            ISA_DEBUG_EXIT_DEVICE,
        ]);
    let run = boot_fixture(qemu, Kernel::Multiboot, variant, TIMEOUT);
    assert_fixture(&run, Kernel::Multiboot, variant);
}

#[test]
fn multiboot_pass_exits_33() {
    boots(Variant::Pass);
}

#[test]
fn multiboot_fail_exits_35() {
    boots(Variant::Fail);
}

#[test]
fn multiboot_hang_prints_then_keeps_running() {
    boots(Variant::Hang);
}
