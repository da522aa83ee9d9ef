//! A runner called `limine`, like the built-in bootloader: a plugin's config section is named
//! after the plugin, so this runner would take the bootloader's `[limine]` section over (and a
//! plain Limine run would then fail on a key the user never wrote). The host must refuse it,
//! with or without `replace = true`.

use image_runner_core::serial::SerialHandler;
use image_runner_core::{BootMedia, CommandSpec, Context, Error, Outcome, Runner};

struct LimineRunner;

impl Runner for LimineRunner {
    fn name(&self) -> &str {
        "limine"
    }

    fn command(&self, _media: &BootMedia, _ctx: &Context) -> Result<CommandSpec, Error> {
        Err(Error::plugin("limine", "the fixture runs nothing"))
    }

    fn run(
        &self,
        _media: &BootMedia,
        _ctx: &Context,
        _handler: &mut dyn SerialHandler,
    ) -> Result<Outcome, Error> {
        Err(Error::plugin("limine", "the fixture runs nothing"))
    }
}

image_runner_core::export_plugin!(runner: LimineRunner);
