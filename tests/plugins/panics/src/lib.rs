//! An image format that panics in every call the host makes: the host must report an error and
//! exit with its runner-error code, never abort.

use image_runner_core::{BuildRequest, Error, Image, ImageFormat, ImageKind, Section};

struct Panicky;

impl ImageFormat for Panicky {
    fn name(&self) -> &str {
        "panicky"
    }

    fn kind(&self) -> ImageKind {
        panic!("kind() of the panicking fixture")
    }

    fn build(&self, _request: &BuildRequest<'_>) -> Result<Image, Error> {
        panic!("build() of the panicking fixture")
    }

    fn config_section(&self) -> Option<Section> {
        panic!("config_section() of the panicking fixture")
    }

    fn checks(&self) -> Vec<image_runner_core::Check> {
        panic!("checks() of the panicking fixture")
    }
}

image_runner_core::export_plugin!(format: Panicky);
