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
