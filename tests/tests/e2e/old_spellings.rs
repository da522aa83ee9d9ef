//! Configuration written for cargo-image-runner 0.5 (the crate this project replaces): every
//! old key and environment variable is an error that names its new spelling and points at
//! `cargo-image-runner migrate`; `qemu.memory` as an integer (0.5's MB) is accepted; values
//! from `--set` and the environment that look like numbers are strings for string keys.

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{Project, Run};
use image_runner_tests::runner_bin;

fn kernel() -> std::path::PathBuf {
    kernels::path(Kernel::Multiboot, Variant::Pass)
}

/// `config` on a project whose `[package.metadata.image-runner]` holds `metadata`.
fn config(metadata: &str, env: &[(&str, &str)]) -> Run {
    let project = Project::new(runner_bin!(), metadata);
    project.run(["config".as_ref(), kernel().as_os_str()], env)
}

/// The run failed with a config error that holds every piece of `expected`.
#[track_caller]
fn refused(run: &Run, expected: &[&str]) {
    run.assert_code(2);
    for text in expected {
        run.assert_stderr_contains(text);
    }
}

const MIGRATE_HINT: &str = "cargo-image-runner migrate";

#[test]
fn boot_type() {
    let run = config("[boot]\ntype = \"uefi\"\n", &[]);
    refused(
        &run,
        &[
            "Cargo.toml:8:1: `[boot] type` is cargo-image-runner 0.5's spelling",
            "write `boot = \"uefi\"`",
            MIGRATE_HINT,
        ],
    );
}

#[test]
fn bootloader_kind_and_its_sections() {
    let run = config(
        "[bootloader]\nkind = \"limine\"\nconfig-file = \"limine.conf\"\n[bootloader.limine]\nversion = \"v8.x-binary\"\n",
        &[],
    );
    refused(
        &run,
        &[
            "`[bootloader] kind` is cargo-image-runner 0.5's spelling",
            "write `bootloader = \"limine\"`",
            "`[bootloader] config-file`",
            "write `[limine] config = \"limine.conf\"`",
            "`[bootloader.limine]`",
            "the section is `[limine]` now",
        ],
    );
    let run = config("[bootloader.grub]\nmodules = [\"echo\"]\n", &[]);
    refused(
        &run,
        &[
            "`[bootloader.grub] modules`",
            "`[grub] extra-modules = [\"echo\"]`",
        ],
    );
}

#[test]
fn image_keys() {
    let run = config(
        "[image]\nformat = \"iso\"\noutput = \"os.iso\"\nvolume_label = \"MYOS\"\n",
        &[],
    );
    refused(
        &run,
        &[
            "`[image] format`",
            "write `format = \"iso\"`",
            "`[image] output`",
            "image-runner/<executable>/",
            "`[image] volume_label`",
            "write `[image] label = \"MYOS\"`",
        ],
    );
}

#[test]
fn runner_qemu_keys() {
    let run = config(
        "[runner]\nkind = \"qemu\"\n[runner.qemu]\nmemory = 2048\nkvm = false\nextra_args = [\"-s\"]\n",
        &[],
    );
    refused(
        &run,
        &[
            "`[runner] kind`",
            "write `runner = \"qemu\"`",
            "`[runner.qemu]`",
            "the section is `[qemu]` now",
            "`[runner.qemu] kvm`",
            "write `[qemu] accel = \"tcg\"`",
            "`[runner.qemu] extra_args`",
            "write `[qemu] args = [\"-s\"]`",
        ],
    );
    assert!(
        !run.stderr.contains("memory"),
        "an integer memory is accepted: {run}"
    );
}

#[test]
fn qemu_keys_already_under_the_new_section() {
    let run = config("[qemu]\nkvm = true\n\"extra-args\" = [\"-s\"]\n", &[]);
    refused(
        &run,
        &[
            "Cargo.toml:8:1: `[qemu] kvm`",
            "write `[qemu] accel = \"auto\"`",
            "`[qemu] extra-args`",
            "write `[qemu] args = [\"-s\"]`",
        ],
    );
    let run = config("[qemu.serial]\nmode = \"mon:stdio\"\n", &[]);
    refused(
        &run,
        &["`[qemu] serial`", "write `[qemu] serial = \"stdio\"`"],
    );
    let run = config("[qemu]\nserial = \"mon:stdio\"\n", &[]);
    refused(
        &run,
        &["`[qemu] serial`", "write `[qemu] serial = \"stdio\"`"],
    );
}

#[test]
fn test_and_run_keys() {
    let run = config(
        "[test]\nextra-args = [\"-s\"]\n[run]\nextra-args = [\"-S\"]\ngui = true\n",
        &[],
    );
    refused(
        &run,
        &[
            "`[test] extra-args`",
            "write `[test] args = [\"-s\"]`",
            "`[run] extra-args`",
            "write `[run] args = [\"-S\"]`",
            "`[run] gui`",
            "write `[qemu] gui = true`",
        ],
    );
}

#[test]
fn verbose() {
    let run = config("verbose = true\n", &[]);
    refused(
        &run,
        &["`verbose` is cargo-image-runner 0.5's spelling", "`-v`"],
    );
}

#[test]
fn profiles_and_the_keys_inside_them() {
    let run = config(
        "[profiles.ci.runner.qemu]\nkvm = false\n[profiles.ci.boot]\ntype = \"bios\"\n",
        &[],
    );
    refused(
        &run,
        &[
            "`[profiles]`",
            "`[profile]`",
            "`[profiles.ci.runner.qemu] kvm`",
            "write `[profile.ci.qemu] accel = \"tcg\"`",
            "`[profiles.ci.boot] type`",
            "write `[profile.ci] boot = \"bios\"`",
        ],
    );
    // Old keys inside a profile spelled the new way are found too.
    let run = config("[profile.ci.test]\nextra-args = []\n", &[]);
    refused(
        &run,
        &[
            "`[profile.ci.test] extra-args`",
            "`[profile.ci.test] args = []`",
        ],
    );
}

#[test]
fn in_image_runner_toml_too() {
    let project = Project::new(runner_bin!(), "");
    let file = project.write("image-runner.toml", "\n[boot]\ntype = \"bios\"\n");
    let run = project.run(["config".as_ref(), kernel().as_os_str()], &[]);
    refused(
        &run,
        &[
            &format!("{}:3:1: `[boot] type`", file.display()),
            "write `boot = \"bios\"`",
        ],
    );
}

#[test]
fn set_with_an_old_key() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        [
            "config".as_ref(),
            "--set".as_ref(),
            "boot.type=uefi".as_ref(),
            kernel().as_os_str(),
        ],
        &[],
    );
    refused(&run, &["`--set boot.type=uefi`", "write `boot = \"uefi\"`"]);
}

#[test]
fn environment_variables() {
    for (name, value, expected) in [
        (
            "CARGO_IMAGE_RUNNER_BOOT_TYPE",
            "uefi",
            "use CARGO_IMAGE_RUNNER_BOOT=uefi",
        ),
        (
            "CARGO_IMAGE_RUNNER_KVM",
            "0",
            "use CARGO_IMAGE_RUNNER_QEMU_ACCEL=tcg",
        ),
        (
            "CARGO_IMAGE_RUNNER_KVM",
            "yes",
            "use CARGO_IMAGE_RUNNER_QEMU_ACCEL=auto",
        ),
        (
            "CARGO_IMAGE_RUNNER_SERIAL_MODE",
            "mon:stdio",
            "use CARGO_IMAGE_RUNNER_QEMU_SERIAL=stdio",
        ),
        ("CARGO_IMAGE_RUNNER_VERBOSE", "1", "`-v`"),
        (
            "CARGO_IMAGE_RUNNER_VAR_TIMEOUT",
            "10",
            "use CARGO_IMAGE_RUNNER_VARIABLES_TIMEOUT=10",
        ),
    ] {
        let run = config("", &[(name, value)]);
        refused(
            &run,
            &[
                &format!("environment variable {name} is cargo-image-runner 0.5's"),
                expected,
            ],
        );
    }
}

#[test]
fn variables_from_the_environment_keep_their_name() {
    let run = config(
        "cmdline = \"timeout={{TIMEOUT}}\"\n",
        &[("CARGO_IMAGE_RUNNER_VARIABLES_TIMEOUT", "10")],
    );
    run.assert_code(0);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("cmdline = \"timeout=10\"")),
        "{run}"
    );
}

#[test]
fn memory_as_an_integer_is_megabytes() {
    let project = Project::new(runner_bin!(), "[qemu]\nmemory = 2048\n");
    let run = project.run(["--print-cmd".as_ref(), kernel().as_os_str()], &[]);
    run.assert_code(0);
    assert!(run.stdout.contains(" -m 2048M "), "{run}");
    let run = project.run(
        ["--print-cmd".as_ref(), kernel().as_os_str()],
        &[("CARGO_IMAGE_RUNNER_QEMU_MEMORY", "512")],
    );
    run.assert_code(0);
    assert!(run.stdout.contains(" -m 512M "), "{run}");
    let run = config("[qemu]\nmemory = -1\n", &[]);
    refused(&run, &["Cargo.toml:8:10:", "megabytes"]);
}

#[test]
fn string_keys_take_values_that_look_like_numbers() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        [
            "--print-cmd".as_ref(),
            "--set".as_ref(),
            "cmdline=5".as_ref(),
            kernel().as_os_str(),
        ],
        &[("CARGO_IMAGE_RUNNER_QEMU_MACHINE", "1")],
    );
    run.assert_code(0);
    assert!(run.stdout.trim_end().ends_with(" -append 5"), "{run}");
    assert!(run.stdout.contains(" -machine 1 "), "{run}");
    // A number for a number key is still a number, and a wrong type still an error.
    let run = project.run(
        [
            "config".as_ref(),
            "--set".as_ref(),
            "qemu.cores=two".as_ref(),
            kernel().as_os_str(),
        ],
        &[],
    );
    refused(&run, &["`--set qemu.cores=two`", "invalid type"]);
}
