//! The plugin registry: (kind, name) → implementation. Plugin crates add themselves through
//! their `register(&mut Registry)` function.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Sections;
use crate::error::Error;
use crate::media::Check;
use crate::none::NoBootloader;
use crate::plugin::{Bootloader, Firmware, ImageFormat, Runner};

/// All plugins known to this process.
#[derive(Clone)]
pub struct Registry {
    bootloaders: BTreeMap<String, Arc<dyn Bootloader>>,
    formats: BTreeMap<String, Arc<dyn ImageFormat>>,
    firmware: BTreeMap<String, Arc<dyn Firmware>>,
    runners: BTreeMap<String, Arc<dyn Runner>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("bootloaders", &self.bootloaders.keys().collect::<Vec<_>>())
            .field("formats", &self.formats.keys().collect::<Vec<_>>())
            .field("firmware", &self.firmware.keys().collect::<Vec<_>>())
            .field("runners", &self.runners.keys().collect::<Vec<_>>())
            .finish()
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
        };
        registry.add_bootloader(NoBootloader);
        registry
    }

    /// Adds (or replaces) a bootloader.
    pub fn add_bootloader(&mut self, plugin: impl Bootloader + 'static) {
        self.bootloaders
            .insert(plugin.name().to_owned(), Arc::new(plugin));
    }

    /// Adds (or replaces) an image format.
    pub fn add_format(&mut self, plugin: impl ImageFormat + 'static) {
        self.formats
            .insert(plugin.name().to_owned(), Arc::new(plugin));
    }

    /// Adds (or replaces) a firmware provider.
    pub fn add_firmware(&mut self, plugin: impl Firmware + 'static) {
        self.firmware
            .insert(plugin.name().to_owned(), Arc::new(plugin));
    }

    /// Adds (or replaces) a runner.
    pub fn add_runner(&mut self, plugin: impl Runner + 'static) {
        self.runners
            .insert(plugin.name().to_owned(), Arc::new(plugin));
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
