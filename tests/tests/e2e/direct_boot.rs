//! Direct `-kernel` boots (no bootloader, no image) of the multiboot1 test kernel: verdicts,
//! exit codes, the time limit, and test detection.

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

fn kernel(variant: Variant) -> std::path::PathBuf {
    kernels::path(Kernel::Multiboot, variant)
}

#[test]
fn passing_kernel_boots_and_exits_zero() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run([kernel(Variant::Pass)], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    let log = project
        .output_dir(&kernel(Variant::Pass))
        .join("serial.log");
    let logged = std::fs::read_to_string(&log).expect("serial log written");
    assert!(
        logged.contains(kernels::marker(Kernel::Multiboot, Variant::Pass)),
        "{logged}"
    );
}

#[test]
fn failing_kernel_gives_the_guest_failure_code() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        ["--test".into(), kernel(Variant::Fail).into_os_string()],
        &[],
    );
    run.assert_code(1)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Fail))
        .assert_stderr_contains("0x11")
        .assert_stderr_contains("serial.log");
}

#[test]
fn hanging_kernel_is_stopped_at_the_timeout_and_no_qemu_survives() {
    let project = Project::new(runner_bin!(), "[test]\ntimeout = 2\n");
    // The kernel lives inside the project, so its path marks this test's QEMU processes.
    let hang = project.add_kernel(&kernel(Variant::Hang), "target/debug/hang-kernel");
    let run = project.run(["--test".into(), hang.into_os_string()], &[]);
    run.assert_code(3)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Hang))
        .assert_stderr_contains("timed out after 2 s");
    assert!(
        run.elapsed.as_secs_f64() < 10.0,
        "took too long to stop: {run}"
    );
    assert_eq!(
        project.qemu_processes(),
        Vec::<u32>::new(),
        "QEMU survived the runner"
    );
}

#[test]
fn test_binaries_are_detected_from_their_path() {
    let project = Project::new(runner_bin!(), "[test]\ntimeout = 1\n[run]\ntimeout = 60\n");
    // Where cargo puts test binaries: `deps/<name>-<16 hex digits>`.
    let test_binary = project.add_kernel(
        &kernel(Variant::Hang),
        "target/debug/deps/kernel-0123456789abcdef",
    );
    let run = project.run([test_binary], &[]);
    run.assert_code(3)
        .assert_stderr_contains("timed out after 1 s");
    assert_eq!(project.qemu_processes(), Vec::<u32>::new());
}

#[test]
fn libtest_arguments_are_not_passed_to_qemu() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        [
            "--test".into(),
            kernel(Variant::Pass).into_os_string(),
            "--nocapture".into(),
            "--test-threads=1".into(),
        ],
        &[],
    );
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
}

#[test]
fn print_cmd_shows_the_exact_command_without_running() {
    // The accelerator is fixed: under `auto` it would follow the host's KVM.
    let project = Project::new(
        runner_bin!(),
        "cmdline = \"console=ttyS0 quiet\"\n[qemu]\naccel = \"tcg\"\n",
    );
    let run = project.run(
        ["--print-cmd".into(), kernel(Variant::Hang).into_os_string()],
        &[],
    );
    run.assert_code(0);
    let line = run.stdout.trim();
    assert!(
        line.starts_with("qemu-system-x86_64 -machine q35 -accel tcg "),
        "{line}"
    );
    assert!(line.contains(" -display none "), "{line}");
    assert!(
        line.contains(" -device isa-debug-exit,iobase=0xf4,iosize=0x04 "),
        "{line}"
    );
    assert!(line.ends_with(" -append 'console=ttyS0 quiet'"), "{line}");
    assert!(!run.stdout.contains("KERNEL:"), "the kernel ran: {run}");
}
