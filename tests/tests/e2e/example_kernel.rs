//! The bundled example (`examples/rust-kernel`): `cargo run` in that folder, with the runner
//! built from this workspace, boots it and shows its serial line.

use image_runner_tests::runner_bin;

#[test]
fn cargo_run_boots_the_rust_example_kernel() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rust-kernel");
    let target = tempfile::tempdir().expect("temporary target directory");
    let mut cargo = image_runner_tests::tools::repository_cargo(&example);
    cargo
        .arg("run")
        .arg("--quiet")
        .env("CARGO_TARGET_DIR", target.path())
        // The example's `.cargo/config.toml` names `cargo-image-runner`; point it at this build.
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
            runner_bin!(),
        );
    let out = cargo.output().expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo run failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == "Hello from a Rust kernel booted by cargo-image-runner!"),
        "serial line missing:\n{stdout}\n{stderr}"
    );
}
