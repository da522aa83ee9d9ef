//! The `qemu` runner: builds the QEMU command as a value, runs it in its own process group
//! with a host-side time limit, tees the serial port, and judges the exit.

mod command;
mod process;
mod verdict;

use runner_core::{BootMedia, CommandSpec, Context, Error, Outcome, Registry, Runner};

pub use command::{QemuOptions, build_command};
pub use verdict::judge;

/// The `qemu` runner plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Qemu;

/// Adds this crate's plugins to `registry`.
pub fn register(registry: &mut Registry) {
    registry.add_runner(Qemu);
}

impl Runner for Qemu {
    fn name(&self) -> &str {
        "qemu"
    }

    fn command(&self, media: &BootMedia, ctx: &Context) -> Result<CommandSpec, Error> {
        build_command(media, &QemuOptions::from_context(ctx))
    }

    fn run(&self, media: &BootMedia, ctx: &Context) -> Result<Outcome, Error> {
        let options = QemuOptions::from_context(ctx);
        let spec = build_command(media, &options)?;
        if ctx.verbose > 0 {
            eprintln!("     Running {spec}");
        }
        let serial_log = ctx.output_dir.join("serial.log");
        std::fs::create_dir_all(&ctx.output_dir)
            .map_err(|e| Error::io("create the output directory", &ctx.output_dir, e))?;
        let ended = process::run(&spec, ctx.timeout(), &serial_log, !ctx.is_test)?;
        let verdict = judge(&ended, ctx.is_test, options.success_exit_code);
        let mut outcome = Outcome::new(verdict, ended.duration);
        outcome.status = ended.status;
        outcome.serial_log = Some(serial_log);
        Ok(outcome)
    }
}
