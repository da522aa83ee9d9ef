//! The `grub` bootloader: stages the kernel with a generated (or templated) `grub.cfg` and GRUB
//! core images made from the system's GRUB, and installs GRUB's BIOS boot code into finished
//! disk images and hybrid ISOs.
//!
//! Only x86_64 is built. Another architecture needs its UEFI platform folder (`arm64-efi`,
//! `riscv64-efi`, `loongarch64-efi`; Debian `grub-efi-arm64-bin`, ...), a [`core_image::Target`]
//! per platform staged at `EFI/BOOT/BOOT<ARCH>.EFI`, and the Linux or chainload protocols only
//! (multiboot is x86-only); the rest of this crate is the same there.

pub mod cfg;
pub mod config;
pub mod core_image;
pub mod host;
pub mod install;
pub mod locate;
pub mod plan;

use std::path::PathBuf;

use image_runner_core::config::Variables;
use image_runner_core::{
    Bootloader, Check, Context, Error, Image, ImageKind, ImagePath, Registry, Section, Source,
    Staged, Staging,
};

pub use crate::config::GrubConfig;
use crate::core_image::{CoreImage, Target};
use crate::host::{Host, Platform};
use crate::plan::Plan;

/// Adds the `grub` bootloader to `registry`.
pub fn register(registry: &mut Registry) {
    registry.add_bootloader(Grub);
}

/// Boots kernels through the GRUB installed on the host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grub;

/// Where `boot.img` is staged, beside the core image (as `grub-install` leaves it), so that the
/// image's fingerprint covers the boot sector code too.
const BOOT_IMG_PATH: &str = "boot/grub/i386-pc/boot.img";
const CONFIG_PATH: &str = "boot/grub/grub.cfg";

/// What `stage` hands `finish_image` (the [`Staged`] state): the BIOS boot code to install
/// into the fresh image, when the boot includes BIOS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// The BIOS core image and `boot.img`; `None` for a UEFI-only boot.
    pub bios: Option<BiosBoot>,
}

/// GRUB's BIOS boot code for one image, as staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiosBoot {
    /// Which core image.
    pub target: Target,
    /// The core image (in the cache under `<output>/grub/`).
    pub core_image: PathBuf,
    /// GRUB's `boot.img` (the boot sector).
    pub boot_img: PathBuf,
}

impl Bootloader for Grub {
    fn name(&self) -> &str {
        "grub"
    }

    fn config_section(&self) -> Option<Section> {
        // `with_old_key`: cargo-image-runner 0.5's `[bootloader.grub] modules`.
        Some(
            Section::of::<GrubConfig>()
                .with_variables(TEMPLATE_VARIABLES)
                .with_old_key(image_runner_core::OldKey::renamed(
                    "modules",
                    "extra-modules",
                )),
        )
    }

    fn stage(&self, ctx: &Context) -> Result<Staged, Error> {
        let plan = Plan::new(ctx)?;
        let mut staging = Staging::new();
        for (path, host) in plan.files.iter() {
            staging.add_file(path, Source::File(host.to_path_buf()))?;
        }
        let config = config_text(ctx, &plan)?;
        staging.add_file(CONFIG_PATH, Source::Bytes(config.clone().into_bytes()))?;
        let host = Host::from_config(&plan.grub, ctx);
        let mut bios_core = None;
        for image in plan.core_images() {
            let path = core_image(ctx, &host, &image, ctx.verbose > 0)?;
            if Some(image.target) == plan.bios {
                bios_core = Some(path.clone());
            }
            staging.add_file(image.target.staged_path(), Source::File(path))?;
        }
        let mut finish = Finish { bios: None };
        if let Some(target) = plan.bios {
            let boot_img = host.modules_dir(Platform::I386Pc)?.join("boot.img");
            staging.add_file(BOOT_IMG_PATH, Source::File(boot_img.clone()))?;
            if target == Target::I386PcEltorito {
                staging.hints.bios_cd_image = Some(ImagePath::new(target.staged_path())?);
                staging.hints.bios_cd_boot_info_table = true;
            }
            let core_image = bios_core.ok_or_else(|| {
                Error::plugin(
                    "grub",
                    format!(
                        "no {} core image was made for the BIOS boot",
                        target.format()
                    ),
                )
            })?;
            finish.bios = Some(BiosBoot {
                target,
                core_image,
                boot_img,
            });
        }
        if let Some(template) = &plan.grub.config {
            check_template_paths(&config, &staging, ctx, template)?;
        }
        Ok(Staged::new(staging).with_state(finish))
    }

    fn finish_image(&self, staged: &Staged, image: &Image, ctx: &Context) -> Result<(), Error> {
        let finish = staged.state::<Finish>().ok_or_else(|| {
            Error::plugin(
                "grub",
                "the files of this image were not staged by GRUB, so there is no BIOS boot code to install",
            )
        })?;
        let Some(bios) = &finish.bios else {
            return Ok(());
        };
        let target = bios.target;
        let core =
            std::fs::read(&bios.core_image).map_err(|e| Error::io("read", &bios.core_image, e))?;
        let boot_img =
            std::fs::read(&bios.boot_img).map_err(|e| Error::io("read", &bios.boot_img, e))?;
        match (image.kind, target) {
            (ImageKind::Disk, Target::I386Pc) => install::into_disk(&image.path, &core, &boot_img),
            (ImageKind::Iso, Target::I386PcEltorito) => {
                install::into_hybrid_iso(&image.path, &core, &boot_img)
            }
            (ImageKind::Disk | ImageKind::Iso, _) => Err(Error::plugin(
                "grub",
                format!(
                    "the `{}` format wrote {} image, which the staged BIOS core image ({}) does not fit; set `format` to \"iso\", \"gpt\" or \"mbr\"",
                    ctx.decisions
                        .image
                        .as_ref()
                        .map_or("image", |plan| plan.format.as_str()),
                    if image.kind == ImageKind::Iso {
                        "an ISO"
                    } else {
                        "a disk"
                    },
                    target.format()
                ),
            )),
            // Formats without boot sectors were refused when staging.
            _ => Ok(()),
        }
    }

    fn checks(&self) -> Vec<Check> {
        Host::system().checks()
    }
}

/// Makes (or reuses) one core image under `<output>/grub/`, saying which when `log`.
fn core_image(ctx: &Context, host: &Host, image: &CoreImage, log: bool) -> Result<PathBuf, Error> {
    let cache = ctx.output_dir.join("grub");
    let start = std::time::Instant::now();
    let built = core_image::build_cached(image, host, &cache)?;
    if log {
        eprintln!(
            "        GRUB {} core image {} {} ({:.0} ms)",
            image.target.format(),
            if built.made { "made:" } else { "reused:" },
            built.path.display(),
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(built.path)
}

/// The `grub.cfg` text: the user's template expanded, or the generated config.
fn config_text(ctx: &Context, plan: &Plan) -> Result<String, Error> {
    let timeout = plan.grub.timeout;
    let Some(template) = &plan.grub.config else {
        return cfg::render(&plan.entries, timeout);
    };
    let path = ctx.host_path(template);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Config(format!(
            "`grub.config = \"{}\"`: could not read `{}`: {e}",
            template.display(),
            path.display()
        ))
    })?;
    template_variables(ctx, plan)?.expand(&text, &format!("grub.config ({})", path.display()))
}

/// Refuses a `grub.cfg` made from the user's template (`grub.config`) that loads a file from
/// its own device ([`cfg::loaded_paths`]) the image will not hold: GRUB would print an error
/// and wait in its menu until the run times out. The image holds `staging` and the
/// `extra-files` the core adds to it. Names that differ from a staged one only in case are let
/// through (FAT, and ISO 9660 readers, may ignore case).
fn check_template_paths(
    text: &str,
    staging: &Staging,
    ctx: &Context,
    template: &std::path::Path,
) -> Result<(), Error> {
    let named = cfg::loaded_paths(text)
        .into_iter()
        .map(|l| (l.line, l.command, l.path));
    let extra = ctx.config.extra_files.keys().map(String::as_str);
    let Err((problems, held)) = staging.check_named_paths(extra, named) else {
        return Ok(());
    };
    Err(Error::Config(format!(
        "the grub.cfg made from `grub.config` (`{}`) loads files the image does not hold, so GRUB would stop there:\n{}\nThe image holds: {}.\nThe kernel is always at /{} (write `{{{{KERNEL}}}}`); add other files with `modules` or `extra-files`. A file on another device needs the device in its path, like `(hd1,gpt1)/boot/file`",
        ctx.host_path(template).display(),
        problems.join("\n"),
        held.join(", "),
        plan::KERNEL_PATH
    )))
}

/// The variables a `grub.cfg` template gets besides the runner's; the core refuses user
/// `variables` of these names.
pub const TEMPLATE_VARIABLES: [&str; 5] = ["KERNEL", "CMDLINE", "TIMEOUT", "CONSOLE", "ENTRIES"];

/// The variables of a `grub.cfg` template: the runner's built-ins and the user's `variables`,
/// plus `KERNEL` (the kernel's GRUB path), `CMDLINE` (its command line, quoted for GRUB),
/// `TIMEOUT`, `CONSOLE` (the serial and terminal lines) and `ENTRIES` (the generated
/// `menuentry` blocks): the [`TEMPLATE_VARIABLES`], which user variables may not be named.
fn template_variables(ctx: &Context, plan: &Plan) -> Result<Variables, Error> {
    let mut vars = ctx.variables.clone();
    vars.set("KERNEL", format!("/{}", plan::KERNEL_PATH));
    vars.set(
        "CMDLINE",
        ctx.config
            .cmdline
            .split_whitespace()
            .map(cfg::quote)
            .collect::<Vec<_>>()
            .join(" "),
    );
    vars.set("TIMEOUT", plan.grub.timeout.to_string());
    vars.set("CONSOLE", cfg::console_lines());
    vars.set("ENTRIES", cfg::render_entries(&plan.entries)?);
    Ok(vars)
}

#[cfg(test)]
mod tests;
