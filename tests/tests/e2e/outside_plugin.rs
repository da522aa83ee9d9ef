//! A plugin crate written as an outside author would (`tests/outside-plugin`: it depends on
//! `image-runner-core` alone) registers the image format `tree` with its own config section. It
//! is configured from a real `Cargo.toml`, read through the library builder, and boots the UEFI
//! test application under OVMF from the folder it wrote; a typo in its section is reported
//! with file, line and column.

use image_runner_core::serial::Capture;
use image_runner_core::{Builder, Registry, Verdict};
use image_runner_tests::kernels::{self, Kernel, Variant};

fn registry() -> Registry {
    let mut registry = Registry::new();
    image_runner_qemu::register(&mut registry);
    image_runner_ovmf::register(&mut registry);
    image_runner_outside_plugin::register(&mut registry);
    registry
}

fn project(metadata: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("make a temporary project");
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!("[package]\nname = \"kernel\"\nversion = \"0.1.0\"\n\n{metadata}"),
    )
    .expect("write the project's Cargo.toml");
    dir
}

#[test]
fn an_outside_format_is_configured_from_its_section_and_boots_a_kernel() {
    let dir = project(
        "[package.metadata.image-runner]\nformat = \"tree\"\n\n[package.metadata.image-runner.tree]\nfolder = \"esp\"\nnote = \"written by the tree plugin\"\n\n[package.metadata.image-runner.test]\ntimeout = 120\n",
    );
    let registry = registry();
    let capture = Capture::new();
    let session = Builder::new(&registry)
        .project_dir(dir.path())
        .target_dir(dir.path().join("target"))
        .executable(kernels::path(Kernel::EfiApp, Variant::Pass))
        .set("qemu.serial", "\"file\"")
        .test(true)
        .handler(capture.clone())
        .prepare()
        .unwrap();
    let tree = session.context().output_dir.join("esp");
    let result = session.run().unwrap();
    assert_eq!(
        result.outcome.verdict,
        Verdict::Success,
        "{}",
        capture.text()
    );
    assert_eq!(result.exit_code, 0);
    assert!(
        capture
            .text()
            .lines()
            .any(|l| l.trim_end_matches('\r') == kernels::marker(Kernel::EfiApp, Variant::Pass)),
        "serial output lacks the kernel's line:\n{}",
        capture.text()
    );
    // The section reached the plugin: the folder has the configured name and the note.
    assert!(
        tree.join("EFI/BOOT/BOOTX64.EFI").is_file(),
        "{}",
        tree.display()
    );
    assert_eq!(
        std::fs::read_to_string(tree.join("NOTE.TXT")).unwrap(),
        "written by the tree plugin"
    );
}

#[test]
fn a_typo_in_the_outside_section_names_file_line_and_column() {
    let dir = project(
        "[package.metadata.image-runner]\nformat = \"tree\"\n\n[package.metadata.image-runner.tree]\nfoldr = \"esp\"\n",
    );
    let registry = registry();
    let err = Builder::new(&registry)
        .project_dir(dir.path())
        .executable(kernels::path(Kernel::EfiApp, Variant::Pass))
        .prepare()
        .unwrap_err()
        .to_string();
    let manifest = dir.path().join("Cargo.toml");
    assert!(
        err.starts_with(&format!(
            "{}:9:1: unknown field `foldr`",
            manifest.display()
        )),
        "{err}"
    );
    assert!(err.contains("did you mean `folder`?"), "{err}");
}

#[test]
fn a_section_of_a_plugin_that_is_not_loaded_is_an_error_naming_the_loaded_ones() {
    let dir = project("[package.metadata.image-runner.tre]\nfolder = \"esp\"\n");
    let registry = registry();
    let err = Builder::new(&registry)
        .project_dir(dir.path())
        .executable(kernels::path(Kernel::EfiApp, Variant::Pass))
        .prepare()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":5:32: `tre` is neither a shared key"),
        "{err}"
    );
    assert!(
        err.contains("plugins with a section: ovmf, qemu, tree"),
        "{err}"
    );
    assert!(err.contains("did you mean `tree`?"), "{err}");
}
