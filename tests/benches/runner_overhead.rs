//! What the runner costs on top of QEMU: the same prepared boot run by hand (the exact command
//! `--print-cmd` shows) and through `cargo-image-runner`, alternating, median of many runs.
//!
//! `cargo bench -p image-runner-tests --bench runner_overhead` (builds the runner in release).
//! The BIOS CD case boots an ISO made once with `grub-mkrescue` (grub-pc-bin, xorriso, mtools).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image_runner_tests::kernels::{self, Kernel, Variant};

const RUNS: usize = 15;

fn runner() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_image-runner-under-test"))
}

/// A throw-away package directory, so no config from this repository applies.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"bench\"\n",
    )
    .expect("write Cargo.toml");
    dir
}

fn runner_command(project: &Path, target: &Path) -> Command {
    let mut cmd = Command::new(runner());
    cmd.current_dir(project)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("CARGO_MANIFEST_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// The command the runner would start, split back into words.
fn printed_command(project: &Path, target: &Path, image: &Path) -> Vec<String> {
    let out = runner_command(project, target)
        .arg("--print-cmd")
        .arg(image)
        .output()
        .expect("run the runner");
    assert!(out.status.success(), "--print-cmd failed");
    shlex::split(String::from_utf8_lossy(&out.stdout).trim()).expect("shell words")
}

fn time(mut cmd: Command, expect: i32) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run");
    let elapsed = start.elapsed();
    assert_eq!(
        out.status.code(),
        Some(expect),
        "unexpected exit: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    elapsed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn compare(name: &str, image: &Path) {
    let dir = project();
    let target = dir.path().join("target");
    let words = printed_command(dir.path(), &target, image);
    // One warm-up each: page cache, firmware files.
    let (mut by_hand, mut by_runner) = (Vec::new(), Vec::new());
    for round in 0..=RUNS {
        let mut hand = Command::new(&words[0]);
        hand.args(&words[1..]).stdout(Stdio::piped());
        let h = time(hand, 33);
        let mut run = runner_command(dir.path(), &target);
        run.arg(image);
        let r = time(run, 0);
        if round > 0 {
            by_hand.push(h);
            by_runner.push(r);
        }
    }
    let (h, r) = (median(by_hand), median(by_runner));
    let overhead = r.as_secs_f64() - h.as_secs_f64();
    println!(
        "{name:<28} by hand {:>8.1} ms   runner {:>8.1} ms   overhead {:>6.1} ms ({:+.1} %)",
        h.as_secs_f64() * 1e3,
        r.as_secs_f64() * 1e3,
        overhead * 1e3,
        overhead / h.as_secs_f64() * 100.0
    );
}

/// A GRUB BIOS ISO for the multiboot kernel, made with the system's grub-mkrescue.
fn grub_iso(dir: &Path) -> Option<PathBuf> {
    let tree = dir.join("iso");
    std::fs::create_dir_all(tree.join("boot/grub")).ok()?;
    std::fs::copy(
        kernels::path(Kernel::Multiboot, Variant::Pass),
        tree.join("boot/kernel.elf"),
    )
    .ok()?;
    std::fs::write(
        tree.join("boot/grub/grub.cfg"),
        "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\nset timeout=0\nmenuentry k {\n multiboot /boot/kernel.elf\n boot\n}\n",
    )
    .ok()?;
    let iso = dir.join("grub.iso");
    let status = Command::new("grub-mkrescue")
        .args(["-d", "/usr/lib/grub/i386-pc", "-o"])
        .arg(&iso)
        .arg(&tree)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then_some(iso)
}

/// A whole `cargo-image-runner build` when nothing changed: process start, config, kernel
/// inspection, staging, the fingerprint check, and the reused image's path printed.
fn noop_build() {
    let dir = project();
    let target = dir.path().join("target");
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let build = || {
        let out = runner_command(dir.path(), &target)
            .arg("build")
            .arg(&kernel)
            .output()
            .expect("run the runner");
        assert!(out.status.success(), "build failed");
    };
    build();
    let samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            build();
            start.elapsed()
        })
        .collect();
    println!(
        "{:<28} {:>8.1} ms (whole process, image reused)",
        "no-op `build` (UEFI FAT)",
        median(samples).as_secs_f64() * 1e3
    );
}

fn main() {
    println!("runner overhead, median of {RUNS} alternating runs each (TCG)");
    compare(
        "-kernel (multiboot1)",
        &kernels::path(Kernel::Multiboot, Variant::Pass),
    );
    let scratch = tempfile::tempdir().expect("temporary directory");
    match grub_iso(scratch.path()) {
        Some(iso) => compare("BIOS CD (GRUB ISO)", &iso),
        None => println!(
            "BIOS CD (GRUB ISO)           not measured: grub-mkrescue (grub-pc-bin, xorriso, mtools) failed or is missing"
        ),
    }
    noop_build();
}
