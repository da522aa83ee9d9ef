//! The decisions every step shares, made once before staging: boot kind, architecture, the
//! image format and the kind of image it makes, how the image is attached, the boot protocol,
//! and the run mode. Plugins read these; none re-derives them from raw config.

use std::time::Duration;

use crate::config::{Attach, BootChoice, Config, SendRule};
use crate::error::Error;
use crate::kernel::{Arch, Kernel};
use crate::media::{BootKind, ImageKind};
use crate::protocol::Protocol;

/// The image this run builds: the format plugin's name and what it makes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ImagePlan {
    /// The format plugin (`iso`, `fat`, ...), as registered.
    pub format: String,
    /// What that format makes.
    pub kind: ImageKind,
}

impl ImagePlan {
    /// An image of `kind` made by format `format`.
    pub fn new(format: impl Into<String>, kind: ImageKind) -> Self {
        ImagePlan {
            format: format.into(),
            kind,
        }
    }
}

/// The run mode, chosen once from whether the executable is a test: `[test]` or `[run]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RunMode {
    /// Whether the executable is a test binary.
    pub is_test: bool,
    /// The time limit, if any.
    pub timeout: Option<Duration>,
    /// Extra emulator arguments for this mode.
    pub args: Vec<String>,
    /// A regex: serial output matching it ends the run as passed.
    pub success_pattern: Option<String>,
    /// A regex: serial output matching it ends the run as failed.
    pub failure_pattern: Option<String>,
    /// Text typed into the serial port when the output matches.
    pub send: Vec<SendRule>,
    /// The emulator exit status that means "passed".
    pub success_exit_code: i32,
}

impl RunMode {
    /// The mode for a test (`is_test`) or a normal run, from `config`.
    pub fn choose(config: &Config, is_test: bool) -> RunMode {
        let chosen = if is_test { &config.test } else { &config.run };
        RunMode {
            is_test,
            timeout: (chosen.timeout > 0).then(|| Duration::from_secs(chosen.timeout)),
            args: chosen.args.clone(),
            success_pattern: chosen.success_pattern.clone(),
            failure_pattern: chosen.failure_pattern.clone(),
            send: chosen.send.clone(),
            success_exit_code: chosen
                .success_exit_code
                .or(config.test.success_exit_code)
                .unwrap_or(33),
        }
    }

    /// `test` or `run`: the config table the mode comes from.
    pub fn name(&self) -> &'static str {
        if self.is_test { "test" } else { "run" }
    }
}

/// The boot kind: `boot` from config, or with `auto` UEFI for a UEFI application or a bare
/// FAT volume (no boot code for BIOS), BIOS otherwise.
pub fn boot_of(config: &Config, kernel: &Kernel) -> BootKind {
    match config.boot {
        BootChoice::Auto if kernel.is_efi_app() => BootKind::Uefi,
        BootChoice::Auto if kernel.prebuilt_image() == Some(ImageKind::Fat) => BootKind::Uefi,
        BootChoice::Auto | BootChoice::Bios => BootKind::Bios,
        BootChoice::Uefi => BootKind::Uefi,
        BootChoice::Hybrid => BootKind::Hybrid,
    }
}

/// Everything decided before staging.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Decisions {
    /// How the machine boots.
    pub boot: BootKind,
    /// Guest architecture.
    pub arch: Arch,
    /// The image to build; `None` when the kernel boots without one (directly, or a ready image).
    pub image: Option<ImagePlan>,
    /// How the image is attached: [`Attach::Cdrom`] or [`Attach::Disk`], never `Auto`.
    pub attach: Attach,
    /// The run mode.
    pub mode: RunMode,
    protocol: Result<Protocol, String>,
}

/// What [`Decisions::resolve`] needs from the plugins: the bootloader's view and the format's
/// image kind.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PluginFacts {
    /// Whether the bootloader stages files for an image (`false`: the kernel boots directly or
    /// is a ready image).
    pub bootloader_wants_image: bool,
}

impl PluginFacts {
    /// Facts about the selected plugins.
    pub fn new(bootloader_wants_image: bool) -> Self {
        PluginFacts {
            bootloader_wants_image,
        }
    }
}

impl Decisions {
    /// Makes every decision for `kernel` under `config`. `origins` names the source of each
    /// key for errors; `format_kind` says what a format plugin makes (an error for an unknown
    /// name).
    pub fn resolve(
        config: &Config,
        kernel: &Kernel,
        is_test: bool,
        facts: PluginFacts,
        origin: impl Fn(&str) -> String,
        format_kind: impl Fn(&str) -> Result<ImageKind, Error>,
    ) -> Result<Decisions, Error> {
        let arch = match config.arch.as_str() {
            "auto" => kernel.arch,
            name => Arch::from_name(name).ok_or_else(|| {
                Error::Config(format!(
                    "`arch = \"{name}\"` (set by {}) is not a known architecture; use auto, x86_64, aarch64, riscv64 or loongarch64",
                    origin("arch")
                ))
            })?,
        };
        let boot = boot_of(config, kernel);
        let needs_image = facts.bootloader_wants_image || !config.extra_files.is_empty();
        let format = match config.format.as_str() {
            "auto" if !needs_image => None,
            // BIOS boots from a CD (El Torito) when a bootloader is staged; everything else
            // (UEFI, hybrid, a direct kernel's extra files) gets a FAT volume.
            "auto" if boot == BootKind::Bios && facts.bootloader_wants_image => Some("iso"),
            "auto" => Some("fat"),
            name => Some(name),
        };
        let image = format
            .map(|name| Ok::<_, Error>(ImagePlan::new(name, format_kind(name)?)))
            .transpose()?;
        // The image is the one built, or a ready image handed over as the kernel.
        let kind = image
            .as_ref()
            .map(|plan| plan.kind)
            .or_else(|| kernel.prebuilt_image());
        let attach = match (config.attach, kind) {
            (Attach::Auto, Some(ImageKind::Iso)) => Attach::Cdrom,
            (Attach::Auto, _) => Attach::Disk,
            (chosen, _) => chosen,
        };
        let protocol = Protocol::resolve(
            Some(kernel).filter(|k| k.prebuilt_image().is_none()),
            &kernel.path,
            config.protocol,
            "protocol",
            arch,
        )
        .map_err(|e| e.to_string());
        Ok(Decisions {
            boot,
            arch,
            image,
            attach,
            mode: RunMode::choose(config, is_test),
            protocol,
        })
    }

    /// The boot protocol for the main kernel: `protocol` from config checked against the
    /// kernel, or picked by the `auto` rule. An error when nothing fits (only bootloaders that
    /// use a protocol ask).
    pub fn protocol(&self) -> Result<Protocol, Error> {
        self.protocol.clone().map_err(Error::Config)
    }

    /// Decisions made directly, for plugin unit tests and callers that decide themselves.
    pub fn new(boot: BootKind, arch: Arch, image: Option<ImagePlan>, mode: RunMode) -> Self {
        let attach = match &image {
            Some(plan) if plan.kind == ImageKind::Iso => Attach::Cdrom,
            _ => Attach::Disk,
        };
        Decisions {
            boot,
            arch,
            image,
            attach,
            mode,
            protocol: Err("no protocol was decided".into()),
        }
    }

    /// The same decisions with `protocol` for the main kernel.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Ok(protocol);
        self
    }

    /// The same decisions with the image attached as `attach`.
    pub fn with_attach(mut self, attach: Attach) -> Self {
        self.attach = attach;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelFormat;

    fn elf64() -> Kernel {
        Kernel::described("/k/kernel", KernelFormat::Elf { bits: 64 }, Arch::X86_64)
    }

    fn kind(name: &str) -> Result<ImageKind, Error> {
        match name {
            "iso" => Ok(ImageKind::Iso),
            "fat" => Ok(ImageKind::Fat),
            "gpt" | "mbr" => Ok(ImageKind::Disk),
            other => Err(Error::Config(format!("no format `{other}`"))),
        }
    }

    fn decide(config: &Config, kernel: &Kernel, wants_image: bool) -> Result<Decisions, Error> {
        Decisions::resolve(
            config,
            kernel,
            false,
            PluginFacts::new(wants_image),
            |_| "test".into(),
            kind,
        )
    }

    fn format_of(d: &Decisions) -> Option<(&str, ImageKind)> {
        d.image.as_ref().map(|p| (p.format.as_str(), p.kind))
    }

    #[test]
    fn auto_format_follows_the_bootloader_and_the_boot_kind() {
        let mut config = Config::default();
        let kernel = elf64();
        let d = decide(&config, &kernel, true).unwrap();
        assert_eq!(format_of(&d), Some(("iso", ImageKind::Iso)));
        assert_eq!(d.attach, Attach::Cdrom);
        config.boot = BootChoice::Uefi;
        assert_eq!(
            format_of(&decide(&config, &kernel, true).unwrap()),
            Some(("fat", ImageKind::Fat))
        );
        config.boot = BootChoice::Hybrid;
        assert_eq!(
            format_of(&decide(&config, &kernel, true).unwrap()),
            Some(("fat", ImageKind::Fat))
        );
        // A kernel that boots directly gets no image, unless extra files need one.
        config.boot = BootChoice::Bios;
        assert_eq!(format_of(&decide(&config, &kernel, false).unwrap()), None);
        config
            .extra_files
            .insert("data.txt".into(), "data.txt".into());
        let d = decide(&config, &kernel, false).unwrap();
        assert_eq!(format_of(&d), Some(("fat", ImageKind::Fat)));
        assert_eq!(d.attach, Attach::Disk);
    }

    #[test]
    fn a_named_format_asks_the_registry_for_its_kind() {
        let config = Config {
            format: "gpt".into(),
            attach: Attach::Cdrom,
            ..Config::default()
        };
        let d = decide(&config, &elf64(), true).unwrap();
        assert_eq!(format_of(&d), Some(("gpt", ImageKind::Disk)));
        assert_eq!(d.attach, Attach::Cdrom, "an explicit attach is kept");
        let config = Config {
            format: "qcow9".into(),
            ..Config::default()
        };
        let err = decide(&config, &elf64(), true).unwrap_err().to_string();
        assert!(err.contains("no format `qcow9`"), "{err}");
    }

    #[test]
    fn a_ready_iso_is_attached_as_a_cdrom() {
        let iso = Kernel::described(
            "/k/os.iso",
            KernelFormat::Image(ImageKind::Iso),
            Arch::X86_64,
        );
        let d = decide(&Config::default(), &iso, false).unwrap();
        assert_eq!(format_of(&d), None);
        assert_eq!(d.attach, Attach::Cdrom);
        assert!(d.protocol().is_err(), "a ready image has no boot protocol");
    }

    #[test]
    fn the_protocol_is_decided_once_from_the_headers() {
        let mut kernel = elf64();
        assert_eq!(
            decide(&Config::default(), &kernel, true)
                .unwrap()
                .protocol()
                .unwrap(),
            Protocol::Limine
        );
        kernel.multiboot2 = true;
        assert_eq!(
            decide(&Config::default(), &kernel, true)
                .unwrap()
                .protocol()
                .unwrap(),
            Protocol::Multiboot2
        );
        let config = Config {
            protocol: crate::protocol::ProtocolChoice::Multiboot1,
            ..Config::default()
        };
        let err = decide(&config, &kernel, true)
            .unwrap()
            .protocol()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no multiboot1 header, but `protocol` asks for multiboot1"),
            "{err}"
        );
    }

    #[test]
    fn the_run_mode_is_chosen_once() {
        let mut config = Config::default();
        config.test.success_exit_code = Some(35);
        let run = RunMode::choose(&config, false);
        assert_eq!(
            (run.name(), run.timeout, run.success_exit_code),
            ("run", None, 35)
        );
        config.run.success_exit_code = Some(7);
        config.run.timeout = 9;
        let run = RunMode::choose(&config, false);
        assert_eq!(
            (run.timeout, run.success_exit_code),
            (Some(Duration::from_secs(9)), 7)
        );
        let test = RunMode::choose(&config, true);
        assert_eq!(
            (test.name(), test.timeout, test.success_exit_code),
            ("test", Some(Duration::from_secs(300)), 35)
        );
    }
}
