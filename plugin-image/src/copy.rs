//! Copying a file's bytes into an image file at a given offset without passing them through
//! this process where the kernel can do it: a reflink (`FICLONERANGE`: the image shares the
//! source's blocks, on btrfs, XFS and other file systems with shared extents) for the
//! block-aligned part, `copy_file_range` for the rest (one in-kernel copy instead of a read
//! plus a write; it reflinks too where it can), and plain positional reads and writes where
//! neither is available. Each way that fails is not tried again by the same [`Copier`].
//!
//! Only for content whose digest is already known (see [`crate::digest`]): content that has
//! to be hashed is read anyway, and is written from the buffer it was read into.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use image_runner_core::Error;

/// Copies with the best method that has worked so far.
#[derive(Debug)]
pub(crate) struct Copier {
    clone: bool,
    copy_range: bool,
    buffer: Vec<u8>,
}

/// Buffer for the read/write fallback.
const BUFFER_SIZE: usize = 256 * 1024;

impl Default for Copier {
    fn default() -> Self {
        Self::new()
    }
}

impl Copier {
    pub(crate) fn new() -> Self {
        Copier {
            clone: cfg!(target_os = "linux"),
            copy_range: cfg!(target_os = "linux"),
            buffer: Vec::new(),
        }
    }

    /// A copier that only reads and writes (for tests of the fallback).
    #[cfg(test)]
    fn plain() -> Self {
        Copier {
            clone: false,
            copy_range: false,
            buffer: Vec::new(),
        }
    }

    /// Copies `len` bytes of `from`, starting at `from_offset`, into `to` at `to_offset`.
    /// Returns the bytes copied: fewer than `len` only if `from` ends first.
    pub(crate) fn copy(
        &mut self,
        from: &File,
        from_offset: u64,
        to: &File,
        to_offset: u64,
        len: u64,
    ) -> io::Result<u64> {
        let mut done = 0;
        #[cfg(target_os = "linux")]
        {
            if self.clone {
                match linux::clone_aligned(from, from_offset, to, to_offset, len) {
                    Ok(cloned) => done = cloned,
                    Err(_) => self.clone = false,
                }
            }
            if self.copy_range && done < len {
                match linux::copy_range(from, from_offset + done, to, to_offset + done, len - done)
                {
                    Ok((copied, ended)) => {
                        done += copied;
                        if ended {
                            return Ok(done);
                        }
                    }
                    Err((copied, e)) => {
                        done += copied;
                        if !linux::unsupported(&e) {
                            return Err(e);
                        }
                        self.copy_range = false;
                    }
                }
            }
        }
        while done < len {
            if self.buffer.is_empty() {
                self.buffer = vec![0; BUFFER_SIZE];
            }
            let want = (len - done).min(self.buffer.len() as u64) as usize;
            let got = read_at(from, &mut self.buffer[..want], from_offset + done)?;
            if got == 0 {
                break;
            }
            write_all_at(to, &self.buffer[..got], to_offset + done)?;
            done += got as u64;
        }
        Ok(done)
    }
}

/// Files at least this long are hashed by a second thread while they are copied kernel-side;
/// shorter ones are read, hashed and written in one go.
pub(crate) const PARALLEL_DIGEST_MIN: u64 = 1 << 20;

/// What [`Copier::copy_with_digest`] did.
#[derive(Debug)]
pub(crate) struct Digested {
    /// Bytes copied: fewer than asked only if the source ended first.
    pub(crate) copied: u64,
    /// The digest of the source's first `len` bytes, if it had that many.
    pub(crate) digest: Option<u64>,
    /// The source's length or modification time changed meanwhile: the copy and the digest
    /// may not agree.
    pub(crate) changed: bool,
}

/// Which side of a copy an error came from.
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
    /// From a kernel-side copy, which does not say.
    Either(io::Error),
}

impl Copier {
    /// Whether copies happen inside the kernel, so that reading the content to hash it is work
    /// that can run beside the copy instead of being part of it.
    pub(crate) fn kernel_side(&self) -> bool {
        self.clone || self.copy_range
    }

    /// Copies the first `len` bytes of `from` into `to`, filling `extents` (offset, length) in
    /// order, while a second thread reads `from` and computes its digest (see
    /// [`crate::digest::Streaming`]). The kernel copies; this process reads each byte once, for
    /// the digest, and both run at the same time.
    pub(crate) fn copy_with_digest(
        &mut self,
        from: &File,
        len: u64,
        to: &File,
        extents: &[(u64, u64)],
    ) -> Result<Digested, CopyError> {
        let identity = |file: &File| {
            file.metadata()
                .map(|m| (m.len(), m.modified().ok()))
                .map_err(CopyError::Read)
        };
        let before = identity(from)?;
        let (copied, digest) = std::thread::scope(|scope| {
            let hasher = std::thread::Builder::new()
                .name("digest".into())
                .spawn_scoped(scope, move || digest_of(from, len))
                .map_err(CopyError::Read)?;
            let mut copied = 0u64;
            let mut result = Ok(());
            for &(offset, piece) in extents {
                match self.copy(from, copied, to, offset, piece) {
                    Ok(got) => {
                        copied += got;
                        if got < piece {
                            break;
                        }
                    }
                    Err(e) => {
                        result = Err(CopyError::Either(e));
                        break;
                    }
                }
            }
            let digest = hasher
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                .map_err(CopyError::Read)?;
            result.map(|()| (copied, digest))
        })?;
        let changed = identity(from)? != before;
        Ok(Digested {
            copied,
            digest,
            changed,
        })
    }
}

/// The digest of the first `len` bytes of `file`, or `None` if it is shorter.
fn digest_of(file: &File, len: u64) -> io::Result<Option<u64>> {
    let mut digest = crate::digest::Streaming::new(len);
    let mut buffer = vec![0u8; BUFFER_SIZE.max(1 << 20)];
    let mut done = 0u64;
    while done < len {
        // At most the buffer's length, so the cast cannot truncate.
        let want = (len - done).min(buffer.len() as u64) as usize;
        let got = read_at(file, &mut buffer[..want], done)?;
        if got == 0 {
            return Ok(None);
        }
        digest.update(&buffer[..got]);
        done += got as u64;
    }
    Ok(Some(digest.finish()))
}

/// Creates the image file at `out`, or empties it, and makes it `size` zero bytes long
/// (sparse), open for reading and writing.
pub(crate) fn create_zeroed(out: &Path, size: u64) -> Result<File, Error> {
    // Read access too: writers read back what they wrote (the FAT writer its boot sector).
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(out)
        .map_err(|e| Error::io("create", out, e))?;
    // Emptied down to one byte, which is then zeroed, rather than to nothing: ext4 takes a
    // truncation to zero as a file's content being replaced and, when the file is closed, makes
    // the new content reach the disk first (its `auto_da_alloc` heuristic): 25 to 50 ms for a
    // 64 MiB image, even for a file created empty a moment before.
    file.set_len(1)
        .and_then(|()| file.write_all(&[0]))
        .and_then(|()| file.set_len(size))
        .map_err(|e| Error::io("set the size of", out, e))?;
    Ok(file)
}

/// Reads at `offset` (retrying interruptions); 0 only at the end of the file.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        #[cfg(unix)]
        let result = std::os::unix::fs::FileExt::read_at(file, buf, offset);
        #[cfg(windows)]
        let result = std::os::windows::fs::FileExt::seek_read(file, buf, offset);
        match result {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Writes all of `buf` at `offset`, without moving any file position (other handles to the
/// same file may be in use on other threads).
#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

/// Writes all of `buf` at `offset` (Windows has no `write_all_at`).
#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    /// Whether `e` says the method is not available here (rather than that the copy failed).
    pub(super) fn unsupported(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(
                libc::EXDEV
                    | libc::ENOSYS
                    | libc::EOPNOTSUPP
                    | libc::EINVAL
                    | libc::ENOTTY
                    | libc::EBADF
                    | libc::EPERM
                    | libc::ETXTBSY
            )
        )
    }

    /// Reflinks the largest block-aligned part of the range that starts the range; returns its
    /// length (0 when nothing is aligned). An error means reflinks do not work here.
    pub(super) fn clone_aligned(
        from: &File,
        from_offset: u64,
        to: &File,
        to_offset: u64,
        len: u64,
    ) -> io::Result<u64> {
        // The destination's block size: reflinks move whole blocks.
        let block = to.metadata()?.blksize().max(512);
        let aligned = len / block * block;
        if aligned == 0 || !from_offset.is_multiple_of(block) || !to_offset.is_multiple_of(block) {
            return Ok(0);
        }
        let range = libc::file_clone_range {
            src_fd: i64::from(from.as_raw_fd()),
            src_offset: from_offset,
            src_length: aligned,
            dest_offset: to_offset,
        };
        // SAFETY: both descriptors are open for the duration of the call, and `range` is a
        // valid `file_clone_range` that the kernel only reads.
        let result = unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONERANGE, &range) };
        if result == 0 {
            Ok(aligned)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `copy_file_range` until `len` bytes are copied or the source ends. Returns the bytes
    /// copied and whether the source ended; on an error, the bytes copied before it.
    pub(super) fn copy_range(
        from: &File,
        from_offset: u64,
        to: &File,
        to_offset: u64,
        len: u64,
    ) -> Result<(u64, bool), (u64, io::Error)> {
        let mut done = 0u64;
        let too_far = |done| (done, io::Error::from_raw_os_error(libc::EINVAL));
        while done < len {
            let (Ok(mut off_in), Ok(mut off_out)) = (
                libc::loff_t::try_from(from_offset + done),
                libc::loff_t::try_from(to_offset + done),
            ) else {
                return Err(too_far(done));
            };
            // At most 1 GiB a call, so the cast cannot truncate.
            let chunk = (len - done).min(1 << 30) as usize;
            // SAFETY: both descriptors are open for the duration of the call; the offsets are
            // valid `loff_t`s the kernel updates.
            let n = unsafe {
                libc::copy_file_range(
                    from.as_raw_fd(),
                    &mut off_in,
                    to.as_raw_fd(),
                    &mut off_out,
                    chunk,
                    0,
                )
            };
            match n {
                0 => return Ok((done, true)),
                n if n > 0 => done += n as u64,
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err((done, e));
                    }
                }
            }
        }
        Ok((done, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn every_method_copies_ranges_and_stops_at_the_end_of_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let source_path = dir.path().join("source");
        let content = pattern(3 * 4096 + 1000, 5);
        std::fs::write(&source_path, &content).unwrap();
        for mut copier in [Copier::new(), Copier::plain()] {
            let source = File::open(&source_path).unwrap();
            let target_path = dir.path().join("target");
            let target = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&target_path)
                .unwrap();
            target.set_len(64 * 1024).unwrap();
            // Aligned start and whole blocks (a reflink where the file system has them), then
            // an unaligned piece, then one running past the end of the source.
            assert_eq!(copier.copy(&source, 0, &target, 8192, 8192).unwrap(), 8192);
            assert_eq!(
                copier.copy(&source, 100, &target, 30_001, 5000).unwrap(),
                5000
            );
            let tail = content.len() as u64 - 4096;
            assert_eq!(
                copier.copy(&source, 4096, &target, 40_000, 10_000).unwrap(),
                tail
            );
            let written = std::fs::read(&target_path).unwrap();
            assert_eq!(written[8192..16384], content[..8192]);
            assert_eq!(written[30_001..35_001], content[100..5100]);
            assert_eq!(written[40_000..40_000 + tail as usize], content[4096..]);
            assert!(written[..8192].iter().all(|&b| b == 0));
            assert!(written[16384..30_001].iter().all(|&b| b == 0));
            assert!(written[40_000 + tail as usize..].iter().all(|&b| b == 0));
        }
    }
}
