//! File contents: each file's bytes go from its source straight to the clusters planned for
//! it (see `fill`), in large writes, by a thread of their own when the image is a file, while
//! the directories and FATs are written.
//!
//! A file whose digest is already known (see [`crate::digest`]) is copied kernel-side into an
//! image file and never read here; any other file is read once, and hashed on the way for the
//! derived volume id and the reuse stamp.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use image_runner_core::{Error, Source};

use super::tree;
use crate::copy::{self, Copier, CopyError, PARALLEL_DIGEST_MIN};
use crate::digest::{Digests, IdSeed, Streaming, of_bytes};

/// Bytes moved per read and write. Large enough that system calls cost little, small enough
/// to stay in the CPU cache between the read, the hash and the write.
const BUFFER_SIZE: usize = 256 * 1024;

/// Where one file's content goes: its bytes in order fill `extents` (offset, length) in order.
#[derive(Debug)]
pub(super) struct Placement<'p> {
    pub(super) file: &'p tree::File<'p>,
    pub(super) extents: Vec<(u64, u64)>,
}

/// Where file contents go.
pub(super) enum Sink<'s> {
    /// The image file itself, the volume starting at byte `base`: positional writes only (the
    /// file's position belongs to fatfs's handle), and kernel-side copies of content whose
    /// digest is known.
    File {
        file: &'s File,
        base: u64,
        copier: Copier,
    },
    /// Any other storage, through its position.
    Stream(&'s mut dyn WriteSeek),
}

/// Storage written through its position.
pub(super) trait WriteSeek: Write + Seek {}

impl<T: Write + Seek> WriteSeek for T {}

impl Sink<'_> {
    /// A sink into `file`, whose volume starts at byte `base`.
    pub(super) fn file(file: &File, base: u64) -> Sink<'_> {
        Sink::File {
            file,
            base,
            copier: Copier::new(),
        }
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::File { file, base, .. } => copy::write_all_at(file, bytes, *base + offset),
            Sink::Stream(out) => {
                out.seek(SeekFrom::Start(offset))?;
                out.write_all(bytes)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File { .. } => Ok(()),
            Sink::Stream(out) => out.flush(),
        }
    }
}

/// Writes the content of every placement, in order, into `sink`. Returns the seed of the
/// derived volume id: each file's path, length and digest, in this order. Digests not known
/// yet are computed on the way and recorded in `digests`.
pub(super) fn copy_all<'p>(
    placements: impl IntoIterator<Item = Placement<'p>>,
    sink: &mut Sink<'_>,
    digests: &Digests,
) -> Result<IdSeed, Error> {
    let mut seed = IdSeed::new();
    let mut buffer = Vec::new();
    for placement in placements {
        let digest = copy(&placement, sink, digests, &mut buffer)?;
        let file = placement.file;
        seed.file(file.path.as_str(), file.len, digest);
    }
    sink.flush().map_err(|e| {
        Error::plugin_source(
            "fat",
            "could not write the file contents of the FAT image",
            e,
        )
    })?;
    Ok(seed)
}

/// Copies one file's content; returns its digest.
fn copy(
    placement: &Placement<'_>,
    sink: &mut Sink<'_>,
    digests: &Digests,
    buffer: &mut Vec<u8>,
) -> Result<u64, Error> {
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
    let changed = |read: String| {
        Error::plugin(
            "fat",
            format!(
                "the content for `{}` changed while the FAT image was written: it was {} bytes, \
                 then {read} bytes were read",
                file.path, file.len
            ),
        )
    };
    let copy_error = |e: CopyError| match (e, file.source) {
        (CopyError::Read(e), Source::File(path)) => Error::io("read", path, e),
        (CopyError::Read(e), _) => read_error(e),
        (CopyError::Write(e), _) => write_error(e),
        (CopyError::Either(e), Source::File(path)) => Error::plugin_source(
            "fat",
            format!(
                "could not copy `{}` into the FAT image as `{}`",
                path.display(),
                file.path
            ),
            e,
        ),
        (CopyError::Either(e), _) => write_error(e),
    };
    let path = match file.source {
        Source::File(path) => path,
        other => {
            let read;
            let bytes = match other {
                Source::Bytes(bytes) => bytes,
                other => {
                    read = other.read()?;
                    &read
                }
            };
            if bytes.len() as u64 != file.len {
                return Err(changed(bytes.len().to_string()));
            }
            let mut rest: &[u8] = bytes;
            for &(offset, len) in &placement.extents {
                // The extents add up to the content's length, checked above.
                let (piece, after) = rest.split_at(len as usize);
                sink.write_at(offset, piece).map_err(write_error)?;
                rest = after;
            }
            return Ok(of_bytes(bytes));
        }
    };
    let input = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let known = digests.get(path);
    // Large content not hashed yet, going into an image file: the kernel copies it while a
    // second thread reads it for the digest.
    if known.is_none()
        && file.len >= PARALLEL_DIGEST_MIN
        && let Sink::File {
            file: out,
            base,
            copier,
        } = &mut *sink
        && copier.kernel_side()
    {
        let extents: Vec<(u64, u64)> = placement
            .extents
            .iter()
            .map(|&(offset, len)| (*base + offset, len))
            .collect();
        let done = copier
            .copy_with_digest(&input, file.len, out, &extents)
            .map_err(copy_error)?;
        let now = input.metadata().map_err(read_error)?.len();
        return match done.digest {
            Some(digest) if done.copied == file.len && now == file.len && !done.changed => {
                digests.insert(path, digest);
                Ok(digest)
            }
            _ if now > file.len => Err(changed("more".into())),
            _ if now < file.len || done.copied < file.len => {
                Err(changed(done.copied.min(now).to_string()))
            }
            _ => Err(Error::plugin(
                "fat",
                format!(
                    "`{}` (for `{}`) was modified while the FAT image was written; build again",
                    path.display(),
                    file.path
                ),
            )),
        };
    }
    let mut state = match known {
        Some(digest) => Digest::Known(digest),
        None => Digest::Hashing(Streaming::new(file.len)),
    };
    let mut copied = 0u64;
    for &(offset, len) in &placement.extents {
        let got = match (&mut state, &mut *sink) {
            // Content whose digest is known is never read here.
            (
                Digest::Known(_),
                Sink::File {
                    file: out,
                    base,
                    copier,
                },
            ) => copier
                .copy(&input, copied, out, *base + offset, len)
                .map_err(CopyError::Either),
            (Digest::Known(_), sink) => stream(&input, copied, sink, offset, len, None, buffer),
            (Digest::Hashing(digest), sink) => {
                stream(&input, copied, sink, offset, len, Some(digest), buffer)
            }
        }
        .map_err(copy_error)?;
        copied += got;
        if got < len {
            return Err(changed(copied.to_string()));
        }
    }
    // The clusters were allocated for the length seen earlier; more content would not fit.
    let now = input.metadata().map_err(read_error)?.len();
    if now != file.len {
        return Err(changed(if now > file.len {
            "more".into()
        } else {
            now.to_string()
        }));
    }
    Ok(match state {
        Digest::Known(digest) => digest,
        Digest::Hashing(streamed) => {
            let digest = streamed.finish();
            digests.insert(path, digest);
            digest
        }
    })
}

/// A file's digest during its copy.
enum Digest {
    Known(u64),
    Hashing(Streaming),
}

/// Reads `len` bytes of `input` from `from`, adds them to `digest` and writes them at `offset`
/// of the sink. Returns the bytes copied: fewer than `len` only if the input ended.
fn stream(
    input: &File,
    from: u64,
    sink: &mut Sink<'_>,
    offset: u64,
    len: u64,
    mut digest: Option<&mut Streaming>,
    buffer: &mut Vec<u8>,
) -> Result<u64, CopyError> {
    if buffer.is_empty() {
        buffer.resize(BUFFER_SIZE, 0);
    }
    let mut done = 0u64;
    while done < len {
        // At most BUFFER_SIZE, so the cast cannot truncate.
        let want = (len - done).min(buffer.len() as u64) as usize;
        let got = read_full(input, &mut buffer[..want], from + done).map_err(CopyError::Read)?;
        if let Some(digest) = digest.as_deref_mut() {
            digest.update(&buffer[..got]);
        }
        sink.write_at(offset + done, &buffer[..got])
            .map_err(CopyError::Write)?;
        done += got as u64;
        if got < want {
            break;
        }
    }
    Ok(done)
}

/// Fills `buf` from `offset` unless the input ends first; returns the bytes read.
fn read_full(input: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match copy::read_at(input, &mut buf[filled..], offset + filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_runner_core::ImagePath;
    use std::io::Cursor;

    /// Copies one file into a fresh 1 MiB file through a file sink and into a buffer through a
    /// stream sink; checks both hold the same bytes (and give the same seed) and returns them.
    fn copy_both_ways(file: &tree::File<'_>, extents: &[(u64, u64)], digests: &Digests) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        let out = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&image)
            .unwrap();
        out.set_len(1 << 20).unwrap();
        let base = 4096;
        let placement = || Placement {
            file,
            extents: extents.to_vec(),
        };
        let by_file = copy_all([placement()], &mut Sink::file(&out, base), digests).unwrap();
        let mut cursor = Cursor::new(vec![0u8; (1 << 20) - base as usize]);
        let by_stream = copy_all([placement()], &mut Sink::Stream(&mut cursor), digests).unwrap();
        assert_eq!(by_file.finish64(), by_stream.finish64());
        let written = std::fs::read(&image).unwrap();
        assert!(written[..base as usize].iter().all(|&b| b == 0));
        assert!(written[base as usize..] == cursor.into_inner()[..]);
        written[base as usize..].to_vec()
    }

    #[test]
    fn content_fills_its_extents_in_order() {
        let path = ImagePath::new("boot/kernel").unwrap();
        let bytes: Vec<u8> = (0..BUFFER_SIZE as u32 + 1000).map(|i| i as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("kernel");
        std::fs::write(&host, &bytes).unwrap();
        // The first extent is larger than the buffer, the second lies before it.
        let first = BUFFER_SIZE as u64 + 600;
        let extents = [(8192, first), (100, 400)];
        let check = |out: &[u8]| {
            assert_eq!(out[8192..8192 + first as usize], bytes[..first as usize]);
            assert_eq!(out[100..500], bytes[first as usize..]);
            assert!(out[..100].iter().chain(&out[500..8192]).all(|&b| b == 0));
        };
        for source in [Source::Bytes(bytes.clone()), Source::File(host.clone())] {
            let file = tree::File {
                path: &path,
                source: &source,
                len: bytes.len() as u64,
            };
            // Digest unknown (read and hashed), then known (copied kernel-side for a file).
            let digests = Digests::new();
            check(&copy_both_ways(&file, &extents, &digests));
            assert_eq!(digests.known(&source), Some(of_bytes(&bytes)));
            check(&copy_both_ways(&file, &extents, &digests));
        }
    }

    #[test]
    fn large_files_are_hashed_beside_the_kernel_side_copy() {
        let path = ImagePath::new("boot/kernel").unwrap();
        let len = 3 * PARALLEL_DIGEST_MIN as usize + 5;
        let bytes: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(7) >> 3) as u8)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("kernel");
        std::fs::write(&host, &bytes).unwrap();
        let image_path = dir.path().join("image");
        let image = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&image_path)
            .unwrap();
        image.set_len(8 << 20).unwrap();
        let source = Source::File(host.clone());
        let file = tree::File {
            path: &path,
            source: &source,
            len: len as u64,
        };
        let first = PARALLEL_DIGEST_MIN + 3;
        let placement = Placement {
            file: &file,
            extents: vec![(4 << 20, first), (4096, len as u64 - first)],
        };
        let digests = Digests::new();
        let seed = copy_all([placement], &mut Sink::file(&image, 0), &digests).unwrap();
        assert_eq!(digests.get(&host), Some(of_bytes(&bytes)));
        let mut expected = IdSeed::new();
        expected.file("boot/kernel", len as u64, of_bytes(&bytes));
        assert_eq!(seed.finish64(), expected.finish64());
        let written = std::fs::read(&image_path).unwrap();
        assert!(written[4 << 20..(4 << 20) + first as usize] == bytes[..first as usize]);
        assert!(written[4096..4096 + len - first as usize] == bytes[first as usize..]);

        // Shorter now than when the clusters were planned.
        std::fs::write(&host, &bytes[..len - 10]).unwrap();
        let placement = Placement {
            file: &file,
            extents: vec![(0, len as u64)],
        };
        let err = copy_all([placement], &mut Sink::file(&image, 0), &Digests::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("then {} bytes were read", len - 10)),
            "{err}"
        );
    }

    #[test]
    fn content_that_changed_length_is_an_error() {
        let path = ImagePath::new("grown").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let image = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("image"))
            .unwrap();
        image.set_len(64).unwrap();
        for (now, then) in [(10usize, 8u64), (6, 8)] {
            let host = dir.path().join("source");
            std::fs::write(&host, vec![1; now]).unwrap();
            let as_file = if now > then as usize {
                "more".to_owned()
            } else {
                now.to_string()
            };
            // Bytes; a file read and hashed; a file with a known digest, copied kernel-side.
            let known = Digests::new();
            known.insert(&host, 0);
            let cases = [
                (Source::Bytes(vec![1; now]), Digests::new(), now.to_string()),
                (Source::File(host.clone()), Digests::new(), as_file.clone()),
                (Source::File(host.clone()), known, as_file),
            ];
            for (source, digests, read) in cases {
                let file = tree::File {
                    path: &path,
                    source: &source,
                    len: then,
                };
                let placement = Placement {
                    file: &file,
                    extents: vec![(0, then)],
                };
                let err = copy_all([placement], &mut Sink::file(&image, 0), &digests)
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains("/grown") && err.contains(&format!("then {read} bytes were read")),
                    "{source:?}: {err}"
                );
            }
        }
    }
}
