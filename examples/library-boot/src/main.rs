//! Boots a kernel from Rust code, no manifest on disk:
//!
//! ```text
//! library-boot KERNEL [--answer TEXT] [--end-on TEXT] [--timeout SECONDS]
//! ```
//!
//! The guest's serial output is shown as it arrives (a `Tee` handler). `--answer` types TEXT
//! when the guest prints `login: ` (an `AnswerOn` handler); `--end-on` ends the run as passed
//! when the output contains TEXT (an `EndOn` handler), whether or not the guest ever exits. The
//! program prints the verdict, the guest's exit status, how long it took and how much output
//! was captured, and exits with the code `cargo-image-runner` would.

use std::process::ExitCode;

use image_runner_core::serial::{AnswerOn, EndOn, SerialHandler, Tee};
use image_runner_core::{Builder, Registry, Verdict};

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<u8, String> {
    let mut args = std::env::args().skip(1);
    let mut kernel = None;
    let mut answer = None;
    let mut end_on = None;
    let mut timeout = 60u64;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--answer" => answer = Some(value()?),
            "--end-on" => end_on = Some(value()?),
            "--timeout" => timeout = value()?.parse().map_err(|e| format!("--timeout: {e}"))?,
            _ if kernel.is_none() => kernel = Some(arg),
            _ => return Err(format!("unexpected argument `{arg}`")),
        }
    }
    let kernel = kernel.ok_or("usage: library-boot KERNEL [--answer TEXT] [--end-on TEXT]")?;

    // Pick the plugins: the core's `none` bootloader is always there; add QEMU.
    let mut registry = Registry::new();
    image_runner_qemu::register(&mut registry);

    // The handlers, chained: show the output, answer the prompt, end on a text.
    let mut handlers: Vec<Box<dyn SerialHandler>> = vec![Box::new(Tee::new(std::io::stdout()))];
    if let Some(answer) = answer {
        handlers.push(Box::new(AnswerOn::new("login: ", answer).once()));
    }
    if let Some(text) = end_on {
        handlers.push(Box::new(EndOn::new(&text, Verdict::Success)));
    }

    let result = Builder::new(&registry)
        .executable(&kernel)
        // Config as TOML text, as in `image-runner.toml`: shared keys and plugin sections.
        // The QEMU plugin writes the serial log only; the Tee handler above shows the output.
        .config_toml(format!(
            "[test]\ntimeout = {timeout}\n\n[qemu]\nserial = \"file\"\n"
        ))
        .test(true)
        .handler(handlers)
        .capture(true)
        .run()
        .map_err(|e| e.to_string())?;

    let outcome = &result.outcome;
    println!();
    println!(
        "verdict: {}; guest exit status: {}; {:.2} s; captured {} bytes",
        outcome.verdict,
        outcome
            .status
            .map_or_else(|| "none".to_owned(), |s| s.to_string()),
        outcome.duration.as_secs_f64(),
        result.output.as_ref().map_or(0, Vec::len)
    );
    Ok(u8::try_from(result.exit_code).unwrap_or(2))
}
