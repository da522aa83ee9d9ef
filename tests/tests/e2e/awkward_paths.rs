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
            .join("image-runner/debug/boot app,x.efi/image.fat")
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

/// An executable whose stem is `..` (`...elf`) gets a folder of its own inside
/// `image-runner/`, and `clean` of it removes that folder only (issue 18, item 7: the folder
/// was `image-runner/..`, the target directory itself, and `clean` emptied it).
#[test]
fn a_kernel_named_dot_dot_elf_stays_in_its_folder_and_clean_removes_only_it() {
    let project = Project::new(runner_bin!(), "");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::Multiboot, Variant::Pass),
        "target/debug/...elf",
    );
    let app = project.write("target/debug/app", "another program of the project");
    project
        .run(["--test".as_ref(), kernel.as_os_str()], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    let folder = project.target_dir().join("image-runner/debug/...elf");
    assert!(folder.join("serial.log").is_file(), "{}", folder.display());
    project
        .run(["clean".as_ref(), kernel.as_os_str()], &[])
        .assert_code(0)
        .assert_stderr_contains("Removed");
    assert!(!folder.exists());
    assert!(
        app.is_file(),
        "clean removed another file of the target directory"
    );
    assert!(kernel.is_file(), "clean removed the kernel");
    // Once more: nothing left to remove, and it says so.
    project
        .run(["clean".as_ref(), kernel.as_os_str()], &[])
        .assert_code(0)
        .assert_stderr_contains("Nothing to clean");
}
