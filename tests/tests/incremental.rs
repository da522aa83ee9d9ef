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
fn a_cold_build_reads_each_input_byte_once() {
    // An 8 MiB kernel-sized file and 50 small ones, as FAT and as ISO (which also builds an ESP
    // from the EFI application): the reuse check must not read what the writer reads again.
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
    let mut content = big.len() as u64;
    for i in 0..50 {
        let bytes = vec![i as u8; 1000 + 97 * i];
        content += bytes.len() as u64;
        std::fs::write(project.root().join(format!("modules/m{i:02}.bin")), bytes).unwrap();
    }
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    content += std::fs::metadata(&kernel).unwrap().len();
    for format in ["fat", "iso"] {
        let set = format!("format={format}");
        let args = [
            "build".as_ref(),
            "--set".as_ref(),
            set.as_ref(),
            kernel.as_os_str(),
        ];
        let (read, stdout) = bytes_read_by(&project, &args);
        // Config files, the kernel's headers and the ESP's copy of the EFI application: well
        // under 1 MiB besides the content itself.
        assert!(
            read <= content + (1 << 20),
            "{format}: a cold build read {read} bytes for {content} bytes of content"
        );
        let image = PathBuf::from(stdout.trim());
        assert!(image.is_file(), "{stdout}");
        // Nothing changed: reused without reading any content.
        let (read, _) = bytes_read_by(&project, &args);
        assert!(read < 1 << 20, "{format}: a no-op build read {read} bytes");
    }
}
