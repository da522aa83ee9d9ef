//! The `qemu` runner: picks the accelerator, builds the QEMU command as a value, runs it in
//! its own process group with a host-side time limit, tees and watches the serial port and
//! streams it to the run's serial handler (which may type into it and end the run), and
//! judges the exit. Its config section is [`QemuConfig`] (`[…image-runner.qemu]`).

mod accel;
mod command;
mod config;
mod process;
mod serial;
mod verdict;

use image_runner_core::{
    BootMedia, Check, CheckStatus, CommandSpec, Context, Error, Outcome, Registry, Runner, Section,
    SerialHandler,
};

pub use accel::{Accel, AccelPlan, HostEvidence, is_accel_failure, plan};
pub use command::{DEBUG_EXIT_DEVICE, QemuOptions, SerialWiring, build_command, serial_wiring};
pub use config::{QemuConfig, SerialMode, parse_limit};
pub use serial::{BootHit, BootWatch, Hit, Watch};
pub use verdict::{Ended, judge};

/// The `qemu` runner plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Qemu;

/// Adds this crate's plugins to `registry`.
pub fn register(registry: &mut Registry) {
    registry.add_runner(Qemu);
}

/// The `qemu` config section of the run.
fn section(ctx: &Context) -> Result<QemuConfig, Error> {
    ctx.section::<QemuConfig>("qemu")
}

fn accel_plan(ctx: &Context, cfg: &QemuConfig) -> Result<AccelPlan, Error> {
    plan(
        &cfg.accel,
        ctx.decisions.arch.name(),
        &HostEvidence::probe(),
    )
}

/// The gdb stub's socket: the configured port, or a free one when 0 was asked for, bound
/// here and kept open for QEMU to inherit. The port is ours from the moment it is chosen: no
/// other program can take it between the choice (and the help printed with it) and QEMU's
/// start, and a port in use is reported before QEMU starts.
struct GdbStub {
    port: u16,
    /// `None` once given up for a QEMU that refuses inherited sockets (it binds the port).
    listener: Option<std::net::TcpListener>,
}

impl GdbStub {
    fn open(cfg: &QemuConfig) -> Result<Option<GdbStub>, Error> {
        let Some(asked) = cfg.gdb_port else {
            return Ok(None);
        };
        let address = format!("127.0.0.1:{asked}");
        let listener = std::net::TcpListener::bind(&address).map_err(|e| {
            Error::Config(format!(
                "cannot listen for a debugger on {address}: {e}; pick another port (`--gdb=PORT`, `qemu.gdb-port`) or let the runner pick one (`--gdb`, `qemu.gdb-port = 0`)"
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("read the address of the gdb socket", &address, e))?
            .port();
        Ok(Some(GdbStub {
            port,
            listener: Some(listener),
        }))
    }

    /// The listening socket's fd, for QEMU to inherit.
    fn fd(&self) -> Option<i32> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            self.listener.as_ref().map(|l| l.as_raw_fd())
        }
        #[cfg(not(unix))]
        None
    }
}

/// With `qemu.persist-writes`, QEMU opens the image for writing, which only one QEMU may do:
/// waits until no other run of this output directory uses `image`, and returns the lock that
/// says so (released when dropped, or when the process ends however it ends).
fn take_turn(ctx: &Context, image: &std::path::Path) -> Result<std::fs::File, Error> {
    let path = ctx.output_dir.join("persist-writes.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open the lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
    }
    eprintln!(
        "     Waiting for another run of `{}` to end (`qemu.persist-writes = true` keeps the guest's writes, so runs of one image take turns)",
        image.display()
    );
    file.lock().map_err(|e| Error::io("lock", &path, e))?;
    Ok(file)
}

fn print_gdb_help(ctx: &Context, port: u16) {
    let exe = image_runner_core::command::shell_quote_os(ctx.kernel.path.as_os_str());
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
        let cfg = section(ctx)?;
        let plan = accel_plan(ctx, &cfg)?;
        // A printed command binds the port itself when run.
        let gdb = GdbStub::open(&cfg)?.map(|stub| stub.port);
        build_command(
            media,
            &QemuOptions::from_context(ctx, &cfg, plan.first(), gdb)?,
        )
    }

    fn config_section(&self) -> Option<Section> {
        // `qemu.attach` moved to the shared key `attach`; users' `qemu.attach` still sets it.
        let section = Section::of::<QemuConfig>().with_moved_key("attach", "attach");
        Some(
            config::old_keys()
                .into_iter()
                .fold(section, Section::with_old_key),
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

    fn run(
        &self,
        media: &BootMedia,
        ctx: &Context,
        handler: &mut dyn SerialHandler,
    ) -> Result<Outcome, Error> {
        let cfg = section(ctx)?;
        let mode = &ctx.decisions.mode;
        // The patterns of the mode not in use are checked too: a mistake there should not
        // wait for the day that mode runs.
        let other = if mode.is_test {
            &ctx.config.run
        } else {
            &ctx.config.test
        };
        Watch::new(
            other.success_pattern.as_deref(),
            other.failure_pattern.as_deref(),
            &other.send,
            if mode.is_test { "run" } else { "test" },
        )?;
        let log_limit =
            parse_limit(&cfg.serial_log_limit, "qemu.serial-log-limit").map_err(Error::Config)?;
        let plan = accel_plan(ctx, &cfg)?;
        if ctx.verbose > 0 {
            eprintln!("  Accelerator {} ({})", plan.first(), plan.reason);
        }
        let mut gdb = GdbStub::open(&cfg)?;
        if let Some(stub) = &gdb {
            print_gdb_help(ctx, stub.port);
        }
        std::fs::create_dir_all(&ctx.output_dir)
            .map_err(|e| Error::io("create the output directory", &ctx.output_dir, e))?;
        let log = ctx.output_dir.join("serial.log");
        // Held until QEMU has exited: runs whose guest writes reach the image take turns.
        let _turn = match &media.image {
            Some(image) if cfg.persist_writes => Some(take_turn(ctx, &image.path)?),
            _ => None,
        };
        let timeout = if gdb.is_some() { None } else { mode.timeout };
        let mut attempts = plan.order.iter().peekable();
        // The monitor socket and the firmware console, until a QEMU refuses them.
        let mut channels = true;
        let mut retry_same = None;
        loop {
            let Some(accel) = retry_same.take().or_else(|| attempts.next().copied()) else {
                return Err(Error::plugin("qemu", "no accelerator to try"));
            };
            if !channels && let Some(stub) = &mut gdb {
                // A QEMU that refused the monitor's inherited socket refuses this one too:
                // it binds the port itself.
                stub.listener = None;
            }
            let mut options =
                QemuOptions::from_context(ctx, &cfg, accel, gdb.as_ref().map(|s| s.port))?;
            options.gdb_listener_fd = gdb.as_ref().and_then(GdbStub::fd);
            let watching = mode.success_pattern.is_some()
                || mode.failure_pattern.is_some()
                || !mode.send.is_empty();
            if watching
                && matches!(
                    options.serial,
                    SerialWiring::UserDefined | SerialWiring::Off
                )
            {
                return Err(Error::Config(format!(
                    "`{}` patterns or send rules need the serial port, but it is {}; remove them or let the runner wire the serial port",
                    mode.name(),
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
            let mut watch = Watch::new(
                mode.success_pattern.as_deref(),
                mode.failure_pattern.as_deref(),
                &mode.send,
                mode.name(),
            )?;
            if cfg.stop_on_boot_failure {
                watch = watch.with_boot_watch();
            }
            // SeaBIOS logs to port 0x402 (and says there when it finds nothing to boot); a
            // UEFI firmware's debug build would flood it, so it is attached for SeaBIOS only,
            // not for a kernel QEMU loads itself (SeaBIOS then boots it from an option ROM and
            // has nothing to fail on), and never when the user's arguments use that port.
            let users_debugcon = options
                .extra_args
                .iter()
                .any(|a| a == "-debugcon" || a.contains("isa-debugcon"));
            let firmware_console = channels
                && cfg.stop_on_boot_failure
                && ctx.decisions.arch == image_runner_core::Arch::X86_64
                && media.firmware.is_none()
                && media.direct_kernel.is_none()
                && !users_debugcon;
            let ended = process::run(process::Supervision {
                command: &spec,
                timeout,
                serial: &options.serial,
                log: &log,
                log_limit,
                echo: cfg.serial == SerialMode::Stdio,
                interactive: !mode.is_test,
                watch,
                monitor: channels,
                firmware_console,
                handler: &mut *handler,
                screenshot: Some(ctx.output_dir.join("screen.png")),
                inherit: options.gdb_listener_fd.into_iter().collect(),
            })?;
            // A QEMU too old for an inherited socket (`-chardev socket,fd=`) refuses to start:
            // run it without the monitor and the console (resets then pass for power-offs).
            if channels
                && ended.started == Some(false)
                && ended.handler.is_none()
                && ended.stderr.contains(process::channels::ID_PREFIX)
            {
                eprintln!(
                    "note: QEMU refused the runner's monitor socket ({}); running without it, so a reset cannot be told from a power-off",
                    ended.error_line().unwrap_or("no message")
                );
                channels = false;
                retry_same = Some(accel);
                continue;
            }
            let verdict = judge(&ended, mode);
            // A verdict the handler gave is its own, never an accelerator's failure to start.
            let failed_at_start = ended.handler.is_none()
                && matches!(verdict, image_runner_core::Verdict::Crashed { .. })
                && is_accel_failure(accel, &ended.stderr);
            if failed_at_start && let Some(next) = attempts.peek() {
                eprintln!(
                    "note: QEMU failed with {accel} ({}); retrying with {next}",
                    ended.error_line().unwrap_or("no message")
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
            outcome.screenshot = ended.screenshot.clone();
            return Ok(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use image_runner_core::config::{Attach, ConfigLayers, Sections, Variables};
    use image_runner_core::{
        Arch, BootKind, Config, Decisions, Image, ImageKind, ImagePlan, Kernel, RunMode,
    };

    use super::*;

    /// A context for `dir` whose "kernel" is a ready disk image there.
    fn context(dir: &Path, image: Option<ImagePlan>) -> Context {
        let disk = dir.join("disk.img");
        let mut sector = vec![0u8; 512];
        sector[510..].copy_from_slice(&[0x55, 0xaa]);
        std::fs::write(&disk, sector).unwrap();
        let mode = RunMode::choose(&Config::default(), true);
        Context::for_tests(
            Kernel::inspect(&disk).unwrap(),
            Decisions::new(BootKind::Bios, Arch::X86_64, image, mode),
            dir,
        )
    }

    #[test]
    fn qemu_attach_where_users_wrote_it_sets_the_shared_key() {
        let mut sections = Sections::new();
        sections.insert("qemu", Qemu.config_section().unwrap());
        let mut layers = ConfigLayers::new(&sections);
        layers
            .add_file_str(
                Path::new("/k/image-runner.toml"),
                "[qemu]\nattach = \"disk\"\ncores = 2\n",
            )
            .unwrap();
        let resolved = layers.resolve(None, &Variables::new()).unwrap();
        assert_eq!(resolved.config.attach, Attach::Disk);
        let cfg: QemuConfig = toml::Value::Table(resolved.sections["qemu"].clone())
            .try_into()
            .unwrap();
        assert_eq!(cfg.cores, 2);
        assert_eq!(cfg.memory, "1G", "defaults fill the rest");
        let err = ConfigLayers::new(&sections)
            .add_file_str(Path::new("/k/image-runner.toml"), "[qemu]\ncors = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/k/image-runner.toml:2:1"), "{err}");
    }

    #[test]
    fn options_come_from_the_decisions_and_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = context(dir.path(), Some(ImagePlan::new("iso", ImageKind::Iso)));
        // No section: the defaults.
        let options =
            QemuOptions::from_context(&ctx, &section(&ctx).unwrap(), Accel::Tcg, None).unwrap();
        assert_eq!(options.memory, "1G");
        assert_eq!(
            options.attach,
            Attach::Cdrom,
            "an ISO is a CD-ROM by default"
        );

        let cfg = QemuConfig {
            memory: "512M".into(),
            accel: "tcg".into(),
            serial: SerialMode::File,
            args: vec!["-a".into()],
            ..QemuConfig::default()
        };
        ctx = ctx.with_section("qemu", &cfg).unwrap();
        ctx.decisions = ctx.decisions.clone().with_attach(Attach::Disk);
        ctx.decisions.mode.args = vec!["-t".into()];
        ctx.env
            .insert("CARGO_IMAGE_RUNNER_QEMU_ARGS".into(), "-e 'x y'".into());
        ctx.runner_args = vec!["-r".into()];
        let options =
            QemuOptions::from_context(&ctx, &section(&ctx).unwrap(), Accel::Tcg, None).unwrap();
        assert_eq!(options.memory, "512M");
        assert_eq!(options.attach, Attach::Disk);
        assert_eq!(
            options.serial,
            SerialWiring::Stdio,
            "`file` is wired by the runner"
        );
        assert_eq!(options.extra_args, ["-a", "-t", "-e", "x y", "-r"]);

        let mut media = BootMedia::new(BootKind::Bios);
        media.image = Some(Image::new("/o/x.iso", ImageKind::Iso));
        let cmd = Qemu.command(&media, &ctx).unwrap();
        assert!(
            cmd.has_arg("format=raw,file=/o/x.iso,snapshot=on"),
            "attached as a disk: {cmd}"
        );
    }

    #[test]
    fn patterns_need_the_serial_port() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QemuConfig {
            serial: SerialMode::None,
            accel: "tcg".into(),
            ..QemuConfig::default()
        };
        let mut ctx = context(dir.path(), None)
            .with_section("qemu", &cfg)
            .unwrap();
        ctx.decisions.mode.success_pattern = Some("ok".into());
        let err = Qemu
            .run(
                &BootMedia::new(BootKind::Bios),
                &ctx,
                &mut image_runner_core::serial::Ignore,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`test` patterns or send rules need the serial port"),
            "{err}"
        );
    }
}
