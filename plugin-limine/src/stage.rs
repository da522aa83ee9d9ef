//! What a Limine boot of one run stages (kernel, modules, entry kernels, `limine.conf`, Limine's
//! files per boot kind, architecture and image format), decided from the context alone.

use std::path::Path;

use image_runner_core::config::Variables;
use image_runner_core::{
    Arch, BootKind, Context, Error, HostFiles, ImageKind, ImagePath, Kernel, Protocol, Source,
    Staging,
};

use crate::LimineConfig;
use crate::conf::{self, LimineEntry, Module};
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
/// The variables a `limine.conf` template gets besides the runner's ([`Plan::config_text`]);
/// the core refuses user `variables` of these names.
pub const TEMPLATE_VARIABLES: [&str; 6] = [
    "KERNEL", "PROTOCOL", "CMDLINE", "TIMEOUT", "PATH_KEY", "ENTRIES",
];
/// The syntax written when the Limine version is unknown: 8.x's `kernel_path` is still
/// understood by later majors (as an alias of `path`).
pub const FALLBACK_MAJOR: u32 = 8;

/// What the image format of the run makes, as far as staging is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// An ISO 9660 image: El Torito images for CD boots, and a GPT system area for the BIOS
    /// stages.
    Iso,
    /// A partitioned disk (`gpt`, `mbr`): the BIOS stages go into the partition table's
    /// sectors.
    Disk,
    /// A bare FAT volume, UEFI only.
    Fat,
    /// A host folder, UEFI only.
    Directory,
}

impl Target {
    /// The target for an image of `kind`; `None` for a kind Limine does not know.
    pub fn of(kind: ImageKind) -> Option<Target> {
        match kind {
            ImageKind::Iso => Some(Target::Iso),
            ImageKind::Disk => Some(Target::Disk),
            ImageKind::Fat => Some(Target::Fat),
            ImageKind::Directory => Some(Target::Directory),
            _ => None,
        }
    }

    fn cd_images(self) -> bool {
        self == Target::Iso
    }
}

/// Everything about one Limine boot except the Limine files, derived from the context once by
/// `stage` and handed to `finish_image` with the staging list.
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
    /// The image format plugin's name (`iso`, `gpt`, ...), for messages.
    pub format: String,
    /// The guest architecture.
    pub arch: Arch,
}

impl Plan {
    /// Derives the plan from `ctx`, with errors for what Limine cannot boot.
    pub fn new(ctx: &Context) -> Result<Plan, Error> {
        let boot = ctx.decisions.boot;
        let arch = ctx.decisions.arch;
        let (bios, uefi) = match boot {
            BootKind::Bios => (true, false),
            BootKind::Uefi => (false, true),
            _ => (true, true),
        };
        let Some(image) = &ctx.decisions.image else {
            return Err(Error::plugin(
                "limine",
                "Limine boots the kernel from an image, but this run builds none; set `format` (`iso`, `gpt`, `mbr`, `fat` or `directory`)",
            ));
        };
        let target = Target::of(image.kind).ok_or_else(|| {
            Error::plugin(
                "limine",
                format!(
                    "the `{}` format makes a kind of image Limine cannot stage for ({:?}); use `format = \"iso\"`, \"gpt\", \"mbr\", \"fat\" or \"directory\"",
                    image.format, image.kind
                ),
            )
        })?;
        if bios && arch != Arch::X86_64 {
            return Err(Error::Config(format!(
                "`boot = \"{boot}\"` but the kernel is {arch}: BIOS exists on x86_64 only; set `boot = \"uefi\"`"
            )));
        }
        if bios && matches!(target, Target::Fat | Target::Directory) {
            return Err(Error::Config(format!(
                "Limine boots {boot} machines from an `iso`, `gpt` or `mbr` image, but the format is `{}`, which has no place for Limine's BIOS stages; set `format = \"iso\"` (or \"gpt\", \"mbr\"), or `boot = \"uefi\"`",
                image.format
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
            format: image.format.clone(),
            arch,
        };
        plan.files.place_at(ctx.kernel.path.clone(), KERNEL_PATH);

        let protocol = restrict(ctx.decisions.protocol()?, &ctx.kernel.path, "protocol", ctx)?;
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
            let protocol = Protocol::resolve(
                kernel.as_ref(),
                &host,
                extra.protocol,
                &format!("{key}.protocol"),
                arch,
            )?;
            let protocol = restrict(protocol, &host, &format!("{key}.protocol"), ctx)?;
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

    /// The `limine.conf` text: the user's template (`limine.config` of `limine`, the run's
    /// `[limine]` section) expanded, or the generated config in the syntax of `major`
    /// ([`FALLBACK_MAJOR`] when unknown).
    pub fn config_text(
        &self,
        ctx: &Context,
        limine: &LimineConfig,
        major: Option<u32>,
    ) -> Result<String, Error> {
        let major = major.unwrap_or(FALLBACK_MAJOR);
        let timeout = limine.timeout;
        let Some(template) = &limine.config else {
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
        let vars = self.template_variables(ctx, timeout, major)?;
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
    /// `PATH_KEY` (`kernel_path` or `path`, by version) and `ENTRIES` (the generated entries):
    /// the [`TEMPLATE_VARIABLES`], which user variables may not be named (the core refuses them).
    fn template_variables(
        &self,
        ctx: &Context,
        timeout: u32,
        major: u32,
    ) -> Result<Variables, Error> {
        let mut vars = ctx.variables.clone();
        let kernel = &self.entries[0];
        let protocol = conf::limine_name(kernel.protocol).ok_or_else(|| {
            Error::plugin(
                "limine",
                format!("Limine has no `{}` boot protocol", kernel.protocol),
            )
        })?;
        vars.set("KERNEL", limine_path(KERNEL_PATH));
        vars.set("PROTOCOL", protocol);
        vars.set("CMDLINE", &ctx.config.cmdline);
        vars.set("TIMEOUT", timeout.to_string());
        vars.set("PATH_KEY", conf::path_key(kernel.protocol, major));
        vars.set("ENTRIES", entries_text(&self.entries, major)?);
        Ok(vars)
    }
}

impl Plan {
    /// Refuses a `limine.conf` made from the user's template (`limine.config`) that names a
    /// file on the boot partition ([`conf::boot_paths`]) the image will not hold: Limine would
    /// stop there and the run wait out its timeout. The image holds `staging` and the
    /// `extra-files` the core adds to it. Names that differ from a staged one only in case are
    /// let through (FAT, and ISO 9660 readers, may ignore case).
    pub fn check_template_paths(
        &self,
        text: &str,
        staging: &Staging,
        ctx: &Context,
        template: &Path,
    ) -> Result<(), Error> {
        let named = conf::boot_paths(text)
            .into_iter()
            .map(|b| (b.line, b.option, b.path));
        let extra = ctx.config.extra_files.keys().map(String::as_str);
        let Err((problems, held)) = staging.check_named_paths(extra, named) else {
            return Ok(());
        };
        Err(Error::Config(format!(
            "the limine.conf made from `limine.config` (`{}`) names files the image does not hold, so Limine would stop there:\n{}\nThe image holds: {}.\nThe kernel is always at /{KERNEL_PATH} (write `{{{{KERNEL}}}}` for `{}`); add other files with `modules` or `extra-files`",
            ctx.host_path(template).display(),
            problems.join("\n"),
            held.join(", "),
            limine_path(KERNEL_PATH)
        )))
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

/// Limine's own limits on `protocol`, which the core decided for the kernel at `path` from
/// config key `key`: multiboot kernels on x86_64 only, EFI applications under UEFI only.
fn restrict(protocol: Protocol, path: &Path, key: &str, ctx: &Context) -> Result<Protocol, Error> {
    let (boot, arch) = (ctx.decisions.boot, ctx.decisions.arch);
    if conf::limine_name(protocol).is_none() {
        return Err(Error::kernel(
            path,
            format!(
                "is to be booted with the {protocol} protocol, which Limine does not have; set `{key}` to one Limine knows (limine, multiboot1, multiboot2, linux, efi-chainload)"
            ),
        ));
    }
    if matches!(protocol, Protocol::Multiboot1 | Protocol::Multiboot2) && arch != Arch::X86_64 {
        return Err(Error::kernel(
            path,
            format!(
                "Limine boots multiboot kernels on x86 only, and the machine is {arch}; use the Limine protocol"
            ),
        ));
    }
    if protocol == Protocol::EfiChainload && boot != BootKind::Uefi {
        return Err(Error::kernel(
            path,
            format!(
                "is a UEFI application, which Limine starts only under UEFI, but `boot = \"{boot}\"`; set `boot = \"uefi\"`"
            ),
        ));
    }
    Ok(protocol)
}
