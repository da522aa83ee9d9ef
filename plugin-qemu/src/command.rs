//! The QEMU command line, built as a value from the boot media and the options. Nothing here
//! runs anything, so every combination is pinned by unit tests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use image_runner_core::command::qemu_option;
use image_runner_core::config::Attach;
use image_runner_core::{
    Arch, BootMedia, CommandSpec, Context, Error, FirmwareFiles, Image, ImageKind,
};

use crate::accel::Accel;
use crate::config::{QemuConfig, SerialMode};

/// The port and size of the exit device; a guest write of v makes QEMU exit with `(v << 1) | 1`.
pub const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// Where the guest's serial port is wired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialWiring {
    /// `-serial stdio`: we read QEMU's stdout.
    Stdio,
    /// `-serial file:LOG`: the user's own arguments use stdio (monitor, `-nographic`), so the
    /// serial port goes to the log file, which we follow.
    LogFile(PathBuf),
    /// `-serial none`.
    Off,
    /// The user's arguments set up the serial port themselves; we step aside.
    UserDefined,
}

/// Decides the serial wiring from the mode and the user's extra arguments.
pub fn serial_wiring(mode: SerialMode, extra: &[String], log: &Path) -> SerialWiring {
    let has = |opt: &str| extra.iter().any(|a| a == opt);
    let value_uses_stdio = |opt: &str| {
        extra.windows(2).any(|w| {
            w[0] == opt
                && (w[1] == "stdio" || w[1].starts_with("stdio,") || w[1].starts_with("mon:stdio"))
        })
    };
    if has("-serial") {
        return SerialWiring::UserDefined;
    }
    if mode == SerialMode::None {
        return SerialWiring::Off;
    }
    let stdio_taken = has("-nographic")
        || value_uses_stdio("-monitor")
        || value_uses_stdio("-chardev")
        || value_uses_stdio("-qmp");
    if stdio_taken {
        SerialWiring::LogFile(log.to_path_buf())
    } else {
        SerialWiring::Stdio
    }
}

/// Everything the command depends on besides the boot media.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QemuOptions {
    /// Guest architecture.
    pub arch: Arch,
    /// QEMU program (`qemu-system-<arch>` when empty).
    pub binary: String,
    /// Machine type (`q35` on x86_64, `virt` elsewhere, when empty).
    pub machine: String,
    /// CPU model (chosen from arch and accelerator when empty).
    pub cpu: String,
    /// `-m` value.
    pub memory: String,
    /// `-smp` value.
    pub cores: u32,
    /// The accelerator for this attempt.
    pub accel: Accel,
    /// Show a window.
    pub gui: bool,
    /// Serial wiring.
    pub serial: SerialWiring,
    /// How the image is attached (`Auto`: an ISO as a CD-ROM, anything else as a disk; a run
    /// uses the shared decision, which is never `Auto`).
    pub attach: Attach,
    /// Start halted with a gdb stub on this port.
    pub gdb_port: Option<u16>,
    /// A listening socket on `gdb_port`, opened by the runner, that QEMU inherits under this
    /// fd number for its gdb stub. `None`: QEMU binds `gdb_port` itself (as in a printed
    /// command, which must work on its own).
    pub gdb_listener_fd: Option<i32>,
    /// Kernel command line for direct boots.
    pub cmdline: String,
    /// Extra arguments, in order: `qemu.args`, `test.args` or `run.args`,
    /// `CARGO_IMAGE_RUNNER_QEMU_ARGS`, then the command line's after `--`.
    pub extra_args: Vec<String>,
    /// Let guest writes to a disk image reach the file (`qemu.persist-writes`). Off: every run
    /// boots its own view of the image (`snapshot=on`: writes go to a temporary overlay), so
    /// any number of runs can share one image and none changes it.
    pub persist_writes: bool,
}

impl QemuOptions {
    /// Defaults for `arch`, as a starting point for tests and library users.
    pub fn new(arch: Arch) -> Self {
        QemuOptions {
            arch,
            binary: String::new(),
            machine: String::new(),
            cpu: String::new(),
            memory: crate::QemuConfig::default().memory,
            cores: 1,
            accel: Accel::Tcg,
            gui: false,
            serial: SerialWiring::Stdio,
            attach: Attach::Auto,
            gdb_port: None,
            gdb_listener_fd: None,
            cmdline: String::new(),
            extra_args: Vec::new(),
            persist_writes: false,
        }
    }

    /// Options for the run described by `ctx` with the `qemu` section `cfg`, with `accel` and
    /// the gdb port already decided.
    pub fn from_context(
        ctx: &Context,
        cfg: &QemuConfig,
        accel: Accel,
        gdb_port: Option<u16>,
    ) -> Result<Self, Error> {
        let extra_args = extra_args(ctx, cfg)?;
        Ok(QemuOptions {
            arch: ctx.decisions.arch,
            binary: cfg.binary.clone(),
            machine: cfg.machine.clone(),
            cpu: cfg.cpu.clone(),
            memory: cfg.memory.clone(),
            cores: cfg.cores,
            accel,
            gui: cfg.gui,
            serial: serial_wiring(cfg.serial, &extra_args, &ctx.output_dir.join("serial.log")),
            attach: ctx.decisions.attach,
            gdb_port,
            gdb_listener_fd: None,
            cmdline: ctx.config.cmdline.clone(),
            extra_args,
            persist_writes: cfg.persist_writes,
        })
    }
}

/// The user's extra arguments in their documented order.
pub fn extra_args(ctx: &Context, cfg: &QemuConfig) -> Result<Vec<String>, Error> {
    let mut args = cfg.args.clone();
    args.extend(ctx.decisions.mode.args.iter().cloned());
    if let Some(words) = ctx.env.get("CARGO_IMAGE_RUNNER_QEMU_ARGS") {
        let split = shlex::split(words).ok_or_else(|| {
            Error::Config(format!(
                "CARGO_IMAGE_RUNNER_QEMU_ARGS=`{words}` has an unclosed quote or a trailing backslash"
            ))
        })?;
        args.extend(split);
    }
    args.extend(ctx.runner_args.iter().cloned());
    Ok(args)
}

/// Builds the QEMU command for `media`.
pub fn build_command(media: &BootMedia, o: &QemuOptions) -> Result<CommandSpec, Error> {
    let x86 = o.arch == Arch::X86_64;
    let binary = if o.binary.is_empty() {
        format!("qemu-system-{}", o.arch.name())
    } else {
        o.binary.clone()
    };
    let mut cmd = CommandSpec::new(binary);
    let machine = match (o.machine.as_str(), x86) {
        ("", true) => "q35",
        ("", false) => "virt",
        (m, _) => m,
    };
    cmd.args(["-machine", machine, "-accel", o.accel.name()]);
    let cpu = match (o.cpu.as_str(), o.arch) {
        ("", Arch::Aarch64) if o.accel.is_hardware() => "host",
        // The `virt` board's default CPU is a 32-bit Cortex-A15.
        ("", Arch::Aarch64) => "max",
        // `host` exists only with a hardware accelerator; `max` is its emulated counterpart
        // (this is what a fallback from KVM to TCG needs).
        ("host", _) if !o.accel.is_hardware() => "max",
        (cpu, _) => cpu,
    };
    if !cpu.is_empty() {
        cmd.args(["-cpu", cpu]);
    }
    cmd.args(["-m", o.memory.as_str()]);
    cmd.args(["-smp".to_owned(), o.cores.to_string()]);
    if !o.gui {
        // Without a display choice QEMU silently starts a VNC server on headless hosts.
        cmd.args(["-display", "none"]);
    }
    match &o.serial {
        SerialWiring::Stdio => {
            cmd.args(["-serial", "stdio"]);
        }
        SerialWiring::LogFile(log) => {
            cmd.arg("-serial").arg(qemu_option("file:", log, ""));
        }
        SerialWiring::Off => {
            cmd.args(["-serial", "none"]);
        }
        SerialWiring::UserDefined => {}
    }
    cmd.arg("-no-reboot");
    if !o
        .extra_args
        .iter()
        .any(|a| matches!(a.as_str(), "-nic" | "-net" | "-netdev"))
    {
        // No PXE option ROM to try: saves about half a second on UEFI boots.
        cmd.args(["-nic", "none"]);
    }
    if x86 {
        cmd.args(["-device", DEBUG_EXIT_DEVICE]);
    } else {
        // Lets a guest end the run with a status (SYS_EXIT); x86 uses isa-debug-exit instead.
        cmd.args(["-semihosting-config", "enable=on,target=native"]);
    }
    if o.arch == Arch::Riscv64 && media.firmware.is_none() {
        cmd.args(["-bios", "default"]);
    }
    if o.arch == Arch::Aarch64 && media.firmware.is_some() {
        // AAVMF otherwise waits five seconds for a key before it boots from disk.
        cmd.args(["-boot", "menu=on,splash-time=0"]);
    }
    match &media.firmware {
        Some(FirmwareFiles::Pflash { code, vars }) => {
            cmd.arg("-drive").arg(qemu_option(
                "if=pflash,format=raw,unit=0,readonly=on,file=",
                code,
                "",
            ));
            cmd.arg("-drive")
                .arg(qemu_option("if=pflash,format=raw,unit=1,file=", vars, ""));
        }
        Some(FirmwareFiles::Unified(path)) => {
            cmd.arg("-bios").arg(path);
        }
        Some(_) | None => {}
    }
    if let Some(kernel) = &media.direct_kernel {
        cmd.arg("-kernel").arg(kernel);
        if !o.cmdline.is_empty() {
            cmd.args(["-append", o.cmdline.as_str()]);
        }
    }
    if let Some(image) = &media.image {
        if o.persist_writes && image.kind == ImageKind::Directory {
            // vvfat writes through to the folder's files, which are hard links of the staged
            // sources (the kernel in `target/` among them).
            return Err(Error::Config(format!(
                "`qemu.persist-writes = true` with a `directory` image would let the guest write into your own files (`{}` holds hard links of them); use `format = \"fat\"` (or gpt, mbr) to keep guest writes",
                image.path.display()
            )));
        }
        let as_cdrom = match o.attach {
            Attach::Cdrom => true,
            Attach::Disk => false,
            _ => image.kind == ImageKind::Iso,
        };
        let source = drive_source(image, as_cdrom, o.persist_writes);
        let with = |prefix: &str| {
            let mut value = OsString::from(prefix);
            value.push(&source);
            value
        };
        match (as_cdrom, x86) {
            (true, true) => cmd.arg("-drive").arg(with("media=cdrom,")),
            (_, true) => cmd.arg("-drive").arg(source.clone()),
            // ARM and RISC-V boards have no IDE/AHCI: attach through virtio.
            (true, false) => cmd
                .args(["-device", "virtio-scsi-pci,id=scsi0", "-drive"])
                .arg(with("if=none,id=boot0,media=cdrom,"))
                .args(["-device", "scsi-cd,drive=boot0"]),
            (_, false) => cmd
                .arg("-drive")
                .arg(with("if=none,id=boot0,"))
                .args(["-device", "virtio-blk-pci,drive=boot0"]),
        };
    }
    if let Some(port) = o.gdb_port {
        cmd.arg("-S");
        match o.gdb_listener_fd {
            Some(fd) => cmd.args([
                "-chardev".to_owned(),
                format!("socket,id={GDB_CHARDEV},fd={fd},server=on,wait=off"),
                "-gdb".to_owned(),
                format!("chardev:{GDB_CHARDEV}"),
            ]),
            None => cmd.args(["-gdb".to_owned(), format!("tcp:127.0.0.1:{port}")]),
        };
    }
    cmd.args(o.extra_args.iter().cloned());
    Ok(cmd)
}

/// The id of the gdb stub's character device (with the prefix the runner's own devices share,
/// which a QEMU refusing them names in its error).
const GDB_CHARDEV: &str = "image-runner-gdb";

/// The `format=raw,file=…` part of the image's `-drive`. A CD-ROM is read-only to the guest
/// already. A disk gets `snapshot=on` unless guest writes are to persist: the file is then
/// only read, and the guest's writes go to a temporary overlay that QEMU deletes at exit, so
/// parallel runs of one image do not fight over QEMU's write lock and the image stays as built.
/// A directory (vvfat) is read-only (`fat:DIR`) with a snapshot overlay above it, or
/// `fat:rw:DIR` when writes persist (vvfat's `rw` mode cannot be combined with a snapshot).
/// A disk stored in another format (`Image::disk_format`: qcow2, vmdk, vhdx) is opened as that
/// format.
fn drive_source(image: &Image, as_cdrom: bool, persist_writes: bool) -> OsString {
    let format = format!(
        "format={},file=",
        image.disk_format.as_deref().unwrap_or("raw")
    );
    match (image.kind, as_cdrom, persist_writes) {
        (ImageKind::Directory, _, false) => {
            qemu_option("format=raw,file=fat:", &image.path, ",snapshot=on")
        }
        (_, false, false) => qemu_option(&format, &image.path, ",snapshot=on"),
        (_, _, _) => qemu_option(&format, &image.path, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_runner_core::{BootKind, Image};

    fn words(cmd: &CommandSpec) -> Vec<String> {
        std::iter::once(cmd.program.clone())
            .chain(cmd.args_lossy())
            .collect()
    }

    fn direct(kernel: &str) -> BootMedia {
        let mut media = BootMedia::new(BootKind::Bios);
        media.direct_kernel = Some(kernel.into());
        media
    }

    fn uefi(code: &str, vars: &str, image: Image) -> BootMedia {
        let mut media = BootMedia::new(BootKind::Uefi);
        media.firmware = Some(FirmwareFiles::Pflash {
            code: code.into(),
            vars: vars.into(),
        });
        media.image = Some(image);
        media
    }

    #[test]
    fn x86_direct_kernel_tcg_stdio() {
        let mut o = QemuOptions::new(Arch::X86_64);
        o.cmdline = "quiet".into();
        let cmd = build_command(&direct("/k/kernel"), &o).unwrap();
        assert_eq!(
            words(&cmd),
            [
                "qemu-system-x86_64",
                "-machine",
                "q35",
                "-accel",
                "tcg",
                "-m",
                "1G",
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
    fn x86_uefi_fat_kvm_gui_user_network_and_commas() {
        let media = uefi(
            "/fw/CODE.fd",
            "/out/a,b/vars.fd",
            Image::new("/out/a,b/my image.fat", ImageKind::Fat),
        );
        let mut o = QemuOptions::new(Arch::X86_64);
        o.accel = Accel::Kvm;
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
                "kvm",
                "-m",
                "1G",
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
                "format=raw,file=/out/a,,b/my image.fat,snapshot=on",
                "-netdev",
                "user,id=n"
            ]
        );
    }

    #[test]
    fn x86_iso_directory_unified_firmware_serial_off_gdb() {
        let mut media = BootMedia::new(BootKind::Uefi);
        media.firmware = Some(FirmwareFiles::Unified("/fw/OVMF.fd".into()));
        media.image = Some(Image::new("/o/x.iso", ImageKind::Iso));
        let mut o = QemuOptions::new(Arch::X86_64);
        o.serial = SerialWiring::Off;
        o.gdb_port = Some(1234);
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
                "1G",
                "-smp",
                "1",
                "-display",
                "none",
                "-serial",
                "none",
                "-no-reboot",
                "-nic",
                "none",
                "-device",
                DEBUG_EXIT_DEVICE,
                "-bios",
                "/fw/OVMF.fd",
                "-drive",
                "media=cdrom,format=raw,file=/o/x.iso",
                "-S",
                "-gdb",
                "tcp:127.0.0.1:1234"
            ]
        );
        media.image = Some(Image::new("/o/dir", ImageKind::Directory));
        let cmd = build_command(&media, &o).unwrap();
        assert!(
            cmd.has_arg("format=raw,file=fat:/o/dir,snapshot=on"),
            "{cmd}"
        );
        // The runner's own listening socket, inherited, instead of QEMU binding the port.
        o.gdb_listener_fd = Some(7);
        let cmd = build_command(&media, &o).unwrap();
        let words = words(&cmd);
        assert_eq!(
            words[words.len() - 5..],
            [
                "-S",
                "-chardev",
                "socket,id=image-runner-gdb,fd=7,server=on,wait=off",
                "-gdb",
                "chardev:image-runner-gdb"
            ],
            "{cmd}"
        );
    }

    #[test]
    fn a_disk_in_another_format_is_opened_as_that_format() {
        let mut media = BootMedia::new(BootKind::Bios);
        media.image = Some(Image::new("/o/image.qcow2", ImageKind::Disk).with_disk_format("qcow2"));
        let o = QemuOptions::new(Arch::X86_64);
        let cmd = build_command(&media, &o).unwrap();
        assert!(
            cmd.has_arg("format=qcow2,file=/o/image.qcow2,snapshot=on"),
            "{cmd}"
        );
    }

    #[test]
    fn aarch64_uefi_virtio_disk_tcg_and_hvf() {
        let media = uefi(
            "/fw/AAVMF_CODE.fd",
            "/o/vars.fd",
            Image::new("/o/image.fat", ImageKind::Fat),
        );
        let o = QemuOptions::new(Arch::Aarch64);
        let cmd = build_command(&media, &o).unwrap();
        assert_eq!(
            words(&cmd),
            [
                "qemu-system-aarch64",
                "-machine",
                "virt",
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-m",
                "1G",
                "-smp",
                "1",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-nic",
                "none",
                "-semihosting-config",
                "enable=on,target=native",
                "-boot",
                "menu=on,splash-time=0",
                "-drive",
                "if=pflash,format=raw,unit=0,readonly=on,file=/fw/AAVMF_CODE.fd",
                "-drive",
                "if=pflash,format=raw,unit=1,file=/o/vars.fd",
                "-drive",
                "if=none,id=boot0,format=raw,file=/o/image.fat,snapshot=on",
                "-device",
                "virtio-blk-pci,drive=boot0"
            ]
        );
        let mut o = QemuOptions::new(Arch::Aarch64);
        o.accel = Accel::Hvf;
        assert!(
            build_command(&media, &o)
                .unwrap()
                .to_string()
                .contains("-accel hvf -cpu host")
        );
    }

    #[test]
    fn cpu_host_becomes_max_without_a_hardware_accelerator() {
        let mut o = QemuOptions::new(Arch::X86_64);
        o.cpu = "host".into();
        let media = direct("/k");
        assert!(
            build_command(&media, &o)
                .unwrap()
                .to_string()
                .contains("-accel tcg -cpu max ")
        );
        o.accel = Accel::Kvm;
        assert!(
            build_command(&media, &o)
                .unwrap()
                .to_string()
                .contains("-accel kvm -cpu host ")
        );
    }

    #[test]
    fn aarch64_iso_goes_through_virtio_scsi() {
        let mut media = BootMedia::new(BootKind::Uefi);
        media.image = Some(Image::new("/o/x.iso", ImageKind::Iso));
        let cmd = build_command(&media, &QemuOptions::new(Arch::Aarch64)).unwrap();
        let words = words(&cmd);
        assert!(
            words.ends_with(
                &[
                    "-device",
                    "virtio-scsi-pci,id=scsi0",
                    "-drive",
                    "if=none,id=boot0,media=cdrom,format=raw,file=/o/x.iso",
                    "-device",
                    "scsi-cd,drive=boot0"
                ]
                .map(String::from)
            ),
            "{words:?}"
        );
    }

    #[test]
    fn riscv64_direct_kernel_uses_opensbi() {
        let cmd = build_command(&direct("/k/kernel"), &QemuOptions::new(Arch::Riscv64)).unwrap();
        assert_eq!(
            words(&cmd),
            [
                "qemu-system-riscv64",
                "-machine",
                "virt",
                "-accel",
                "tcg",
                "-m",
                "1G",
                "-smp",
                "1",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-nic",
                "none",
                "-semihosting-config",
                "enable=on,target=native",
                "-bios",
                "default",
                "-kernel",
                "/k/kernel"
            ]
        );
    }

    #[test]
    fn serial_steps_aside_for_the_users_own_stdio_use() {
        let log = Path::new("/o/serial.log");
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            serial_wiring(SerialMode::Stdio, &[], log),
            SerialWiring::Stdio
        );
        assert_eq!(
            serial_wiring(SerialMode::File, &[], log),
            SerialWiring::Stdio
        );
        assert_eq!(serial_wiring(SerialMode::None, &[], log), SerialWiring::Off);
        assert_eq!(
            serial_wiring(
                SerialMode::Stdio,
                &args(&["-serial", "tcp::4444,server"]),
                log
            ),
            SerialWiring::UserDefined
        );
        for taken in [
            &["-monitor", "stdio"][..],
            &["-nographic"],
            &["-chardev", "stdio,id=c0"],
            &["-qmp", "stdio"],
        ] {
            assert_eq!(
                serial_wiring(SerialMode::Stdio, &args(taken), log),
                SerialWiring::LogFile(log.into()),
                "{taken:?}"
            );
        }
        let mut o = QemuOptions::new(Arch::X86_64);
        o.serial = SerialWiring::LogFile("/o/a,b/serial.log".into());
        assert!(
            build_command(&BootMedia::new(BootKind::Bios), &o)
                .unwrap()
                .has_arg("file:/o/a,,b/serial.log")
        );
    }

    #[test]
    fn disks_are_snapshots_unless_writes_persist() {
        let drive = |image: Image, attach: Attach, persist: bool| {
            let mut media = BootMedia::new(BootKind::Bios);
            media.image = Some(image);
            let mut o = QemuOptions::new(Arch::X86_64);
            o.attach = attach;
            o.persist_writes = persist;
            let words = words(&build_command(&media, &o).unwrap());
            let at = words.iter().rposition(|w| w == "-drive").unwrap();
            words[at + 1].clone()
        };
        for kind in [ImageKind::Fat, ImageKind::Disk, ImageKind::Iso] {
            assert_eq!(
                drive(Image::new("/o/a,b.img", kind), Attach::Disk, false),
                "format=raw,file=/o/a,,b.img,snapshot=on",
                "{kind:?}"
            );
            assert_eq!(
                drive(Image::new("/o/a,b.img", kind), Attach::Disk, true),
                "format=raw,file=/o/a,,b.img",
                "{kind:?}"
            );
        }
        // A CD-ROM is read-only to the guest anyway.
        assert_eq!(
            drive(Image::new("/o/x.iso", ImageKind::Iso), Attach::Auto, false),
            "media=cdrom,format=raw,file=/o/x.iso"
        );
        // vvfat: read-only below a snapshot. Kept writes would reach the folder's files, hard
        // links of the user's own: refused.
        assert_eq!(
            drive(
                Image::new("/o/d", ImageKind::Directory),
                Attach::Disk,
                false
            ),
            "format=raw,file=fat:/o/d,snapshot=on"
        );
        let mut media = BootMedia::new(BootKind::Bios);
        media.image = Some(Image::new("/o/d", ImageKind::Directory));
        let mut o = QemuOptions::new(Arch::X86_64);
        o.persist_writes = true;
        let err = build_command(&media, &o).unwrap_err().to_string();
        assert!(
            err.contains("`qemu.persist-writes = true` with a `directory` image"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn paths_that_are_not_utf8_reach_qemu_unchanged() {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let odd = |tail: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(tail));
        let mut media = BootMedia::new(BootKind::Uefi);
        media.direct_kernel = Some(odd(b"/k/ker\xffnel"));
        media.firmware = Some(FirmwareFiles::Pflash {
            code: odd(b"/fw/\xfe,code.fd"),
            vars: odd(b"/o/\xfd/vars.fd"),
        });
        media.image = Some(Image::new(odd(b"/o/\xfd/image.fat"), ImageKind::Fat));
        let mut o = QemuOptions::new(Arch::X86_64);
        o.serial = SerialWiring::LogFile(odd(b"/o/\xfd/serial.log"));
        let cmd = build_command(&media, &o).unwrap();
        let args: Vec<Vec<u8>> = cmd.args.iter().map(|a| a.clone().into_vec()).collect();
        for expected in [
            &b"/k/ker\xffnel"[..],
            b"if=pflash,format=raw,unit=0,readonly=on,file=/fw/\xfe,,code.fd",
            b"if=pflash,format=raw,unit=1,file=/o/\xfd/vars.fd",
            b"format=raw,file=/o/\xfd/image.fat,snapshot=on",
            b"file:/o/\xfd/serial.log",
        ] {
            assert!(
                args.iter().any(|a| a == expected),
                "{:?} not in {cmd}",
                String::from_utf8_lossy(expected)
            );
        }
        media.firmware = Some(FirmwareFiles::Unified(odd(b"/fw/\xfeOVMF.fd")));
        let cmd = build_command(&media, &o).unwrap();
        assert!(cmd.args.iter().any(|a| a.as_bytes() == b"/fw/\xfeOVMF.fd"));
    }
}
