//! Tar header blocks exactly as Python's `tarfile` writes them in PAX format, which is what
//! the original opsi-backup produces (see docs/OPSI-BACKUP-FACTS.md: one `././@PaxHeader` extended
//! header per file-system member carrying `mtime`, ustar fields in octal, `%06o\0 ` checksum).
//! Writing the same bytes lets an imported original archive be exported byte for byte.

use crate::member::{Member, MemberKind};

pub(crate) const BLOCK: usize = 512;
/// Python pads the archive to a multiple of 20 blocks.
pub(crate) const RECORD: usize = 20 * BLOCK;

const POSIX_MAGIC: &[u8; 8] = b"ustar\x0000";

/// The typeflag byte written for a member kind.
pub(crate) fn typeflag(kind: &MemberKind) -> u8 {
    match kind {
        MemberKind::File => b'0',
        MemberKind::Hardlink(_) => b'1',
        MemberKind::Symlink(_) => b'2',
        MemberKind::Dir => b'5',
        MemberKind::Other(t) => *t,
    }
}

fn link_name(kind: &MemberKind) -> &str {
    match kind {
        MemberKind::Symlink(t) | MemberKind::Hardlink(t) => t,
        _ => "",
    }
}

/// Encodes the header blocks (an optional PAX extended header, then the ustar header) that
/// precede `member`'s data. A kept `raw_header` wins: it is what the archive originally held.
pub(crate) fn encode(member: &Member) -> Vec<u8> {
    if let Some(raw) = &member.raw_header {
        return raw.clone();
    }
    let mut name = member.path.clone();
    if member.kind == MemberKind::Dir && !name.ends_with('/') {
        name.push('/');
    }
    let link = link_name(&member.kind);
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    for (key, value, limit) in [
        ("path", name.as_str(), 100),
        ("linkpath", link, 100),
        ("uname", member.uname.as_str(), 32),
        ("gname", member.gname.as_str(), 32),
    ] {
        if !value.is_ascii() || value.len() > limit {
            pax.push((key.into(), value.into()));
        }
    }
    let mut num = |key: &'static str, value: u64, digits: u32| -> u64 {
        if value >= 8u64.pow(digits - 1) {
            pax.push((key.into(), value.to_string().into_bytes()));
            0
        } else {
            value
        }
    };
    let uid = num("uid", member.uid, 8);
    let gid = num("gid", member.gid, 8);
    let size = num("size", member.size, 12);
    let mtime = match &member.mtime.pax {
        Some(text) => {
            pax.push(("mtime".into(), text.clone().into_bytes()));
            if (0..8i64.pow(11)).contains(&member.mtime.secs) {
                member.mtime.secs as u64
            } else {
                0
            }
        }
        None if (0..8i64.pow(11)).contains(&member.mtime.secs) => member.mtime.secs as u64,
        None => {
            pax.push(("mtime".into(), member.mtime.secs.to_string().into_bytes()));
            0
        }
    };
    // Only bulk data has attributes (data tars); archive members never do.
    pax.extend(crate::archive::pax_xattrs::records(&member.xattrs));

    let mut out = Vec::with_capacity(3 * BLOCK);
    if !pax.is_empty() {
        let records = pax_records(&pax);
        out.extend_from_slice(&ustar_block(&UstarFields {
            name: "././@PaxHeader",
            size: records.len() as u64,
            typeflag: b'x',
            ..UstarFields::default()
        }));
        out.extend_from_slice(&records);
        pad_to_block(&mut out);
    }
    out.extend_from_slice(&ustar_block(&UstarFields {
        name: &name,
        mode: member.mode & 0o7777,
        uid,
        gid,
        size,
        mtime,
        typeflag: typeflag(&member.kind),
        linkname: link,
        uname: &member.uname,
        gname: &member.gname,
    }));
    out
}

/// `"<len> <key>=<value>\n"` records, where len counts the whole record including itself.
fn pax_records(pax: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in pax {
        let base = key.len() + value.len() + 3;
        let mut len = base;
        loop {
            let next = base + len.to_string().len();
            if next == len {
                break;
            }
            len = next;
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

pub(crate) fn pad_to_block(buf: &mut Vec<u8>) {
    let rem = buf.len() % BLOCK;
    if rem != 0 {
        buf.resize(buf.len() + BLOCK - rem, 0);
    }
}

#[derive(Default)]
struct UstarFields<'a> {
    name: &'a str,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    linkname: &'a str,
    uname: &'a str,
    gname: &'a str,
}

fn ustar_block(f: &UstarFields<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_str(&mut b[0..100], f.name);
    put_octal(&mut b[100..108], u64::from(f.mode));
    put_octal(&mut b[108..116], f.uid);
    put_octal(&mut b[116..124], f.gid);
    put_octal(&mut b[124..136], f.size);
    put_octal(&mut b[136..148], f.mtime);
    b[148..156].copy_from_slice(b"        ");
    b[156] = f.typeflag;
    put_str(&mut b[157..257], f.linkname);
    b[257..265].copy_from_slice(POSIX_MAGIC);
    put_str(&mut b[265..297], f.uname);
    put_str(&mut b[297..329], f.gname);
    // devmajor/devminor stay empty (NUL) for non-device members, the prefix is unused in PAX.
    let sum = checksum(&b);
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    b
}

/// Python's `stn(s, length, "ascii", "replace")`: non-ASCII characters become `?`, cut at the
/// field length, NUL-padded.
fn put_str(field: &mut [u8], s: &str) {
    let bytes: Vec<u8> = s
        .chars()
        .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
        .collect();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

/// Python's `itn`: zero-padded octal digits and a trailing NUL.
fn put_octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

/// Sum of the header bytes with the checksum field counted as spaces.
pub(crate) fn checksum(b: &[u8; BLOCK]) -> u32 {
    b.iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(c)
            }
        })
        .sum()
}

/// The same sum with bytes read as signed, which some old writers used.
pub(crate) fn checksum_signed(b: &[u8; BLOCK]) -> i64 {
    b.iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(c as i8)
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Mtime;

    fn member(path: &str, kind: MemberKind) -> Member {
        Member {
            path: path.into(),
            kind,
            mode: 0o770,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mtime: Mtime {
                secs: 1704068200,
                pax: Some("1704068200.0".into()),
            },
            size: 0,
            raw_header: None,
            stamp: None,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn first_member_of_the_golden_archive() {
        // Bytes as the original wrote them for the file backend's base directory.
        let h = encode(&member("CONTENT/BACKENDS/FILE/file", MemberKind::Dir));
        assert_eq!(h.len(), 3 * BLOCK);
        assert_eq!(&h[..14], b"././@PaxHeader");
        assert_eq!(&h[124..136], b"00000000026\0");
        assert_eq!(&h[148..156], b"010213\0 ");
        assert_eq!(&h[512..534], b"22 mtime=1704068200.0\n");
        let u = &h[1024..];
        assert_eq!(&u[..27], b"CONTENT/BACKENDS/FILE/file/");
        assert_eq!(&u[100..108], b"0000770\0");
        assert_eq!(&u[136..148], b"14544402150\0");
        assert_eq!(&u[148..156], b"013532\0 ");
        assert_eq!(u[156], b'5');
        assert_eq!(&u[265..269], b"root");
    }

    #[test]
    fn control_member_has_no_pax_header() {
        let h = encode(&Member::control("CONTROL/sysinfo", 172));
        assert_eq!(h.len(), BLOCK);
        assert_eq!(&h[100..108], b"0000644\0");
        assert_eq!(&h[265..297], &[0u8; 32]);
    }

    #[test]
    fn long_and_non_ascii_names_go_to_pax_path() {
        let long = format!("CONTENT/CONF/{}", "x".repeat(120));
        let h = encode(&member(&long, MemberKind::File));
        let rec = String::from_utf8_lossy(&h[512..1024]);
        assert!(rec.contains(&format!(" path={long}\n")));
        let h = encode(&member("CONTENT/CONF/Grüße", MemberKind::File));
        assert_eq!(&h[1024..1024 + 18], b"CONTENT/CONF/Gr??e");
        assert!(String::from_utf8_lossy(&h[512..1024]).starts_with("29 path=CONTENT/CONF/Grüße\n"));
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_records(&[("mtime".into(), "1".repeat(91).into_bytes())]);
        assert_eq!(r.len(), 102);
        assert!(r.starts_with(b"102 mtime="));
    }
}
