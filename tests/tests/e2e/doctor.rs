//! `doctor` reports what the plugins need on this host, and fails when something essential is
//! missing.

use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

#[test]
fn doctor_finds_qemu_and_firmware_here() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(["doctor"], &[]);
    run.assert_code(0);
    for subject in [
        "qemu-system-x86_64: QEMU emulator version",
        "UEFI firmware for x86_64:",
        "accelerator for x86_64: auto: ",
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(subject)),
            "no ok line for {subject:?}:\n{run}"
        );
    }
}

#[test]
fn doctor_says_what_to_install_when_qemu_is_missing() {
    let project = Project::new(runner_bin!(), "");
    // A PATH without QEMU (the runner itself is started by its full path).
    let empty = project.scratch().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let run = project.run(["doctor"], &[("PATH", empty.to_str().unwrap())]);
    run.assert_code(2);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("missing")
                && l.contains("qemu-system-x86")
                && l.contains("install")),
        "{run}"
    );
}
