//! The `cargo-image-runner` binary.

fn main() -> std::process::ExitCode {
    cargo_image_runner::main_with_args(std::env::args_os())
}
