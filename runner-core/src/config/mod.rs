//! Configuration: the schema, the layered sources it is read from, and template variables.

mod layers;
mod schema;
mod template;

pub use layers::{ConfigLayers, Layer, LayerKind, Resolved};
pub use schema::{
    Attach, BootChoice, Config, EntryConfig, GrubConfig, ImageConfig, LimineConfig, ModuleConfig,
    OvmfConfig, QemuConfig, RunConfig, SendRule, SerialMode, TestConfig,
};
pub use template::Variables;
