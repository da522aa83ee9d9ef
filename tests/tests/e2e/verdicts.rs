//! Honest verdicts, with real QEMU: a bootloader or firmware that gives up ends the run at once
//! (exit 4) with its own message; a reset is told apart from a power-off in normal runs; a
//! success pattern that never appeared is no pass; QEMU's own failures are quoted by their
//! error line; the runner's own stop of QEMU leaves no noise; absurd limits and a full disk
//! are handled; patterns of both modes are checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{Project, Run};
use image_runner_tests::runner_bin;

fn multiboot(variant: Variant) -> PathBuf {
    kernels::path(Kernel::Multiboot, variant)
}

/// Runs `kernel` as a test (`--test`) or a normal run, with extra arguments before it.
fn run(project: &Project, test: bool, extra: &[&str], kernel: &Path) -> Run {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if test {
        args.push("--test".into());
    }
    args.extend(extra.iter().map(Into::into));
    args.push(kernel.into());
    project.run(args, &[])
}

/// A "ready image" the runner boots as it is: an ISO 9660 volume with no boot record, so
/// neither the BIOS nor UEFI firmware finds anything to boot on it.
fn nothing_bootable(project: &Project) -> PathBuf {
    let mut iso = vec![0u8; 64 * 1024];
    // Primary volume descriptor at sector 16, then the set terminator.
    iso[0x8000..0x8007].copy_from_slice(b"\x01CD001\x01");
    iso[0x8800..0x8807].copy_from_slice(b"\xffCD001\x01");
    let path = project.root().join("target/debug/empty.iso");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create the target folder");
    std::fs::write(&path, iso).expect("write the image");
    path
}

// ---- 2. The bootloader or the firmware gives up ------------------------------------------

/// A `grub.cfg` template naming a kernel that is not there (through a variable, so the check of
/// template paths before the build lets it pass): GRUB prints its errors, waits 10 s for a key,
/// says it failed to boot both entries, waits again and shows its menu.
#[test]
fn grub_giving_up_ends_the_run_at_once() {
    let project = Project::new(
        runner_bin!(),
        "bootloader = \"grub\"\n[grub]\nconfig = \"grub.cfg.in\"\n[test]\ntimeout = 90\n",
    );
    project.write(
        "grub.cfg.in",
        "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\nset timeout=0\nset k=/boot/missing\nmenuentry \"missing\" {\n\tmultiboot2 $k\n}\n",
    );
    // The image (and GRUB's core image) built first: only the boot is timed.
    let kernel = multiboot(Variant::Pass);
    project
        .run(
            ["build".as_ref(), "--test".as_ref(), kernel.as_os_str()],
            &[],
        )
        .assert_code(0);
    let run = run(&project, true, &[], &kernel);
    run.assert_code(4)
        .assert_stderr_contains("GRUB")
        .assert_stderr_contains("error: file `/boot/missing' not found.");
    // Less than GRUB's own 10 s wait for a key: the runner did not sit through it (the boot
    // to GRUB's error takes about 1 s here; the margin is for a loaded machine).
    assert!(run.elapsed < Duration::from_secs(9), "not at once: {run}");
    assert_eq!(project.qemu_processes(), Vec::<u32>::new());
}

/// A `grub.cfg` template with a word longer than GRUB's parser takes: GRUB prints `fatal
/// error: token too large, exceeds YYLMAX`, `Aborted. Press any key to exit.` and spins; the
/// run ends at once as a give-up (issue 18, item 10: it ran into its time limit).
#[test]
fn grub_aborting_on_a_too_long_config_word_ends_the_run_at_once() {
    let project = Project::new(
        runner_bin!(),
        "bootloader = \"grub\"\nboot = \"bios\"\n[grub]\nconfig = \"grub.cfg.in\"\n[test]\ntimeout = 90\n",
    );
    project.write(
        "grub.cfg.in",
        &format!(
            "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\nset timeout=0\nmenuentry \"k\" {{\n\tmultiboot2 /boot/kernel {}\n\tboot\n}}\n",
            "x".repeat(9000)
        ),
    );
    let run = run(&project, true, &[], &multiboot(Variant::Pass));
    run.assert_code(4)
        .assert_stderr_contains("GRUB aborted: fatal error: token too large, exceeds YYLMAX");
    // Far below the 90 s limit (the boot takes about a second here).
    assert!(run.elapsed < Duration::from_secs(60), "not at once: {run}");
    assert_eq!(project.qemu_processes(), Vec::<u32>::new());
}

#[test]
fn seabios_finding_nothing_to_boot_ends_the_run_at_once() {
    let project = Project::new(runner_bin!(), "[test]\ntimeout = 90\n");
    let image = nothing_bootable(&project);
    let run = run(&project, true, &[], &image);
    run.assert_code(4)
        .assert_stderr_contains("No bootable device.");
    assert!(run.elapsed < Duration::from_secs(20), "not at once: {run}");
}

#[test]
fn ovmf_finding_nothing_to_boot_ends_the_run_at_once() {
    let project = Project::new(runner_bin!(), "boot = \"uefi\"\n[test]\ntimeout = 120\n");
    let image = nothing_bootable(&project);
    let run = run(&project, true, &[], &image);
    run.assert_code(4)
        .assert_stderr_contains("EFI Internal Shell");
    // OVMF takes 3-7 s to get there under TCG; its shell would wait for ever.
    assert!(run.elapsed < Duration::from_secs(60), "not at once: {run}");
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A project booting through a real Limine release (`LIMINE_REPO`, `LIMINE_VERSION` as in
/// `limine_real.rs`), with `config` among the shared keys and `limine` in its section.
fn limine_project(config: &str, limine: &str) -> Project {
    let repo = std::env::var("LIMINE_REPO")
        .expect("LIMINE_REPO: a path or URL of a Limine repository with its binary branches");
    let version = std::env::var("LIMINE_VERSION").unwrap_or_else(|_| "v8.x-binary".into());
    Project::new(
        runner_bin!(),
        &format!(
            "bootloader = \"limine\"\n{config}\n[test]\ntimeout = 90\n[limine]\ngit = {}\nversion = {}\n{limine}\n",
            toml_string(&repo),
            toml_string(&version)
        ),
    )
}

/// Builds the image first (fetching Limine), then times the boot of the multiboot kernel alone.
fn limine_boot(project: &Project) -> Run {
    let kernel = multiboot(Variant::Pass);
    project
        .run(
            ["build".as_ref(), "--test".as_ref(), kernel.as_os_str()],
            &[],
        )
        .assert_code(0);
    run(project, true, &[], &kernel)
}

#[test]
#[ignore = "needs a real Limine binary repository: set LIMINE_REPO"]
fn a_limine_panic_ends_the_run_at_once() {
    let project = limine_project("", "config = \"limine.conf.in\"");
    project.write(
        "limine.conf.in",
        // Through Limine's own `${ARCH}` macro, so the check of template paths before the build
        // (which cannot know every macro) lets it pass.
        "timeout: 0\nserial: yes\n\n/broken\n    protocol: multiboot2\n    kernel_path: boot():/boot/${ARCH}-missing\n",
    );
    let run = limine_boot(&project);
    run.assert_code(4).assert_stderr_contains(
        "PANIC: multiboot2: Failed to open kernel with path `boot():/boot/",
    );
    assert!(run.elapsed < Duration::from_secs(30), "not at once: {run}");
}

/// Under UEFI Limine draws on the firmware's console: every character comes with a cursor
/// position and lines have no line feeds.
#[test]
#[ignore = "needs a real Limine binary repository: set LIMINE_REPO"]
fn a_limine_panic_under_uefi_ends_the_run_at_once() {
    let project = limine_project("boot = \"uefi\"\nprotocol = \"multiboot1\"", "");
    let run = limine_boot(&project);
    run.assert_code(4)
        .assert_stderr_contains("PANIC: multiboot1: Cannot use text mode with UEFI.");
    assert!(run.elapsed < Duration::from_secs(60), "not at once: {run}");
}

// ---- 3. Normal runs: a reset is no clean power-off, a missing success pattern no pass ------

#[test]
fn a_triple_fault_in_a_normal_run_is_a_crash() {
    let project = Project::new(runner_bin!(), "");
    let run = run(&project, false, &[], &multiboot(Variant::TripleFault));
    run.assert_code(4)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::TripleFault))
        .assert_stderr_contains("the guest reset");
}

#[test]
fn a_power_off_passes_a_normal_run_but_not_a_test() {
    let project = Project::new(runner_bin!(), "");
    let kernel = multiboot(Variant::PowerOff);
    run(&project, false, &[], &kernel)
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::PowerOff));
    run(&project, true, &[], &kernel)
        .assert_code(4)
        .assert_stderr_contains("powered off without reporting");
}

#[test]
fn a_power_off_without_the_success_pattern_is_no_pass() {
    let project = Project::new(
        runner_bin!(),
        "[run]\nsuccess-pattern = '^all tests passed$'\n",
    );
    let run = run(&project, false, &[], &multiboot(Variant::PowerOff));
    run.assert_code(4)
        .assert_stderr_contains("run.success-pattern");
}

// ---- 5. The runner's own stop of QEMU is not reported by QEMU ------------------------------

#[test]
fn stopping_qemu_on_purpose_leaves_no_signal_notice() {
    let project = Project::new(
        runner_bin!(),
        "[test]\ntimeout = 60\nsuccess-pattern = '^KERNEL: multiboot hang$'\n",
    );
    let run = run(&project, true, &[], &multiboot(Variant::Hang));
    run.assert_code(0);
    assert!(!run.stderr.contains("terminating on signal"), "{run}");
}

// ---- 6. QEMU's own failures ---------------------------------------------------------------

#[test]
fn a_truncated_elf_is_an_input_error() {
    let project = Project::new(runner_bin!(), "");
    let whole = std::fs::read(multiboot(Variant::Pass)).expect("read the kernel");
    // The headers and the first segment stay; the rest of the file is gone.
    let kernel = project.root().join("target/debug/truncated");
    std::fs::create_dir_all(kernel.parent().expect("parent")).expect("create the folder");
    std::fs::write(&kernel, &whole[..4200]).expect("write the kernel");
    let run = run(&project, true, &[], &kernel);
    run.assert_code(2)
        .assert_stderr_contains("target/debug/truncated")
        .assert_stderr_contains("ends at byte 4200");
}

#[test]
fn qemu_failing_silently_is_no_guest_verdict() {
    let project = Project::new(runner_bin!(), "[qemu]\nbinary = \"false\"\n");
    let run = run(&project, true, &[], &multiboot(Variant::Pass));
    run.assert_code(4)
        .assert_stderr_contains("QEMU exited with status 1 before the machine started");
    assert!(!run.stderr.contains("wrote 0x0"), "{run}");
}

#[test]
fn qemus_error_line_is_quoted_not_its_last_line() {
    let project = Project::new(runner_bin!(), "[qemu]\nmachine = \"no-such-machine\"\n");
    let run = run(&project, true, &[], &multiboot(Variant::Pass));
    run.assert_code(4)
        .assert_stderr_contains("QEMU failed: qemu-system-x86_64: unsupported machine type");
}

// ---- 13. Absurd values --------------------------------------------------------------------

#[test]
fn an_absurd_timeout_is_no_limit() {
    let project = Project::new(runner_bin!(), "");
    let run = run(
        &project,
        true,
        &["--set", "test.timeout=9223372036854775807"],
        &multiboot(Variant::Pass),
    );
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
}

// ---- 14. The serial log and the patterns --------------------------------------------------

/// A stand-in for QEMU: a shell script whose stdout is the serial port.
fn fake_qemu(project: &Project, body: &str) -> PathBuf {
    let path = project.root().join("fake-qemu");
    image_runner_test_support::fake_tool(&path, &format!("#!/bin/sh\n{body}\n"));
    path
}

#[test]
fn the_serial_log_is_capped() {
    let project = Project::new(runner_bin!(), "");
    // 3 MiB of serial output between a first and a last line.
    let qemu = fake_qemu(
        &project,
        "echo first line; head -c 3145728 /dev/zero | tr '\\0' x; echo; echo last line; exit 33",
    );
    project.write(
        "image-runner.toml",
        &format!(
            "[qemu]\nbinary = {}\nserial-log-limit = \"1M\"\n",
            toml_string(qemu.to_str().expect("UTF-8 path"))
        ),
    );
    let run = run(&project, true, &[], &multiboot(Variant::Pass));
    run.assert_code(0);
    let log = std::fs::read_to_string(
        project
            .output_dir(&multiboot(Variant::Pass))
            .join("serial.log"),
    )
    .expect("read serial.log");
    assert!(log.len() <= 1024 * 1024 + 512, "{} bytes", log.len());
    assert!(log.starts_with("first line\n"), "{}", &log[..40]);
    assert!(log.ends_with("last line\n"), "{}", &log[log.len() - 40..]);
    assert!(log.contains("serial-log-limit"), "no note of the cut");
}

#[test]
fn a_serial_log_that_cannot_be_written_is_reported_once() {
    let project = Project::new(runner_bin!(), "");
    let out = project.output_dir(&multiboot(Variant::Pass));
    std::fs::create_dir_all(&out).expect("create the output folder");
    std::os::unix::fs::symlink("/dev/full", out.join("serial.log")).expect("symlink");
    let run = run(&project, true, &[], &multiboot(Variant::Pass));
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    assert_eq!(
        run.stderr.matches("serial.log").count(),
        1,
        "reported once: {run}"
    );
    run.assert_stderr_contains("No space left on device");
}

#[test]
fn an_invalid_pattern_in_the_other_mode_is_an_error() {
    let project = Project::new(runner_bin!(), "[run]\nfailure-pattern = \"(\"\n");
    run(&project, true, &[], &multiboot(Variant::Pass))
        .assert_code(2)
        .assert_stderr_contains("run.failure-pattern");
    let project = Project::new(runner_bin!(), "[test]\nsuccess-pattern = \"[\"\n");
    run(&project, false, &[], &multiboot(Variant::Pass))
        .assert_code(2)
        .assert_stderr_contains("test.success-pattern");
}

/// A QEMU that does not take an inherited socket (`-chardev socket,fd=`) still runs the kernel,
/// without the monitor.
#[test]
fn a_qemu_refusing_the_monitor_socket_runs_without_it() {
    let project = Project::new(runner_bin!(), "");
    let qemu = fake_qemu(
        &project,
        "case \"$*\" in *image-runner-qmp*) echo \"qemu-system-x86_64: -chardev socket,id=image-runner-qmp,fd=3: 'socket' does not take 'fd'\" >&2; exit 1;; esac\necho booted; exit 33",
    );
    project.write(
        "image-runner.toml",
        &format!(
            "[qemu]\nbinary = {}\n",
            toml_string(qemu.to_str().expect("UTF-8 path"))
        ),
    );
    run(&project, true, &[], &multiboot(Variant::Pass))
        .assert_code(0)
        .assert_serial_line("booted")
        .assert_stderr_contains("note: QEMU refused the runner's monitor socket");
}
