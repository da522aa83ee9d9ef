//! The statically linked plugins, each behind its cargo feature.

use runner_core::Registry;

/// A registry with every plugin this binary was built with.
pub fn registry() -> Registry {
    #[allow(unused_mut)]
    let mut registry = Registry::new();
    #[cfg(feature = "image")]
    plugin_image::register(&mut registry);
    #[cfg(feature = "ovmf")]
    plugin_ovmf::register(&mut registry);
    #[cfg(feature = "qemu")]
    plugin_qemu::register(&mut registry);
    #[cfg(feature = "grub")]
    plugin_grub::register(&mut registry);
    #[cfg(feature = "limine")]
    plugin_limine::register(&mut registry);
    registry
}
