//! The statically linked plugins, each behind its cargo feature.

use image_runner_core::Registry;

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
