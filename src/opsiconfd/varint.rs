//! LEB128 unsigned integers of the frame stream.

use crate::error::{Error, Result};

pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one from `buf` at `*pos`, advancing it; refuses a truncated or overlong one.
pub(crate) fn get(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf
            .get(*pos)
            .ok_or_else(|| Error::Corrupt("opsiconfd frame stream ends early".into()))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Error::Corrupt(
        "opsiconfd frame stream: a number is too long".into(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            super::put(&mut b, v);
            let mut p = 0;
            assert_eq!(super::get(&b, &mut p).unwrap(), v);
            assert_eq!(p, b.len());
        }
        assert!(super::get(&[0x80], &mut 0).is_err());
    }
}
