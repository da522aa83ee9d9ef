//! The built-in `none` bootloader: a UEFI application goes to `EFI/BOOT/BOOT<ARCH>.EFI`; a
//! multiboot1 or PVH ELF is handed to the runner for direct boot; a ready image is booted as it
//! is.

use crate::context::Context;
use crate::error::Error;
use crate::kernel::Kernel;
use crate::media::{BootKind, Image};
use crate::plugin::{Bootloader, Staged};
use crate::staging::{Source, Staging};

/// Boots the kernel with no bootloader in between.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBootloader;

impl Bootloader for NoBootloader {
    fn name(&self) -> &str {
        "none"
    }

    fn wants_image(&self, kernel: &Kernel, _boot: BootKind) -> bool {
        kernel.prebuilt_image().is_none() && kernel.is_efi_app()
    }

    fn stage(&self, ctx: &Context) -> Result<Staged, Error> {
        self.staging(ctx).map(Staged::new)
    }
}

impl NoBootloader {
    fn staging(&self, ctx: &Context) -> Result<Staging, Error> {
        let kernel = &ctx.kernel;
        let boot = ctx.decisions.boot;
        let mut staging = Staging::new();
        if let Some(kind) = kernel.prebuilt_image() {
            staging.prebuilt = Some(Image::new(kernel.path.clone(), kind));
            return Ok(staging);
        }
        if kernel.is_efi_app() {
            if boot == BootKind::Bios {
                return Err(Error::kernel(
                    &kernel.path,
                    "is a UEFI application, which BIOS cannot start; set `boot = \"uefi\"` (or leave `boot` at auto)",
                ));
            }
            staging.add_file(
                &format!("EFI/BOOT/{}", ctx.decisions.arch.efi_boot_file()),
                Source::File(kernel.path.clone()),
            )?;
            return Ok(staging);
        }
        if !kernel.boots_directly() {
            let what = if kernel.multiboot2 {
                "carries only a multiboot2 header, which QEMU cannot boot directly"
            } else {
                "has neither a multiboot1 header (32-bit ELF) nor a PVH note, so QEMU cannot boot it directly"
            };
            return Err(Error::kernel(
                &kernel.path,
                format!(
                    "{what}; set `bootloader = \"limine\"` or `\"grub\"`, or add a PVH ELF note to the kernel"
                ),
            ));
        }
        if boot != BootKind::Bios {
            return Err(Error::kernel(
                &kernel.path,
                format!(
                    "with `bootloader = \"none\"` an ELF kernel boots directly under BIOS only, but `boot = \"{}\"`; set `boot = \"bios\"` or use a bootloader",
                    boot
                ),
            ));
        }
        staging.direct_kernel = Some(kernel.path.clone());
        Ok(staging)
    }
}
