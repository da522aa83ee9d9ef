//! A bootloader and a runner from a library: `direct` hands the kernel to the machine as it is,
//! and `tiny-qemu` boots it with `qemu-system-x86_64 -kernel`, streaming the guest's serial
//! output to the host's handler chunk by chunk and judging the run by the exit device.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image_runner_core::serial::SerialHandler;
use image_runner_core::{
    BootMedia, CommandSpec, Context, Control, Error, Outcome, Runner, Staged, Staging, Verdict,
};

struct Direct;

impl image_runner_core::Bootloader for Direct {
    fn name(&self) -> &str {
        "direct"
    }

    fn wants_image(
        &self,
        _kernel: &image_runner_core::Kernel,
        _boot: image_runner_core::BootKind,
    ) -> bool {
        false
    }

    fn stage(&self, ctx: &Context) -> Result<Staged, Error> {
        let mut staging = Staging::new();
        staging.direct_kernel = Some(ctx.kernel.path.clone());
        Ok(Staged::new(staging))
    }
}

struct TinyQemu;

impl Runner for TinyQemu {
    fn name(&self) -> &str {
        "tiny-qemu"
    }

    fn command(&self, media: &BootMedia, _ctx: &Context) -> Result<CommandSpec, Error> {
        let kernel = media.direct_kernel.as_ref().ok_or_else(|| {
            Error::plugin(
                "tiny-qemu",
                "boots kernels directly only; use bootloader `direct`",
            )
        })?;
        let mut command = CommandSpec::new("qemu-system-x86_64");
        command.arg("-kernel").arg(kernel).args([
            "-serial",
            "stdio",
            "-display",
            "none",
            "-no-reboot",
            "-nic",
            "none",
            "-m",
            "64M",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]);
        Ok(command)
    }

    fn run(
        &self,
        media: &BootMedia,
        ctx: &Context,
        handler: &mut dyn SerialHandler,
    ) -> Result<Outcome, Error> {
        let spec = self.command(media, ctx)?;
        let started = Instant::now();
        let mut child = Command::new(&spec.program)
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("start", &spec.program, e))?;
        let mut serial = child
            .stdout
            .take()
            .ok_or_else(|| Error::plugin("tiny-qemu", "no serial pipe"))?;
        let limit = ctx.timeout().unwrap_or(Duration::from_secs(60));
        let mut chunk = [0u8; 256];
        let mut ended_by_handler = None;
        loop {
            let n = serial.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                break;
            }
            let _ = std::io::stdout().write_all(&chunk[..n]);
            let mut control = Control::new();
            handler.output(&chunk[..n], &mut control);
            if let Some(verdict) = control.take_verdict() {
                ended_by_handler = Some(verdict);
                let _ = child.kill();
                break;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Outcome::new(
                    Verdict::Timeout { after: limit },
                    started.elapsed(),
                ));
            }
        }
        let status = child
            .wait()
            .map_err(|e| Error::io("wait for", &spec.program, e))?;
        let verdict = match (ended_by_handler, status.code()) {
            (Some(verdict), _) => verdict,
            (None, Some(33)) => Verdict::Success,
            (None, code) => Verdict::GuestFailure {
                code: code.map(|c| c >> 1),
                reason: format!("QEMU exited with {code:?}"),
            },
        };
        let mut outcome = Outcome::new(verdict, started.elapsed());
        outcome.status = status.code();
        image_runner_core::dynamic::log(
            image_runner_core::dynamic::abi::level::INFO,
            &format!("tiny-qemu: {:?}", outcome.verdict),
        );
        Ok(outcome)
    }
}

image_runner_core::export_plugin!(bootloader: Direct, runner: TinyQemu);
