//! Configuration: the schema, the layered sources it is read from, and template variables.

mod layers;
mod schema;
mod template;

pub use layers::{ConfigLayers, Layer, LayerKind, Resolved};
pub use schema::{
    Attach, BootChoice, Config, ImageConfig, OvmfConfig, QemuConfig, RunConfig, SendRule,
    SerialMode, TestConfig,
};
pub use template::Variables;
