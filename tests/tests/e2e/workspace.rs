//! Which workspace's settings apply: the one cargo itself would take the package to belong to.
//! A parent `Cargo.toml` whose `[workspace]` excludes the package, or does not list it, is not
//! its workspace, and its `[workspace.metadata.image-runner]` (a QEMU binary, say) must not
//! apply.

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

/// A project with a parent manifest holding `workspace` and metadata naming a QEMU binary
/// that does not exist.
fn project_under(workspace: &str) -> Project {
    let project = Project::new(runner_bin!(), "");
    std::fs::write(
        project.scratch().join("Cargo.toml"),
        format!(
            "{workspace}\n[workspace.metadata.image-runner.qemu]\nbinary = \"/nonexistent/qemu-from-the-parent\"\n"
        ),
    )
    .expect("write the parent manifest");
    project
}

fn qemu_binary_line(project: &Project) -> String {
    let run = project.run(["config"], &[]);
    run.assert_code(0);
    run.stdout
        .lines()
        .find(|l| l.starts_with("qemu.binary = "))
        .unwrap_or_else(|| panic!("no qemu.binary in:\n{run}"))
        .to_owned()
}

#[test]
fn an_excluding_parent_workspace_does_not_apply() {
    let project = project_under("[workspace]\nmembers = []\nexclude = [\"project\"]\n");
    let line = qemu_binary_line(&project);
    assert!(!line.contains("qemu-from-the-parent"), "{line}");
    project
        .run([kernels::path(Kernel::Multiboot, Variant::Pass)], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
}

#[test]
fn a_parent_workspace_that_does_not_list_the_package_does_not_apply() {
    let project = project_under("[workspace]\nmembers = [\"elsewhere/*\"]\n");
    let line = qemu_binary_line(&project);
    assert!(!line.contains("qemu-from-the-parent"), "{line}");
}

#[test]
fn a_parent_workspace_listing_the_package_applies() {
    let project = project_under("[workspace]\nmembers = [\"proj*\"]\n");
    let line = qemu_binary_line(&project);
    assert!(line.contains("qemu-from-the-parent"), "{line}");
    project
        .run([kernels::path(Kernel::Multiboot, Variant::Pass)], &[])
        .assert_code(2)
        .assert_stderr_contains("qemu-from-the-parent");
}
