//! A small write-back block cache between fatfs and the image storage.
//!
//! fatfs does every FAT update, directory-entry field and data chunk as its own seek plus a
//! read or write of 1 to 512 bytes: about a dozen I/O calls per cluster written, and a dozen
//! reads per directory entry each time it scans a directory. Kept here in a few 64 KiB blocks
//! (the FAT, both of its copies and the directories being filled stay hot), the same work
//! becomes memory copies plus a few large writes.
//!
//! Only the sectors written through the cache are written back, never whole blocks: file
//! contents bypass the cache (see `content`), possibly from another thread, and a block that
//! holds both a directory and the start of a file must not overwrite that file with the zeros
//! the cache read before the content arrived.
//!
//! fatfs flushes its storage after every file; [`Write::flush`] is therefore a no-op here, and
//! [`BlockCache::write_back_all`] writes everything back once at the end.

use std::io::{self, Read, Seek, SeekFrom, Write};

const BLOCK_SIZE: u64 = 64 * 1024;
const MAX_BLOCKS: usize = 16;
/// Granularity of dirty tracking: the smallest sector and cluster size, so that a tracked unit
/// never straddles metadata and file content.
const SECTOR: u64 = 512;

struct Block {
    index: u64,
    data: Box<[u8]>,
    /// Bit `i`: sector `i` of the block was written and not yet written back.
    dirty: u128,
    last_use: u64,
}

/// The dirty bits for bytes `offset..offset + len` of a block (`len` > 0).
fn sector_bits(offset: usize, len: usize) -> u128 {
    let first = offset / SECTOR as usize;
    let last = (offset + len - 1) / SECTOR as usize;
    let count = last - first + 1;
    let run = if count == 128 {
        u128::MAX
    } else {
        (1u128 << count) - 1
    };
    run << first
}

/// Caches `len` bytes of `inner`, starting at its offset 0. Writes reach `inner` when a block is
/// evicted or on [`BlockCache::write_back_all`]; nothing is written back on drop or on
/// [`Write::flush`], so callers must call `write_back_all`.
pub(super) struct BlockCache<S> {
    inner: S,
    len: u64,
    pos: u64,
    blocks: Vec<Block>,
    clock: u64,
    /// The slot used last: fatfs reads a directory entry field by field, so most look-ups are
    /// for the same block as the one before.
    last: usize,
}

impl<S: Read + Write + Seek> BlockCache<S> {
    pub(super) fn new(inner: S, len: u64) -> Self {
        Self {
            inner,
            len,
            pos: 0,
            blocks: Vec::with_capacity(MAX_BLOCKS),
            clock: 0,
            last: 0,
        }
    }

    /// The storage, for writing to it directly once the cache has been written back.
    pub(super) fn into_inner(self) -> S {
        self.inner
    }

    /// Bytes of block `index` that lie inside the volume.
    fn valid_len(&self, index: u64) -> usize {
        // At most BLOCK_SIZE, so the cast cannot truncate.
        (self.len - index * BLOCK_SIZE).min(BLOCK_SIZE) as usize
    }

    #[inline]
    fn block(&mut self, index: u64) -> io::Result<&mut Block> {
        self.clock += 1;
        let slot = match self.blocks.get(self.last) {
            Some(block) if block.index == index => self.last,
            _ => self.find_or_load(index)?,
        };
        let block = &mut self.blocks[slot];
        block.last_use = self.clock;
        Ok(block)
    }

    #[cold]
    fn find_or_load(&mut self, index: u64) -> io::Result<usize> {
        let slot = match self.blocks.iter().position(|b| b.index == index) {
            Some(slot) => slot,
            None => self.load(index)?,
        };
        self.last = slot;
        Ok(slot)
    }

    fn load(&mut self, index: u64) -> io::Result<usize> {
        let slot = if self.blocks.len() < MAX_BLOCKS {
            self.blocks.push(Block {
                index,
                data: vec![0; BLOCK_SIZE as usize].into_boxed_slice(),
                dirty: 0,
                last_use: 0,
            });
            self.blocks.len() - 1
        } else {
            let slot = (0..self.blocks.len())
                .min_by_key(|&i| self.blocks[i].last_use)
                .unwrap_or(0);
            self.write_back(slot)?;
            slot
        };
        let valid = self.valid_len(index);
        self.inner.seek(SeekFrom::Start(index * BLOCK_SIZE))?;
        let block = &mut self.blocks[slot];
        block.index = index;
        block.dirty = 0;
        let mut filled = 0;
        // Storage shorter than the volume (a sparse file not yet extended) reads as zeros.
        while filled < valid {
            match self.inner.read(&mut block.data[filled..valid]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        block.data[filled..].fill(0);
        Ok(slot)
    }

    /// Writes the dirty sectors of a block back, one write per run of them.
    fn write_back(&mut self, slot: usize) -> io::Result<()> {
        let index = self.blocks[slot].index;
        let valid = self.valid_len(index);
        let mut dirty = self.blocks[slot].dirty;
        while dirty != 0 {
            let first = dirty.trailing_zeros();
            let run = (dirty >> first).trailing_ones();
            let start = first as usize * SECTOR as usize;
            let end = ((first + run) as usize * SECTOR as usize).min(valid);
            self.inner
                .seek(SeekFrom::Start(index * BLOCK_SIZE + start as u64))?;
            self.inner.write_all(&self.blocks[slot].data[start..end])?;
            dirty = if first + run == 128 {
                0
            } else {
                dirty & !((1u128 << (first + run)) - 1)
            };
        }
        self.blocks[slot].dirty = 0;
        Ok(())
    }

    /// Writes every dirty sector back, in disk order, then flushes the storage.
    pub(super) fn write_back_all(&mut self) -> io::Result<()> {
        let mut order: Vec<usize> = (0..self.blocks.len()).collect();
        order.sort_by_key(|&slot| self.blocks[slot].index);
        for slot in order {
            self.write_back(slot)?;
        }
        self.inner.flush()
    }
}

impl<S: Read + Write + Seek> Read for BlockCache<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let offset = (self.pos % BLOCK_SIZE) as usize;
        let n = buf
            .len()
            .min(BLOCK_SIZE as usize - offset)
            .min((self.len - self.pos).min(BLOCK_SIZE) as usize);
        let block = self.block(self.pos / BLOCK_SIZE)?;
        buf[..n].copy_from_slice(&block.data[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<S: Read + Write + Seek> Write for BlockCache<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "write at byte {} past the end of the {}-byte volume",
                    self.pos, self.len
                ),
            ));
        }
        let offset = (self.pos % BLOCK_SIZE) as usize;
        let n = buf
            .len()
            .min(BLOCK_SIZE as usize - offset)
            .min((self.len - self.pos).min(BLOCK_SIZE) as usize);
        let block = self.block(self.pos / BLOCK_SIZE)?;
        block.data[offset..offset + n].copy_from_slice(&buf[..n]);
        block.dirty |= sector_bits(offset, n);
        self.pos += n as u64;
        Ok(n)
    }

    /// Nothing: fatfs flushes after every file, and writing back then would repeat the same
    /// FAT and directory blocks hundreds of times. See [`BlockCache::write_back_all`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S> Seek for BlockCache<S> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        match target {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the volume",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn writes_reach_the_storage_after_flush_and_reads_see_them_before() {
        let len = 5 * BLOCK_SIZE + 100;
        let mut cache = BlockCache::new(Cursor::new(vec![0u8; len as usize]), len);
        // Touch more blocks than the cache holds, so some are evicted on the way.
        for i in 0..(len / 1000) {
            cache.seek(SeekFrom::Start(i * 1000)).unwrap();
            cache.write_all(&i.to_le_bytes()).unwrap();
        }
        cache.seek(SeekFrom::Start(3000)).unwrap();
        let mut word = [0u8; 8];
        cache.read_exact(&mut word).unwrap();
        assert_eq!(u64::from_le_bytes(word), 3);
        cache.write_back_all().unwrap();
        let bytes = cache.inner.into_inner();
        assert_eq!(bytes.len() as u64, len);
        for i in 0..(len / 1000) {
            let at = (i * 1000) as usize;
            assert_eq!(bytes[at..at + 8], i.to_le_bytes());
        }
    }

    #[test]
    fn nothing_is_written_past_the_volume() {
        let mut cache = BlockCache::new(Cursor::new(Vec::new()), 10);
        cache.seek(SeekFrom::Start(8)).unwrap();
        assert_eq!(cache.write(&[1, 2, 3]).unwrap(), 2);
        assert!(cache.write(&[4]).is_err());
        cache.write_back_all().unwrap();
        assert_eq!(cache.inner.into_inner(), vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn only_written_sectors_are_written_back() {
        let len = 2 * BLOCK_SIZE;
        let mut cache = BlockCache::new(Cursor::new(vec![0u8; len as usize]), len);
        // Loads the first block (all zeros) into the cache.
        cache.seek(SeekFrom::Start(600)).unwrap();
        cache.write_all(&[1; 10]).unwrap();
        cache.seek(SeekFrom::Start(BLOCK_SIZE - 4)).unwrap();
        cache.write_all(&[2; 8]).unwrap();
        // What another writer put into the storage meanwhile, beside the cached sectors.
        cache.inner.get_mut()[2048..4096].fill(9);
        cache.write_back_all().unwrap();
        let bytes = cache.inner.into_inner();
        assert_eq!(bytes[600..610], [1; 10]);
        assert_eq!(
            bytes[(BLOCK_SIZE - 4) as usize..(BLOCK_SIZE + 4) as usize],
            [2; 8]
        );
        assert!(bytes[2048..4096].iter().all(|&b| b == 9));
        assert!(
            bytes[4096..(BLOCK_SIZE - 4) as usize]
                .iter()
                .all(|&b| b == 0)
        );
    }

    #[test]
    fn dirty_bits_cover_the_sectors_touched() {
        assert_eq!(sector_bits(0, 1), 1);
        assert_eq!(sector_bits(511, 2), 0b11);
        assert_eq!(sector_bits(1024, 512), 0b100);
        assert_eq!(sector_bits(0, BLOCK_SIZE as usize), u128::MAX);
        assert_eq!(sector_bits(BLOCK_SIZE as usize - 1, 1), 1 << 127);
    }
}
