//! Booting a kernel from Rust code: [`Builder`] takes a registry (all plugins, or the ones you
//! chose), an executable and config given as a value or TOML text (no manifest on disk needed),
//! and returns a [`Session`] whose run streams the serial output to your [`SerialHandler`].
//! Plugin libraries named by [`Builder::plugin`] or by the project's config (`plugins`) join a
//! copy of the registry for that boot.
//!
//! ```no_run
//! use image_runner_core::serial::{AnswerOn, EndOn};
//! use image_runner_core::{Builder, Registry, Verdict};
//!
//! # fn main() -> Result<(), image_runner_core::Error> {
//! let registry = Registry::new(); // add plugins: image_runner_qemu::register(&mut registry), ...
//! let result = Builder::new(&registry)
//!     .executable("target/x86_64-unknown-none/debug/kernel")
//!     .config_toml("[test]\ntimeout = 30\n")
//!     .handler((AnswerOn::new("name? ", "world\n"), EndOn::new("bye", Verdict::Success)))
//!     .capture(true)
//!     .run()?;
//! println!("{:?} in {:?}", result.outcome.verdict, result.outcome.duration);
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::path::PathBuf;

use crate::context::{Context, Invocation};
use crate::error::Error;
use crate::media::{BootMedia, Outcome};
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::serial::{Capture, Ignore, SerialHandler};

/// Sets up one boot.
pub struct Builder<'r> {
    registry: &'r Registry,
    inv: Invocation,
    config: Vec<String>,
    handler: Box<dyn SerialHandler + 'r>,
    capture: bool,
}

impl std::fmt::Debug for Builder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("registry", self.registry)
            .field("executable", &self.inv.executable)
            .field("config", &self.config)
            .field("capture", &self.capture)
            .finish_non_exhaustive()
    }
}

/// How a run ended, as a library caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunResult {
    /// Verdict, emulator status, duration and serial log.
    pub outcome: Outcome,
    /// The exit code `cargo-image-runner` would report.
    pub exit_code: i32,
    /// The serial output, when [`Builder::capture`] asked for it.
    pub output: Option<Vec<u8>>,
}

impl<'r> Builder<'r> {
    /// A boot with the plugins of `registry`, with no config but the defaults: the project's
    /// `Cargo.toml` and `image-runner.toml` are not read unless [`Builder::project_dir`] asks.
    pub fn new(registry: &'r Registry) -> Self {
        let mut inv = Invocation::new(PathBuf::new());
        inv.read_project_config = false;
        inv.no_manifest_needed = true;
        Builder {
            registry,
            inv,
            config: Vec::new(),
            handler: Box::new(Ignore),
            capture: false,
        }
    }

    /// The kernel executable (or a ready image) to boot.
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.inv.executable = path.into();
        self
    }

    /// Config as TOML text, in the form of `image-runner.toml` (shared keys and plugin
    /// sections); several calls layer, later ones on top.
    pub fn config_toml(mut self, text: impl Into<String>) -> Self {
        self.config.push(text.into());
        self
    }

    /// Config as a TOML value.
    pub fn config(self, table: toml::Table) -> Self {
        let text = toml::to_string(&table).unwrap_or_default();
        self.config_toml(text)
    }

    /// One `key = value` above all other config (like `--set`).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.inv.overrides.push(format!("{key}={value}"));
        self
    }

    /// Also read the config of the project in `dir` (its `Cargo.toml` metadata and
    /// `image-runner.toml`), below the config given here; relative paths start there.
    pub fn project_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.inv.manifest_dir = Some(dir.into());
        self.inv.read_project_config = true;
        self
    }

    /// Where relative paths in config start and outputs go (`<dir>/target/image-runner/`,
    /// or `CARGO_TARGET_DIR`), without reading any config there.
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.inv.manifest_dir = Some(dir.into());
        self
    }

    /// Cargo's target directory (outputs go to `<dir>/image-runner/<executable stem>/`);
    /// otherwise `CARGO_TARGET_DIR`, the one holding the executable, or `<project>/target`.
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir: PathBuf = dir.into();
        self.inv.env.insert(
            "CARGO_TARGET_DIR".into(),
            dir.to_string_lossy().into_owned(),
        );
        self
    }

    /// An environment variable as the run sees it (`CARGO_IMAGE_RUNNER_*` config among them).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.inv.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Test mode on or off (detected from the executable's path otherwise).
    pub fn test(mut self, test: bool) -> Self {
        self.inv.test = Some(test);
        self
    }

    /// Extra arguments for the runner (QEMU), last in order.
    pub fn runner_args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.inv
            .runner_args
            .extend(args.into_iter().map(Into::into));
        self
    }

    /// Where the serial output goes as it arrives (nowhere by default; the runner's own log
    /// file is written either way).
    pub fn handler(mut self, handler: impl SerialHandler + 'r) -> Self {
        self.handler = Box::new(handler);
        self
    }

    /// Keep the serial output in [`RunResult::output`].
    pub fn capture(mut self, capture: bool) -> Self {
        self.capture = capture;
        self
    }

    /// Loads the plugin library at `path` (relative to the working directory) for this boot,
    /// as `--plugin PATH` does on the command line; the libraries the project's config names
    /// (`plugins = [...]`, read when [`Builder::project_dir`] asks for the project's config)
    /// are loaded too.
    pub fn plugin(mut self, path: impl Into<PathBuf>) -> Self {
        self.inv.plugins.push(path.into());
        self
    }

    /// Loads the config, makes the decisions, stages and builds the image and finds firmware:
    /// everything but the run.
    pub fn prepare(mut self) -> Result<Session<'r>, Error> {
        if let Some((first, rest)) = self.config.split_first() {
            let mut merged = first.clone();
            for text in rest {
                merged = merge_texts(&merged, text)?;
            }
            self.inv.config_text = Some(("builder config".into(), merged));
        }
        // Plugin libraries the project's config or `Builder::plugin` names join a copy of the
        // registry, as they do for the command line.
        let registry = if crate::dynamic::requested(&self.inv)?.is_empty() {
            Cow::Borrowed(self.registry)
        } else {
            let mut registry = self.registry.clone();
            crate::dynamic::load_requested(&mut registry, &self.inv)?;
            Cow::Owned(registry)
        };
        let pipeline = Pipeline::new(&registry);
        let ctx = pipeline.context(self.inv)?;
        let media = pipeline.prepare(&ctx)?;
        Ok(Session {
            registry,
            ctx,
            media,
            handler: self.handler,
            capture: self.capture,
        })
    }

    /// Prepares and runs.
    pub fn run(self) -> Result<RunResult, Error> {
        self.prepare()?.run()
    }
}

/// Merges two TOML documents key by key, `over` winning.
fn merge_texts(base: &str, over: &str) -> Result<String, Error> {
    fn merge(base: &mut toml::Table, over: toml::Table) {
        for (key, value) in over {
            match (base.get_mut(&key), value) {
                (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
                (_, value) => {
                    base.insert(key, value);
                }
            }
        }
    }
    let parse = |text: &str| {
        text.parse::<toml::Table>()
            .map_err(|e| Error::Config(format!("builder config: {e}")))
    };
    let mut table = parse(base)?;
    merge(&mut table, parse(over)?);
    toml::to_string(&table).map_err(|e| Error::Config(format!("builder config: {e}")))
}

/// A prepared boot: the context, with every decision made, and the built media.
pub struct Session<'r> {
    registry: Cow<'r, Registry>,
    ctx: Context,
    media: BootMedia,
    handler: Box<dyn SerialHandler + 'r>,
    capture: bool,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("ctx", &self.ctx)
            .field("media", &self.media)
            .finish_non_exhaustive()
    }
}

impl Session<'_> {
    /// The context: decisions, config, plugin sections, directories.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// What will be booted.
    pub fn media(&self) -> &BootMedia {
        &self.media
    }

    /// The emulator command the run will start.
    pub fn command(&self) -> Result<crate::command::CommandSpec, Error> {
        Pipeline::new(&self.registry).command(&self.media, &self.ctx)
    }

    /// Boots and waits for the verdict.
    pub fn run(mut self) -> Result<RunResult, Error> {
        let capture = Capture::new();
        let pipeline = Pipeline::new(&self.registry);
        let outcome = if self.capture {
            let mut both = (capture.clone(), &mut self.handler);
            pipeline.run(&self.media, &self.ctx, &mut both)?
        } else {
            pipeline.run(&self.media, &self.ctx, &mut self.handler)?
        };
        Ok(RunResult {
            exit_code: outcome.verdict.exit_code(),
            outcome,
            output: self.capture.then(|| capture.bytes()),
        })
    }
}
