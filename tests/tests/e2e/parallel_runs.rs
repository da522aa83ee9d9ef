//! Runs of the same kernel at the same time: each boots its own view of the image (QEMU
//! `snapshot=on`), so none is refused QEMU's write lock, and guest writes never reach the image
//! later runs reuse, unless `qemu.persist-writes = true` asks for them (then runs take turns).
//! Needs QEMU, GRUB (grub-pc-bin) and OVMF (`scripts/install-deps`).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{self, Project, Run};
use image_runner_tests::runner_bin;

/// GRUB on a BIOS machine boots from a disk in well under a second under TCG.
const GRUB_BIOS: &str = "bootloader = \"grub\"\nprotocol = \"multiboot2\"\nboot = \"bios\"\n";

fn words(words: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    words.iter().map(|w| w.as_ref().to_os_string()).collect()
}

/// Builds the image and returns its path.
fn build(project: &Project, kernel: &Path) -> PathBuf {
    let run = project.run(words(&[&"build", &kernel]), &[]);
    run.assert_code(0);
    PathBuf::from(run.stdout.trim())
}

/// What identifies the image's content and its last write.
fn state(image: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = if image.is_dir() {
        // A directory image (vvfat): its files, in order.
        let mut all = Vec::new();
        let mut stack = vec![image.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .expect("list the image directory")
                .map(|e| e.expect("read a directory entry").path())
                .collect();
            entries.sort();
            for path in entries {
                all.extend(path.to_string_lossy().as_bytes());
                if path.is_dir() {
                    stack.push(path);
                } else {
                    all.extend(std::fs::read(&path).expect("read an image file"));
                }
            }
        }
        all
    } else {
        std::fs::read(image).expect("read the image")
    };
    let modified = std::fs::metadata(image)
        .and_then(|m| m.modified())
        .expect("the image's modification time");
    (bytes, modified)
}

/// Boots `kernel` in `project` once (building the image), then `n` times at once: every run
/// passes, and the image is exactly as built.
fn n_at_once(project: &Project, kernel: Kernel, n: usize) {
    let path = kernels::path(kernel, Variant::Pass);
    let marker = kernels::marker(kernel, Variant::Pass);
    let image = build(project, &path);
    let before = state(&image);
    let children: Vec<_> = (0..n)
        .map(|_| project.spawn(words(&[&"--test", &path]), &[]))
        .collect();
    let runs: Vec<Run> = children.into_iter().map(runner::wait).collect();
    for run in &runs {
        run.assert_code(0).assert_serial_line(marker);
    }
    assert!(
        state(&image) == before,
        "the image `{}` changed during the runs",
        image.display()
    );
}

#[test]
fn eight_runs_of_one_gpt_disk_at_once_all_pass() {
    let project = Project::new(runner_bin!(), &format!("{GRUB_BIOS}format = \"gpt\"\n"));
    n_at_once(&project, Kernel::Multiboot, 8);
}

#[test]
fn eight_runs_of_one_mbr_disk_at_once_all_pass() {
    let project = Project::new(runner_bin!(), &format!("{GRUB_BIOS}format = \"mbr\"\n"));
    n_at_once(&project, Kernel::Multiboot, 8);
}

#[test]
fn eight_runs_of_one_iso_attached_as_a_disk_at_once_all_pass() {
    let project = Project::new(
        runner_bin!(),
        &format!("{GRUB_BIOS}format = \"iso\"\nattach = \"disk\"\n"),
    );
    n_at_once(&project, Kernel::Multiboot, 8);
}

/// UEFI boots take seconds each under TCG: fewer runs.
#[test]
fn four_runs_of_one_fat_image_at_once_all_pass() {
    let project = Project::new(runner_bin!(), "format = \"fat\"\n");
    n_at_once(&project, Kernel::EfiApp, 4);
}

/// A directory is attached through vvfat, read-only below a snapshot.
#[test]
fn three_runs_of_one_directory_image_at_once_all_pass() {
    let project = Project::new(runner_bin!(), "format = \"directory\"\n");
    n_at_once(&project, Kernel::EfiApp, 3);
}

/// Starts the hanging kernel of `project` with a QEMU monitor on a socket, writes 4 KiB of
/// 0xAA at the start of the boot disk through QEMU's block layer (as a guest write would go)
/// and stops QEMU. Returns the image and its state before.
fn write_to_the_disk_while_running(project: &Project) -> (PathBuf, (Vec<u8>, SystemTime)) {
    let kernel = kernels::path(Kernel::Multiboot, Variant::Hang);
    let image = build(project, &kernel);
    let before = state(&image);
    let socket = project.scratch().join("monitor.sock");
    let mut monitor = OsString::from("unix:");
    monitor.push(&socket);
    monitor.push(",server=on,wait=off");
    let child = project.spawn(
        words(&[&"--test", &kernel, &"--", &"-monitor", &monitor]),
        &[],
    );
    let start = Instant::now();
    let mut stream = loop {
        match UnixStream::connect(&socket) {
            Ok(stream) => break stream,
            Err(_) if start.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("no QEMU monitor at {}: {e}", socket.display()),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    stream
        .write_all(b"qemu-io ide0-hd0 \"write -P 0xaa 0 4096\"\n")
        .expect("talk to the monitor");
    // The monitor answers a command with its next prompt (the banner ends with the first);
    // qemu-io's report goes to QEMU's standard output.
    let mut said = Vec::new();
    let mut buffer = [0u8; 4096];
    while String::from_utf8_lossy(&said).matches("(qemu) ").count() < 2 {
        let n = stream.read(&mut buffer).unwrap_or_else(|e| {
            panic!(
                "the monitor stopped answering ({e}): {}",
                String::from_utf8_lossy(&said)
            )
        });
        assert!(
            n > 0,
            "the monitor closed: {}",
            String::from_utf8_lossy(&said)
        );
        said.extend_from_slice(&buffer[..n]);
    }
    stream.write_all(b"quit\n").expect("talk to the monitor");
    let run = runner::wait(child);
    assert!(run.stdout.contains("wrote 4096/4096 bytes"), "{run}");
    assert!(!run.stderr.contains("lock"), "{run}");
    (image, before)
}

#[test]
fn guest_writes_do_not_reach_the_image() {
    let project = Project::new(runner_bin!(), &format!("{GRUB_BIOS}format = \"gpt\"\n"));
    let (image, before) = write_to_the_disk_while_running(&project);
    assert!(
        state(&image) == before,
        "a write to the running guest's disk changed `{}`",
        image.display()
    );
}

#[test]
fn with_persist_writes_guest_writes_reach_the_image() {
    let project = Project::new(
        runner_bin!(),
        &format!("{GRUB_BIOS}format = \"gpt\"\n[qemu]\npersist-writes = true\n"),
    );
    let (image, _) = write_to_the_disk_while_running(&project);
    let bytes = std::fs::read(&image).expect("read the image");
    assert!(
        bytes[..4096].iter().all(|&b| b == 0xaa),
        "the write did not reach `{}`",
        image.display()
    );
}

#[test]
fn with_persist_writes_runs_of_one_image_take_turns() {
    let project = Project::new(
        runner_bin!(),
        &format!(
            "{GRUB_BIOS}format = \"mbr\"\n[qemu]\npersist-writes = true\n[test]\ntimeout = 3\n"
        ),
    );
    let kernel = kernels::path(Kernel::Multiboot, Variant::Hang);
    build(&project, &kernel);
    let first = project.spawn(words(&[&"--test", &kernel]), &[]);
    let start = Instant::now();
    while project.qemu_processes().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "QEMU did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = project.spawn(words(&[&"--test", &kernel]), &[]);
    let first = runner::wait(first);
    let second = runner::wait(second);
    // Both ran to their time limit; neither was refused the image.
    first.assert_code(3);
    second
        .assert_code(3)
        .assert_stderr_contains("Waiting for another run of");
}

/// Two executables of one name (debug and release, as cargo builds them) run at the same
/// time: each boots its own image, from its own folder (issue 18, item 1: they shared
/// `image-runner/kernel/` and booted each other's kernel).
#[test]
fn executables_of_one_name_in_two_profiles_boot_their_own_images() {
    let project = Project::new(
        runner_bin!(),
        &format!("{GRUB_BIOS}format = \"iso\"\n[test]\ntimeout = 60\n"),
    );
    let debug = project.add_kernel(
        &kernels::path(Kernel::Multiboot, Variant::Pass),
        "target/debug/kernel",
    );
    let release = project.add_kernel(
        &kernels::path(Kernel::Multiboot, Variant::Fail),
        "target/release/kernel",
    );
    for _ in 0..3 {
        let a = project.spawn(words(&[&"--test", &debug]), &[]);
        let b = project.spawn(words(&[&"--test", &release]), &[]);
        runner::wait(a)
            .assert_code(0)
            .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
        let failed = runner::wait(b);
        failed
            .assert_code(1)
            .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Fail));
        assert!(
            !failed
                .stdout
                .contains(kernels::marker(Kernel::Multiboot, Variant::Pass)),
            "the release run booted the debug kernel: {failed}"
        );
    }
    let images = project.target_dir().join("image-runner");
    assert!(images.join("debug/kernel/image.iso").is_file());
    assert!(images.join("release/kernel/image.iso").is_file());
}
