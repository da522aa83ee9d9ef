//! What a GRUB boot of one run consists of, decided from the context alone: the files to stage
//! (kernel, modules, entry kernels), the menu entries and their protocols, and which core images
//! the boot kind and image format need. `stage` and `finish_image` both derive it, so they
//! always agree.

use image_runner_core::{Arch, BootKind, Context, Error, HostFiles, Kernel};

use crate::cfg::{MenuEntry, Module, Protocol};
use crate::core_image::{CoreImage, Target};

/// The main kernel's place in the image. A fixed name keeps the generated config and templates
/// (`{{KERNEL}}`) independent of the executable's name, which may need quoting.
pub const KERNEL_PATH: &str = "boot/kernel";

/// Everything about one GRUB boot except the bytes of the core images.
#[derive(Debug, Clone)]
pub struct Plan {
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
        if ctx.arch != Arch::X86_64 {
            return Err(Error::plugin(
                "grub",
                format!(
                    "GRUB images are built for x86_64 only, and this kernel is {}; use `bootloader = \"limine\"` or `\"none\"`",
                    ctx.arch
                ),
            ));
        }
        if ctx.kernel.prebuilt_image().is_some() {
            return Err(Error::kernel(
                &ctx.kernel.path,
                "is a ready image, which GRUB cannot boot as a kernel; use `bootloader = \"none\"` to boot it as it is",
            ));
        }
        let (bios, uefi) = match ctx.boot {
            BootKind::Bios => (true, false),
            BootKind::Uefi => (false, true),
            _ => (true, true),
        };
        let bios = if bios { Some(bios_target(ctx)?) } else { None };
        let mut plan = Plan {
            files: HostFiles::new(),
            entries: Vec::new(),
            bios,
            uefi,
        };
        plan.files.place_at(ctx.kernel.path.clone(), KERNEL_PATH);

        let protocol = resolve(&ctx.kernel, &ctx.config.protocol, "protocol", ctx.boot)?;
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
            let protocol = match Kernel::inspect(&host) {
                Ok(kernel) => resolve(
                    &kernel,
                    &extra.protocol,
                    &format!("{key}.protocol"),
                    ctx.boot,
                )?,
                // A bzImage without an EFI stub is neither ELF nor PE.
                Err(_)
                    if image_runner_core::Kernel::is_bzimage(&host)
                        && matches!(extra.protocol.as_str(), "auto" | "linux") =>
                {
                    Protocol::Linux
                }
                Err(e) => {
                    return Err(Error::Config(format!(
                        "`{key}.kernel = \"{}\"`: {e}",
                        extra.kernel
                    )));
                }
            };
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
    pub fn core_images(&self, ctx: &Context) -> Vec<CoreImage> {
        let protocols = if ctx.config.grub.config.is_some() {
            Protocol::ALL.to_vec()
        } else {
            self.protocols()
        };
        let extra = &ctx.config.grub.extra_modules;
        self.bios
            .into_iter()
            .chain(self.uefi.then_some(Target::X86_64Efi))
            .map(|target| CoreImage::new(target, &protocols, extra))
            .collect()
    }
}

/// Which BIOS core image the image format needs: the El Torito one for ISOs (it also boots the
/// ISO as a disk), the disk one for partitioned disks. FAT volumes and directories have no
/// place for BIOS boot code.
fn bios_target(ctx: &Context) -> Result<Target, Error> {
    match ctx.config.format.as_str() {
        "iso" => Ok(Target::I386PcEltorito),
        // The pipeline picks `iso` for BIOS and `fat` for hybrid boots.
        "auto" if ctx.boot == BootKind::Bios => Ok(Target::I386PcEltorito),
        format @ ("auto" | "fat" | "directory") => Err(Error::Config(format!(
            "GRUB boots {} machines from an `iso`, `gpt` or `mbr` image, but the format is `{}`, which has no place for BIOS boot code; set `format = \"iso\"` (or \"gpt\", \"mbr\"), or `boot = \"uefi\"`",
            ctx.boot,
            if format == "auto" { "fat" } else { format }
        ))),
        _ => Ok(Target::I386Pc),
    }
}

/// The protocol for `kernel`: the configured one, checked against the kernel's headers, or
/// with `auto` the first the kernel supports of multiboot2 (64-bit friendly, and boots on UEFI
/// without a video mode), multiboot1, Linux (a bzImage), an EFI application (UEFI only).
fn resolve(
    kernel: &Kernel,
    configured: &str,
    key: &str,
    boot: BootKind,
) -> Result<Protocol, Error> {
    let chosen = Protocol::from_config(configured)
        .map_err(|e| Error::Config(format!("`{key} = \"{configured}\"`: {e}")))?;
    let bzimage = || image_runner_core::Kernel::is_bzimage(&kernel.path);
    let protocol = match chosen {
        Some(protocol) => {
            let (fits, lacks) = match protocol {
                Protocol::Multiboot1 => (kernel.multiboot1, "has no multiboot1 header"),
                Protocol::Multiboot2 => (kernel.multiboot2, "has no multiboot2 header"),
                Protocol::Linux => (
                    bzimage(),
                    "is not a Linux bzImage (no \"HdrS\" setup header)",
                ),
                Protocol::EfiChainload => (kernel.is_efi_app(), "is not a UEFI application"),
            };
            if !fits {
                return Err(Error::kernel(
                    &kernel.path,
                    format!("{lacks}, but `{key}` asks for {}", protocol.name()),
                ));
            }
            protocol
        }
        None if kernel.multiboot2 => Protocol::Multiboot2,
        None if kernel.multiboot1 => Protocol::Multiboot1,
        None if bzimage() => Protocol::Linux,
        None if kernel.is_efi_app() => Protocol::EfiChainload,
        None => {
            return Err(Error::kernel(
                &kernel.path,
                "carries no multiboot2 or multiboot1 header and is no Linux bzImage or UEFI application, so GRUB cannot start it; add a multiboot2 header, or set `protocol`",
            ));
        }
    };
    if protocol == Protocol::EfiChainload && boot != BootKind::Uefi {
        return Err(Error::kernel(
            &kernel.path,
            format!(
                "is a UEFI application, which GRUB starts only under UEFI, but `boot = \"{boot}\"`; set `boot = \"uefi\"`"
            ),
        ));
    }
    Ok(protocol)
}
