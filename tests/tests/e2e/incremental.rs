//! Unchanged inputs reuse the previous image without writing it; changed inputs rebuild it;
//! the same inputs always give the same bytes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

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

use image_runner_test_support::{mtime, set_mtime};

/// Waits until a file written now in `project` gets a later modification time than `image`
/// has, so that a rewrite of `image` from now on shows in its time, however coarse the file
/// system's clock (the image's time cannot be set instead: that would change the identity its
/// stamp records, and so the outcome).
fn wait_until_a_rewrite_would_show(project: &Project, image: &Path) {
    let before = mtime(image);
    let start = Instant::now();
    loop {
        let probe = project.write("clock-probe", "tick");
        if mtime(&probe) > before {
            std::fs::remove_file(&probe).expect("remove the probe");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the file system clock did not move past {before:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
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
    wait_until_a_rewrite_would_show(&project, &image);
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

    // Same content, new mtime (set 10 s on, whatever the file system clock's resolution): the
    // content hash matches, so nothing is rebuilt.
    let old = mtime(&notes);
    std::fs::write(&notes, "v1").unwrap();
    set_mtime(&notes, old + Duration::from_secs(10));
    assert_ne!(mtime(&notes), old, "the notes were not touched");
    wait_until_a_rewrite_would_show(&project, &image);
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
    let kb = b.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    // The two copies' modification times a day apart (the FAT keeps times to 2 s).
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    set_mtime(&ka, time);
    set_mtime(&kb, time + Duration::from_secs(24 * 60 * 60));
    assert_ne!(mtime(&ka), mtime(&kb));
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
    let (inode, old) = (std::fs::metadata(&image).unwrap().ino(), mtime(&image));
    // Same size, same inode, other bytes: the boot sector is wiped. Its time is then set 10 s
    // on, as a later write would leave it, whatever the file system clock's resolution.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    file.seek(std::io::SeekFrom::Start(0)).unwrap();
    file.write_all(&[0; 512]).unwrap();
    drop(file);
    set_mtime(&image, old + Duration::from_secs(10));
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), bytes.len() as u64);
    assert_eq!(meta.ino(), inode);
    assert_ne!(mtime(&image), old);
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

/// Bytes the runner process read (`rchar` of `/proc/PID/io`: every `read`, `pread` and
/// `copy_file_range`, page cache or not), and its output, for `args` run in `project`.
#[cfg(target_os = "linux")]
fn bytes_read_by(project: &Project, args: &[&std::ffi::OsStr]) -> (u64, String) {
    use std::io::Read;
    let mut child = project.spawn(args, &[]);
    let pid = child.id();
    let start = std::time::Instant::now();
    // A zombie keeps its accounting until it is reaped.
    let io = loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        if state == Some(Some('Z')) {
            break std::fs::read_to_string(format!("/proc/{pid}/io")).expect("io accounting");
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "the runner did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let status = child.wait().expect("reap the runner");
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).expect("runner stdout");
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).expect("runner stderr");
    }
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    let rchar = io
        .lines()
        .find_map(|line| line.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("rchar in /proc/PID/io");
    (rchar, stdout)
}

#[test]
#[cfg(target_os = "linux")]
fn builds_read_each_input_byte_once() {
    // An 8 MiB kernel-sized file and 50 smaller ones (4 MiB together), as FAT and as ISO (which
    // also builds an ESP from the EFI application). `rchar` counts bytes a kernel-side copy
    // moves as read too: a cold build copies the large file kernel-side while a second thread
    // reads it for its digest (2 x 8 MiB), and reads, hashes and writes the small ones (1 x).
    // Reading everything once in the reuse check and again in the writer was 2 x 12 MiB.
    let mut metadata = String::from("[extra-files]\n\"boot/big.bin\" = \"big.bin\"\n");
    for i in 0..50 {
        metadata.push_str(&format!(
            "\"boot/modules/m{i:02}.bin\" = \"modules/m{i:02}.bin\"\n"
        ));
    }
    let project = Project::new(runner_bin!(), &metadata);
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(project.root().join("big.bin"), &big).unwrap();
    std::fs::create_dir_all(project.root().join("modules")).unwrap();
    let large = big.len() as u64;
    let mut small = 0;
    for i in 0..50 {
        let bytes = vec![i as u8; 80_000 + 97 * i];
        small += bytes.len() as u64;
        std::fs::write(project.root().join(format!("modules/m{i:02}.bin")), bytes).unwrap();
    }
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    small += std::fs::metadata(&kernel).unwrap().len();
    // Config files, the kernel's headers, the ESP's copy of the EFI application.
    let slack = 1 << 20;
    for format in ["fat", "iso"] {
        let set = format!("format={format}");
        let build = |extra: &[&str]| {
            let mut args: Vec<&std::ffi::OsStr> = vec!["build".as_ref(), "--set".as_ref()];
            args.push(set.as_ref());
            args.extend(extra.iter().map(std::ffi::OsStr::new));
            args.push(kernel.as_os_str());
            bytes_read_by(&project, &args)
        };
        let (read, stdout) = build(&[]);
        assert!(
            read <= small + 2 * large + slack,
            "{format}: a cold build read {read} bytes for {small} + {large} bytes of content"
        );
        let image = PathBuf::from(stdout.trim());
        assert!(image.is_file(), "{stdout}");
        // Nothing changed: reused without reading any content.
        let (read, _) = build(&[]);
        assert!(read < slack, "{format}: a no-op build read {read} bytes");
        // Another label: rebuilt, every digest known from the stamp, so every file is copied
        // kernel-side and none is read for hashing.
        let (read, _) = build(&["--set", "image.label=OTHER"]);
        assert!(
            read <= small + large + slack,
            "{format}: a rebuild with known digests read {read} bytes for {} bytes of content",
            small + large
        );
    }
}
