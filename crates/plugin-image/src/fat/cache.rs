//! A small write-back block cache between fatfs and the image storage.
//!
//! fatfs does every FAT update, directory-entry field and data chunk as its own seek plus a
//! read or write of 1 to 512 bytes: about a dozen I/O calls per cluster written. Kept here in a
//! few 64 KiB blocks (the FAT, both of its copies and the data being written stay hot), the same
//! work becomes memory copies plus one large write per block. Measured in release builds,
//! writing a 64 MiB file with fatfs straight onto a `File` took 0.19 s with 4 KiB clusters,
//! 0.66 s with 1 KiB and 1.27 s with 512 B; through this cache 0.03 s, 0.05 s and 0.06 s.

use std::io::{self, Read, Seek, SeekFrom, Write};

const BLOCK_SIZE: u64 = 64 * 1024;
const MAX_BLOCKS: usize = 16;

struct Block {
    index: u64,
    data: Box<[u8]>,
    dirty: bool,
    last_use: u64,
}

/// Caches `len` bytes of `inner`, starting at its offset 0. Writes reach `inner` when a block is
/// evicted or on [`BlockCache::flush`]; nothing is written back on drop, so callers must flush.
pub(super) struct BlockCache<S> {
    inner: S,
    len: u64,
    pos: u64,
    blocks: Vec<Block>,
    clock: u64,
}

impl<S: Read + Write + Seek> BlockCache<S> {
    pub(super) fn new(inner: S, len: u64) -> Self {
        Self {
            inner,
            len,
            pos: 0,
            blocks: Vec::with_capacity(MAX_BLOCKS),
            clock: 0,
        }
    }

    /// Bytes of block `index` that lie inside the volume.
    fn valid_len(&self, index: u64) -> usize {
        // At most BLOCK_SIZE, so the cast cannot truncate.
        (self.len - index * BLOCK_SIZE).min(BLOCK_SIZE) as usize
    }

    fn block(&mut self, index: u64) -> io::Result<&mut Block> {
        self.clock += 1;
        let slot = match self.blocks.iter().position(|b| b.index == index) {
            Some(slot) => slot,
            None => self.load(index)?,
        };
        let block = &mut self.blocks[slot];
        block.last_use = self.clock;
        Ok(block)
    }

    fn load(&mut self, index: u64) -> io::Result<usize> {
        let slot = if self.blocks.len() < MAX_BLOCKS {
            self.blocks.push(Block {
                index,
                data: vec![0; BLOCK_SIZE as usize].into_boxed_slice(),
                dirty: false,
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
        block.dirty = false;
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

    fn write_back(&mut self, slot: usize) -> io::Result<()> {
        if !self.blocks[slot].dirty {
            return Ok(());
        }
        let index = self.blocks[slot].index;
        let valid = self.valid_len(index);
        self.inner.seek(SeekFrom::Start(index * BLOCK_SIZE))?;
        self.inner.write_all(&self.blocks[slot].data[..valid])?;
        self.blocks[slot].dirty = false;
        Ok(())
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
        block.dirty = true;
        self.pos += n as u64;
        Ok(n)
    }

    /// Writes every dirty block back, in disk order, then flushes the storage.
    fn flush(&mut self) -> io::Result<()> {
        let mut order: Vec<usize> = (0..self.blocks.len()).collect();
        order.sort_by_key(|&slot| self.blocks[slot].index);
        for slot in order {
            self.write_back(slot)?;
        }
        self.inner.flush()
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
        cache.flush().unwrap();
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
        cache.flush().unwrap();
        assert_eq!(cache.inner.into_inner(), vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    }
}
