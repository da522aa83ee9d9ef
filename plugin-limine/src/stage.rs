//! What a Limine boot of one run stages (kernel, modules, entry kernels, `limine.conf`, Limine's
//! files per boot kind, architecture and image format), decided from the context alone.

use std::path::Path;

use image_runner_core::config::Variables;
use image_runner_core::{
    Arch, BootKind, Context, Error, HostFiles, ImageKind, ImagePath, Kernel, KernelFormat, Source,
    Staging,
};

use crate::conf::{self, LimineEntry, Module, Protocol};
use crate::files::LimineFiles;

/// The kernel's place in the image. A fixed name keeps `limine.conf` and templates
/// (`{{KERNEL}}`) independent of the executable's name (test binaries carry a hash).
pub const KERNEL_PATH: &str = "boot/kernel";
/// Limine's files and its config: one of the folders where Limine looks for both.
pub const LIMINE_DIR: &str = "boot/limine";
/// The config file.
pub const CONF_PATH: &str = "boot/limine/limine.conf";
/// Stage 3 of the BIOS boot, loaded from the file system by the disk and CD stages.
pub const BIOS_SYS_PATH: &str = "boot/limine/limine-bios.sys";
/// The El Torito BIOS boot image.
pub const BIOS_CD_PATH: &str = "boot/limine/limine-bios-cd.bin";
/// The El Torito UEFI boot image (a FAT image holding every `BOOT*.EFI`).
pub const UEFI_CD_PATH: &str = "boot/limine/limine-uefi-cd.bin";
/// The syntax written when the Limine version is unknown: 8.x's `kernel_path` is still
/// understood by later majors (as an alias of `path`).
pub const FALLBACK_MAJOR: u32 = 8;

/// What the configured image format makes, as far as staging is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// `iso`: El Torito images for CD boots, and a GPT system area for the BIOS stages.
    Iso,
    /// `gpt` or `mbr`: the BIOS stages go into the partition table's sectors.
    Disk,
    /// `fat`: a bare FAT volume, UEFI only.
    Fat,
    /// `directory`: a host folder, UEFI only.
    Directory,
    /// A format of another plugin: everything is staged, the image kind decides the install.
    Other,
}

impl Target {
    /// The target of `format` for `boot` (`auto` as the pipeline picks: `iso` for BIOS, `fat`
    /// otherwise).
    pub fn from_format(format: &str, boot: BootKind) -> Target {
        match format {
            "iso" => Target::Iso,
            "gpt" | "mbr" => Target::Disk,
            "fat" => Target::Fat,
            "directory" => Target::Directory,
            "auto" if boot == BootKind::Bios => Target::Iso,
            "auto" => Target::Fat,
            _ => Target::Other,
        }
    }

    fn cd_images(self) -> bool {
        matches!(self, Target::Iso | Target::Other)
    }
}

/// Everything about one Limine boot except the Limine files. `stage` and `finish_image` both
/// derive it from the context, so they always agree.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Plan {
    /// Image path ← host file: the kernel, entry kernels and modules.
    pub files: HostFiles,
    /// The menu entries, the kernel's first.
    pub entries: Vec<LimineEntry>,
    /// Whether the boot includes BIOS.
    pub bios: bool,
    /// Whether the boot includes UEFI.
    pub uefi: bool,
    /// What the image format makes.
    pub target: Target,
    /// The guest architecture.
    pub arch: Arch,
}

impl Plan {
    /// Derives the plan from `ctx`, with errors for what Limine cannot boot.
    pub fn new(ctx: &Context) -> Result<Plan, Error> {
        let (bios, uefi) = match ctx.boot {
            BootKind::Bios => (true, false),
            BootKind::Uefi => (false, true),
            _ => (true, true),
        };
        let target = Target::from_format(&ctx.config.format, ctx.boot);
        if bios && ctx.arch != Arch::X86_64 {
            return Err(Error::Config(format!(
                "`boot = \"{}\"` but the kernel is {}: BIOS exists on x86_64 only; set `boot = \"uefi\"`",
                ctx.boot, ctx.arch
            )));
        }
        if bios && matches!(target, Target::Fat | Target::Directory) {
            let format = match ctx.config.format.as_str() {
                "auto" => "`auto` (a FAT volume for hybrid boots)".to_owned(),
                other => format!("`{other}`"),
            };
            return Err(Error::Config(format!(
                "Limine boots {} machines from an `iso`, `gpt` or `mbr` image, but the format is {format}, which has no place for Limine's BIOS stages; set `format = \"iso\"` (or \"gpt\", \"mbr\"), or `boot = \"uefi\"`",
                ctx.boot
            )));
        }
        if ctx.kernel.prebuilt_image().is_some() {
            return Err(Error::kernel(
                &ctx.kernel.path,
                "is a ready image, which Limine cannot boot as a kernel; use `bootloader = \"none\"` to boot it as it is",
            ));
        }
        let mut plan = Plan {
            files: HostFiles::new(),
            entries: Vec::new(),
            bios,
            uefi,
            target,
            arch: ctx.arch,
        };
        plan.files.place_at(ctx.kernel.path.clone(), KERNEL_PATH);

        let protocol = resolve(
            Some(&ctx.kernel),
            &ctx.kernel.path,
            &ctx.config.protocol,
            "protocol",
            ctx,
        )?;
        let title = ctx
            .kernel
            .path
            .file_name()
            .map_or_else(|| "kernel".into(), |n| n.to_string_lossy().into_owned());
        let mut entry = LimineEntry::new(title, protocol, limine_path(KERNEL_PATH))
            .with_cmdline(&ctx.config.cmdline);
        for (i, module) in ctx.config.modules.iter().enumerate() {
            let path = plan.module(ctx, &module.path, &format!("modules[{i}]"))?;
            entry = entry.with_module(Module::new(path).with_cmdline(&module.cmdline));
        }
        plan.entries.push(entry);

        for (i, extra) in ctx.config.entries.iter().enumerate() {
            let key = format!("entries[{i}]");
            let host = ctx.host_file(&format!("{key}.kernel"), &extra.kernel)?;
            let image_path = plan
                .files
                .place_at(host.clone(), &format!("boot/entry-{}/kernel", i + 1));
            // A bzImage without an EFI stub is neither ELF nor PE: it cannot be inspected.
            let kernel = Kernel::inspect(&host).ok();
            let protocol = resolve(
                kernel.as_ref(),
                &host,
                &extra.protocol,
                &format!("{key}.protocol"),
                ctx,
            )?;
            let mut entry = LimineEntry::new(&extra.title, protocol, limine_path(&image_path))
                .with_cmdline(&extra.cmdline);
            for (j, module) in extra.modules.iter().enumerate() {
                let path = plan.module(ctx, &module.path, &format!("{key}.modules[{j}]"))?;
                entry = entry.with_module(Module::new(path).with_cmdline(&module.cmdline));
            }
            plan.entries.push(entry);
        }
        Ok(plan)
    }

    /// Stages one module (once per host file) under `boot/modules/`, and returns its Limine
    /// path.
    fn module(&mut self, ctx: &Context, path: &str, key: &str) -> Result<String, Error> {
        let host = ctx.host_file(&format!("{key}.path"), path)?;
        Ok(limine_path(&self.files.place_in(host, "boot/modules")))
    }

    /// The staging list: the plan's files, `config` as `limine.conf`, and Limine's files for
    /// the boot, with the El Torito boot images as hints for ISO formats.
    pub fn staging(&self, files: &LimineFiles, config: String) -> Result<Staging, Error> {
        let mut staging = Staging::new();
        for (path, host) in self.files.iter() {
            staging.add_file(path, Source::File(host.to_path_buf()))?;
        }
        staging.add_file(CONF_PATH, Source::Bytes(config.into_bytes()))?;
        if self.bios {
            staging.add_file(BIOS_SYS_PATH, Source::File(files.file("limine-bios.sys")?))?;
            if self.target.cd_images() {
                staging.add_file(
                    BIOS_CD_PATH,
                    Source::File(files.file("limine-bios-cd.bin")?),
                )?;
                staging.hints.bios_cd_image = Some(ImagePath::new(BIOS_CD_PATH)?);
                // limine-bios-cd.bin finds the rest of itself through the table's
                // `bi_boot_LBA` (stage1/cd/bootsect.asm), as xorriso's `-boot-info-table`
                // in Limine's USAGE.md writes it.
                staging.hints.bios_cd_boot_info_table = true;
            }
        }
        if self.uefi {
            let loader = files.efi_loader(self.arch)?;
            staging.add_file(
                &format!("EFI/BOOT/{}", self.arch.efi_boot_file()),
                Source::File(loader),
            )?;
            if self.target.cd_images() {
                staging.add_file(
                    UEFI_CD_PATH,
                    Source::File(files.file("limine-uefi-cd.bin")?),
                )?;
                staging.hints.uefi_cd_image = Some(ImagePath::new(UEFI_CD_PATH)?);
            }
        }
        Ok(staging)
    }

    /// Whether an image of `kind` needs Limine's BIOS stages installed into it: disks and
    /// ISOs (booted as disks) of boots that include BIOS. El Torito CD boots do not need them.
    pub fn needs_bios_install(&self, kind: ImageKind) -> bool {
        self.bios && matches!(kind, ImageKind::Disk | ImageKind::Iso)
    }

    /// The `limine.conf` text: the user's template (`limine.config`) expanded, or the
    /// generated config in the syntax of `major` ([`FALLBACK_MAJOR`] when unknown).
    pub fn config_text(&self, ctx: &Context, major: Option<u32>) -> Result<String, Error> {
        let major = major.unwrap_or(FALLBACK_MAJOR);
        let timeout = ctx.config.limine.timeout;
        let Some(template) = &ctx.config.limine.config else {
            return Ok(conf::render_conf(
                &self.entries,
                timeout,
                conf::DEFAULT_SERIAL,
                major,
            )?);
        };
        let path = ctx.host_path(template);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Config(format!(
                "`limine.config = \"{}\"`: could not read `{}`: {e}",
                template.display(),
                path.display()
            ))
        })?;
        let vars = self.template_variables(ctx, major)?;
        conf::render_template(&text, &vars).map_err(|e| match e {
            Error::UnknownVariable { name, known, .. } => Error::UnknownVariable {
                name,
                key: format!("limine.config ({})", path.display()),
                known,
            },
            other => other,
        })
    }

    /// The variables of a `limine.conf` template: the runner's built-ins and the user's
    /// `variables`, plus `KERNEL` (`boot():/boot/kernel`), `PROTOCOL`, `CMDLINE`, `TIMEOUT`,
    /// `PATH_KEY` (`kernel_path` or `path`, by version) and `ENTRIES` (the generated entries).
    /// These last win over user variables of the same name.
    fn template_variables(&self, ctx: &Context, major: u32) -> Result<Variables, Error> {
        let mut vars = ctx.variables.clone();
        let kernel = &self.entries[0];
        vars.set("KERNEL", limine_path(KERNEL_PATH));
        vars.set("PROTOCOL", kernel.protocol.name());
        vars.set("CMDLINE", &ctx.config.cmdline);
        vars.set("TIMEOUT", ctx.config.limine.timeout.to_string());
        vars.set("PATH_KEY", kernel.protocol.path_key(major));
        vars.set("ENTRIES", entries_text(&self.entries, major)?);
        Ok(vars)
    }
}

/// The entries of the generated config alone (no global options), for `{{ENTRIES}}`.
fn entries_text(entries: &[LimineEntry], major: u32) -> Result<String, Error> {
    let full = conf::render_conf(entries, 0, false, major)?;
    // The generated text is a comment line, `timeout: 0`, then one block per entry, each
    // after an empty line.
    let start = full.find("\n/").map_or(0, |i| i + 1);
    Ok(full[start..].to_owned())
}

/// `boot/kernel` → `boot():/boot/kernel`: the partition Limine booted from.
pub fn limine_path(image_path: &str) -> String {
    format!("boot():/{image_path}")
}

/// Reads a `protocol` config value.
pub fn protocol_from_config(value: &str) -> Result<Option<Protocol>, String> {
    Ok(Some(match value {
        "auto" => return Ok(None),
        "limine" => Protocol::Limine,
        "multiboot1" | "multiboot" => Protocol::Multiboot1,
        "multiboot2" => Protocol::Multiboot2,
        "linux" => Protocol::Linux,
        "efi-chainload" | "efi_chainload" | "efi" => Protocol::EfiChainload,
        other => {
            return Err(format!(
                "`{other}` is not a boot protocol Limine knows; use auto, limine, multiboot1, multiboot2, linux or efi-chainload"
            ));
        }
    }))
}

/// The protocol for the kernel at `path` (`kernel` is `None` when it is neither ELF nor PE):
/// the configured one, checked against the kernel, or with `auto` the first that fits of
/// multiboot2 (a multiboot2 header), multiboot1 (a multiboot1 header), the Limine protocol
/// (any other ELF64), Linux (a bzImage: `HdrS` at byte 0x202) and an EFI application (UEFI
/// only). A kernel with both a multiboot header and Limine requests needs `protocol = "limine"`.
fn resolve(
    kernel: Option<&Kernel>,
    path: &Path,
    configured: &str,
    key: &str,
    ctx: &Context,
) -> Result<Protocol, Error> {
    let chosen = protocol_from_config(configured)
        .map_err(|e| Error::Config(format!("`{key} = \"{configured}\"`: {e}")))?;
    let elf_bits = kernel.and_then(|k| match k.format {
        KernelFormat::Elf { bits } => Some(bits),
        _ => None,
    });
    let efi_app = kernel.is_some_and(Kernel::is_efi_app);
    let has = |f: fn(&Kernel) -> bool| kernel.is_some_and(f);
    let protocol = match chosen {
        Some(protocol) => {
            let (fits, lacks) = match protocol {
                Protocol::Limine => (
                    elf_bits == Some(64),
                    "is not an ELF64 executable, which the Limine protocol loads",
                ),
                Protocol::Multiboot1 => (has(|k| k.multiboot1), "has no multiboot1 header"),
                Protocol::Multiboot2 => (has(|k| k.multiboot2), "has no multiboot2 header"),
                Protocol::Linux => (
                    ctx.arch != Arch::X86_64 || image_runner_core::Kernel::is_bzimage(path),
                    "is not a Linux bzImage (no \"HdrS\" setup header)",
                ),
                Protocol::EfiChainload => (efi_app, "is not a UEFI application"),
            };
            if !fits {
                return Err(Error::kernel(
                    path,
                    format!("{lacks}, but `{key}` asks for {}", protocol.name()),
                ));
            }
            protocol
        }
        None if has(|k| k.multiboot2) => Protocol::Multiboot2,
        None if has(|k| k.multiboot1) => Protocol::Multiboot1,
        None if elf_bits == Some(64) => Protocol::Limine,
        None if elf_bits.is_none() && image_runner_core::Kernel::is_bzimage(path) => {
            Protocol::Linux
        }
        None if efi_app => Protocol::EfiChainload,
        None => {
            let what = match kernel {
                None => "is neither ELF nor PE, nor a Linux bzImage",
                Some(_) if elf_bits == Some(32) => {
                    "is a 32-bit ELF without a multiboot header (the Limine protocol loads ELF64 kernels)"
                }
                Some(_) => {
                    "is no ELF64 kernel, multiboot kernel, Linux bzImage or UEFI application"
                }
            };
            return Err(Error::kernel(
                path,
                format!(
                    "{what}, so Limine cannot start it; build it as an ELF64 kernel for the Limine protocol, add a multiboot2 header, or set `{key}`"
                ),
            ));
        }
    };
    if matches!(protocol, Protocol::Multiboot1 | Protocol::Multiboot2) && ctx.arch != Arch::X86_64 {
        return Err(Error::kernel(
            path,
            format!(
                "Limine boots multiboot kernels on x86 only, and the machine is {}; use the Limine protocol",
                ctx.arch
            ),
        ));
    }
    if protocol == Protocol::EfiChainload && ctx.boot != BootKind::Uefi {
        return Err(Error::kernel(
            path,
            format!(
                "is a UEFI application, which Limine starts only under UEFI, but `boot = \"{}\"`; set `boot = \"uefi\"`",
                ctx.boot
            ),
        ));
    }
    Ok(protocol)
}
