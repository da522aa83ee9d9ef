//! The pipeline: bootloader → image format → firmware → runner, each step fed what the one
//! before returned. No plugin calls another; this is the only place they meet.

use crate::command::CommandSpec;
use crate::context::Context;
use crate::error::Error;
use crate::incremental::BuildCheck;
use crate::plugin::{BootKind, BootMedia, Image, Outcome};
use crate::registry::Registry;
use crate::staging::{ImagePath, Source, Staging};

/// Composes the plugins selected by the config.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'r> {
    registry: &'r Registry,
}

impl<'r> Pipeline<'r> {
    /// A pipeline over `registry`.
    pub fn new(registry: &'r Registry) -> Self {
        Pipeline { registry }
    }

    /// Stages the kernel, adds `extra-files`, and builds the image.
    pub fn stage(&self, ctx: &Context) -> Result<Staging, Error> {
        let bootloader = self.registry.bootloader(&ctx.config.bootloader)?;
        let mut staging = bootloader.stage(ctx)?;
        for (dest, source) in &ctx.config.extra_files {
            let path = ImagePath::new(dest)
                .map_err(|e| Error::Config(format!("`extra-files` entry \"{dest}\": {e}")))?;
            let host = ctx.host_file(&format!("extra-files.\"{dest}\""), source)?;
            staging.add(path, Source::File(host))?;
        }
        Ok(staging)
    }

    /// Runs every step up to the runner: stage, build the image, resolve firmware.
    pub fn prepare(&self, ctx: &Context) -> Result<BootMedia, Error> {
        let staging = self.stage(ctx)?;
        let mut media = BootMedia::new(ctx.boot);
        media.direct_kernel = staging.direct_kernel.clone();
        if let Some(image) = &staging.prebuilt {
            if !staging.entries.is_empty() {
                return Err(Error::Config(format!(
                    "`{}` is a ready image, so nothing can be added to it; remove `extra-files`",
                    image.path.display()
                )));
            }
            media.image = Some(image.clone());
        }
        let format = match ctx.config.format.as_str() {
            "auto" if staging.entries.is_empty() => None,
            "auto" => Some(match ctx.boot {
                BootKind::Bios if media.direct_kernel.is_none() => "iso",
                _ => "fat",
            }),
            name => Some(name),
        };
        if let Some(name) = format {
            if staging.entries.is_empty() {
                return Err(Error::Config(format!(
                    "`format = \"{name}\"` but nothing was staged for an image: the kernel boots directly; remove `format` or add `extra-files`"
                )));
            }
            std::fs::create_dir_all(&ctx.output_dir)
                .map_err(|e| Error::io("create the output directory", &ctx.output_dir, e))?;
            media.image = Some(self.build_image(name, &staging, ctx)?);
        }
        if ctx.boot.needs_uefi_firmware() {
            std::fs::create_dir_all(&ctx.output_dir)
                .map_err(|e| Error::io("create the output directory", &ctx.output_dir, e))?;
            media.firmware = Some(self.registry.firmware(&ctx.config.firmware)?.resolve(ctx)?);
        }
        Ok(media)
    }

    /// Builds the image with format `name`, or reuses the last one when the staging list, the
    /// image options, the boot kind, the architecture and the bootloader are all unchanged.
    fn build_image(&self, name: &str, staging: &Staging, ctx: &Context) -> Result<Image, Error> {
        let format = self.registry.format(name)?;
        let bootloader = self.registry.bootloader(&ctx.config.bootloader)?;
        let options = format!(
            "format={name}\nbootloader={}\nboot={}\narch={}\nimage={:?}\nrunner-version={}\nsource-date-epoch={}",
            ctx.config.bootloader,
            ctx.boot,
            ctx.arch,
            ctx.config.image,
            env!("CARGO_PKG_VERSION"),
            // Image timestamps come from it, so a different value is a different image.
            ctx.env.get("SOURCE_DATE_EPOCH").map_or("", String::as_str)
        );
        let check = BuildCheck::new(
            &ctx.output_dir.join(format!("{name}.stamp")),
            staging,
            &options,
        )?;
        if let Some(image) = check.reusable() {
            if ctx.verbose > 0 {
                eprintln!("     Reusing {} (inputs unchanged)", image.path.display());
            }
            return Ok(image);
        }
        check.invalidate()?;
        let image = format.build(staging, ctx)?;
        bootloader.finish_image(&image, ctx)?;
        check.record(&image)?;
        Ok(image)
    }

    /// The command the runner would start for `media`.
    pub fn command(&self, media: &BootMedia, ctx: &Context) -> Result<CommandSpec, Error> {
        self.registry
            .runner(&ctx.config.runner)?
            .command(media, ctx)
    }

    /// Boots `media` and judges the run.
    pub fn run(&self, media: &BootMedia, ctx: &Context) -> Result<Outcome, Error> {
        let outcome = self.registry.runner(&ctx.config.runner)?.run(media, ctx)?;
        if let Some(files) = &media.firmware {
            self.registry
                .firmware(&ctx.config.firmware)?
                .after_run(files, &outcome, ctx)?;
        }
        Ok(outcome)
    }
}
