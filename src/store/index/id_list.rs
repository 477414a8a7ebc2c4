//! The compact lists of chunk row ids in `members.chunks` and `snapshots.meta_chunks`: LEB128
//! varints of the zigzag-encoded difference to the previous id.

/// Appends chunk row ids as LEB128 varints of the zigzag-encoded difference to the previous
/// id (the first to 0): a run of new chunks (consecutive ids) costs one byte per chunk.
pub(super) fn encode_ids(ids: &[i64], out: &mut Vec<u8>) {
    let mut prev = 0i64;
    for &id in ids {
        let d = id.wrapping_sub(prev);
        prev = id;
        push_varint(out, ((d << 1) ^ (d >> 63)) as u64);
    }
}

pub(super) fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

pub(super) fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Reads `n` ids written by `encode_ids`; `None` when the bytes are damaged.
pub(super) fn decode_ids(b: &[u8], at: &mut usize, n: u64) -> Option<Vec<i64>> {
    let mut ids = Vec::with_capacity(n.min(1 << 20) as usize);
    let mut prev = 0i64;
    for _ in 0..n {
        let z = read_varint(b, at)?;
        prev = prev.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
        ids.push(prev);
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_round_trip_compactly() {
        let ids = vec![1, 2, 3, 4, 1000, 5, 6, 7, i64::MAX, 1];
        let mut b = Vec::new();
        encode_ids(&ids, &mut b);
        let mut at = 0;
        assert_eq!(decode_ids(&b, &mut at, ids.len() as u64).unwrap(), ids);
        assert_eq!(at, b.len());
        let mut b = Vec::new();
        encode_ids(&[10, 11, 12, 13], &mut b);
        assert_eq!(b.len(), 4);
        assert!(decode_ids(&[0x80], &mut 0, 1).is_none());
        assert!(decode_ids(&[2], &mut 0, 2).is_none());
    }
}
