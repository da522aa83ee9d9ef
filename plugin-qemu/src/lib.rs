//! The `qemu` runner: picks the accelerator, builds the QEMU command as a value, runs it in
//! its own process group with a host-side time limit, tees and watches the serial port, and
//! judges the exit.

mod accel;
mod command;
mod process;
mod serial;
mod verdict;

use image_runner_core::config::SerialMode;
use image_runner_core::{
    BootMedia, Check, CheckStatus, CommandSpec, Context, Error, Outcome, Registry, Runner,
};

pub use accel::{Accel, AccelPlan, HostEvidence, is_accel_failure, plan};
pub use command::{DEBUG_EXIT_DEVICE, QemuOptions, SerialWiring, build_command, serial_wiring};
pub use serial::{Hit, Watch};
pub use verdict::{Ended, judge};

/// The `qemu` runner plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Qemu;

/// Adds this crate's plugins to `registry`.
pub fn register(registry: &mut Registry) {
    registry.add_runner(Qemu);
}

fn accel_plan(ctx: &Context) -> Result<AccelPlan, Error> {
    plan(
        &ctx.config.qemu.accel,
        ctx.arch.name(),
        &HostEvidence::probe(),
    )
}

/// The gdb port: the configured one, or a free one when 0 was asked for.
fn gdb_port(ctx: &Context) -> Result<Option<u16>, Error> {
    match ctx.config.qemu.gdb_port {
        Some(0) => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| Error::io("find a free TCP port on", "127.0.0.1", e))?;
            let port = listener
                .local_addr()
                .map_err(|e| Error::io("find a free TCP port on", "127.0.0.1", e))?
                .port();
            Ok(Some(port))
        }
        other => Ok(other),
    }
}

fn print_gdb_help(ctx: &Context, port: u16) {
    let exe = image_runner_core::command::shell_quote(&ctx.kernel.path.to_string_lossy());
    eprintln!(
        "     Waiting for a debugger on 127.0.0.1:{port} (QEMU starts halted; no time limit)"
    );
    eprintln!("         gdb {exe} -ex 'target remote 127.0.0.1:{port}'");
    eprintln!("         lldb {exe} -o 'gdb-remote 127.0.0.1:{port}'");
}

impl Runner for Qemu {
    fn name(&self) -> &str {
        "qemu"
    }

    fn command(&self, media: &BootMedia, ctx: &Context) -> Result<CommandSpec, Error> {
        let plan = accel_plan(ctx)?;
        build_command(
            media,
            &QemuOptions::from_context(ctx, plan.first(), gdb_port(ctx)?)?,
        )
    }

    fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for (arch, package) in [
            ("x86_64", "qemu-system-x86"),
            ("aarch64", "qemu-system-arm"),
            ("riscv64", "qemu-system-misc"),
        ] {
            let program = format!("qemu-system-{arch}");
            let version = std::process::Command::new(&program)
                .arg("--version")
                .stdin(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .map(str::to_owned)
                });
            checks.push(match version {
                Some(line) => Check::new(&program, CheckStatus::Ok, line),
                None if arch == "x86_64" => Check::new(
                    &program,
                    CheckStatus::Missing,
                    format!("not found; install `{package}` (Debian/Ubuntu) or set `qemu.binary`"),
                ),
                None => Check::new(
                    &program,
                    CheckStatus::Warn,
                    format!("not found (needed for {arch} kernels); install `{package}`"),
                ),
            });
        }
        match plan("auto", "x86_64", &HostEvidence::probe()) {
            Ok(p) => checks.push(Check::new(
                "accelerator for x86_64",
                CheckStatus::Ok,
                p.reason,
            )),
            Err(e) => checks.push(Check::new(
                "accelerator for x86_64",
                CheckStatus::Warn,
                e.to_string(),
            )),
        }
        checks
    }

    fn run(&self, media: &BootMedia, ctx: &Context) -> Result<Outcome, Error> {
        let plan = accel_plan(ctx)?;
        if ctx.verbose > 0 {
            eprintln!("  Accelerator {} ({})", plan.first(), plan.reason);
        }
        let gdb = gdb_port(ctx)?;
        if let Some(port) = gdb {
            print_gdb_help(ctx, port);
        }
        std::fs::create_dir_all(&ctx.output_dir)
            .map_err(|e| Error::io("create the output directory", &ctx.output_dir, e))?;
        let log = ctx.output_dir.join("serial.log");
        let (mode, success_pattern, failure_pattern, sends) = if ctx.is_test {
            let t = &ctx.config.test;
            ("test", &t.success_pattern, &t.failure_pattern, &t.send)
        } else {
            let r = &ctx.config.run;
            ("run", &r.success_pattern, &r.failure_pattern, &r.send)
        };
        let timeout = if gdb.is_some() { None } else { ctx.timeout() };
        let mut attempts = plan.order.iter().peekable();
        loop {
            let Some(&accel) = attempts.next() else {
                return Err(Error::plugin("qemu", "no accelerator to try"));
            };
            let options = QemuOptions::from_context(ctx, accel, gdb)?;
            let watching =
                success_pattern.is_some() || failure_pattern.is_some() || !sends.is_empty();
            if watching
                && matches!(
                    options.serial,
                    SerialWiring::UserDefined | SerialWiring::Off
                )
            {
                return Err(Error::Config(format!(
                    "`{mode}` patterns or send rules need the serial port, but it is {}; remove them or let the runner wire the serial port",
                    if options.serial == SerialWiring::Off {
                        "off (`qemu.serial = \"none\"`)"
                    } else {
                        "set up by your own `-serial` argument"
                    }
                )));
            }
            let spec = build_command(media, &options)?;
            if ctx.verbose > 0 {
                eprintln!("     Running {spec}");
            }
            let ended = process::run(process::Supervision {
                command: &spec,
                timeout,
                serial: &options.serial,
                log: &log,
                echo: ctx.config.qemu.serial == SerialMode::Stdio,
                interactive: !ctx.is_test,
                watch: Watch::new(
                    success_pattern.as_deref(),
                    failure_pattern.as_deref(),
                    sends,
                    mode,
                )?,
            })?;
            let verdict = judge(&ended, ctx.is_test, ctx.config.test.success_exit_code);
            let failed_at_start = matches!(verdict, image_runner_core::Verdict::Crashed { .. })
                && is_accel_failure(accel, &ended.stderr);
            if failed_at_start && let Some(next) = attempts.peek() {
                eprintln!(
                    "note: QEMU failed with {accel} ({}); retrying with {next}",
                    ended
                        .stderr
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("no message")
                );
                continue;
            }
            let mut outcome = Outcome::new(verdict, ended.duration);
            outcome.status = ended.status;
            outcome.serial_log = matches!(
                options.serial,
                SerialWiring::Stdio | SerialWiring::LogFile(_)
            )
            .then(|| log.clone());
            return Ok(outcome);
        }
    }
}
