//! A signal while the image is being written: the runner removes the unfinished image and
//! exits with the interrupted code (130), and a temporary left by a build that was killed
//! outright is removed by the next build in that output folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{self, Project};
use image_runner_tests::runner_bin;

/// Temporaries (`.<name>.tmp-<pid>...`) in `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.') && n.contains(".tmp-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a build of a FAT image holding a 1 GiB file, waits until the image's temporary
/// exists, sends `signal` and returns the run and the output folder.
fn interrupt_a_big_build(signal: &str) -> (runner::Run, PathBuf) {
    let project = Project::new(
        runner_bin!(),
        "format = \"fat\"\n[extra-files]\n\"big.bin\" = \"big.bin\"\n",
    );
    let big = std::fs::File::create(project.root().join("big.bin")).expect("create big.bin");
    big.set_len(1 << 30).expect("size big.bin");
    drop(big);
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let output = project.output_dir(&kernel);
    let child = project.spawn(["build".into(), kernel.into_os_string()], &[]);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let temp = output.join(format!(".image.fat.tmp-{pid}"));
    while !temp.exists() {
        assert!(
            Instant::now() < deadline,
            "the build never started writing {}",
            temp.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Mid-build: the temporary is there and still growing.
    std::thread::sleep(Duration::from_millis(20));
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let run = runner::wait(child);
    // Keep the project (and its folder) alive until here.
    let _ = project.root();
    (run, output)
}

#[test]
fn sigterm_during_the_image_build_exits_130_and_leaves_no_temporary() {
    let (run, output) = interrupt_a_big_build("TERM");
    run.assert_code(130).assert_stderr_contains("interrupted");
    assert_eq!(temporaries(&output), Vec::<PathBuf>::new(), "{run}");
    assert!(!output.join("image.fat").exists(), "{run}");
}

#[test]
fn sigint_during_the_image_build_exits_130_and_leaves_no_temporary() {
    let (run, output) = interrupt_a_big_build("INT");
    run.assert_code(130);
    assert_eq!(temporaries(&output), Vec::<PathBuf>::new(), "{run}");
}

#[test]
fn temporaries_of_dead_processes_are_removed_by_the_next_build() {
    let project = Project::new(runner_bin!(), "");
    let kernel = project.add_kernel(
        &kernels::path(Kernel::EfiApp, Variant::Pass),
        "target/debug/k.efi",
    );
    let output = project.output_dir(&kernel);
    std::fs::create_dir_all(&output).unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale_file = output.join(format!(".image.fat.tmp-{dead}"));
    std::fs::write(&stale_file, vec![0u8; 1 << 20]).unwrap();
    let stale_tree = output.join(format!(".image.tmp-{dead}"));
    std::fs::create_dir_all(stale_tree.join("EFI/BOOT")).unwrap();
    // This test's own process is alive: its temporary may be in use and stays.
    let live = output.join(format!(".image.iso.tmp-{}", std::process::id()));
    std::fs::write(&live, b"in use").unwrap();

    let run = project.run(["build".into(), "-v".into(), kernel.into_os_string()], &[]);
    run.assert_code(0)
        .assert_stderr_contains(&stale_file.display().to_string());
    assert!(!stale_file.exists() && !stale_tree.exists(), "{run}");
    assert!(live.exists());
}
