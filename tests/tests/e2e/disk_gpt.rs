//! `format = "gpt"`: EFI applications on the ESP of a GPT disk, checked with sgdisk, fsck.fat
//! and mtools, and booted by OVMF (x86_64) and AAVMF (aarch64). Needs gdisk, dosfstools and
//! mtools (`scripts/install-deps`); fails without them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{Project, Run};
use image_runner_tests::runner_bin;
use image_runner_tests::tools::checker as tool;

fn build(project: &Project, kernel: &Path) -> PathBuf {
    let run = project.run(["build".as_ref(), kernel.as_os_str()], &[]);
    run.assert_code(0);
    let image = PathBuf::from(run.stdout.trim());
    assert!(image.ends_with("image-gpt.img"), "{run}");
    image
}

fn boots(project: &Project, kernel: Kernel) -> Run {
    let run = project.run([kernels::path(kernel, Variant::Pass)], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(kernel, Variant::Pass));
    run
}

/// `(start, end, code, name)` of each partition `sgdisk -p` lists, after `sgdisk -v` found no
/// problem.
fn partitions(image: &Path) -> Vec<(u64, u64, String, String)> {
    let image = image.to_str().expect("UTF-8 path");
    let (ok, verify) = tool("sgdisk", "gdisk", &["-v", image]);
    assert!(ok && verify.contains("No problems found"), "{verify}");
    let (ok, print) = tool("sgdisk", "gdisk", &["-p", image]);
    assert!(ok, "{print}");
    assert!(
        print.contains("Partitions will be aligned on 2048-sector boundaries"),
        "{print}"
    );
    let (_, table) = print
        .split_once("Number  Start (sector)")
        .unwrap_or_else(|| panic!("no table in:\n{print}"));
    table
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            let number = |i: usize| w[i].parse::<u64>().expect("a sector number");
            (number(1), number(2), w[5].to_owned(), w[6..].join(" "))
        })
        .collect()
}

#[test]
fn efi_app_boots_from_the_esp_of_a_gpt_disk() {
    let project = Project::new(runner_bin!(), "format = \"gpt\"\n");
    boots(&project, Kernel::EfiApp);
    let image = project
        .output_dir(&kernels::path(Kernel::EfiApp, Variant::Pass))
        .join("image-gpt.img");
    let parts = partitions(&image);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!((parts[0].0, &*parts[0].2), (2048, "EF00"));
}

#[test]
fn aarch64_efi_app_boots_from_a_gpt_disk() {
    let project = Project::new(runner_bin!(), "format = \"gpt\"\n");
    boots(&project, Kernel::EfiAppAa64);
}

#[test]
fn a_hybrid_gpt_disk_adds_a_bios_boot_partition_and_still_boots_uefi() {
    let project = Project::new(runner_bin!(), "format = \"gpt\"\nboot = \"hybrid\"\n");
    boots(&project, Kernel::EfiApp);
    let image = build(&project, &kernels::path(Kernel::EfiApp, Variant::Pass));
    let parts = partitions(&image);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_eq!(
        (parts[0].0, parts[0].1, &*parts[0].2, &*parts[0].3),
        (2048, 4095, "EF02", "BIOS boot")
    );
    assert_eq!((parts[1].0, &*parts[1].2), (4096, "EF00"));
    assert!(parts.iter().all(|p| p.0 % 2048 == 0), "{parts:?}");
}

#[test]
fn the_esp_holds_the_staged_files_and_passes_fsck() {
    let project = Project::new(
        runner_bin!(),
        "format = \"gpt\"\n[extra-files]\n\"boot/notes.txt\" = \"notes.txt\"\n[image]\nfat-type = 16\nlabel = \"ESP\"\n",
    );
    project.write("notes.txt", "staged beside the app\n");
    let image = build(&project, &kernels::path(Kernel::EfiApp, Variant::Pass));
    let parts = partitions(&image);
    let (start, end) = (parts[0].0, parts[0].1);
    let bytes = std::fs::read(&image).expect("read the image");
    let esp = project.scratch().join("esp.fat");
    std::fs::write(&esp, &bytes[start as usize * 512..(end as usize + 1) * 512])
        .expect("extract the ESP");
    let (ok, report) = tool(
        "fsck.fat",
        "dosfstools",
        &["-n", "-v", esp.to_str().expect("UTF-8")],
    );
    assert!(ok && report.contains("16 bit entries"), "{report}");
    let drive = format!("{}@@{}", image.to_str().expect("UTF-8"), start * 512);
    let (ok, listing) = tool("mdir", "mtools", &["-i", &drive, "::/EFI/BOOT"]);
    assert!(ok && listing.contains("BOOTX64  EFI"), "{listing}");
    let (ok, notes) = tool("mtype", "mtools", &["-i", &drive, "::/boot/notes.txt"]);
    assert!(ok && notes == "staged beside the app\n", "{notes}");
    let (ok, label) = tool("mlabel", "mtools", &["-s", "-i", &drive, "::"]);
    assert!(ok && label.contains("ESP"), "{label}");
}

#[test]
fn a_too_small_image_size_fails_naming_the_needed_size_and_leaves_nothing() {
    let project = Project::new(runner_bin!(), "format = \"gpt\"\n[image]\nsize = 1048576\n");
    let out = project.output_dir(&kernels::path(Kernel::EfiApp, Variant::Pass));
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let run = project.run(["build".as_ref(), kernel.as_os_str()], &[]);
    run.assert_code(2)
        .assert_stderr_contains("gpt: the GPT disk needs at least ")
        .assert_stderr_contains("`image.size` is 1048576 bytes");
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|entries| entries.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");

    // After a good build, a failing one leaves that image alone and adds nothing.
    let good = project.run(
        [
            "build".as_ref(),
            "--set".as_ref(),
            "image.size=4194304".as_ref(),
            kernel.as_os_str(),
        ],
        &[],
    );
    good.assert_code(0);
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .expect("output directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let image = std::fs::read(out.join("image-gpt.img")).expect("the good image");
    project
        .run(["build".as_ref(), kernel.as_os_str()], &[])
        .assert_code(2);
    let after = listing();
    assert!(
        after.iter().all(|name| before.contains(name)) && after.contains(&"image-gpt.img".into()),
        "before: {before:?}, after: {after:?}"
    );
    assert!(std::fs::read(out.join("image-gpt.img")).expect("still there") == image);
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let images: Vec<Vec<u8>> = (0..2u64)
        .map(|i| {
            let project = Project::new(runner_bin!(), "format = \"gpt\"\nboot = \"hybrid\"\n");
            let kernel = project.add_kernel(
                &kernels::path(Kernel::EfiApp, Variant::Pass),
                "target/debug/kernel.efi",
            );
            // A different modification time on each copied kernel: a day apart.
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i * 86_400);
            image_runner_test_support::set_mtime(&kernel, time);
            std::fs::read(build(&project, &kernel)).expect("read the image")
        })
        .collect();
    assert!(images[0] == images[1], "two builds differ");
}
