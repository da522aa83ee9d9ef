//! File contents: fatfs allocates each file's clusters and writes its directory entry and FAT
//! chain, but the bytes themselves go straight from the source to the image in large writes.
//!
//! Through fatfs, content moves one cluster per call, each call a seek plus a write into the
//! block cache, which later writes the block out again: for a 64 MiB kernel on 4 KiB clusters,
//! 16,000 calls and an extra copy of every byte. Instead, while fatfs writes a file, [`Capture`]
//! turns its writes to the data region into a record of where they would have gone (the file's
//! extents) and drops them, so fatfs can be fed any bytes (zeros) and still does all the
//! allocation and bookkeeping. fatfs never reads file content back while it writes, so nothing
//! notices. [`copy_all`] then fills the recorded [`Placement`]s from the sources, hashing the
//! content on the way for the derived volume id.
//!
//! The copy runs after fatfs is done, through the same storage, or concurrently, through a
//! second handle to the image file. fatfs's directory work is quadratic in the entries of a
//! directory (every new entry scans all earlier ones, a dozen small reads per entry): 200 files
//! in one directory cost about 20 ms, close to the 30 ms of copying a 64 MiB kernel, and
//! overlapping the two took that build from about 56 ms to about 40 ms. The block cache writes
//! back only the sectors written through it, and file contents never are, so the cache and the
//! copy never overwrite each other's bytes.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Seek, SeekFrom, Write};

use image_runner_core::{Error, Source};
use image_runner_disk_layout::content_hash::Hasher as ContentHash;

use super::tree;

/// Bytes moved per read and write. Large enough that system calls cost little, small enough
/// to stay in the CPU cache between the read, the hash and the write.
const BUFFER_SIZE: usize = 256 * 1024;

/// Where one file's content goes: its bytes in order fill `extents` (offset, length) in order.
#[derive(Debug)]
pub(super) struct Placement<'p> {
    pub(super) file: &'p tree::File<'p>,
    pub(super) extents: Vec<(u64, u64)>,
}

/// Records, instead of performing, fatfs's writes of file content. Shared between the
/// [`Capturing`] storage fatfs owns and the code driving fatfs.
#[derive(Debug)]
pub(super) struct Capture {
    /// Where the data region (the clusters) begins; everything before it is boot sector,
    /// FATs and the FAT12/FAT16 root directory, always written for real.
    data_start: u64,
    active: Cell<bool>,
    extents: RefCell<Vec<(u64, u64)>>,
}

impl Capture {
    pub(super) fn new(data_start: u64) -> Self {
        Self {
            data_start,
            active: Cell::new(false),
            extents: RefCell::new(Vec::new()),
        }
    }

    /// Starts recording: until [`Capture::end`], writes to the data region are file content.
    pub(super) fn begin(&self) {
        self.extents.borrow_mut().clear();
        self.active.set(true);
    }

    /// Stops recording and returns where the content would have been written, adjacent
    /// writes merged.
    pub(super) fn end(&self) -> Vec<(u64, u64)> {
        self.active.set(false);
        self.extents.take()
    }

    /// Whether a write of `len` bytes at `offset` is content to record; records it if so.
    fn record(&self, offset: u64, len: usize) -> bool {
        if !self.active.get() || offset < self.data_start {
            return false;
        }
        let len = len as u64;
        let mut extents = self.extents.borrow_mut();
        match extents.last_mut() {
            Some((start, run)) if *start + *run == offset => *run += len,
            _ => extents.push((offset, len)),
        }
        true
    }
}

/// The storage as fatfs sees it: `inner`, except that content writes are only recorded.
pub(super) struct Capturing<'c, T> {
    inner: T,
    capture: &'c Capture,
    pos: u64,
}

impl<'c, T> Capturing<'c, T> {
    pub(super) fn new(inner: T, capture: &'c Capture) -> Self {
        Self {
            inner,
            capture,
            pos: 0,
        }
    }
}

impl<T: Read> Read for Capturing<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<T: Write + Seek> Write for Capturing<'_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() && self.capture.record(self.pos, buf.len()) {
            // Keep the position where a real write would have left it.
            self.pos = self
                .inner
                .seek(SeekFrom::Start(self.pos + buf.len() as u64))?;
            return Ok(buf.len());
        }
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Seek> Seek for Capturing<'_, T> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(pos)?;
        Ok(self.pos)
    }
}

/// Writes the content of every placement, in order, into `out`; returns the content hash for
/// the volume id if `hash` (over each file's path, content and length, in this order).
pub(super) fn copy_all<'p, W: Write + Seek>(
    placements: impl IntoIterator<Item = Placement<'p>>,
    out: &mut W,
    hash: bool,
) -> Result<Option<u32>, Error> {
    let mut hash = hash.then(ContentHash::new);
    let mut buffer = vec![0u8; BUFFER_SIZE];
    for placement in placements {
        copy(&placement, out, hash.as_mut(), &mut buffer)?;
    }
    Ok(hash.map(|h| h.finish32()))
}

fn copy<W: Write + Seek>(
    placement: &Placement<'_>,
    out: &mut W,
    mut hash: Option<&mut ContentHash>,
    buffer: &mut [u8],
) -> Result<(), Error> {
    let file = placement.file;
    let write_error = |e: io::Error| {
        Error::plugin_source(
            "fat",
            format!("could not write `{}` into the FAT image", file.path),
            e,
        )
    };
    let read_error = |e: io::Error| match file.source {
        Source::File(path) => Error::io("read", path, e),
        _ => Error::plugin_source(
            "fat",
            format!("could not read the content for `{}`", file.path),
            e,
        ),
    };
    let changed = |read: u64| {
        Error::plugin(
            "fat",
            format!(
                "the content for `{}` changed while the FAT image was written: it was {} bytes, \
                 then {read} bytes were read",
                file.path, file.len
            ),
        )
    };
    if let Some(hash) = hash.as_deref_mut() {
        hash.update(file.path.as_str().as_bytes());
        hash.update(&[0]);
    }
    // A plain file rather than `Source::open`'s buffered reader: reads here are large already.
    let mut input: Box<dyn Read + '_> = match file.source {
        Source::File(path) => {
            Box::new(std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?)
        }
        other => other.open()?,
    };
    let mut copied = 0u64;
    for &(offset, len) in &placement.extents {
        out.seek(SeekFrom::Start(offset)).map_err(write_error)?;
        let mut left = len;
        while left > 0 {
            // At most BUFFER_SIZE, so the cast cannot truncate.
            let want = left.min(buffer.len() as u64) as usize;
            let got = read_full(&mut input, &mut buffer[..want]).map_err(read_error)?;
            if let Some(hash) = hash.as_deref_mut() {
                hash.update(&buffer[..got]);
            }
            out.write_all(&buffer[..got]).map_err(write_error)?;
            copied += got as u64;
            left -= got as u64;
            if got < want {
                return Err(changed(copied));
            }
        }
    }
    // The clusters were allocated for the length seen earlier; more content would not fit.
    if copied != file.len {
        return Err(changed(copied));
    }
    let more = io::copy(&mut input, &mut io::sink()).map_err(read_error)?;
    if more > 0 {
        return Err(changed(copied + more));
    }
    if let Some(hash) = hash {
        hash.update(&copied.to_le_bytes());
    }
    Ok(())
}

/// Fills `buf` unless the input ends first; returns the bytes read.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_runner_core::ImagePath;
    use std::io::Cursor;

    #[test]
    fn content_fills_its_extents_in_order() {
        let path = ImagePath::new("boot/kernel").unwrap();
        let bytes: Vec<u8> = (0..BUFFER_SIZE as u32 + 1000).map(|i| i as u8).collect();
        let source = Source::Bytes(bytes.clone());
        let file = tree::File {
            path: &path,
            source: &source,
            len: bytes.len() as u64,
        };
        // The first extent is larger than the buffer, the second lies before it.
        let first = BUFFER_SIZE as u64 + 600;
        let placement = Placement {
            file: &file,
            extents: vec![(1000, first), (100, 400)],
        };
        let mut out = Cursor::new(vec![0u8; BUFFER_SIZE + 4096]);
        let hash = copy_all([placement], &mut out, true).unwrap();
        let out = out.into_inner();
        assert_eq!(out[1000..1000 + first as usize], bytes[..first as usize]);
        assert_eq!(out[100..500], bytes[first as usize..]);
        assert!(out[..100].iter().chain(&out[500..1000]).all(|&b| b == 0));
        let placement = Placement {
            file: &file,
            extents: vec![(1000, first), (100, 400)],
        };
        let mut again = Cursor::new(vec![0u8; BUFFER_SIZE + 4096]);
        assert_eq!(copy_all([placement], &mut again, true).unwrap(), hash);
        assert!(hash.is_some());
    }

    #[test]
    fn content_that_changed_length_is_an_error() {
        let path = ImagePath::new("grown").unwrap();
        for (now, then) in [(10usize, 8u64), (6, 8)] {
            let source = Source::Bytes(vec![1; now]);
            let file = tree::File {
                path: &path,
                source: &source,
                len: then,
            };
            let placement = Placement {
                file: &file,
                extents: vec![(0, then)],
            };
            let err = copy_all([placement], &mut Cursor::new(vec![0u8; 16]), false)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("/grown") && err.contains(&format!("then {now} bytes were read")),
                "{err}"
            );
        }
    }

    #[test]
    fn only_content_writes_in_the_data_region_are_recorded() {
        let capture = Capture::new(1024);
        let mut disk = Capturing::new(Cursor::new(vec![0u8; 4096]), &capture);
        capture.begin();
        // Metadata (a FAT entry) while recording: written.
        disk.seek(SeekFrom::Start(600)).unwrap();
        disk.write_all(&[7; 4]).unwrap();
        // Content: recorded, adjacent pieces merged, not written.
        disk.seek(SeekFrom::Start(2048)).unwrap();
        disk.write_all(&[1; 512]).unwrap();
        disk.write_all(&[1; 512]).unwrap();
        assert_eq!(disk.stream_position().unwrap(), 3072);
        disk.seek(SeekFrom::Start(1024)).unwrap();
        disk.write_all(&[1; 512]).unwrap();
        assert_eq!(capture.end(), vec![(2048, 1024), (1024, 512)]);
        // Not recording: written.
        disk.seek(SeekFrom::Start(3072)).unwrap();
        disk.write_all(&[2; 8]).unwrap();
        let bytes = disk.inner.into_inner();
        assert_eq!(bytes[600..604], [7; 4]);
        assert!(bytes[1024..3072].iter().all(|&b| b == 0));
        assert_eq!(bytes[3072..3080], [2; 8]);
    }
}
