//! UEFI firmware for cargo-image-runner: finds OVMF/AAVMF on the host and gives each run its
//! own copy of the variable store.

mod descriptor;
mod discover;

use runner_core::{Context, Error, Firmware, FirmwareFiles, Registry};

pub use discover::{Candidate, FirmwarePair, Search, find};

/// The `ovmf` firmware provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ovmf;

/// Adds this crate's plugins to `registry`.
pub fn register(registry: &mut Registry) {
    registry.add_firmware(Ovmf);
}

impl Firmware for Ovmf {
    fn name(&self) -> &str {
        "ovmf"
    }

    fn resolve(&self, ctx: &Context) -> Result<FirmwareFiles, Error> {
        let search = Search::from_context(ctx);
        let found = find(&search)?;
        match found {
            FirmwarePair::Unified(path) => Ok(FirmwareFiles::Unified(path)),
            FirmwarePair::Pflash { code, vars } => {
                // A VARS file shared between runs collects boot entries that can break later,
                // different images: every run starts from a fresh copy of the template.
                let copy = ctx.output_dir.join("uefi-vars.fd");
                runner_core::fs::copy_atomic(&vars, &copy)?;
                Ok(FirmwareFiles::Pflash { code, vars: copy })
            }
        }
    }
}
