//! Disk-layout primitives shared by the image writers and the bootloader installers: GUIDs, GPT
//! and MBR encoding and decoding (all counting in 512-byte sectors), and the content hash that
//! reproducible IDs and cache keys are derived from.
//!
//! Plugins may depend on this crate but not on each other, so whatever both writes and later
//! reads or patches these tables (the image formats, GRUB's and Limine's BIOS installers) takes
//! its layout from here. It has nothing to do with the plugin API (`image-runner-core`).

pub mod content_hash;
pub mod gpt;
pub mod guid;
pub mod mbr;

/// CRC-32/ISO-HDLC, as GPT uses it.
pub use crc32fast::hash as crc32;
pub use gpt::GptError;
pub use guid::{Guid, GuidParseError, GuidSeed};
pub use mbr::{Mbr, MbrError};

/// Sector size the tables count in: 512 bytes, what QEMU's disks, BIOS and UEFI firmware and
/// ISO hybrid readers all use. 4 KiB-sector disks are not produced here.
pub const SECTOR: u64 = 512;
