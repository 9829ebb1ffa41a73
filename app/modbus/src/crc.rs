//! CRC-16/MODBUS: reflected polynomial 0xA001, initial value 0xFFFF, sent low byte first.

/// Lookup table for the reflected polynomial 0xA001, built at compile time.
const TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
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

/// The CRC of `data`. On the wire it follows the data low byte first.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc = (crc >> 8) ^ TABLE[usize::from((crc ^ u16::from(b)) & 0xFF)];
    }
    crc
}

/// Whether `frame` ends with the correct CRC of everything before it.
pub fn check(frame: &[u8]) -> bool {
    if frame.len() < 3 {
        return false;
    }
    let (body, tail) = frame.split_at(frame.len() - 2);
    crc16(body) == u16::from_le_bytes([tail[0], tail[1]])
}

/// Appends the CRC of `frame` to it.
pub fn append(frame: &mut Vec<u8>) {
    let crc = crc16(frame);
    frame.extend_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // The check value of CRC-16/MODBUS over "123456789".
        assert_eq!(crc16(b"123456789"), 0x4B37);
        assert!(check(&[0xF0, 0x06, 0x05, 0x15, 0x0C, 0x65, 0x48, 0xC8]));
        assert!(!check(&[0xF0, 0x06, 0x05, 0x15, 0x0C, 0x65, 0x48, 0xC9]));
        assert!(!check(&[0x01, 0x02]));
    }
}
