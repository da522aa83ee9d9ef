//! Configuration: the shared keys, plugin sections, the layered sources both are read from, and
//! template variables.

mod layers;
mod old;
mod schema;
mod section;
mod template;

pub use layers::{ConfigLayers, ENV_PREFIX, Layer, LayerKind, Resolved};
pub use old::{OLD_RELEASE, Respelling, respellings};
pub use schema::{
    Attach, BootChoice, Config, EntryConfig, ImageConfig, ModeConfig, ModuleConfig, PluginEntry,
    PluginTable, ProtocolChoice, SHARED_KEYS, SendRule,
};
pub use section::{OldKey, Section, Sections};
pub use template::Variables;
