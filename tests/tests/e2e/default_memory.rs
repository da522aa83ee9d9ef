//! The default guest memory boots real kernels: a distribution's Linux kernel through GRUB on
//! UEFI runs GRUB out of memory at 256 MiB (`error: out of memory.`, then its menu until the
//! timeout) and boots at 1 GiB. QEMU allocates guest memory lazily, so the larger default costs
//! parallel runs nothing.

use std::path::PathBuf;

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

#[test]
fn the_qemu_command_asks_for_one_gibibyte_by_default() {
    let project = Project::new(runner_bin!(), "");
    let kernel = kernels::path(Kernel::Multiboot, Variant::Pass);
    let run = project.run(["--print-cmd".as_ref(), kernel.as_os_str()], &[]);
    run.assert_code(0);
    let words: Vec<&str> = run.stdout.split_whitespace().collect();
    assert!(
        words.windows(2).any(|w| w == ["-m", "1G"]),
        "no `-m 1G` in the default command: {run}"
    );
    let run = project.run(["config".as_ref(), kernel.as_os_str()], &[]);
    run.assert_code(0);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("qemu.memory = \"1G\"") && l.ends_with("# default")),
        "{run}"
    );
}

/// A distribution kernel: `IMAGE_RUNNER_TEST_LINUX` if set, else the newest `/boot/vmlinuz-*`.
fn distribution_kernel() -> PathBuf {
    if let Some(path) = std::env::var_os("IMAGE_RUNNER_TEST_LINUX") {
        return PathBuf::from(path);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    found.sort();
    found.pop().expect(
        "no /boot/vmlinuz-* here: install a distribution kernel (e.g. Debian's linux-image-amd64) or set IMAGE_RUNNER_TEST_LINUX to a bzImage",
    )
}

#[test]
#[ignore = "needs a distribution's Linux kernel (/boot/vmlinuz-*, or IMAGE_RUNNER_TEST_LINUX=<bzImage>); CI machines have none; takes ~10 s"]
fn a_distribution_linux_kernel_boots_through_grub_on_uefi_with_the_defaults() {
    let project = Project::new(
        runner_bin!(),
        "bootloader = \"grub\"\nboot = \"uefi\"\nformat = \"gpt\"\ncmdline = \"console=ttyS0\"\n[test]\ntimeout = 120\nsuccess-pattern = 'Linux version'\nfailure-pattern = 'out of memory'\n[qemu]\nserial = \"file\"\n",
    );
    let kernel = project.add_kernel(&distribution_kernel(), "vmlinuz");
    let run = project.run(["--test".as_ref(), kernel.as_os_str()], &[]);
    run.assert_code(0);
    assert!(
        run.elapsed.as_secs() < 100,
        "took {:.1} s",
        run.elapsed.as_secs_f64()
    );
}
