//! A library whose header says it was built for plugin ABI 99.3: the host must refuse it after
//! reading the magic and the major version, without touching anything else.

use image_runner_core::dynamic::abi::{Header, HostApi, MAGIC};

static HEADER: Header = Header {
    magic: MAGIC,
    abi_major: 99,
    abi_minor: 3,
    // Nonsense on purpose: a host that read past the version would trip over these.
    descriptor_size: 1,
    count: u32::MAX,
    descriptors: std::ptr::null(),
};

/// The entry symbol, hand-made with another ABI major.
///
/// # Safety
/// Any pointer is accepted; it is not read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn image_runner_plugin_entry(_host: *const HostApi) -> *const Header {
    &HEADER
}
