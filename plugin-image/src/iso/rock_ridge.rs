//! Rock Ridge (RRIP 1.10 on SUSP 1.10): the system use entries that carry each entry's original
//! name (NM), POSIX mode (PX) and times (TF), and the continuation areas (CE) for what does not
//! fit into a directory record.

use super::volume::both32;

/// Length of an SP entry (SUSP 5.3).
pub(super) const SP_LEN: usize = 7;
/// Length of a CE entry (SUSP 5.1).
pub(super) const CE_LEN: usize = 28;
/// Length of an RRIP 1.10 PX entry (no file serial number).
pub(super) const PX_LEN: usize = 36;
/// Length of the TF entry written here: modification, access and attribute-change times in
/// the 7-byte form.
pub(super) const TF_LEN: usize = 5 + 3 * 7;
/// Most name bytes one NM entry holds (its length field is one byte, 5 bytes are header).
const NM_MAX: usize = 250;

/// The extension reference (SUSP 5.5) identifying RRIP 1.10, as the protocol specifies it.
const ER_ID: &[u8] = b"RRIP_1991A";
const ER_DESCRIPTOR: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const ER_SOURCE: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER \
IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

/// Length of the ER entry; too long for the root's directory record, so it goes into a
/// continuation area.
pub(super) const ER_LEN: usize = 8 + ER_ID.len() + ER_DESCRIPTOR.len() + ER_SOURCE.len();

/// POSIX file types for PX.
pub(super) const S_IFDIR: u32 = 0o040_000;
pub(super) const S_IFREG: u32 = 0o100_000;

/// The SP entry that opens the root's `.` record and says SUSP is in use.
pub(super) fn sp(out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'S', b'P', SP_LEN as u8, 1, 0xBE, 0xEF, 0]);
}

/// The ER entry naming RRIP 1.10.
pub(super) fn er(out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'E',
        b'R',
        ER_LEN as u8,
        1,
        ER_ID.len() as u8,
        ER_DESCRIPTOR.len() as u8,
        ER_SOURCE.len() as u8,
        1,
    ]);
    out.extend_from_slice(ER_ID);
    out.extend_from_slice(ER_DESCRIPTOR);
    out.extend_from_slice(ER_SOURCE);
}

/// A CE entry pointing at `len` bytes at `offset` in block `block`.
pub(super) fn ce(out: &mut Vec<u8>, block: u32, offset: u32, len: u32) {
    out.extend_from_slice(&[b'C', b'E', CE_LEN as u8, 1]);
    out.extend_from_slice(&both32(block));
    out.extend_from_slice(&both32(offset));
    out.extend_from_slice(&both32(len));
}

/// A PX entry: mode, link count, uid 0, gid 0.
pub(super) fn px(out: &mut Vec<u8>, mode: u32, links: u32) {
    out.extend_from_slice(&[b'P', b'X', PX_LEN as u8, 1]);
    out.extend_from_slice(&both32(mode));
    out.extend_from_slice(&both32(links));
    out.extend_from_slice(&both32(0));
    out.extend_from_slice(&both32(0));
}

/// A TF entry with the same instant as modification, access and attribute-change time.
pub(super) fn tf(out: &mut Vec<u8>, date: [u8; 7]) {
    const MODIFY: u8 = 2;
    const ACCESS: u8 = 4;
    const ATTRIBUTES: u8 = 8;
    out.extend_from_slice(&[b'T', b'F', TF_LEN as u8, 1, MODIFY | ACCESS | ATTRIBUTES]);
    for _ in 0..3 {
        out.extend_from_slice(&date);
    }
}

/// The NM entries for `name`: one per 250 bytes, all but the last flagged "continues".
pub(super) fn nm(out: &mut Vec<u8>, name: &[u8]) {
    const CONTINUE: u8 = 1;
    let mut chunks = name.chunks(NM_MAX).peekable();
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_some() { CONTINUE } else { 0 };
        // A chunk is at most 250 bytes, so the length fits.
        out.extend_from_slice(&[b'N', b'M', (5 + chunk.len()) as u8, 1, flags]);
        out.extend_from_slice(chunk);
    }
}

/// The bytes [`nm`] writes for a name of `len` bytes.
pub(super) fn nm_len(len: usize) -> usize {
    len.div_ceil(NM_MAX) * 5 + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_their_declared_lengths() {
        let mut out = Vec::new();
        sp(&mut out);
        assert_eq!(out.len(), SP_LEN);
        out.clear();
        er(&mut out);
        assert_eq!((out.len(), ER_LEN, out[2] as usize), (237, 237, 237));
        out.clear();
        ce(&mut out, 1, 2, 3);
        assert_eq!(out.len(), CE_LEN);
        out.clear();
        px(&mut out, S_IFREG | 0o644, 1);
        assert_eq!(out.len(), PX_LEN);
        out.clear();
        tf(&mut out, [80, 1, 1, 0, 0, 0, 0]);
        assert_eq!(out.len(), TF_LEN);
    }

    #[test]
    fn long_names_take_several_nm_entries() {
        for len in [0, 1, 250, 251, 255] {
            let name = vec![b'a'; len];
            let mut out = Vec::new();
            nm(&mut out, &name);
            assert_eq!(out.len(), nm_len(len), "{len}");
        }
        let mut out = Vec::new();
        nm(&mut out, &[b'x'; 255]);
        assert_eq!((out[2], out[4]), (255, 1));
        assert_eq!((out[255 + 2], out[255 + 4]), (10, 0));
    }
}
