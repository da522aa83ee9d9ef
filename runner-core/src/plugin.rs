//! The plugin traits: the stable surface for plugin authors. One trait per kind, each small and
//! object-safe. Each step gets what the step before returned plus the [`Context`] (the
//! decisions and the plugin's own config section):
//!
//! ```text
//! Bootloader::stage        → Staged (a Staging list + the bootloader's own state, by value)
//! ImageFormat::build       → Image  (calls back BuildRequest::finish on the fresh image)
//! Bootloader::finish_image ← Staged, the fresh image (boot sectors, say)
//! Firmware::resolve        → FirmwareFiles (UEFI boots)
//! Runner::run              → Outcome, the serial output streamed to a SerialHandler
//! ```

use std::any::Any;
use std::fmt;

use crate::command::CommandSpec;
use crate::config::Section;
use crate::context::Context;
use crate::error::Error;
use crate::kernel::Kernel;
use crate::media::{BootKind, BootMedia, Check, FirmwareFiles, Image, ImageKind, Outcome};
use crate::serial::SerialHandler;
use crate::staging::Staging;

/// What a bootloader's `stage` returns: the staging list, and whatever `finish_image` will
/// need, carried by value (no state hidden in the plugin, nothing recomputed).
#[non_exhaustive]
pub struct Staged {
    /// The files of the image and how the kernel is started.
    pub staging: Staging,
    state: Option<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Staged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Staged")
            .field("staging", &self.staging)
            .field("state", &self.state.is_some())
            .finish()
    }
}

impl Staged {
    /// A staging list with no state.
    pub fn new(staging: Staging) -> Self {
        Staged {
            staging,
            state: None,
        }
    }

    /// The same with `state` for `finish_image`.
    pub fn with_state<T: Any + Send + Sync>(mut self, state: T) -> Self {
        self.state = Some(Box::new(state));
        self
    }

    /// The state, if it is a `T`.
    pub fn state<T: Any>(&self) -> Option<&T> {
        self.state.as_ref().and_then(|s| s.downcast_ref())
    }
}

impl From<Staging> for Staged {
    fn from(staging: Staging) -> Self {
        Staged::new(staging)
    }
}

/// Puts a kernel and what it needs into a [`Staging`] list.
pub trait Bootloader: Send + Sync {
    /// The name config selects it by (and the name of its config section).
    fn name(&self) -> &str;

    /// Whether this bootloader stages files for an image for `kernel` booted as `boot`
    /// (`false`: the kernel boots directly, or is a ready image). The core decides the image
    /// format from it before staging.
    fn wants_image(&self, _kernel: &Kernel, _boot: BootKind) -> bool {
        true
    }

    /// Whether staging needs a UEFI shell from the firmware provider (to start a UEFI
    /// application with arguments, say); the pipeline then asks [`Firmware::uefi_shell`] before
    /// staging and puts the answer in [`Context::uefi_shell`].
    fn wants_uefi_shell(&self, _ctx: &Context) -> bool {
        false
    }

    /// Stages `ctx.kernel` as `ctx.decisions` say.
    fn stage(&self, ctx: &Context) -> Result<Staged, Error>;

    /// Finishes a freshly built image (installs boot code into its first sectors, say) before
    /// it is published. Not called when an unchanged image is reused.
    fn finish_image(&self, _staged: &Staged, _image: &Image, _ctx: &Context) -> Result<(), Error> {
        Ok(())
    }

    /// Its config section, if it has one (`[…image-runner.<name>]`).
    fn config_section(&self) -> Option<Section> {
        None
    }

    /// What this bootloader needs from the host, for `doctor`.
    fn checks(&self) -> Vec<Check> {
        Vec::new()
    }
}

/// What an image format is asked to build: the staging list, the context, and the bootloader's
/// finishing step to run on the fresh image before it is published.
#[non_exhaustive]
pub struct BuildRequest<'a> {
    /// What goes into the image.
    pub staging: &'a Staging,
    /// The run.
    pub ctx: &'a Context,
    finish: &'a dyn Fn(&Image) -> Result<(), Error>,
}

impl fmt::Debug for BuildRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildRequest")
            .field("staging", &self.staging)
            .finish_non_exhaustive()
    }
}

impl<'a> BuildRequest<'a> {
    /// A request with nothing to finish.
    pub fn new(staging: &'a Staging, ctx: &'a Context) -> Self {
        BuildRequest {
            staging,
            ctx,
            finish: &|_| Ok(()),
        }
    }

    /// The same request with `finish` run on the fresh image.
    pub fn with_finish(mut self, finish: &'a dyn Fn(&Image) -> Result<(), Error>) -> Self {
        self.finish = finish;
        self
    }

    /// Runs the bootloader's finishing step on a freshly written image (at its temporary
    /// path). Formats call it once per build, before publishing; never for a reused image.
    pub fn finish(&self, image: &Image) -> Result<(), Error> {
        (self.finish)(image)
    }
}

/// Writes a [`Staging`] list as an image.
pub trait ImageFormat: Send + Sync {
    /// The name config selects it by.
    fn name(&self) -> &str;

    /// What it makes; decided before staging, so bootloaders stage for it.
    fn kind(&self) -> ImageKind;

    /// Builds the image (atomically: a half-written image is never found under its name)
    /// under `ctx.output_dir` and says where it is; may reuse its last image when nothing it
    /// depends on changed.
    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error>;

    /// Its config section, if it has one.
    fn config_section(&self) -> Option<Section> {
        None
    }

    /// What this format needs from the host, for `doctor`.
    fn checks(&self) -> Vec<Check> {
        Vec::new()
    }
}

/// Finds UEFI firmware for the run.
pub trait Firmware: Send + Sync {
    /// The name config selects it by.
    fn name(&self) -> &str;
    /// Firmware for `ctx.decisions.arch`, with a variable store private to this run.
    fn resolve(&self, ctx: &Context) -> Result<FirmwareFiles, Error>;

    /// A UEFI shell (`shell.efi`) for `ctx.decisions.arch` that this provider can supply, if
    /// any. Asked before staging, only when the bootloader wants one.
    fn uefi_shell(&self, _ctx: &Context) -> Result<Option<std::path::PathBuf>, Error> {
        Ok(None)
    }

    /// Called after the run with how it ended (to keep a warmed variable store, say).
    fn after_run(
        &self,
        _files: &FirmwareFiles,
        _outcome: &Outcome,
        _ctx: &Context,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Its config section, if it has one.
    fn config_section(&self) -> Option<Section> {
        None
    }

    /// What this firmware provider finds on the host, for `doctor`.
    fn checks(&self) -> Vec<Check> {
        Vec::new()
    }
}

/// Boots the media and judges the result.
pub trait Runner: Send + Sync {
    /// The name config selects it by.
    fn name(&self) -> &str;
    /// The command that [`Runner::run`] would start, for printing and tests.
    fn command(&self, media: &BootMedia, ctx: &Context) -> Result<CommandSpec, Error>;
    /// Runs the machine to its end and judges it, streaming the serial output to `handler`
    /// (which may type input and end the run).
    fn run(
        &self,
        media: &BootMedia,
        ctx: &Context,
        handler: &mut dyn SerialHandler,
    ) -> Result<Outcome, Error>;

    /// Its config section, if it has one.
    fn config_section(&self) -> Option<Section> {
        None
    }

    /// What this runner needs from the host, for `doctor`.
    fn checks(&self) -> Vec<Check> {
        Vec::new()
    }
}
