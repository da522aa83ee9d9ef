//! Paths with a comma, a space and non-ASCII characters (QEMU splits option values on commas)
//! still boot.

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

#[test]
fn uefi_image_in_a_directory_with_comma_space_and_non_ascii_boots() {
    let project = Project::with_dir_name(runner_bin!(), "my kernel, v2 — ünïcødé", "");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/boot app,x.efi",
    );
    let run = project.run([&kernel], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
    assert!(
        project
            .target_dir()
            .join("image-runner/boot app,x/image.fat")
            .is_file()
    );
}

#[test]
fn direct_kernel_with_comma_space_and_non_ascii_in_its_path_boots() {
    let project = Project::with_dir_name(runner_bin!(), "a, b ∂", "");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::Multiboot, Variant::Pass),
        "target/debug/multi,boot kérnel",
    );
    let run = project.run([&kernel], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
}
