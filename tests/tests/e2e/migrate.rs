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

/// Old spellings migrate cannot rewrite (the new place is taken) make every run demand
/// `migrate`: `migrate` names each and why, and fails, instead of "Nothing to migrate".
#[test]
fn what_migrate_cannot_rewrite_is_reported_not_nothing_to_migrate() {
    let project = Project::new(
        runner_bin!(),
        "[qemu]\ncores = 2\n[runner.qemu]\ncores = 4\n[profile.ci.test]\ntimeout = 5\n[profiles.ci.test]\ntimeout = 9\n",
    );
    let kernel = kernels::path(Kernel::Multiboot, Variant::Pass);
    project
        .run([kernel.as_os_str()], &[])
        .assert_code(2)
        .assert_stderr_contains("cargo-image-runner migrate");
    let before = read(&project, "Cargo.toml");
    let manifest = project.root().join("Cargo.toml");
    let run = project.run(["migrate"], &[]);
    run.assert_code(2)
        .assert_stderr_contains(&format!(
            "note: {}: [package.metadata.image-runner] left `[runner] qemu` alone: `[qemu]` is there already and both set `cores`; merge the two by hand",
            manifest.display()
        ))
        .assert_stderr_contains(&format!(
            "note: {}: [package.metadata.image-runner] left `profiles` alone: `[profile]` is there already and both set `ci`; merge the two by hand",
            manifest.display()
        ))
        .assert_stderr_contains(&format!(
            "error: {}: 2 old spellings are left as they were (the notes above say why); fix them by hand, then run `cargo-image-runner migrate` again",
            manifest.display()
        ));
    assert!(!run.stderr.contains("Nothing to migrate"), "{run}");
    assert_eq!(read(&project, "Cargo.toml"), before);

    // `[boot]` holding a key besides `type`: the reason is that key, not a taken place.
    let project = Project::new(runner_bin!(), "[boot]\ntype = \"uefi\"\nfoo = 1\n");
    let run = project.run(["migrate"], &[]);
    run.assert_code(2).assert_stderr_contains(
        "left `[boot] type` alone: `[boot]` also holds `foo`, which migrate does not know where to put, and `boot` becomes a value (`boot = \"uefi\"`); move or remove `foo`, then run migrate again",
    );
    assert!(!run.stderr.contains("is set already"), "{run}");
}

#[test]
fn crlf_files_keep_their_line_endings() {
    let project = Project::new(runner_bin!(), "");
    let text = "[package]\r\nname = \"kernel\"\r\nversion = \"0.1.0\"\r\nedition = \"2024\"\r\n\r\n[package.metadata.image-runner.runner.qemu]\r\nkvm = false\r\ncores = 2\r\n";
    project.write("Cargo.toml", text);
    project.run(["migrate"], &[]).assert_code(0);
    assert_eq!(
        read(&project, "Cargo.toml"),
        "[package]\r\nname = \"kernel\"\r\nversion = \"0.1.0\"\r\nedition = \"2024\"\r\n\r\n[package.metadata.image-runner.qemu]\r\naccel = \"tcg\"\r\ncores = 2\r\n"
    );
    project.run(["config"], &[]).assert_code(0);
}

#[cfg(unix)]
#[test]
fn a_hard_linked_manifest_stays_one_file_and_a_read_only_one_is_refused() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let project = Project::new(runner_bin!(), "[runner.qemu]\nkvm = false\n");
    let manifest = project.root().join("Cargo.toml");
    let other = project.scratch().join("Cargo-link.toml");
    std::fs::hard_link(&manifest, &other).expect("hard-link the manifest");
    let inode = std::fs::metadata(&manifest).expect("metadata").ino();
    project.run(["migrate"], &[]).assert_code(0);
    let migrated = read(&project, "Cargo.toml");
    assert!(migrated.contains("accel = \"tcg\""), "{migrated}");
    assert_eq!(std::fs::read_to_string(&other).expect("read"), migrated);
    let meta = std::fs::metadata(&manifest).expect("metadata");
    assert_eq!((meta.ino(), meta.nlink()), (inode, 2));

    let project = Project::new(runner_bin!(), "[runner.qemu]\nkvm = false\n");
    let manifest = project.root().join("Cargo.toml");
    let before = read(&project, "Cargo.toml");
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o444))
        .expect("make the manifest read-only");
    let run = project.run(["migrate"], &[]);
    run.assert_code(2).assert_stderr_contains(&format!(
        "error: {} is read-only, and migrate does not replace read-only files; make it writable (`chmod u+w`) and run migrate again (`migrate --dry-run` shows the changes without writing)",
        manifest.display()
    ));
    assert!(!run.stderr.contains("Rewrote"), "{run}");
    assert_eq!(read(&project, "Cargo.toml"), before);
    let mode = std::fs::metadata(&manifest)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444);
}

/// `memory = -1` is refused as it is; migrate must not turn it into `"-1M"`, which the config
/// takes and QEMU then fails on.
#[test]
fn an_invalid_old_value_is_left_with_a_note_not_converted() {
    let project = Project::new(runner_bin!(), "[runner.qemu]\nmemory = -1\n");
    let run = project.run(["migrate"], &[]);
    run.assert_code(2)
        .assert_stderr_contains(
            "left `[runner.qemu] memory` alone: -1 is refused at `[qemu] memory` as it is (",
        )
        .assert_stderr_contains("-1 megabytes of memory");
    let migrated = read(&project, "Cargo.toml");
    assert!(
        migrated.contains("[package.metadata.image-runner.qemu]\nmemory = -1\n"),
        "{migrated}"
    );
    assert!(!migrated.contains("-1M"), "{migrated}");
}
