//! `cargo-image-runner migrate` rewrites a configuration written for cargo-image-runner 0.5 in
//! place: the package's and the workspace's `Cargo.toml` metadata and `image-runner.toml`,
//! showing the diff, keeping everything else in the files; `--dry-run` changes nothing.

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

/// A 0.5 configuration as its README wrote it, with comments and an unrelated table around it.
const OLD_MANIFEST: &str = r#"[package]
name = "kernel"
version = "0.1.0"
edition = "2024"

# How the kernel boots.
[package.metadata.image-runner.boot]
type = "bios"

[package.metadata.image-runner.bootloader]
kind = "none"

[package.metadata.image-runner.runner.qemu]
memory = 2048   # RAM in MB
cores = 2
kvm = false
extra_args = ["-no-reboot"]

[package.metadata.image-runner.runner.qemu.serial]
mode = "mon:stdio"

[package.metadata.image-runner.test]
success-exit-code = 33
timeout = 30
extra-args = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]

[package.metadata.image-runner.profiles.slow.test]
timeout = 120

[dependencies]
# not ours
spin = "0.9"
"#;

const OLD_FILE: &str = "verbose = true\n\n[run]\nextra-args = [\"-d\", \"int\"]\n";

fn old_project() -> Project {
    let project = Project::new(runner_bin!(), "");
    project.write("Cargo.toml", OLD_MANIFEST);
    project.write("image-runner.toml", OLD_FILE);
    project
}

fn read(project: &Project, file: &str) -> String {
    std::fs::read_to_string(project.root().join(file)).expect("read a project file")
}

#[test]
fn dry_run_prints_the_diff_and_changes_nothing() {
    let project = old_project();
    let run = project.run(["migrate", "--dry-run"], &[]);
    run.assert_code(0)
        .assert_stderr_contains("Would rewrite")
        .assert_stderr_contains("--dry-run");
    for line in [
        "-[package.metadata.image-runner.boot]",
        "-type = \"bios\"",
        "+[package.metadata.image-runner]",
        "+boot = \"bios\"",
        "+bootloader = \"none\"",
        "-[package.metadata.image-runner.runner.qemu]",
        "+[package.metadata.image-runner.qemu]",
        "+memory = \"2048M\"   # RAM in MB",
        "+accel = \"tcg\"",
        "+args = [\"-no-reboot\"]",
        "+serial = \"stdio\"",
        "-verbose = true",
        "+args = [\"-d\", \"int\"]",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == line),
            "the diff lacks {line:?}:\n{run}"
        );
    }
    assert!(run.stdout.contains("@@ -"), "{run}");
    assert_eq!(read(&project, "Cargo.toml"), OLD_MANIFEST);
    assert_eq!(read(&project, "image-runner.toml"), OLD_FILE);
}

#[test]
fn migrate_rewrites_in_place_keeps_the_rest_and_the_result_boots() {
    let project = old_project();
    let kernel = kernels::path(Kernel::Multiboot, Variant::Pass);
    // Before: refused, with the new spellings named.
    project
        .run(["--test".as_ref(), kernel.as_os_str()], &[])
        .assert_code(2)
        .assert_stderr_contains("cargo-image-runner migrate");

    let run = project.run(["migrate"], &[]);
    run.assert_code(0)
        .assert_stderr_contains("Rewrote")
        .assert_stderr_contains("`verbose`")
        .assert_stderr_contains("`-v`");
    let manifest = read(&project, "Cargo.toml");
    assert_eq!(
        manifest,
        r#"[package]
name = "kernel"
version = "0.1.0"
edition = "2024"

[package.metadata.image-runner]
# How the kernel boots.
boot = "bios"
bootloader = "none"

[package.metadata.image-runner.qemu]
memory = "2048M"   # RAM in MB
cores = 2
accel = "tcg"
args = ["-no-reboot"]
serial = "stdio"

[package.metadata.image-runner.test]
success-exit-code = 33
timeout = 30
args = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]

[package.metadata.image-runner.profile.slow.test]
timeout = 120

[dependencies]
# not ours
spin = "0.9"
"#
    );
    assert_eq!(
        read(&project, "image-runner.toml"),
        "[run]\nargs = [\"-d\", \"int\"]\n"
    );

    // The result loads and boots.
    let run = project.run(["config"], &[]);
    run.assert_code(0);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("qemu.memory = \"2048M\"")),
        "{run}"
    );
    let run = project.run(
        [
            "--print-cmd".as_ref(),
            "--test".as_ref(),
            kernel.as_os_str(),
        ],
        &[],
    );
    run.assert_code(0);
    assert!(run.stdout.contains(" -m 2048M "), "{run}");
    assert!(run.stdout.contains(" -accel tcg "), "{run}");
    project
        .run(["--test".as_ref(), kernel.as_os_str()], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));

    // Nothing is left to do.
    let run = project.run(["migrate"], &[]);
    run.assert_code(0)
        .assert_stderr_contains("Nothing to migrate");
    assert_eq!(read(&project, "Cargo.toml"), manifest);
}

#[test]
fn workspace_metadata_is_migrated_with_the_package() {
    let project = Project::new(runner_bin!(), "[test]\ntimeout = 20\n");
    let workspace = project.scratch().join("Cargo.toml");
    let text = "[workspace]\nmembers = [\"project\"]\n\n[workspace.metadata.image-runner.runner.qemu]\nkvm = true\n";
    std::fs::write(&workspace, text).expect("write the workspace manifest");
    let package = read(&project, "Cargo.toml");
    let run = project.run(["migrate"], &[]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&workspace).expect("read the workspace manifest"),
        "[workspace]\nmembers = [\"project\"]\n\n[workspace.metadata.image-runner.qemu]\naccel = \"auto\"\n"
    );
    assert_eq!(
        read(&project, "Cargo.toml"),
        package,
        "no old spelling in the package"
    );
    project.run(["config"], &[]).assert_code(0);
}

#[test]
fn changed_defaults_are_pointed_out() {
    let project = Project::new(
        runner_bin!(),
        "[bootloader]\nkind = \"limine\"\n[runner.qemu]\nmemory = 512\n",
    );
    let run = project.run(["migrate", "--dry-run"], &[]);
    run.assert_code(0)
        .assert_stderr_contains("add `boot = \"uefi\"` to keep UEFI")
        .assert_stderr_contains("add `format = \"directory\"`");
}
