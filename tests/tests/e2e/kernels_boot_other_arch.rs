//! Boots the aarch64 and riscv64 test kernels with plain QEMU, without the
//! runner: checks the fixtures themselves and the QEMU setup they need.
//! Needs `qemu-system-aarch64` with AAVMF (`qemu-system-arm`,
//! `qemu-efi-aarch64`) and `qemu-system-riscv64` (`qemu-system-misc`);
//! `scripts/install-deps` installs them. Fails without them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use image_runner_tests::fixture_boot::{assert_fixture, boot_fixture};
use image_runner_tests::kernels::{self, AARCH64_SEMIHOSTING_CONFIG, Kernel, Variant};

const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";
/// Generous: AAVMF takes ~1 s and OpenSBI ~0.1 s under TCG, but CI
/// machines can be slow.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The QEMU command booting `variant` of `kernel`; files go into `scratch`.
fn qemu(kernel: Kernel, variant: Variant, scratch: &Path) -> Command {
    let image = kernels::path(kernel, variant);
    let mut qemu = Command::new(kernel.qemu_program());
    qemu.args(["-machine", "virt", "-m", "256M"]);
    match kernel {
        Kernel::EfiAppAa64 => {
            // The removable-media path on a vvfat disk, and a fresh VARS
            // copy per run (the firmware writes boot entries into it).
            let boot_dir = scratch.join("esp/EFI/BOOT");
            std::fs::create_dir_all(&boot_dir).expect("create the ESP tree");
            std::fs::copy(&image, boot_dir.join("BOOTAA64.EFI")).expect("copy the app");
            let vars = scratch.join("AAVMF_VARS.fd");
            std::fs::copy(AAVMF_VARS, &vars)
                .unwrap_or_else(|e| panic!("{AAVMF_VARS} (install qemu-efi-aarch64): {e}"));
            let escape = |p: &Path| p.display().to_string().replace(',', ",,");
            qemu.args(["-cpu", "max", "-drive"])
                .arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}"
                ))
                .arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    escape(&vars)
                ))
                .arg("-drive")
                .arg(format!(
                    "if=none,id=esp,format=raw,file=fat:rw:{}",
                    escape(&scratch.join("esp"))
                ))
                .args(["-device", "virtio-blk-pci,drive=esp"])
                .args(["-semihosting-config", AARCH64_SEMIHOSTING_CONFIG])
                // Skips AAVMF's 5-second wait for a key before booting.
                .args(["-boot", "menu=on,splash-time=0"]);
        }
        Kernel::Riscv64 => {
            qemu.args(["-bios", "default", "-kernel"]).arg(&image);
        }
        other => panic!("{other:?} is booted by kernels_boot_direct.rs"),
    }
    qemu.args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .args(["-no-reboot", "-nic", "none"]);
    qemu
}

fn assert_boots(kernel: Kernel, variant: Variant) {
    let scratch = tempfile::tempdir().expect("scratch directory");
    let run = boot_fixture(
        qemu(kernel, variant, scratch.path()),
        kernel,
        variant,
        TIMEOUT,
    );
    assert_fixture(&run, kernel, variant);
}

#[test]
fn efi_app_aa64_pass_exits_33() {
    assert_boots(Kernel::EfiAppAa64, Variant::Pass);
}

#[test]
fn efi_app_aa64_fail_exits_35() {
    assert_boots(Kernel::EfiAppAa64, Variant::Fail);
}

#[test]
fn efi_app_aa64_hang_prints_then_keeps_running() {
    assert_boots(Kernel::EfiAppAa64, Variant::Hang);
}

#[test]
fn riscv64_pass_exits_33() {
    assert_boots(Kernel::Riscv64, Variant::Pass);
}

#[test]
fn riscv64_fail_exits_35() {
    assert_boots(Kernel::Riscv64, Variant::Fail);
}

#[test]
fn riscv64_hang_prints_then_keeps_running() {
    assert_boots(Kernel::Riscv64, Variant::Hang);
}
