//! `cargo-image-runner`, built inside this package so its integration tests can run it.

fn main() -> std::process::ExitCode {
    cargo_image_runner::main_with_args(std::env::args_os())
}
