//! Boot protocols: the one list of spellings config accepts, and the one `auto` rule that picks
//! a protocol from a kernel's headers. Bootloaders add only what they themselves cannot do
//! (GRUB has no Limine protocol; Limine boots multiboot kernels on x86 only).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::kernel::{Arch, Kernel, KernelFormat};

/// How a bootloader hands control to a kernel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum Protocol {
    /// The Limine boot protocol (an ELF64 kernel with Limine requests).
    Limine,
    /// Multiboot 1.
    Multiboot1,
    /// Multiboot 2.
    Multiboot2,
    /// The Linux boot protocol (a bzImage on x86; an `Image` elsewhere).
    Linux,
    /// Starting a UEFI application.
    EfiChainload,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 5] = [
        Protocol::Limine,
        Protocol::Multiboot1,
        Protocol::Multiboot2,
        Protocol::Linux,
        Protocol::EfiChainload,
    ];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Limine => "limine",
            Protocol::Multiboot1 => "multiboot1",
            Protocol::Multiboot2 => "multiboot2",
            Protocol::Linux => "linux",
            Protocol::EfiChainload => "efi-chainload",
        }
    }

    /// The protocol for the kernel at `path` (`kernel` is `None` when it is neither ELF nor PE,
    /// as a bzImage without an EFI stub): the configured one, checked against the kernel, or
    /// with `auto` the first that fits of multiboot2 (a multiboot2 header), multiboot1 (a
    /// multiboot1 header), the Limine protocol (any other ELF64), Linux (a bzImage: `HdrS` at
    /// byte 0x202) and a UEFI application. A kernel with both a multiboot header and Limine
    /// requests needs `protocol = "limine"`. `key` names the config key in errors.
    pub fn resolve(
        kernel: Option<&Kernel>,
        path: &Path,
        choice: ProtocolChoice,
        key: &str,
        arch: Arch,
    ) -> Result<Protocol, Error> {
        let elf_bits = kernel.and_then(|k| match k.format {
            KernelFormat::Elf { bits } => Some(bits),
            _ => None,
        });
        let efi_app = kernel.is_some_and(Kernel::is_efi_app);
        let has = |f: fn(&Kernel) -> bool| kernel.is_some_and(f);
        if let Some(protocol) = choice.protocol() {
            let (fits, lacks) = match protocol {
                Protocol::Limine => (
                    elf_bits == Some(64),
                    "is not an ELF64 executable, which the Limine protocol loads",
                ),
                Protocol::Multiboot1 => (has(|k| k.multiboot1), "has no multiboot1 header"),
                Protocol::Multiboot2 => (has(|k| k.multiboot2), "has no multiboot2 header"),
                Protocol::Linux => (
                    arch != Arch::X86_64 || Kernel::is_bzimage(path),
                    "is not a Linux bzImage (no \"HdrS\" setup header)",
                ),
                Protocol::EfiChainload => (efi_app, "is not a UEFI application"),
            };
            if !fits {
                return Err(Error::kernel(
                    path,
                    format!("{lacks}, but `{key}` asks for {}", protocol.name()),
                ));
            }
            return Ok(protocol);
        }
        if has(|k| k.multiboot2) {
            Ok(Protocol::Multiboot2)
        } else if has(|k| k.multiboot1) {
            Ok(Protocol::Multiboot1)
        } else if elf_bits == Some(64) {
            Ok(Protocol::Limine)
        } else if elf_bits.is_none() && Kernel::is_bzimage(path) {
            Ok(Protocol::Linux)
        } else if efi_app {
            Ok(Protocol::EfiChainload)
        } else {
            let what = match kernel {
                None => "is neither ELF nor PE, nor a Linux bzImage",
                Some(_) if elf_bits == Some(32) => {
                    "is a 32-bit ELF without a multiboot header (the Limine protocol loads ELF64 kernels)"
                }
                Some(_) => {
                    "is no ELF64 kernel, multiboot kernel, Linux bzImage or UEFI application"
                }
            };
            Err(Error::kernel(
                path,
                format!(
                    "{what}, so no boot protocol fits it; build it as an ELF64 kernel for the Limine protocol, add a multiboot2 header, or set `{key}`"
                ),
            ))
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `protocol` config value: `auto` or one protocol. These are all the spellings accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProtocolChoice {
    /// Picked from the kernel's headers (see [`Protocol::resolve`]).
    #[default]
    Auto,
    /// `limine`.
    Limine,
    /// `multiboot1` (or `multiboot`).
    #[serde(alias = "multiboot")]
    Multiboot1,
    /// `multiboot2`.
    Multiboot2,
    /// `linux`.
    Linux,
    /// `efi-chainload` (or `efi_chainload`, `efi`).
    #[serde(alias = "efi_chainload", alias = "efi")]
    EfiChainload,
}

impl ProtocolChoice {
    /// The protocol asked for; `None` for `auto`.
    pub fn protocol(self) -> Option<Protocol> {
        match self {
            ProtocolChoice::Auto => None,
            ProtocolChoice::Limine => Some(Protocol::Limine),
            ProtocolChoice::Multiboot1 => Some(Protocol::Multiboot1),
            ProtocolChoice::Multiboot2 => Some(Protocol::Multiboot2),
            ProtocolChoice::Linux => Some(Protocol::Linux),
            ProtocolChoice::EfiChainload => Some(Protocol::EfiChainload),
        }
    }
}

impl From<Protocol> for ProtocolChoice {
    fn from(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Limine => ProtocolChoice::Limine,
            Protocol::Multiboot1 => ProtocolChoice::Multiboot1,
            Protocol::Multiboot2 => ProtocolChoice::Multiboot2,
            Protocol::Linux => ProtocolChoice::Linux,
            Protocol::EfiChainload => ProtocolChoice::EfiChainload,
        }
    }
}
