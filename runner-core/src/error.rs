//! The error type shared by the pipeline and all plugins; every variant names what it is about.

use std::path::{Path, PathBuf};

/// Shorthand for results in this crate and its plugins.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while preparing or running an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Could not {action} `{path}`: {source}
    #[error("could not {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A config source is not valid; the message carries `file:line:column`.
    #[error("{0}")]
    Config(String),

    /// A template variable is unknown.
    #[error("unknown template variable `{{{{{name}}}}}` in `{key}`; known variables: {known}")]
    UnknownVariable {
        name: String,
        key: String,
        known: String,
    },

    /// A destination inside an image is not acceptable.
    #[error("image path `{path}` is not allowed: {reason}")]
    BadImagePath { path: String, reason: String },

    /// Two staged entries collide.
    #[error(
        "image path `{path}` collides with `{other}`: a path cannot be both a file and a directory"
    )]
    StagingConflict { path: String, other: String },

    /// Two different sources for one image path.
    #[error(
        "image path `{path}` is staged twice, from {first} and from {second}; one of them needs another path"
    )]
    StagedTwice {
        path: String,
        first: String,
        second: String,
    },

    /// No plugin of this kind has this name.
    #[error(
        "no {kind} named `{name}`; available: {available}. Enable the plugin's cargo feature or check `{kind}` in your config"
    )]
    UnknownPlugin {
        kind: &'static str,
        name: String,
        available: String,
    },

    /// An external program the step needs is missing.
    #[error("`{program}` was not found; {hint}")]
    MissingTool { program: String, hint: String },

    /// The kernel executable cannot be used as asked.
    #[error("kernel `{}`: {reason}", path.display())]
    Kernel { path: PathBuf, reason: String },

    /// A plugin failed; the message says why and what to do.
    #[error("{plugin}: {message}")]
    Plugin { plugin: String, message: String },

    /// A plugin failed with an underlying error.
    #[error("{plugin}: {message}: {source}")]
    PluginSource {
        plugin: String,
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A plugin library could not be loaded; the message says why and what to do.
    #[error("plugin library `{}`: {message}", path.display())]
    PluginLibrary { path: PathBuf, message: String },

    /// An error a plugin loaded from a library reported, as its text.
    #[error("{0}")]
    FromLibrary(String),
}

impl Error {
    /// An I/O error about `path`.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A plugin error with a message.
    pub fn plugin(plugin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Plugin {
            plugin: plugin.into(),
            message: message.into(),
        }
    }

    /// A plugin error wrapping another error.
    pub fn plugin_source(
        plugin: impl Into<String>,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::PluginSource {
            plugin: plugin.into(),
            message: message.into(),
            source: Box::new(source),
        }
    }

    /// A problem with the kernel executable.
    pub fn kernel(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::Kernel {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }
}
