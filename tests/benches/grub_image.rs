//! How long building a bootable GRUB ISO takes: the runner (`cargo-image-runner build`, core
//! images from `grub-mkimage`, the ISO written by plugin-image) against `grub-mkrescue`
//! (xorriso, mtools) on the same kernel and config, alternating, median of many runs.
//!
//! `cargo bench -p image-runner-tests --bench grub_image` (builds the runner in release).
//! Needs grub-pc-bin, grub-efi-amd64-bin, grub-common, xorriso and mtools.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image_runner_tests::kernels::{self, Kernel, Variant};

const RUNS: usize = 9;

/// The config the runner generates for this kernel, for grub-mkrescue's tree.
const GRUB_CFG: &str = "serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0

menuentry kernel {
\tmultiboot2 /boot/kernel
\tboot
}
";

fn runner() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_image-runner-under-test"))
}

/// A throw-away package asking for GRUB with `boot`.
fn project(boot: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"bench\"\n\n[package.metadata.image-runner]\nbootloader = \"grub\"\nformat = \"iso\"\nboot = \"{boot}\"\n"
        ),
    )
    .expect("write Cargo.toml");
    dir
}

fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// One runner build of `kernel` in `project`, into `target`.
fn runner_build(project: &Path, target: &Path, kernel: &Path) -> Duration {
    timed(
        Command::new(runner())
            .arg("build")
            .arg(kernel)
            .current_dir(project)
            .env("CARGO_TARGET_DIR", target)
            .env_remove("CARGO_MANIFEST_DIR"),
    )
}

/// grub-mkrescue on a tree holding the kernel and the same config; `platform` limits it to one
/// GRUB platform folder (else it builds every installed one: BIOS and UEFI here).
fn mkrescue(tree: &Path, out: &Path, platform: Option<&str>) -> Duration {
    let mut cmd = Command::new("grub-mkrescue");
    if let Some(platform) = platform {
        cmd.arg("-d").arg(format!("/usr/lib/grub/{platform}"));
    }
    timed(cmd.arg("-o").arg(out).arg(tree))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn compare(name: &str, boot: &str, platform: Option<&str>) {
    let kernel = kernels::path(Kernel::Multiboot, Variant::Pass);
    let scratch = tempfile::tempdir().expect("temporary directory");
    let tree = scratch.path().join("tree");
    std::fs::create_dir_all(tree.join("boot/grub")).expect("tree");
    std::fs::copy(&kernel, tree.join("boot/kernel")).expect("copy the kernel");
    std::fs::write(tree.join("boot/grub/grub.cfg"), GRUB_CFG).expect("grub.cfg");
    let proj = project(boot);
    // The kernel as cargo leaves it in the project's target directory, changed between
    // "edit" runs by swapping in a kernel of the same shape.
    let warm_target = scratch.path().join("warm-target");
    let edited = warm_target.join("kernel.elf");
    std::fs::create_dir_all(&warm_target).expect("target");
    std::fs::copy(&kernel, &edited).expect("copy the kernel");
    runner_build(proj.path(), &warm_target, &edited);

    let (mut cold, mut edit, mut unchanged, mut rescue) = (vec![], vec![], vec![], vec![]);
    for round in 0..=RUNS {
        // Nothing cached: a fresh target directory.
        let fresh = scratch.path().join(format!("cold-{round}"));
        let c = runner_build(proj.path(), &fresh, &kernel);
        // A changed kernel: the image is rebuilt, the core images come from the cache.
        let variant = if round % 2 == 0 {
            Variant::Fail
        } else {
            Variant::Pass
        };
        std::fs::copy(kernels::path(Kernel::Multiboot, variant), &edited).expect("edit");
        let e = runner_build(proj.path(), &warm_target, &edited);
        // Nothing changed: the image is reused.
        let u = runner_build(proj.path(), &warm_target, &edited);
        let r = mkrescue(
            &tree,
            &scratch.path().join(format!("rescue-{round}.iso")),
            platform,
        );
        // The first round warms the page cache.
        if round > 0 {
            cold.push(c);
            edit.push(e);
            unchanged.push(u);
            rescue.push(r);
        }
    }
    let rescue = median(rescue);
    println!("{name}");
    println!(
        "  grub-mkrescue                         {:>8.1} ms",
        ms(rescue)
    );
    for (what, samples) in [
        ("runner, nothing cached", cold),
        ("runner, kernel changed (cores cached)", edit),
        ("runner, nothing changed (image reused)", unchanged),
    ] {
        let m = median(samples);
        println!(
            "  {what:<38}{:>8.1} ms   {:>5.1}x faster ({:.3} of the time)",
            ms(m),
            rescue.as_secs_f64() / m.as_secs_f64(),
            m.as_secs_f64() / rescue.as_secs_f64()
        );
    }
}

fn main() {
    for (program, package) in [
        ("grub-mkrescue", "grub-common"),
        ("xorriso", "xorriso"),
        ("mformat", "mtools"),
    ] {
        if Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            panic!("`{program}` is missing: install {package} (scripts/install-deps)");
        }
    }
    println!(
        "GRUB ISO build time for the multiboot test kernel, median of {RUNS} alternating runs"
    );
    compare("BIOS + UEFI (boot = \"hybrid\")", "hybrid", None);
    compare("BIOS only (boot = \"bios\")", "bios", Some("i386-pc"));
}
