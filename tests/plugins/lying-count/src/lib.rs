//! A hand-made library whose header claims a million plugin descriptors while its table holds
//! one. What follows that one in memory, read as a second descriptor, names a plugin whose
//! name lies at address 0x10, where nothing is mapped: a host that believed the count would
//! crash there. The host must refuse the header before it reads past the table.

use image_runner_core::dynamic::abi::{self, Buf, Descriptor, Header, HostApi, HostCall, Str};

/// Answers nothing.
unsafe extern "C" fn call(
    _instance: *const std::ffi::c_void,
    _method: u32,
    _input: Str,
    _host: *const HostCall,
    _out: *mut Buf,
) -> u32 {
    abi::status::UNKNOWN
}

/// Frees nothing.
unsafe extern "C" fn free(_buf: Buf) {}

const WORDS: usize = std::mem::size_of::<Descriptor>() / std::mem::size_of::<usize>();

/// The table: one real descriptor, then the words a lying count makes a host read as the next.
#[repr(C)]
struct Table {
    real: [Descriptor; 1],
    after: [usize; WORDS],
}

struct Shared<T>(T);
// SAFETY: never changed.
unsafe impl<T> Sync for Shared<T> {}

static TABLE: Shared<Table> = Shared(Table {
    real: [Descriptor {
        kind: abi::kind::FORMAT,
        name: Str {
            ptr: b"liar".as_ptr(),
            len: 4,
        },
        version: Str {
            ptr: b"0.1.0".as_ptr(),
            len: 5,
        },
        instance: std::ptr::null(),
        call,
        free,
    }],
    // Kind 4 (runner); a 4-byte name at 0x10, a 4-byte version at 0x10.
    after: {
        let mut words = [0; WORDS];
        words[0] = 4;
        words[1] = 0x10;
        words[2] = 4;
        words[3] = 0x10;
        words[4] = 4;
        words
    },
});

static HEADER: Shared<Header> = Shared(Header {
    magic: abi::MAGIC,
    abi_major: abi::ABI_MAJOR,
    abi_minor: abi::ABI_MINOR,
    descriptor_size: std::mem::size_of::<Descriptor>() as u32,
    count: 1_000_000,
    descriptors: TABLE.0.real.as_ptr(),
});

/// The entry symbol, hand-made with a count its table cannot back.
///
/// # Safety
/// Any pointer is accepted; it is not read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn image_runner_plugin_entry(_host: *const HostApi) -> *const Header {
    &HEADER.0
}
