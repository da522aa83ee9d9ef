//! CRC-32 as GPT (and zlib, PNG, Ethernet) uses it.

/// CRC-32/ISO-HDLC: the IEEE 802.3 polynomial 0x04C11DB7, reflected, initial value and final
/// XOR all ones. `crc32(b"123456789") == 0xCBF43926`.
pub fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| {
        TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// One entry per byte value: the register after shifting that byte through, so the loop above
/// handles a byte per step instead of a bit.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit by bit, straight from the definition, to check the table against.
    fn bitwise(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // zlib.crc32(b"The quick brown fox jumps over the lazy dog")
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn the_table_agrees_with_the_bitwise_definition() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 + i / 13) as u8).collect();
        assert_eq!(crc32(&data), bitwise(&data));
        assert_eq!(crc32(&[0xFF; 512]), bitwise(&[0xFF; 512]));
    }
}
