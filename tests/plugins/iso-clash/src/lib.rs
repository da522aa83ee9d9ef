//! An image format called `iso`, like the built-in one: loading it is an error unless the
//! config says it replaces the built-in.

use image_runner_core::{BuildRequest, Error, Image, ImageFormat, ImageKind};

struct OtherIso;

impl ImageFormat for OtherIso {
    fn name(&self) -> &str {
        "iso"
    }

    fn kind(&self) -> ImageKind {
        ImageKind::Iso
    }

    fn build(&self, _request: &BuildRequest<'_>) -> Result<Image, Error> {
        Err(Error::plugin(
            "iso",
            "the fixture's `iso` format builds nothing; it only replaces the built-in",
        ))
    }
}

image_runner_core::export_plugin!(format: OtherIso);
