//! Bytes that are not UTF-8 in the environment, the current directory and the kernel's name:
//! never a panic; paths reach QEMU byte for byte; two kernels whose names differ only in such
//! bytes get their own output folders. Needs QEMU and GRUB (`scripts/install-deps`).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{self, Project};
use image_runner_tests::runner_bin;

fn odd(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

fn multiboot_pass() -> PathBuf {
    kernels::path(Kernel::Multiboot, Variant::Pass)
}

#[test]
fn variables_that_are_not_utf8_are_no_obstacle() {
    let project = Project::new(runner_bin!(), "");
    let mut command = project.command_for([OsStr::new("--test"), multiboot_pass().as_os_str()]);
    command
        .env("IMAGE_RUNNER_TEST_ODD", odd(b"caf\xe9"))
        .env(odd(b"ODD_NAME_\xff"), "x")
        .env("PWD", odd(b"/tmp/\xff"));
    runner::run_command(command)
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
}

#[test]
fn a_runner_variable_that_is_not_utf8_is_named_in_the_error() {
    let project = Project::new(runner_bin!(), "");
    let mut command = project.command_for([OsStr::new("--test"), multiboot_pass().as_os_str()]);
    command.env("CARGO_IMAGE_RUNNER_BOOT", odd(b"bi\xffos"));
    runner::run_command(command)
        .assert_code(2)
        .assert_stderr_contains("environment variable CARGO_IMAGE_RUNNER_BOOT is not valid UTF-8");
}

/// A package in a folder whose name is not UTF-8, as cargo runs it: current directory, `PWD`,
/// `CARGO_MANIFEST_DIR` and `CARGO_TARGET_DIR` all there. A direct boot and a GRUB ISO.
#[test]
fn a_package_in_a_folder_whose_name_is_not_utf8_boots() {
    let project = Project::new(runner_bin!(), "");
    let mut dir = project.scratch().as_os_str().to_owned();
    dir.push(odd(b"/pkg-\xff"));
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the package directory");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"kernel\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [package.metadata.image-runner.profile.grub]\nbootloader = \"grub\"\nformat = \"iso\"\n\
         boot = \"bios\"\nprotocol = \"multiboot2\"\n",
    )
    .expect("write Cargo.toml");
    let target = dir.join("target");
    let run = |profile: &[&str]| {
        let mut args: Vec<OsString> = profile.iter().map(OsString::from).collect();
        args.push("--test".into());
        args.push(multiboot_pass().into());
        let mut command = project.command_for(args);
        command
            .current_dir(&dir)
            .env("PWD", &dir)
            .env("CARGO_MANIFEST_DIR", &dir)
            .env("CARGO_TARGET_DIR", &target);
        runner::run_command(command)
    };
    run(&[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    assert!(
        image_runner_core::context::output_dir_for(&target, &multiboot_pass())
            .join("serial.log")
            .is_file(),
        "the output folder is not in the target directory"
    );
    run(&["--profile", "grub"])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    assert!(
        image_runner_core::context::output_dir_for(&target, &multiboot_pass())
            .join("image.iso")
            .is_file()
    );
}

/// Two copies of the kernel, named `k\xff.elf` and `k\xfe.elf`: each boots directly (QEMU's
/// `-kernel` gets the very bytes of its name) from an output folder of its own.
#[test]
fn kernels_whose_names_differ_only_in_bytes_that_are_not_utf8_keep_apart() {
    let project = Project::new(runner_bin!(), "");
    let copy = |name: &[u8]| {
        let mut path = project.root().as_os_str().to_owned();
        path.push("/");
        path.push(OsStr::from_bytes(name));
        let path = PathBuf::from(path);
        std::fs::copy(multiboot_pass(), &path).expect("copy the kernel");
        path
    };
    let ff = copy(b"k\xff.elf");
    let fe = copy(b"k\xfe.elf");
    for kernel in [&ff, &fe] {
        project
            .run([OsStr::new("--test"), kernel.as_os_str()], &[])
            .assert_code(0)
            .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    }
    for (kernel, name) in [(&ff, "k%FF.elf-"), (&fe, "k%FE.elf-")] {
        let output = project.output_dir(kernel);
        let folder = output.file_name().expect("a folder name").to_string_lossy();
        assert!(folder.starts_with(name), "{}", output.display());
        assert!(
            output.join("serial.log").is_file(),
            "no output folder {}",
            output.display()
        );
    }
    // The printed command can be pasted into a shell: the name's bytes as `\xNN`.
    let run = project.run([OsStr::new("--print-cmd"), ff.as_os_str()], &[]);
    run.assert_code(0);
    assert!(run.stdout.contains(r"k\xff.elf'"), "{run}");
    // `clean` finds the folder of that kernel only.
    project
        .run([OsStr::new("clean"), ff.as_os_str()], &[])
        .assert_code(0);
    assert!(!project.output_dir(&ff).exists());
    assert!(project.output_dir(&fe).exists());
}
