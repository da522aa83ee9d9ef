//! The pipeline: load the context (config layers, plugin sections, decisions), then bootloader →
//! image format → firmware → runner, each step fed what the one before returned. No plugin
//! calls another; this is the only place they meet.

use crate::command::CommandSpec;
use crate::config::Variables;
use crate::context::{self, Context, Invocation, Project, load_config};
use crate::decisions::{Decisions, PluginFacts};
use crate::error::Error;
use crate::kernel::Kernel;
use crate::media::{BootMedia, Image, Outcome};
use crate::plugin::{BuildRequest, Staged};
use crate::registry::Registry;
use crate::serial::SerialHandler;
use crate::staging::{ImagePath, Source};

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

    /// The registry.
    pub fn registry(&self) -> &'r Registry {
        self.registry
    }

    /// Finds the project around the executable, loads every config source (plugin sections
    /// checked against the registered plugins' schemas) and makes the decisions.
    pub fn context(&self, inv: Invocation) -> Result<Context, Error> {
        let executable = context::absolute(&inv.executable)?;
        let kernel = Kernel::inspect(&executable)?;
        let Project {
            manifest_dir,
            workspace_root,
            target_dir,
        } = Project::discover(&inv, Some(&executable))?;
        let output_dir = context::output_dir_for(&target_dir, &executable);
        let cache_dir = context::cache_dir(&inv.env)?;
        let is_test = inv
            .test
            .unwrap_or_else(|| context::looks_like_test_binary(&executable));

        let mut builtins = Variables::new();
        builtins.set("EXECUTABLE", executable.to_string_lossy());
        builtins.set(
            "EXECUTABLE_NAME",
            executable
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        builtins.set("WORKSPACE_ROOT", workspace_root.to_string_lossy());
        builtins.set("MANIFEST_DIR", manifest_dir.to_string_lossy());
        builtins.set("OUTPUT_DIR", output_dir.to_string_lossy());
        builtins.set("IS_TEST", if is_test { "true" } else { "false" });
        builtins.set(
            "ARGS",
            inv.args
                .iter()
                .map(|a| crate::command::shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        );

        let sections = self.registry.sections();
        let resolved = load_config(&inv, &manifest_dir, &workspace_root, &builtins, &sections)?;
        let config = resolved.config;
        let origins = resolved.origins;
        let boot_choice = crate::decisions::boot_of(&config, &kernel);
        let bootloader = self.registry.bootloader(&config.bootloader)?;
        let facts = PluginFacts::new(bootloader.wants_image(&kernel, boot_choice));
        let decisions = Decisions::resolve(
            &config,
            &kernel,
            is_test,
            facts,
            |key| origins.get(key).cloned().unwrap_or_else(|| "?".into()),
            |name| Ok(self.registry.format(name)?.kind()),
        )?;
        Ok(Context {
            config,
            sections: resolved.sections,
            origins,
            variables: resolved.variables,
            kernel,
            decisions,
            args: inv.args,
            runner_args: inv.runner_args,
            manifest_dir,
            workspace_root,
            target_dir,
            output_dir,
            cache_dir,
            env: inv.env,
            env_not_utf8: inv.env_not_utf8,
            verbose: inv.verbose,
            uefi_shell: None,
        })
    }

    /// Stages the kernel and adds `extra-files`. A bootloader that wants a UEFI shell gets the
    /// firmware provider's in [`Context::uefi_shell`].
    pub fn stage(&self, ctx: &Context) -> Result<Staged, Error> {
        let bootloader = self.registry.bootloader(&ctx.config.bootloader)?;
        let with_shell;
        let ctx = if bootloader.wants_uefi_shell(ctx) {
            let shell = self
                .registry
                .firmware(&ctx.config.firmware)?
                .uefi_shell(ctx)?;
            with_shell = Context {
                uefi_shell: shell,
                ..ctx.clone()
            };
            &with_shell
        } else {
            ctx
        };
        let mut staged = bootloader.stage(ctx)?;
        let mut extra: std::collections::BTreeMap<ImagePath, &str> = Default::default();
        for (dest, source) in &ctx.config.extra_files {
            let path = ImagePath::new(dest)
                .map_err(|e| Error::Config(format!("`extra-files` entry \"{dest}\": {e}")))?;
            let host = ctx.host_file(&format!("extra-files.\"{dest}\""), source)?;
            let origin = ctx
                .origins
                .get(&format!("extra-files.{dest}"))
                .map_or_else(String::new, |o| format!(" (set by {o})"));
            if let Some(other) = extra.get(&path) {
                return Err(Error::Config(format!(
                    "`extra-files` entries \"{other}\" and \"{dest}\"{origin} both name the image path `{path}`; remove one of them"
                )));
            }
            if let Some(staged_source) = staged.staging.entries.get(&path) {
                return Err(Error::Config(format!(
                    "`extra-files` entry \"{dest}\" = \"{source}\"{origin} would replace `{path}`, which bootloader `{}` staged from {staged_source}: the extra file `{}` cannot take its place; give it another image path",
                    ctx.config.bootloader,
                    host.display()
                )));
            }
            staged.staging.add(path.clone(), Source::File(host))?;
            extra.insert(path, dest);
        }
        Ok(staged)
    }

    /// Runs every step up to the runner: stage, build the image, resolve firmware.
    pub fn prepare(&self, ctx: &Context) -> Result<BootMedia, Error> {
        let staged = self.stage(ctx)?;
        let staging = &staged.staging;
        let mut media = BootMedia::new(ctx.decisions.boot);
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
        if let Some(plan) = &ctx.decisions.image {
            if staging.entries.is_empty() {
                return Err(Error::Config(format!(
                    "`format = \"{}\"` but nothing was staged for an image: the kernel boots directly; remove `format` or add `extra-files`",
                    plan.format
                )));
            }
            std::fs::create_dir_all(&ctx.output_dir)
                .map_err(|e| Error::io("create the output directory", &ctx.output_dir, e))?;
            // What an earlier build killed outright left behind.
            for stale in crate::fs::remove_stale_temporaries(&ctx.output_dir) {
                if ctx.verbose > 0 {
                    eprintln!(
                        "     Removed {} (left by a build that was killed)",
                        stale.display()
                    );
                }
            }
            media.image = Some(self.build_image(&plan.format, &staged, ctx)?);
        }
        if ctx.decisions.boot.needs_uefi_firmware() {
            std::fs::create_dir_all(&ctx.output_dir)
                .map_err(|e| Error::io("create the output directory", &ctx.output_dir, e))?;
            media.firmware = Some(self.registry.firmware(&ctx.config.firmware)?.resolve(ctx)?);
        }
        Ok(media)
    }

    /// Builds the image with format `name`; the bootloader finishes it before it is published.
    fn build_image(&self, name: &str, staged: &Staged, ctx: &Context) -> Result<Image, Error> {
        let format = self.registry.format(name)?;
        let bootloader = self.registry.bootloader(&ctx.config.bootloader)?;
        let finish = |image: &Image| bootloader.finish_image(staged, image, ctx);
        let request = BuildRequest::new(&staged.staging, ctx).with_finish(&finish);
        format.build(&request)
    }

    /// The command the runner would start for `media`.
    pub fn command(&self, media: &BootMedia, ctx: &Context) -> Result<CommandSpec, Error> {
        self.registry
            .runner(&ctx.config.runner)?
            .command(media, ctx)
    }

    /// Boots `media` and judges the run, streaming the serial output to `handler`.
    pub fn run(
        &self,
        media: &BootMedia,
        ctx: &Context,
        handler: &mut dyn SerialHandler,
    ) -> Result<Outcome, Error> {
        let outcome = self
            .registry
            .runner(&ctx.config.runner)?
            .run(media, ctx, handler)?;
        handler.finished();
        if let Some(files) = &media.firmware {
            self.registry
                .firmware(&ctx.config.firmware)?
                .after_run(files, &outcome, ctx)?;
        }
        Ok(outcome)
    }
}
