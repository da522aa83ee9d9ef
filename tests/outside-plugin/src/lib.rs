//! A third-party plugin, written as an author outside this workspace would write one: it
//! depends on `image-runner-core` alone. It adds the image format `tree`, which writes the staged
//! files as a host folder (QEMU attaches it as a virtual FAT drive), configured from its own
//! section:
//!
//! ```toml
//! [package.metadata.image-runner]
//! format = "tree"
//!
//! [package.metadata.image-runner.tree]
//! folder = "esp"              # the folder's name under the output directory
//! note = "built by the tree plugin"   # written to /NOTE.TXT when set
//! ```

use std::path::Path;

use image_runner_core::{BuildRequest, Error, Image, ImageFormat, ImageKind, Registry, Section};
use serde::{Deserialize, Serialize};

/// The `[tree]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TreeConfig {
    /// Name of the folder under the output directory.
    pub folder: String,
    /// Text written to `/NOTE.TXT` in the image, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig {
            folder: "tree".into(),
            note: None,
        }
    }
}

/// The `tree` image format.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeFormat;

/// Adds the `tree` format to `registry`.
pub fn register(registry: &mut Registry) {
    registry.add_format(TreeFormat);
}

impl ImageFormat for TreeFormat {
    fn name(&self) -> &str {
        "tree"
    }

    fn kind(&self) -> ImageKind {
        ImageKind::Directory
    }

    fn config_section(&self) -> Option<Section> {
        Some(Section::of::<TreeConfig>())
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error> {
        let ctx = request.ctx;
        let config: TreeConfig = ctx.section(self.name())?;
        if config.folder.is_empty() || config.folder.contains(['/', '\\']) || config.folder == ".."
        {
            return Err(Error::Config(format!(
                "`tree.folder = \"{}\"`: use a plain folder name",
                config.folder
            )));
        }
        let dir = ctx.output_dir.join(&config.folder);
        let _ = std::fs::remove_dir_all(&dir);
        for (path, source) in &request.staging.entries {
            write(&dir.join(path.as_str()), &source.read()?)?;
        }
        if let Some(note) = &config.note {
            write(&dir.join("NOTE.TXT"), note.as_bytes())?;
        }
        let image = Image::new(&dir, ImageKind::Directory);
        request.finish(&image)?;
        Ok(image)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| Error::io("write", path, e))
}
