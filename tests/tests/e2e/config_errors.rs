//! Bad config is reported with file:line:column and a hint, and the runner exits with the
//! runner-error code before anything boots.

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

fn kernel() -> std::path::PathBuf {
    kernels::path(Kernel::Multiboot, Variant::Pass)
}

#[test]
fn unknown_key_names_file_line_column_and_the_nearest_key() {
    let project = Project::new(runner_bin!(), "[test]\ntimout = 5\n");
    let manifest = project.root().join("Cargo.toml");
    let run = project.run([kernel()], &[]);
    run.assert_code(2)
        // Line 8: after the 4-line [package] header, a blank line, the metadata header, [test].
        .assert_stderr_contains(&format!(
            "{}:8:1: unknown field `timout`",
            manifest.display()
        ))
        .assert_stderr_contains("did you mean `timeout`?");
    assert!(
        !run.stdout.contains("KERNEL:"),
        "booted despite the error: {run}"
    );
}

#[test]
fn wrong_type_names_file_line_column() {
    let project = Project::new(runner_bin!(), "");
    let file = project.write(
        "image-runner.toml",
        "[qemu]\nmemory = \"1G\"\ncores = \"two\"\n",
    );
    let run = project.run([kernel()], &[]);
    run.assert_code(2).assert_stderr_contains(&format!(
        "{}:3:9: invalid type: string \"two\"",
        file.display()
    ));
}

#[test]
fn bad_toml_names_file_line_column() {
    let project = Project::new(runner_bin!(), "");
    let file = project.write("image-runner.toml", "boot = \"uefi\"\n[qemu\n");
    let run = project.run(["config"], &[]);
    run.assert_code(2)
        .assert_stderr_contains(&format!("{}:2:", file.display()));
}

#[test]
fn environment_overrides_are_checked_and_named() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run([kernel()], &[("CARGO_IMAGE_RUNNER_QEMU_CORES", "lots")]);
    run.assert_code(2)
        .assert_stderr_contains("environment variable CARGO_IMAGE_RUNNER_QEMU_CORES");
}

#[test]
fn extra_files_may_not_leave_the_image_root() {
    let project = Project::new(
        runner_bin!(),
        "boot = \"uefi\"\n[extra-files]\n\"../../etc/evil\" = \"Cargo.toml\"\n",
    );
    let run = project.run([kernels::path(Kernel::EfiApp, Variant::Pass)], &[]);
    run.assert_code(2)
        .assert_stderr_contains("../../etc/evil")
        .assert_stderr_contains("leaves the image root");
}

#[test]
fn config_shows_each_value_and_its_source() {
    let project = Project::new(
        runner_bin!(),
        "[qemu]\nmemory = \"1G\"\n[profile.ci.test]\ntimeout = 9\n",
    );
    project.write("image-runner.toml", "[qemu]\ncores = 2\n");
    let run = project.run(
        ["config", "--profile", "ci"],
        &[("CARGO_IMAGE_RUNNER_QEMU_ACCEL", "kvm")],
    );
    run.assert_code(0);
    let line = |key: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{}", run.stdout))
            .to_owned()
    };
    assert!(
        line("qemu.memory").contains("\"1G\"")
            && line("qemu.memory").contains("[package.metadata.image-runner]")
    );
    assert!(line("qemu.cores").contains("image-runner.toml"));
    assert!(line("test.timeout").contains("= 9") && line("test.timeout").contains("profile `ci`"));
    assert!(line("qemu.accel").contains("CARGO_IMAGE_RUNNER_QEMU_ACCEL"));
    assert!(line("qemu.gui").ends_with("# default"));
}

/// A user variable named like one the runner defines would be silently replaced (or replace the
/// runner's) in templates: an error naming the variable, the file it is set in and whose name
/// it takes.
#[test]
fn user_variables_may_not_shadow_built_in_ones() {
    let project = Project::new(runner_bin!(), "variables = { OUTPUT_DIR = \"out\" }\n");
    let manifest = project.root().join("Cargo.toml");
    let run = project.run([kernel()], &[]);
    run.assert_code(2)
        .assert_stderr_contains("`variables.OUTPUT_DIR`")
        .assert_stderr_contains(&manifest.display().to_string())
        .assert_stderr_contains("{{OUTPUT_DIR}}");
    assert!(project.qemu_processes().is_empty());

    // Names the selected bootloader gives its own templates, from another file.
    let project = Project::new(runner_bin!(), "bootloader = \"limine\"\n");
    let file = project.write(
        "image-runner.toml",
        "[variables]\nKERNEL = \"boot():/boot/mine\"\n",
    );
    let run = project.run([kernel()], &[]);
    run.assert_code(2)
        .assert_stderr_contains("`variables.KERNEL`")
        .assert_stderr_contains(&file.display().to_string())
        .assert_stderr_contains("limine");
    // `config` shows the same error.
    project.run(["config"], &[]).assert_code(2);

    // Other names are fine, and so are a plugin's names when that plugin is not in use.
    let project = Project::new(runner_bin!(), "variables = { MY_KERNEL = \"x\" }\n");
    project.run(["config"], &[]).assert_code(0);
    let project = Project::new(runner_bin!(), "variables = { KERNEL = \"x\" }\n");
    project.run(["config"], &[]).assert_code(0);
}

#[test]
fn an_extra_file_may_not_replace_what_the_bootloader_staged() {
    // GRUB stages the kernel at `boot/kernel`.
    let project = Project::new(
        runner_bin!(),
        "bootloader = \"grub\"\n[extra-files]\n\"/boot/kernel\" = \"other.elf\"\n",
    );
    project.write("other.elf", "not the kernel");
    let kernel = kernel();
    let run = project.run([&kernel], &[]);
    run.assert_code(2)
        .assert_stderr_contains("`extra-files` entry \"/boot/kernel\"")
        .assert_stderr_contains("/boot/kernel")
        .assert_stderr_contains(&project.root().join("other.elf").display().to_string())
        .assert_stderr_contains(&format!("`{}`", kernel.display()))
        .assert_stderr_contains("bootloader `grub`");
    assert!(!run.stdout.contains("KERNEL:"), "booted anyway: {run}");

    // `none` puts a UEFI application at `EFI/BOOT/BOOTX64.EFI`.
    let project = Project::new(
        runner_bin!(),
        "[extra-files]\n\"EFI/BOOT/BOOTX64.EFI\" = \"shell.efi\"\n",
    );
    project.write("shell.efi", "another application");
    let app = kernels::path(Kernel::EfiApp, Variant::Pass);
    project
        .run([&app], &[])
        .assert_code(2)
        .assert_stderr_contains("would replace `/EFI/BOOT/BOOTX64.EFI`")
        .assert_stderr_contains(&format!("`{}`", app.display()))
        .assert_stderr_contains("shell.efi");
}

#[test]
fn two_extra_files_at_one_image_path_are_an_error() {
    let project = Project::new(
        runner_bin!(),
        "[extra-files]\n\"boot/a.txt\" = \"one.txt\"\n\"/boot/./a.txt\" = \"two.txt\"\n",
    );
    project.write("one.txt", "1");
    project.write("two.txt", "2");
    project
        .run([kernels::path(Kernel::EfiApp, Variant::Pass)], &[])
        .assert_code(2)
        .assert_stderr_contains("\"/boot/./a.txt\"")
        .assert_stderr_contains("\"boot/a.txt\"")
        .assert_stderr_contains("`/boot/a.txt`");
}

#[test]
fn without_a_home_the_cache_is_a_private_folder() {
    use std::os::unix::fs::MetadataExt;
    let project = Project::new(runner_bin!(), "");
    let tmp = project.scratch().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let uid = std::fs::metadata(&tmp).unwrap().uid();
    let expected = tmp.join(format!("cargo-image-runner-{uid}"));
    let run = project.run_without_vars(
        ["limine", "list"],
        &[("TMPDIR", tmp.to_str().unwrap())],
        &["HOME", "XDG_CACHE_HOME", "CARGO_IMAGE_RUNNER_CACHE"],
    );
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(&expected.join("limine").display().to_string()),
        "{run}"
    );
    let meta = std::fs::symlink_metadata(&expected).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o700);

    // A folder of that name that is not a real folder of ours is refused.
    std::fs::remove_dir(&expected).unwrap();
    std::os::unix::fs::symlink(project.root(), &expected).unwrap();
    project
        .run_without_vars(
            ["limine", "list"],
            &[("TMPDIR", tmp.to_str().unwrap())],
            &["HOME", "XDG_CACHE_HOME", "CARGO_IMAGE_RUNNER_CACHE"],
        )
        .assert_code(2)
        .assert_stderr_contains(&expected.display().to_string())
        .assert_stderr_contains("CARGO_IMAGE_RUNNER_CACHE");
}

#[test]
fn shared_options_before_the_subcommand_apply_to_it() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(["-v".as_ref(), "build".as_ref(), kernel().as_os_str()], &[]);
    run.assert_code(0);
    assert_eq!(run.stdout.trim(), kernel().display().to_string(), "{run}");
    // -v took effect: the runner says what it prepares.
    run.assert_stderr_contains("Preparing");
    let run = project.run(["--set", "qemu.memory=2G", "config"], &[]);
    run.assert_code(0);
    assert!(run.stdout.contains("qemu.memory = \"2G\""), "{run}");
}

/// A crash of the runner is its own exit code (70), never libtest's 101 ("tests failed") nor a
/// verdict's, and asks for a bug report (issue 18, item 15).
#[test]
fn a_runner_panic_exits_70_and_asks_for_a_bug_report() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run([kernel()], &[("CARGO_IMAGE_RUNNER_DEBUG_PANIC", "1")]);
    run.assert_code(70)
        .assert_stderr_contains("panicked")
        .assert_stderr_contains("this is a bug in the runner, not a verdict on your kernel");
    assert!(!run.stdout.contains("KERNEL:"), "booted: {run}");
}
