//! The QEMU runner's promises, with real QEMU: verdicts (triple fault, patterns), signals,
//! typed input, the gdb stub, the accelerator choice and the order of extra arguments.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{Project, wait};
use image_runner_tests::runner_bin;

fn multiboot(variant: Variant) -> std::path::PathBuf {
    kernels::path(Kernel::Multiboot, variant)
}

#[test]
fn a_triple_fault_is_no_pass() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        [
            "--test".into(),
            multiboot(Variant::TripleFault).into_os_string(),
        ],
        &[],
    );
    run.assert_code(4)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::TripleFault))
        .assert_stderr_contains("the guest reset");
}

#[test]
fn success_pattern_ends_a_hanging_run_as_passed() {
    let project = Project::new(
        runner_bin!(),
        "[test]\ntimeout = 60\nsuccess-pattern = '^KERNEL: multiboot hang$'\n",
    );
    let hang = project.add_kernel(&multiboot(Variant::Hang), "target/debug/pattern-kernel");
    let run = project.run(["--test".into(), hang.into_os_string()], &[]);
    run.assert_code(0);
    assert!(
        run.elapsed < Duration::from_secs(20),
        "did not end early: {run}"
    );
    assert_eq!(project.qemu_processes(), Vec::<u32>::new());
}

#[test]
fn failure_pattern_ends_a_run_as_failed() {
    let project = Project::new(
        runner_bin!(),
        "[test]\ntimeout = 60\nsuccess-pattern = 'never printed'\nfailure-pattern = 'multiboot (hang|panic)'\n",
    );
    let run = project.run(
        ["--test".into(), multiboot(Variant::Hang).into_os_string()],
        &[],
    );
    run.assert_code(1)
        .assert_stderr_contains("failure pattern: \"multiboot hang\"");
    assert!(
        run.elapsed < Duration::from_secs(20),
        "did not end early: {run}"
    );
}

/// Waits until this project's QEMU is running.
fn wait_for_qemu(project: &Project) {
    let start = Instant::now();
    while project.qemu_processes().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "QEMU never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn interrupt_mid_boot(signal: &str) {
    let project = Project::new(runner_bin!(), "[test]\ntimeout = 120\n");
    let hang = project.add_kernel(&multiboot(Variant::Hang), "target/debug/signal-kernel");
    let child = project.spawn(["--test".into(), hang.into_os_string()], &[]);
    // Wait until QEMU is up, then signal the runner only (as a terminal's Ctrl-C would reach it).
    wait_for_qemu(&project);
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let run = wait(child);
    run.assert_code(130).assert_stderr_contains("interrupted");
    assert!(run.elapsed < Duration::from_secs(10), "slow to stop: {run}");
    assert_eq!(
        project.qemu_processes(),
        Vec::<u32>::new(),
        "QEMU survived {signal}"
    );
}

#[test]
fn sigint_stops_qemu_and_leaves_no_process() {
    interrupt_mid_boot("-INT");
}

#[test]
fn sigterm_stops_qemu_and_leaves_no_process() {
    interrupt_mid_boot("-TERM");
}

#[test]
fn sigkill_of_the_runner_takes_qemu_with_it() {
    let project = Project::new(runner_bin!(), "[test]\ntimeout = 120\n");
    let hang = project.add_kernel(&multiboot(Variant::Hang), "target/debug/killed-kernel");
    let child = project.spawn(["--test".into(), hang.into_os_string()], &[]);
    wait_for_qemu(&project);
    // SIGKILL cannot be caught: the runner gets no chance to clean up.
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let _ = wait(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !project.qemu_processes().is_empty() {
        assert!(Instant::now() < deadline, "QEMU outlived the killed runner");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn send_rules_type_into_the_serial_port() {
    for (text, code) in [("y", 0), ("n", 1)] {
        let project = Project::new(
            runner_bin!(),
            &format!("[test]\ntimeout = 60\n[[test.send]]\nafter = 'login: '\ntext = '{text}'\n"),
        );
        let run = project.run(
            ["--test".into(), multiboot(Variant::Input).into_os_string()],
            &[],
        );
        run.assert_code(code)
            .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Input));
    }
}

#[test]
fn auto_accelerator_works_here_and_says_why() {
    let project = Project::new(runner_bin!(), "[qemu]\naccel = 'auto'\n");
    let run = project.run(
        ["-v".into(), multiboot(Variant::Pass).into_os_string()],
        &[],
    );
    run.assert_code(0).assert_stderr_contains("Accelerator ");
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("Accelerator "))
        .unwrap_or_default();
    assert!(line.contains("auto: "), "no reason given: {line}");
}

#[test]
fn a_kvm_failure_at_start_falls_back_to_tcg_once() {
    // QEMU's own words when KVM cannot start (no /dev/kvm), forced by a wrapper for every
    // `-accel kvm` start whatever this host's KVM can do; other starts run the real QEMU.
    let project = Project::new(runner_bin!(), "");
    let starts = project.root().join("starts");
    let wrapper = project.root().join("qemu-wrapper");
    image_runner_test_support::fake_tool(
        &wrapper,
        &format!(
            r#"#!/bin/sh
echo "$*" >> '{starts}'
case " $* " in
*" -accel kvm "*)
    echo "Could not access KVM kernel module: No such file or directory" >&2
    echo "qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory" >&2
    exit 1;;
esac
exec qemu-system-x86_64 "$@"
"#,
            starts = starts.display()
        ),
    );
    project.write(
        "Cargo.toml",
        &format!(
            "[package]\nname = \"kernel\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [package.metadata.image-runner.qemu]\naccel = 'kvm,tcg'\nbinary = '{}'\n",
            wrapper.display()
        ),
    );
    let run = project.run(
        ["--test".into(), multiboot(Variant::Pass).into_os_string()],
        &[],
    );
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass))
        .assert_stderr_contains("failed to initialize kvm")
        .assert_stderr_contains("; retrying with tcg");
    assert_eq!(run.stderr.matches("retrying").count(), 1, "{run}");
    let starts = std::fs::read_to_string(&starts).expect("the wrapper's log of starts");
    let accels: Vec<&str> = starts
        .lines()
        .filter_map(|l| l.split(" -accel ").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(
        accels,
        ["kvm", "tcg"],
        "one KVM start, one TCG retry:\n{starts}"
    );
}

#[test]
fn gdb_stub_waits_for_a_debugger() {
    let project = Project::new(runner_bin!(), "[test]\ntimeout = 1\n");
    // `--gdb`: the runner picks a free port, holds it, and says which.
    let mut child = project.spawn(
        [
            "--gdb".to_owned(),
            "--test".into(),
            multiboot(Variant::Pass).display().to_string(),
        ],
        &[],
    );
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = text.clone();
        let mut pipe = pipe.expect("a piped output");
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("output buffer")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        (text, thread)
    };
    let (stderr, err_thread) = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let (stdout, out_thread) = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let port: u16 = loop {
        let text = stderr.lock().expect("output buffer").clone();
        if let Some(port) = text
            .split("Waiting for a debugger on 127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
        {
            break port;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60) && child.try_wait().ok().flatten().is_none(),
            "the runner never said where the gdb stub listens:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The socket is listening before the runner names it: no retries.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the gdb stub");
    // QEMU starts halted; the test timeout of 1 s must not apply while it waits.
    std::thread::sleep(Duration::from_millis(1500));
    // The GDB remote protocol's "continue".
    stream.write_all(b"$c#63").expect("send continue");
    let mut ack = [0u8; 1];
    stream.read_exact(&mut ack).expect("stub answers");
    assert_eq!(&ack, b"+");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the runner") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the runner did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    err_thread.join().expect("stderr reader");
    out_thread.join().expect("stdout reader");
    let (stdout, stderr) = (
        stdout.lock().expect("output").clone(),
        stderr.lock().expect("output").clone(),
    );
    let context = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert_eq!(status.code(), Some(0), "{context}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_end() == kernels::marker(Kernel::Multiboot, Variant::Pass)),
        "{context}"
    );
    assert!(
        stderr.contains(&format!("gdb-remote 127.0.0.1:{port}")),
        "{context}"
    );
    assert!(
        stderr.contains(&format!("target remote 127.0.0.1:{port}")),
        "{context}"
    );
}

#[test]
fn a_gdb_port_in_use_is_a_config_error_before_qemu_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = taken.local_addr().expect("its address").port();
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        [
            format!("--gdb={port}"),
            "--test".into(),
            multiboot(Variant::Pass).display().to_string(),
        ],
        &[],
    );
    run.assert_code(2)
        .assert_stderr_contains(&format!("cannot listen for a debugger on 127.0.0.1:{port}"));
    assert_eq!(project.qemu_processes(), Vec::<u32>::new());
    drop(taken);
}

#[test]
fn extra_arguments_come_in_the_documented_order() {
    let project = Project::new(
        runner_bin!(),
        "[qemu]\nargs = ['-name', 'from-config']\n[run]\nargs = ['-rtc', 'base=utc']\n",
    );
    let run = project.run(
        [
            "--print-cmd".into(),
            multiboot(Variant::Pass).into_os_string(),
            "guest-arg".into(),
            "--".into(),
            "-d".into(),
            "int".into(),
        ],
        &[(
            "CARGO_IMAGE_RUNNER_QEMU_ARGS",
            "-smp 'cores=1' -name \"from env\"",
        )],
    );
    run.assert_code(0);
    let line = run.stdout.trim();
    assert!(
        line.ends_with("-name from-config -rtc base=utc -smp cores=1 -name 'from env' -d int"),
        "{line}"
    );
    assert!(!line.contains("guest-arg"), "{line}");
}

/// Another architecture through the runner: the pass kernel passes (exit code 0, its line on
/// serial) and the fail kernel fails (exit code 1).
fn pass_and_fail_boot(kernel: Kernel) {
    let project = Project::new(runner_bin!(), "");
    let run = |variant| {
        project.run(
            [
                "--test".into(),
                kernels::path(kernel, variant).into_os_string(),
            ],
            &[],
        )
    };
    run(Variant::Pass)
        .assert_code(0)
        .assert_serial_line(kernels::marker(kernel, Variant::Pass));
    run(Variant::Fail).assert_code(1);
}

#[test]
fn aarch64_efi_app_boots_under_aavmf() {
    pass_and_fail_boot(Kernel::EfiAppAa64);
}

#[test]
fn riscv64_kernel_boots_directly() {
    pass_and_fail_boot(Kernel::Riscv64);
}
