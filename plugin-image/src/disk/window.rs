//! A byte range of a disk image file seen as a whole device, so the FAT writer can format a
//! partition in place without a temporary file or a copy.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// `len` bytes of `file` starting at byte `start`; positions are relative to `start`.
#[derive(Debug)]
pub(super) struct Window<'f> {
    file: &'f File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'f> Window<'f> {
    pub(super) fn new(file: &'f File, start: u64, len: u64) -> Self {
        Window {
            file,
            start,
            len,
            pos: 0,
        }
    }

    /// How many of `wanted` bytes lie inside the window from the current position; places the
    /// file's cursor there.
    fn prepare(&mut self, wanted: usize) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left).map_or(wanted, |left| left.min(wanted));
        if n > 0 {
            let mut file = self.file;
            file.seek(SeekFrom::Start(self.start + self.pos))?;
        }
        Ok(n)
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.prepare(buf.len())?;
        if n == 0 {
            return Ok(0);
        }
        let mut file = self.file;
        let read = file.read(&mut buf[..n])?;
        self.pos += read as u64;
        Ok(read)
    }
}

impl Write for Window<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.prepare(buf.len())?;
        if n == 0 && !buf.is_empty() {
            // Writing past the partition would overwrite its neighbour or the backup GPT.
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "write past the end of the partition ({} bytes at byte {})",
                    self.len, self.start
                ),
            ));
        }
        let mut file = self.file;
        let written = file.write(&buf[..n])?;
        self.pos += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut file = self.file;
        file.flush()
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the partition",
            )
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_stay_inside_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, [0u8; 32]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut window = Window::new(&file, 8, 16);
        window.write_all(b"0123456789").unwrap();
        assert_eq!(window.seek(SeekFrom::End(-2)).unwrap(), 14);
        assert!(window.write_all(b"abcd").is_err());
        window.seek(SeekFrom::Start(2)).unwrap();
        let mut buf = [0u8; 4];
        window.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"2345");
        window.seek(SeekFrom::Start(16)).unwrap();
        assert_eq!(window.read(&mut buf).unwrap(), 0);
        assert!(window.seek(SeekFrom::Current(-17)).is_err());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], &[0; 8]);
        assert_eq!(&bytes[8..18], b"0123456789");
        assert_eq!(
            &bytes[22..24],
            b"ab",
            "the part inside the window is written"
        );
        assert_eq!(&bytes[24..], &[0; 8]);
    }
}
