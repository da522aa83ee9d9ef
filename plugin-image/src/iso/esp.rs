//! The EFI system partition image the UEFI boot entry and the GPT point at when the bootloader
//! gave no ready one: the staged `EFI/` tree as a FAT volume, formatted straight into its place
//! in the ISO file. It has no directory entry (the `EFI/` files are in the ISO tree anyway).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use image_runner_core::{Error, Staging};

use crate::digest::Digests;
use crate::fat;

/// The staged files under `EFI/` (any case, as UEFI's FAT lookups ignore it), or `None`.
pub(super) fn staging(staging: &Staging) -> Result<Option<Staging>, Error> {
    let mut esp = Staging::new();
    for (path, source) in &staging.entries {
        let top = path.components().next().unwrap_or_default();
        if top.eq_ignore_ascii_case("EFI") && path.components().count() > 1 {
            esp.add(path.clone(), source.clone())?;
        }
    }
    Ok((!esp.entries.is_empty()).then_some(esp))
}

/// The size the FAT writer wants for the ESP.
pub(super) fn size(esp: &Staging) -> Result<u64, Error> {
    fat::required_size(esp, None)
}

/// Formats the ESP into `size` bytes of `file` at `offset`, which must be zeros.
pub(super) fn write(
    file: &File,
    offset: u64,
    size: u64,
    esp: &Staging,
    digests: &Arc<Digests>,
) -> Result<(), Error> {
    let window = Window {
        file,
        start: offset,
        len: size,
        pos: 0,
    };
    let opts = fat::FatOptions {
        digests: Arc::clone(digests),
        ..fat::FatOptions::default()
    };
    fat::format_region(window, file, offset, size, esp, &opts).map(|_| ())
}

/// A part of a file seen as a whole storage device: positions are relative to `start`, and
/// nothing outside `start..start + len` is touched.
#[derive(Debug)]
struct Window<'f> {
    file: &'f File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Window<'_> {
    fn room(&self, wanted: usize) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        if left == 0 && wanted > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "access beyond the end of the ESP image",
            ));
        }
        Ok(wanted.min(usize::try_from(left).unwrap_or(usize::MAX)))
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.room(buf.len())?;
        let mut file = self.file;
        file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = file.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Window<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.room(buf.len())?;
        let mut file = self.file;
        file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = file.write(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut file = self.file;
        file.flush()
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before the ESP image")
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_runner_core::Source;

    #[test]
    fn only_files_below_efi_go_into_the_esp() {
        let mut all = Staging::new();
        for path in [
            "EFI/BOOT/BOOTX64.EFI",
            "efi/limine.conf",
            "EFIX",
            "boot/kernel",
        ] {
            all.add_file(path, Source::Bytes(vec![1])).unwrap();
        }
        let esp = staging(&all).unwrap().unwrap();
        let paths: Vec<&str> = esp.entries.keys().map(|p| p.as_str()).collect();
        assert_eq!(paths, ["EFI/BOOT/BOOTX64.EFI", "efi/limine.conf"]);
        let mut none = Staging::new();
        none.add_file("boot/kernel", Source::Bytes(vec![1]))
            .unwrap();
        assert!(staging(&none).unwrap().is_none());
    }

    #[test]
    fn the_window_keeps_to_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut w = Window {
            file: &file,
            start: 10,
            len: 20,
            pos: 0,
        };
        assert_eq!(w.write(&[7u8; 30]).unwrap(), 20);
        assert!(w.write(&[7]).is_err());
        w.seek(SeekFrom::Start(18)).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(w.read(&mut buf).unwrap(), 2);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes[..10].iter().all(|&b| b == 0));
        assert!(bytes[10..30].iter().all(|&b| b == 7));
        assert!(bytes[30..].iter().all(|&b| b == 0));
    }
}
