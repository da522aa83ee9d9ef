//! The statically linked plugins, each behind its cargo feature, and the plugin libraries an
//! invocation asks for.

use image_runner_core::{Error, Invocation, Origin, Registry};

/// A registry with every plugin this binary was built with.
pub fn registry() -> Registry {
    #[allow(unused_mut)]
    let mut registry = Registry::new();
    #[cfg(feature = "image")]
    image_runner_image::register(&mut registry);
    #[cfg(feature = "ovmf")]
    image_runner_ovmf::register(&mut registry);
    #[cfg(feature = "qemu")]
    image_runner_qemu::register(&mut registry);
    #[cfg(feature = "grub")]
    image_runner_grub::register(&mut registry);
    #[cfg(feature = "limine")]
    image_runner_limine::register(&mut registry);
    registry
}

/// The static plugins plus the libraries `inv` asks for (`plugins` in config, `--plugin`).
pub fn registry_for(inv: &Invocation) -> Result<Registry, Error> {
    let mut registry = registry();
    image_runner_core::dynamic::load_requested(&mut registry, inv)?;
    Ok(registry)
}

/// `cargo-image-runner plugins`: one line per plugin, in columns.
pub fn list(registry: &Registry) -> String {
    let rows: Vec<[String; 4]> = registry
        .plugins()
        .into_iter()
        .map(|p| {
            let origin = match &p.origin {
                Origin::Library(path) => path.display().to_string(),
                _ => "static".to_owned(),
            };
            [p.kind.to_owned(), p.name, p.version, origin]
        })
        .collect();
    let header = ["KIND", "NAME", "VERSION", "ORIGIN"].map(str::to_owned);
    let mut widths = [0; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        out.push_str(&format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}\n",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ));
    }
    out
}
