//! Partition-table primitives shared by the image writers and the bootloader installers: CRC-32,
//! GUIDs, and GPT and MBR encoding and decoding, all counting in 512-byte sectors.
//!
//! Plugins may depend on this crate but not on each other, so whatever both writes and later
//! reads or patches these tables (plugin-image, the BIOS installers) takes its layout from here.

mod crc;
pub mod gpt;
pub mod guid;
pub mod mbr;

pub use crc::crc32;
pub use gpt::GptError;
pub use guid::{Guid, GuidParseError, GuidSeed};
pub use mbr::{Mbr, MbrError};

/// Sector size the tables count in: 512 bytes, what QEMU's disks, BIOS and UEFI firmware and
/// ISO hybrid readers all use. 4 KiB-sector disks are not produced here.
pub const SECTOR: u64 = 512;
