//! Unchanged inputs reuse the previous image without writing it; changed inputs rebuild it;
//! the same inputs always give the same bytes.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

fn built_image(project: &Project, kernel: &std::path::Path) -> PathBuf {
    let run = project.run(["build".into(), kernel.as_os_str().to_owned()], &[]);
    run.assert_code(0);
    PathBuf::from(run.stdout.trim())
}

fn identity(path: &std::path::Path) -> (u64, i64, i64) {
    let meta = std::fs::metadata(path).expect("image exists");
    (meta.ino(), meta.mtime(), meta.mtime_nsec())
}

#[test]
fn a_second_build_with_no_change_writes_nothing() {
    let project = Project::new(
        runner_bin!(),
        "[extra-files]\n\"boot/notes.txt\" = \"notes.txt\"\n",
    );
    project.write("notes.txt", "hello");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let image = built_image(&project, &kernel);
    let before = identity(&image);
    let bytes = std::fs::read(&image).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = built_image(&project, &kernel);
    assert_eq!(again, image);
    assert_eq!(identity(&image), before, "the image was rewritten");
    assert_eq!(std::fs::read(&image).unwrap(), bytes);
}

#[test]
fn a_changed_input_rebuilds_and_a_touched_identical_one_does_not() {
    let project = Project::new(
        runner_bin!(),
        "[extra-files]\n\"boot/notes.txt\" = \"notes.txt\"\n",
    );
    let notes = project.write("notes.txt", "v1");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let image = built_image(&project, &kernel);
    let first = std::fs::read(&image).unwrap();

    // Same content, new mtime: the content hash matches, so nothing is rebuilt.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&notes, "v1").unwrap();
    let before = identity(&image);
    built_image(&project, &kernel);
    assert_eq!(
        identity(&image),
        before,
        "rebuilt for a touched but identical file"
    );

    std::fs::write(&notes, "v2 changed").unwrap();
    built_image(&project, &kernel);
    let second = std::fs::read(&image).unwrap();
    assert_ne!(first, second, "a changed file did not rebuild the image");

    // A config change that affects the image rebuilds it too.
    project.write("image-runner.toml", "[image]\nlabel = \"OTHER\"\n");
    built_image(&project, &kernel);
    assert_ne!(std::fs::read(&image).unwrap(), second);
}

#[test]
fn the_same_inputs_give_the_same_bytes_in_another_place_and_time() {
    let a = Project::new(runner_bin!(), "");
    let b = Project::new(runner_bin!(), "");
    let ka = a.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let kb = b.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let ia = std::fs::read(built_image(&a, &ka)).unwrap();
    let ib = std::fs::read(built_image(&b, &kb)).unwrap();
    assert!(ia == ib, "two builds of the same inputs differ");
}

#[test]
fn a_removed_image_is_rebuilt_not_trusted_from_the_stamp() {
    let project = Project::new(runner_bin!(), "");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let image = built_image(&project, &kernel);
    std::fs::remove_file(&image).unwrap();
    let run = project.run([&kernel], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
    assert!(image.is_file());
}

/// The image a build in `project` left, and its bytes.
fn build_and_read(project: &Project, kernel: &std::path::Path) -> (PathBuf, Vec<u8>) {
    let image = built_image(project, kernel);
    let bytes = std::fs::read(&image).expect("read the image");
    (image, bytes)
}

#[test]
fn a_copied_project_builds_its_own_image_not_the_original_one() {
    let original = Project::new(runner_bin!(), "");
    let kernel = original.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let (image, bytes) = build_and_read(&original, &kernel);

    let copy = Project::new(runner_bin!(), "");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(original.target_dir())
        .arg(copy.root())
        .status()
        .expect("run cp");
    assert!(status.success());
    let copied_kernel = copy.root().join("target/debug/k.efi");
    let copied_image = copy
        .target_dir()
        .join(image.strip_prefix(original.target_dir()).unwrap());
    let before = identity(&copied_image);
    // Mark the original, so that booting it by mistake would show.
    std::fs::write(&image, b"not an image").unwrap();

    let (used, used_bytes) = build_and_read(&copy, &copied_kernel);
    assert_eq!(used, copied_image, "the copy used another project's image");
    assert_ne!(
        identity(&used),
        before,
        "the copied image was reused without a check"
    );
    assert!(used_bytes == bytes, "the rebuilt image differs");
    copy.run([&copied_kernel], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
}

#[test]
fn a_stamp_naming_another_file_does_not_make_it_the_image() {
    let project = Project::new(runner_bin!(), "");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let (image, bytes) = build_and_read(&project, &kernel);
    let victim = project.write("victim.txt", "precious");
    let dir = image.parent().unwrap();
    let mut edited = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "stamp") {
            let text = std::fs::read_to_string(&path).unwrap();
            let text: String = text
                .lines()
                .map(|line| match line.strip_prefix("image\t") {
                    Some(rest) => {
                        let kind = rest.split('\t').next().unwrap();
                        format!("image\t{kind}\t{}\n", victim.display())
                    }
                    None => format!("{line}\n"),
                })
                .collect();
            std::fs::write(&path, text).unwrap();
            edited += 1;
        }
    }
    assert_eq!(edited, 1, "expected one stamp beside the image");
    let (used, used_bytes) = build_and_read(&project, &kernel);
    assert_eq!(used, image);
    assert!(used_bytes == bytes);
    let cmd = project.run(["--print-cmd".into(), kernel.as_os_str().to_owned()], &[]);
    cmd.assert_code(0);
    assert!(!cmd.stdout.contains("victim"), "{cmd}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn a_modified_image_is_rebuilt_not_reused() {
    use std::io::{Seek, Write};
    let project = Project::new(runner_bin!(), "");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let (image, bytes) = build_and_read(&project, &kernel);
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Same size, same inode, other bytes: the boot sector is wiped.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    file.seek(std::io::SeekFrom::Start(0)).unwrap();
    file.write_all(&[0; 512]).unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(&image).unwrap().len(), bytes.len() as u64);
    let (_, again) = build_and_read(&project, &kernel);
    assert!(again == bytes, "the modified image was reused");
    project
        .run([&kernel], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
}

#[test]
fn a_truncated_image_is_rebuilt_not_reused() {
    let project = Project::new(runner_bin!(), "");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let (image, bytes) = build_and_read(&project, &kernel);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    file.set_len(bytes.len() as u64 / 2).unwrap();
    drop(file);
    let (_, again) = build_and_read(&project, &kernel);
    assert!(again == bytes, "the truncated image was reused");
}

#[test]
fn a_changed_file_in_a_directory_image_is_rebuilt() {
    let project = Project::new(runner_bin!(), "format = \"directory\"\n");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let tree = built_image(&project, &kernel);
    assert!(tree.is_dir(), "{}", tree.display());
    // Deep in the tree: the top folder's own metadata does not change.
    let stray = tree.join("EFI/BOOT/stray.txt");
    std::fs::write(&stray, "left by someone").unwrap();
    assert_eq!(built_image(&project, &kernel), tree);
    assert!(!stray.exists(), "a changed directory image was reused");
}
