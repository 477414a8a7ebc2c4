//! The fuzz target's entry (`crate::fuzz::opsiconfd`): an opsiconfd document split, put back
//! together byte for byte, its meta checked and its objects read as `diff` reads them.

use crate::member::Member;
use crate::opsiconfd::objects::Inventory;
use crate::opsiconfd::{split, Joiner, Meta, FRAME_PATH};
use crate::sink::MemberSink;

#[doc(hidden)]
pub fn fuzz_document(data: &[u8]) {
    let Ok(parts) = split::split(data) else {
        return;
    };
    let _ = Meta::parse(parts.encoding, &data[parts.meta.clone()]);
    let mut joiner = Joiner::new(Vec::new());
    let mut inventory = Inventory::default();
    let frame = Member::control(FRAME_PATH, parts.frame.len() as u64);
    joiner
        .add(&frame, &mut &parts.frame[..])
        .expect("own frame");
    let _ = inventory.add(&frame, &mut &parts.frame[..]);
    for s in &parts.streams {
        let m = Member::control(&s.path, s.len);
        joiner.add(&m, &mut s.reader(data)).expect("own stream");
        let _ = inventory.add(&m, &mut s.reader(data));
    }
    let (doc, _) = joiner.finish().expect("own document");
    assert!(doc == data, "the document put together differs");
}
