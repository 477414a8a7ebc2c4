//! A bulk data member's extended attributes as PAX records of a data tar (`data_tars.rs`):
//! every attribute as `SCHILY.xattr.<name>` with its raw value (what GNU tar `--xattrs` and
//! bsdtar read), and the POSIX ACLs also as `SCHILY.acl.access` / `SCHILY.acl.default` in
//! text form with numeric ids (what GNU tar `--acls` and bsdtar restore ACLs from: libarchive
//! skips the `system.posix_acl_*` attributes on Linux and reads these records instead).

use crate::member::Xattr;

/// `(key, value)` PAX records for `xattrs`, in their order, each ACL's text record after it.
pub(crate) fn records(xattrs: &[Xattr]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for x in xattrs {
        out.push((format!("SCHILY.xattr.{}", x.name), x.value.clone()));
        let text_key = match x.name.as_str() {
            "system.posix_acl_access" => "SCHILY.acl.access",
            "system.posix_acl_default" => "SCHILY.acl.default",
            _ => continue,
        };
        if let Some(text) = acl_text(&x.value) {
            out.push((text_key.to_string(), text.into_bytes()));
        }
    }
    out
}

const ACL_XATTR_VERSION: u32 = 2;

/// Linux's binary ACL (`posix_acl_xattr`: a u32 version 2, then per entry u16 tag, u16 perm,
/// u32 id, little-endian) as `user::rw-,user:1000:r--,group::r-x,mask::r-x,other::---`;
/// `None` for a value that is not one.
pub(crate) fn acl_text(value: &[u8]) -> Option<String> {
    let (head, entries) = value.split_at_checked(4)?;
    if u32::from_le_bytes(head.try_into().ok()?) != ACL_XATTR_VERSION || entries.len() % 8 != 0 {
        return None;
    }
    let mut parts = Vec::new();
    for e in entries.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let who = match tag {
            0x01 => "user:".to_string(),
            0x02 => format!("user:{id}"),
            0x04 => "group:".to_string(),
            0x08 => format!("group:{id}"),
            0x10 => "mask:".to_string(),
            0x20 => "other:".to_string(),
            _ => return None,
        };
        let bit = |b: u16, c: char| if perm & b != 0 { c } else { '-' };
        parts.push(format!(
            "{who}:{}{}{}",
            bit(4, 'r'),
            bit(2, 'w'),
            bit(1, 'x')
        ));
    }
    Some(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = ACL_XATTR_VERSION.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn acls_in_text_form() {
        let none = u32::MAX;
        let v = acl(&[
            (1, 6, none),
            (2, 4, 1000),
            (4, 5, none),
            (0x10, 5, none),
            (0x20, 0, none),
        ]);
        assert_eq!(
            acl_text(&v).unwrap(),
            "user::rw-,user:1000:r--,group::r-x,mask::r-x,other::---"
        );
        assert_eq!(acl_text(b"\x02\x00"), None);
        assert_eq!(acl_text(&acl(&[(0x40, 7, 0)])), None);
        let recs = records(&[
            Xattr {
                name: "user.a".into(),
                value: b"1".to_vec(),
            },
            Xattr {
                name: "system.posix_acl_default".into(),
                value: v,
            },
        ]);
        let keys: Vec<_> = recs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "SCHILY.xattr.user.a",
                "SCHILY.xattr.system.posix_acl_default",
                "SCHILY.acl.default"
            ]
        );
    }
}
