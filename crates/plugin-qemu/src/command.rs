//! The QEMU command line, built as a value from the boot media and the config.

use std::path::Path;

use runner_core::command::qemu_escape;
use runner_core::{Arch, BootMedia, CommandSpec, Context, Error, FirmwareFiles, ImageKind};

/// The port and size of the exit device; a guest write of v makes QEMU exit with `(v << 1) | 1`.
pub const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// Everything the command depends on besides the boot media, taken from the context.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QemuOptions {
    /// Guest architecture.
    pub arch: Arch,
    /// QEMU program (`qemu-system-<arch>` unless configured).
    pub binary: String,
    /// Machine type (`q35` on x86_64 unless configured).
    pub machine: String,
    /// `-m` value.
    pub memory: String,
    /// `-smp` value.
    pub cores: u32,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// Show a window.
    pub gui: bool,
    /// Kernel command line for direct boots.
    pub cmdline: String,
    /// Test mode.
    pub is_test: bool,
    /// Status that means success.
    pub success_exit_code: i32,
    /// Extra arguments, in order: `qemu.args`, then `test.args` or `run.args`.
    pub extra_args: Vec<String>,
}

impl QemuOptions {
    /// Options for the run described by `ctx`.
    pub fn from_context(ctx: &Context) -> Self {
        let cfg = &ctx.config;
        let mut extra_args = cfg.qemu.args.clone();
        extra_args.extend(if ctx.is_test {
            cfg.test.args.iter().cloned()
        } else {
            cfg.run.args.iter().cloned()
        });
        QemuOptions {
            arch: ctx.arch,
            binary: cfg.qemu.binary.clone(),
            machine: cfg.qemu.machine.clone(),
            memory: cfg.qemu.memory.clone(),
            cores: cfg.qemu.cores,
            accel: cfg.qemu.accel.clone(),
            gui: cfg.qemu.gui,
            cmdline: cfg.cmdline.clone(),
            is_test: ctx.is_test,
            success_exit_code: cfg.test.success_exit_code,
            extra_args,
        }
    }

    /// Defaults for `arch`, as a starting point for tests and library users.
    pub fn new(arch: Arch) -> Self {
        QemuOptions {
            arch,
            binary: String::new(),
            machine: String::new(),
            memory: "256M".into(),
            cores: 1,
            accel: "tcg".into(),
            gui: false,
            cmdline: String::new(),
            is_test: false,
            success_exit_code: 33,
            extra_args: Vec::new(),
        }
    }
}

fn utf8(path: &Path) -> Result<String, Error> {
    path.to_str().map(|_| qemu_escape(path)).ok_or_else(|| {
        Error::plugin(
            "qemu",
            format!(
                "path `{}` is not valid UTF-8; QEMU options need UTF-8 paths",
                path.display()
            ),
        )
    })
}

/// Whether the user's extra arguments already set up this option.
fn user_sets(extra: &[String], options: &[&str]) -> bool {
    extra.iter().any(|a| options.contains(&a.as_str()))
}

/// Builds the QEMU command for `media`.
pub fn build_command(media: &BootMedia, o: &QemuOptions) -> Result<CommandSpec, Error> {
    let binary = if o.binary.is_empty() {
        format!("qemu-system-{}", o.arch.name())
    } else {
        o.binary.clone()
    };
    let mut cmd = CommandSpec::new(binary);
    let machine = match (o.machine.as_str(), o.arch) {
        ("", Arch::X86_64) => "q35",
        ("", _) => "virt",
        (m, _) => m,
    };
    cmd.args(["-machine", machine]);
    match o.accel.as_str() {
        "tcg" | "kvm" | "hvf" | "whpx" => {
            cmd.args(["-accel", o.accel.as_str()]);
        }
        other => {
            return Err(Error::plugin(
                "qemu",
                format!("`qemu.accel = \"{other}\"` is not an accelerator; use tcg or kvm"),
            ));
        }
    }
    cmd.args(["-m", o.memory.as_str()]);
    cmd.args(["-smp".to_owned(), o.cores.to_string()]);
    if !o.gui {
        cmd.args(["-display", "none"]);
    }
    cmd.args(["-serial", "stdio"]);
    cmd.arg("-no-reboot");
    if !user_sets(&o.extra_args, &["-nic", "-net", "-netdev"]) {
        // No PXE option ROM to try: saves about half a second on UEFI boots.
        cmd.args(["-nic", "none"]);
    }
    if o.arch == Arch::X86_64 {
        cmd.args(["-device", DEBUG_EXIT_DEVICE]);
    }
    match &media.firmware {
        Some(FirmwareFiles::Pflash { code, vars }) => {
            cmd.args([
                "-drive".to_owned(),
                format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    utf8(code)?
                ),
                "-drive".to_owned(),
                format!("if=pflash,format=raw,unit=1,file={}", utf8(vars)?),
            ]);
        }
        Some(FirmwareFiles::Unified(path)) => {
            cmd.arg("-bios").arg(path.to_string_lossy());
        }
        Some(_) | None => {}
    }
    if let Some(kernel) = &media.direct_kernel {
        cmd.arg("-kernel").arg(kernel.to_string_lossy());
        if !o.cmdline.is_empty() {
            cmd.args(["-append", o.cmdline.as_str()]);
        }
    }
    if let Some(image) = &media.image {
        let file = utf8(&image.path)?;
        match image.kind {
            ImageKind::Iso => cmd.args([
                "-drive".to_owned(),
                format!("media=cdrom,format=raw,file={file}"),
            ]),
            ImageKind::Directory => cmd.args([
                "-drive".to_owned(),
                format!("format=raw,file=fat:rw:{file}"),
            ]),
            _ => cmd.args(["-drive".to_owned(), format!("format=raw,file={file}")]),
        };
    }
    cmd.args(o.extra_args.iter().cloned());
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner_core::{BootKind, Image};

    fn words(cmd: &CommandSpec) -> Vec<&str> {
        std::iter::once(cmd.program.as_str())
            .chain(cmd.args.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn direct_kernel_boot_in_test_mode() {
        let mut media = BootMedia::new(BootKind::Bios);
        media.direct_kernel = Some("/k/kernel".into());
        let mut o = QemuOptions::new(Arch::X86_64);
        o.is_test = true;
        o.cmdline = "quiet".into();
        let cmd = build_command(&media, &o).unwrap();
        assert_eq!(
            words(&cmd),
            [
                "qemu-system-x86_64",
                "-machine",
                "q35",
                "-accel",
                "tcg",
                "-m",
                "256M",
                "-smp",
                "1",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-nic",
                "none",
                "-device",
                DEBUG_EXIT_DEVICE,
                "-kernel",
                "/k/kernel",
                "-append",
                "quiet"
            ]
        );
    }

    #[test]
    fn uefi_fat_image_with_commas_in_paths() {
        let mut media = BootMedia::new(BootKind::Uefi);
        media.firmware = Some(FirmwareFiles::Pflash {
            code: "/fw/CODE.fd".into(),
            vars: "/out/a,b/vars.fd".into(),
        });
        media.image = Some(Image::new("/out/a,b/my image.fat", ImageKind::Fat));
        let mut o = QemuOptions::new(Arch::X86_64);
        o.gui = true;
        o.extra_args = vec!["-netdev".into(), "user,id=n".into()];
        let cmd = build_command(&media, &o).unwrap();
        assert_eq!(
            words(&cmd),
            [
                "qemu-system-x86_64",
                "-machine",
                "q35",
                "-accel",
                "tcg",
                "-m",
                "256M",
                "-smp",
                "1",
                "-serial",
                "stdio",
                "-no-reboot",
                "-device",
                DEBUG_EXIT_DEVICE,
                "-drive",
                "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
                "-drive",
                "if=pflash,format=raw,unit=1,file=/out/a,,b/vars.fd",
                "-drive",
                "format=raw,file=/out/a,,b/my image.fat",
                "-netdev",
                "user,id=n"
            ]
        );
    }

    #[test]
    fn iso_and_directory_images_attach_differently() {
        let mut media = BootMedia::new(BootKind::Bios);
        media.image = Some(Image::new("/o/x.iso", ImageKind::Iso));
        let cmd = build_command(&media, &QemuOptions::new(Arch::X86_64)).unwrap();
        assert!(
            cmd.args
                .contains(&"media=cdrom,format=raw,file=/o/x.iso".to_owned())
        );
        media.image = Some(Image::new("/o/dir", ImageKind::Directory));
        let cmd = build_command(&media, &QemuOptions::new(Arch::X86_64)).unwrap();
        assert!(
            cmd.args
                .contains(&"format=raw,file=fat:rw:/o/dir".to_owned())
        );
    }

    #[test]
    fn kvm_is_used_only_when_asked_and_bad_accels_are_errors() {
        let media = BootMedia::new(BootKind::Bios);
        let mut o = QemuOptions::new(Arch::X86_64);
        o.accel = "kvm".into();
        assert!(
            build_command(&media, &o)
                .unwrap()
                .to_string()
                .contains("-accel kvm")
        );
        o.accel = "fast".into();
        let err = build_command(&media, &o).unwrap_err().to_string();
        assert!(err.contains("qemu.accel") && err.contains("fast"), "{err}");
    }
}
