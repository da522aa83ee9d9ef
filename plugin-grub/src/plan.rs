//! What a GRUB boot of one run consists of, decided once from the context: the files to stage
//! (kernel, modules, entry kernels), the menu entries and their protocols, and which core images
//! the boot kind and image format need. `stage` derives it and hands `finish_image` what it
//! needs by value (the staged state), so the two always agree.

use image_runner_core::{
    Arch, BootKind, Context, Error, HostFiles, ImageKind, ImagePlan, Kernel, Protocol,
};

use crate::cfg::{self, MenuEntry, Module};
use crate::config::GrubConfig;
use crate::core_image::{CoreImage, Target};

/// The main kernel's place in the image. A fixed name keeps the generated config and templates
/// (`{{KERNEL}}`) independent of the executable's name, which may need quoting.
pub const KERNEL_PATH: &str = "boot/kernel";

/// Everything about one GRUB boot except the bytes of the core images.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `grub` config section.
    pub grub: GrubConfig,
    /// Image path ← host file: the kernel, entry kernels and modules.
    pub files: HostFiles,
    /// The menu entries, the kernel's first.
    pub entries: Vec<MenuEntry>,
    /// The BIOS core image, when the boot includes BIOS.
    pub bios: Option<Target>,
    /// Whether the boot includes UEFI (`EFI/BOOT/BOOTX64.EFI`).
    pub uefi: bool,
}

impl Plan {
    /// Derives the plan from `ctx`, with errors for what GRUB cannot boot.
    pub fn new(ctx: &Context) -> Result<Plan, Error> {
        let arch = ctx.decisions.arch;
        let boot = ctx.decisions.boot;
        if arch != Arch::X86_64 {
            return Err(Error::plugin(
                "grub",
                format!(
                    "GRUB images are built for x86_64 only, and this kernel is {arch}; use `bootloader = \"limine\"` or `\"none\"`"
                ),
            ));
        }
        if ctx.kernel.prebuilt_image().is_some() {
            return Err(Error::kernel(
                &ctx.kernel.path,
                "is a ready image, which GRUB cannot boot as a kernel; use `bootloader = \"none\"` to boot it as it is",
            ));
        }
        let image = ctx.decisions.image.as_ref().ok_or_else(|| {
            Error::plugin(
                "grub",
                "GRUB boots the kernel from an image, but this run builds none; set `format` (\"iso\", \"gpt\", \"mbr\" or \"fat\")",
            )
        })?;
        let (bios, uefi) = match boot {
            BootKind::Bios => (true, false),
            BootKind::Uefi => (false, true),
            _ => (true, true),
        };
        let bios = if bios {
            Some(bios_target(image, boot)?)
        } else {
            None
        };
        let mut plan = Plan {
            grub: ctx.section("grub")?,
            files: HostFiles::new(),
            entries: Vec::new(),
            bios,
            uefi,
        };
        plan.files.place_at(ctx.kernel.path.clone(), KERNEL_PATH);

        let protocol = grub_protocol(
            ctx.decisions.protocol()?,
            &ctx.kernel.path,
            "protocol",
            boot,
        )?;
        let title = ctx
            .kernel
            .path
            .file_name()
            .map_or_else(|| "kernel".into(), |n| n.to_string_lossy().into_owned());
        let mut entry = MenuEntry::new(title, protocol, format!("/{KERNEL_PATH}"))
            .with_cmdline(&ctx.config.cmdline);
        for (i, module) in ctx.config.modules.iter().enumerate() {
            let path = plan.module(ctx, &module.path, &format!("modules[{i}]"))?;
            entry = entry.with_module(Module::new(path, &module.cmdline));
        }
        plan.entries.push(entry);

        for (i, extra) in ctx.config.entries.iter().enumerate() {
            let key = format!("entries[{i}]");
            let host = ctx.host_file(&format!("{key}.kernel"), &extra.kernel)?;
            let image_path = plan
                .files
                .place_at(host.clone(), &format!("boot/entry-{}/kernel", i + 1));
            // A bzImage without an EFI stub is neither ELF nor PE: the protocol is decided
            // from the file alone.
            let kernel = match Kernel::inspect(&host) {
                Ok(kernel) => Some(kernel),
                Err(_) if Kernel::is_bzimage(&host) => None,
                Err(e) => {
                    return Err(Error::Config(format!(
                        "`{key}.kernel = \"{}\"`: {e}",
                        extra.kernel
                    )));
                }
            };
            let protocol_key = format!("{key}.protocol");
            let protocol =
                Protocol::resolve(kernel.as_ref(), &host, extra.protocol, &protocol_key, arch)?;
            let protocol = grub_protocol(protocol, &host, &protocol_key, boot)?;
            let mut entry = MenuEntry::new(&extra.title, protocol, format!("/{image_path}"))
                .with_cmdline(&extra.cmdline);
            for (j, module) in extra.modules.iter().enumerate() {
                let path = plan.module(ctx, &module.path, &format!("{key}.modules[{j}]"))?;
                entry = entry.with_module(Module::new(path, &module.cmdline));
            }
            plan.entries.push(entry);
        }
        Ok(plan)
    }

    /// Stages one module (once per host file) under `boot/modules/`, and returns its GRUB path.
    fn module(&mut self, ctx: &Context, path: &str, key: &str) -> Result<String, Error> {
        let host = ctx.host_file(&format!("{key}.path"), path)?;
        Ok(format!("/{}", self.files.place_in(host, "boot/modules")))
    }

    /// The protocols the generated entries use.
    pub fn protocols(&self) -> Vec<Protocol> {
        let mut protocols: Vec<Protocol> = self.entries.iter().map(|e| e.protocol).collect();
        protocols.sort();
        protocols.dedup();
        protocols
    }

    /// The core images to make: the BIOS one and the UEFI one, as the boot needs. With a user
    /// template, whose commands are unknown, every loader is embedded.
    pub fn core_images(&self) -> Vec<CoreImage> {
        let protocols = if self.grub.config.is_some() {
            cfg::PROTOCOLS.to_vec()
        } else {
            self.protocols()
        };
        let extra = &self.grub.extra_modules;
        self.bios
            .into_iter()
            .chain(self.uefi.then_some(Target::X86_64Efi))
            .map(|target| CoreImage::new(target, &protocols, extra))
            .collect()
    }
}

/// Which BIOS core image the image needs: the El Torito one for ISOs (it also boots the ISO as
/// a disk), the disk one for partitioned disks. FAT volumes and directories have no place for
/// BIOS boot code.
fn bios_target(image: &ImagePlan, boot: BootKind) -> Result<Target, Error> {
    match image.kind {
        ImageKind::Iso => Ok(Target::I386PcEltorito),
        ImageKind::Disk => Ok(Target::I386Pc),
        _ => Err(Error::Config(format!(
            "GRUB boots {boot} machines from an `iso`, `gpt` or `mbr` image, but the format is `{}`, which has no place for BIOS boot code; set `format = \"iso\"` (or \"gpt\", \"mbr\"), or `boot = \"uefi\"`",
            image.format
        ))),
    }
}

/// GRUB's own restrictions on `protocol`, decided for the kernel at `path` by the core (`key`
/// names its config key): no Limine protocol, and EFI applications only under UEFI.
fn grub_protocol(
    protocol: Protocol,
    path: &std::path::Path,
    key: &str,
    boot: BootKind,
) -> Result<Protocol, Error> {
    if protocol == Protocol::Limine {
        return Err(Error::kernel(
            path,
            format!(
                "GRUB cannot boot the Limine protocol; set `bootloader = \"limine\"`, or give the kernel a multiboot2 header or set `{key}`"
            ),
        ));
    }
    if !cfg::supports(protocol) {
        return Err(Error::kernel(
            path,
            format!("GRUB cannot boot the {protocol} protocol; set `{key}` to one GRUB speaks"),
        ));
    }
    if protocol == Protocol::EfiChainload && boot != BootKind::Uefi {
        return Err(Error::kernel(
            path,
            format!(
                "is a UEFI application, which GRUB starts only under UEFI, but `boot = \"{boot}\"`; set `boot = \"uefi\"`"
            ),
        ));
    }
    Ok(protocol)
}
