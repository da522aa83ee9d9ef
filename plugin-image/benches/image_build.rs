//! A development aid: the image writers' own speed, in process, against the usual tools, on a
//! tree with a 64 MiB kernel and 200 small files: cold FAT build vs `mkfs.fat` + `mcopy`, cold
//! ISO build vs `xorriso -as mkisofs` (same El Torito UEFI layout), and the no-op check that
//! lets an unchanged image be reused.
//!
//! It leaves out what a user also waits for (starting the process, reading the configuration,
//! the reuse check before a build, publishing the image), so its ratios are not the ones a user
//! sees: `bench/image-build.sh` measures whole `cargo-image-runner build` processes with
//! hyperfine for that.
//!
//! `cargo bench -p image-runner-image --bench image_build` (release). Needs dosfstools, mtools
//! and xorriso for the comparisons.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image_runner_core::{Image, ImageKind, Source, Staging};
use image_runner_image::reuse::BuildCheck;
use image_runner_image::{fat, iso};

const RUNS: usize = 7;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The tree on disk: `EFI/BOOT/BOOTX64.EFI` (a small stand-in), `boot/kernel` (64 MiB of
/// varied bytes) and 200 files of 1–8 KiB under `boot/modules/`.
fn make_tree(root: &Path) -> Staging {
    let mut staging = Staging::new();
    let mut put = |rel: &str, bytes: Vec<u8>| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        staging.add_file(rel, Source::File(path)).expect("stage");
    };
    put("EFI/BOOT/BOOTX64.EFI", vec![0x4d; 64 * 1024]);
    let mut state = 0x1234_5678_u32;
    let kernel: Vec<u8> = (0..64 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    put("boot/kernel", kernel);
    for i in 0..200 {
        put(
            &format!("boot/modules/module-{i:03}.bin"),
            vec![i as u8; 1024 * (1 + i % 8)],
        );
    }
    staging
}

fn run(cmd: &mut Command) {
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run tool");
    assert!(status.success(), "{cmd:?} failed");
}

fn time(mut f: impl FnMut()) -> Duration {
    f(); // warm-up: page cache
    median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn report(name: &str, ours: Duration, theirs: Option<(Duration, &str)>) {
    match theirs {
        Some((t, tool)) => println!(
            "{name:<22} ours {:>8.1} ms   {tool} {:>8.1} ms   {:.1}x faster",
            ms(ours),
            ms(t),
            t.as_secs_f64() / ours.as_secs_f64()
        ),
        None => println!("{name:<22} ours {:>8.1} ms", ms(ours)),
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let tree = dir.path().join("tree");
    let staging = make_tree(&tree);
    println!("64 MiB kernel + 200 small files, median of {RUNS} runs (release)");

    // FAT: our writer vs mkfs.fat + mcopy of the same tree at the size we chose.
    let ours_fat = dir.path().join("ours.fat");
    let fat_time = time(|| {
        fat::write_fat_file(&ours_fat, &staging, &fat::FatOptions::default()).expect("our FAT");
    });
    let size = std::fs::metadata(&ours_fat).expect("image").len();
    let tools_fat = dir.path().join("tools.fat");
    let tools_time = time(|| {
        let _ = std::fs::remove_file(&tools_fat);
        run(Command::new("mkfs.fat")
            .arg("-C")
            .arg(&tools_fat)
            .arg((size / 1024).to_string()));
        run(Command::new("mcopy")
            .args(["-s", "-i"])
            .arg(&tools_fat)
            .arg(tree.join("EFI"))
            .arg(tree.join("boot"))
            .arg("::/"));
    });
    report("FAT (cold)", fat_time, Some((tools_time, "mkfs.fat+mcopy")));

    // ISO: our writer (UEFI El Torito entry with an ESP built from EFI/) vs xorriso with the
    // same layout: an ESP image made beforehand (not timed for xorriso) as the UEFI entry.
    let ours_iso = dir.path().join("ours.iso");
    let mut opts = iso::IsoOptions::default();
    opts.boot = Some(image_runner_core::BootKind::Uefi);
    let iso_time = time(|| {
        iso::write_iso(&ours_iso, &staging, &opts).expect("our ISO");
    });
    let esp = tree.join("efi.img");
    let mut esp_staging = Staging::new();
    esp_staging
        .add_file(
            "EFI/BOOT/BOOTX64.EFI",
            Source::File(tree.join("EFI/BOOT/BOOTX64.EFI")),
        )
        .expect("stage");
    fat::write_fat_file(&esp, &esp_staging, &fat::FatOptions::default()).expect("ESP");
    let tools_iso = dir.path().join("tools.iso");
    let xorriso_time = time(|| {
        run(Command::new("xorriso")
            .args(["-as", "mkisofs", "-R", "-J", "-o"])
            .arg(&tools_iso)
            .args(["-e", "efi.img", "-no-emul-boot", "-isohybrid-gpt-basdat"])
            .arg(&tree));
    });
    let _ = std::fs::remove_file(&esp);
    report("ISO (cold)", iso_time, Some((xorriso_time, "xorriso")));

    // No-op: what a run with nothing changed does before it reuses the image.
    let stamp = dir.path().join("fat.stamp");
    BuildCheck::new(&stamp, &staging, "fat")
        .expect("check")
        .record(
            &staging,
            &Image::new(PathBuf::from(&ours_fat), ImageKind::Fat),
        )
        .expect("stamp");
    let noop = time(|| {
        let check = BuildCheck::new(&stamp, &staging, "fat").expect("check");
        assert!(
            check
                .reusable(Path::new(&ours_fat), ImageKind::Fat)
                .is_some(),
            "not reused"
        );
    });
    report("no-op rebuild check", noop, None);
}
