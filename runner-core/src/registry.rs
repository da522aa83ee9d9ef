//! The plugin registry: (kind, name) → implementation, and where each plugin came from. Plugin
//! crates add themselves through their `register(&mut Registry)` function; plugin libraries
//! are added by [`crate::dynamic`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Sections;
use crate::error::Error;
use crate::media::Check;
use crate::none::NoBootloader;
use crate::plugin::{Bootloader, Firmware, ImageFormat, Runner};

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Linked into the program (a plugin crate's `register`).
    Static,
    /// Loaded from the plugin library at this path.
    Library(PathBuf),
}

/// What the registry knows about one plugin besides its implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginInfo {
    /// `bootloader`, `format`, `firmware` or `runner`.
    pub kind: &'static str,
    /// The name config selects it by.
    pub name: String,
    /// Its version: a library plugin's own; for static plugins the version of image-runner-core
    /// they were built with.
    pub version: String,
    /// Static, or the library it was loaded from.
    pub origin: Origin,
}

/// A plugin loaded from a library, ready to join the registry.
pub(crate) enum Loaded {
    Bootloader(Arc<dyn Bootloader>),
    Format(Arc<dyn ImageFormat>),
    Firmware(Arc<dyn Firmware>),
    Runner(Arc<dyn Runner>),
}

/// All plugins known to this process.
#[derive(Clone)]
pub struct Registry {
    bootloaders: BTreeMap<String, Arc<dyn Bootloader>>,
    formats: BTreeMap<String, Arc<dyn ImageFormat>>,
    firmware: BTreeMap<String, Arc<dyn Firmware>>,
    runners: BTreeMap<String, Arc<dyn Runner>>,
    info: BTreeMap<(&'static str, String), PluginInfo>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("bootloaders", &self.bootloaders.keys().collect::<Vec<_>>())
            .field("formats", &self.formats.keys().collect::<Vec<_>>())
            .field("firmware", &self.firmware.keys().collect::<Vec<_>>())
            .field("runners", &self.runners.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

fn lookup<T: ?Sized>(
    map: &BTreeMap<String, Arc<T>>,
    kind: &'static str,
    name: &str,
) -> Result<Arc<T>, Error> {
    map.get(name).cloned().ok_or_else(|| Error::UnknownPlugin {
        kind,
        name: name.to_owned(),
        available: if map.is_empty() {
            "none".to_owned()
        } else {
            map.keys().cloned().collect::<Vec<_>>().join(", ")
        },
    })
}

impl Registry {
    /// A registry holding the built-in `none` bootloader.
    pub fn new() -> Self {
        let mut registry = Registry {
            bootloaders: BTreeMap::new(),
            formats: BTreeMap::new(),
            firmware: BTreeMap::new(),
            runners: BTreeMap::new(),
            info: BTreeMap::new(),
        };
        registry.add_bootloader(NoBootloader);
        registry
    }

    fn note_static(&mut self, kind: &'static str, name: &str) {
        self.info.insert(
            (kind, name.to_owned()),
            PluginInfo {
                kind,
                name: name.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                origin: Origin::Static,
            },
        );
    }

    /// Adds (or replaces) a bootloader.
    pub fn add_bootloader(&mut self, plugin: impl Bootloader + 'static) {
        self.note_static("bootloader", plugin.name());
        self.bootloaders
            .insert(plugin.name().to_owned(), Arc::new(plugin));
    }

    /// Adds (or replaces) an image format.
    pub fn add_format(&mut self, plugin: impl ImageFormat + 'static) {
        self.note_static("format", plugin.name());
        self.formats
            .insert(plugin.name().to_owned(), Arc::new(plugin));
    }

    /// Adds (or replaces) a firmware provider.
    pub fn add_firmware(&mut self, plugin: impl Firmware + 'static) {
        self.note_static("firmware", plugin.name());
        self.firmware
            .insert(plugin.name().to_owned(), Arc::new(plugin));
    }

    /// Adds (or replaces) a runner.
    pub fn add_runner(&mut self, plugin: impl Runner + 'static) {
        self.note_static("runner", plugin.name());
        self.runners
            .insert(plugin.name().to_owned(), Arc::new(plugin));
    }

    /// Adds a plugin loaded from a library. A plugin of the same kind and name already there
    /// is an error naming both, unless `replace` is set.
    pub(crate) fn add_loaded(
        &mut self,
        plugin: Loaded,
        info: PluginInfo,
        replace: bool,
        named_in: &str,
    ) -> Result<(), Error> {
        let key = (info.kind, info.name.clone());
        if let (Some(existing), false) = (self.info.get(&key), replace) {
            let Origin::Library(path) = &info.origin else {
                return Err(Error::Config("a loaded plugin has no library".into()));
            };
            let (kind, name) = (info.kind, &info.name);
            let message = match &existing.origin {
                Origin::Static => format!(
                    "exports {kind} `{name}`, but a built-in {kind} is called `{name}` too; rename the plugin, or let it replace the built-in with `plugins = [{{ path = \"{}\", replace = true }}]` (named in {named_in})",
                    path.display()
                ),
                Origin::Library(other) => format!(
                    "exports {kind} `{name}`, which plugin library `{}` exports too; load only one of them, or give the later one `replace = true` (named in {named_in})",
                    other.display()
                ),
            };
            return Err(Error::PluginLibrary {
                path: path.clone(),
                message,
            });
        }
        let name = info.name.clone();
        match plugin {
            Loaded::Bootloader(p) => self.bootloaders.insert(name, p).map(drop),
            Loaded::Format(p) => self.formats.insert(name, p).map(drop),
            Loaded::Firmware(p) => self.firmware.insert(name, p).map(drop),
            Loaded::Runner(p) => self.runners.insert(name, p).map(drop),
        };
        self.info.insert(key, info);
        Ok(())
    }

    /// Every plugin: kind, name, version and origin, by kind (bootloader, format, firmware,
    /// runner) then name.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        let order = |kind: &str| match kind {
            "bootloader" => 0,
            "format" => 1,
            "firmware" => 2,
            _ => 3,
        };
        let mut all: Vec<PluginInfo> = self.info.values().cloned().collect();
        all.sort_by(|a, b| {
            order(a.kind)
                .cmp(&order(b.kind))
                .then_with(|| a.name.cmp(&b.name))
        });
        all
    }

    /// The bootloader called `name`.
    pub fn bootloader(&self, name: &str) -> Result<Arc<dyn Bootloader>, Error> {
        lookup(&self.bootloaders, "bootloader", name)
    }

    /// The image format called `name`.
    pub fn format(&self, name: &str) -> Result<Arc<dyn ImageFormat>, Error> {
        lookup(&self.formats, "format", name)
    }

    /// The firmware provider called `name`.
    pub fn firmware(&self, name: &str) -> Result<Arc<dyn Firmware>, Error> {
        lookup(&self.firmware, "firmware", name)
    }

    /// The runner called `name`.
    pub fn runner(&self, name: &str) -> Result<Arc<dyn Runner>, Error> {
        lookup(&self.runners, "runner", name)
    }

    /// Every plugin's host checks, for `doctor`.
    pub fn checks(&self) -> Vec<Check> {
        let mut all = Vec::new();
        all.extend(self.runners.values().flat_map(|p| p.checks()));
        all.extend(self.firmware.values().flat_map(|p| p.checks()));
        all.extend(self.bootloaders.values().flat_map(|p| p.checks()));
        all.extend(self.formats.values().flat_map(|p| p.checks()));
        all
    }

    /// Every plugin's config section, by plugin name.
    pub fn sections(&self) -> Sections {
        let mut sections = Sections::new();
        let found = self
            .bootloaders
            .iter()
            .map(|(n, p)| (n, p.config_section()))
            .chain(self.formats.iter().map(|(n, p)| (n, p.config_section())))
            .chain(self.firmware.iter().map(|(n, p)| (n, p.config_section())))
            .chain(self.runners.iter().map(|(n, p)| (n, p.config_section())));
        for (name, section) in found {
            if let Some(section) = section {
                sections.insert(name.clone(), section);
            }
        }
        sections
    }

    /// Names of all registered plugins, by kind.
    pub fn names(&self) -> Vec<(&'static str, Vec<String>)> {
        vec![
            ("bootloader", self.bootloaders.keys().cloned().collect()),
            ("format", self.formats.keys().cloned().collect()),
            ("firmware", self.firmware.keys().cloned().collect()),
            ("runner", self.runners.keys().cloned().collect()),
        ]
    }
}
