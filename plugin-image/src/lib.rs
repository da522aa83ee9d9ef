//! Image formats: turn a [`image_runner_core::Staging`] list into a bootable image. One module per
//! format; each writes to a temporary name and renames, so no half image is ever used.

mod copy;
pub mod digest;
pub mod directory;
pub mod disk;
pub mod fat;
pub mod iso;
pub mod reuse;
#[cfg(test)]
mod test_support;
mod timestamp;

use image_runner_core::{BuildRequest, Context, Error, Image, ImageFormat, ImageKind, Registry};

pub use directory::DirectoryFormat;

/// Adds this crate's formats to `registry`.
pub fn register(registry: &mut Registry) {
    registry.add_format(DirectoryFormat);
    registry.add_format(FatFormat);
    registry.add_format(iso::IsoFormat);
    registry.add_format(disk::GptFormat);
    registry.add_format(disk::MbrFormat);
}

/// The `fat` format: a FAT file system with no partition table.
#[derive(Debug, Clone, Copy, Default)]
pub struct FatFormat;

impl ImageFormat for FatFormat {
    fn name(&self) -> &str {
        "fat"
    }

    fn kind(&self) -> ImageKind {
        ImageKind::Fat
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error> {
        let ctx = request.ctx;
        let image = &ctx.config.image;
        let fat_type = configured_fat_type(ctx)?;
        let options = fat::FatOptions {
            fat_type,
            size: image.size,
            label: image.label.clone(),
            ..Default::default()
        };
        let path = ctx.output_dir.join("image.fat");
        reuse::build_or_reuse(request, "fat", ImageKind::Fat, &path, |temp, digests| {
            let options = fat::FatOptions {
                digests: std::sync::Arc::clone(digests),
                ..options
            };
            fat::write_fat_file(temp, request.staging, &options).map(|_| ())
        })
    }
}

/// `image.fat-type` as a [`fat::FatType`]; `None` lets the FAT writer choose from the size.
pub fn configured_fat_type(ctx: &Context) -> Result<Option<fat::FatType>, Error> {
    match ctx.config.image.fat_type {
        None => Ok(None),
        Some(12) => Ok(Some(fat::FatType::Fat12)),
        Some(16) => Ok(Some(fat::FatType::Fat16)),
        Some(32) => Ok(Some(fat::FatType::Fat32)),
        Some(other) => Err(Error::Config(format!(
            "`image.fat-type = {other}` (set by {}): use 12, 16 or 32, or remove it to choose from the content size",
            ctx.origins
                .get("image.fat-type")
                .map_or("?", String::as_str)
        ))),
    }
}
