//! A shared library that is not a plugin: it has no `image_runner_plugin_entry` symbol.

/// Something a library might export.
#[unsafe(no_mangle)]
pub extern "C" fn fixture_answer() -> u32 {
    42
}
