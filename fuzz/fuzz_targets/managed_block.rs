//! The managed-block editor (`ManagedBlock::set`, `body`, `remove`) on
//! arbitrary files and bodies: render-then-parse round-trips. Setting a
//! block and reading it gives the body back; removing it gives the file
//! back byte for byte; replacing it keeps the rest of the file.
#![no_main]

use std::path::Path;

use lb_common::conf::block::{ManagedBlock, Position};

const B: ManagedBlock<'static> = ManagedBlock { tag: "lb-fuzz" };

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let f = Path::new("/fuzz.conf");
    let mut parts = input.splitn(3, '\u{1}');
    let text = parts.next().unwrap_or_default();
    let body1 = parts.next().unwrap_or_default();
    let body2 = parts.next().unwrap_or_default();
    // Whatever the text, the editor answers or refuses; never panics.
    let _ = B.body(text, f);
    let _ = B.remove(text, f);
    let _ = B.set(text, body1, Position::Top, f);
    // The contract: a file without this block's markers, bodies of whole
    // lines without them either.
    let clean = |s: &str| !s.contains("# BEGIN lb-fuzz") && !s.contains("# END lb-fuzz");
    let lines = |s: &str| s.is_empty() || s.ends_with('\n');
    if !(clean(text) && clean(body1) && clean(body2) && lines(body1) && lines(body2)) {
        return;
    }
    for pos in [Position::Top, Position::Bottom] {
        let with = B.set(text, body1, pos, f).expect("set on a clean file");
        assert_eq!(B.body(&with, f).unwrap(), Some(body1), "{with:?}");
        assert_eq!(B.remove(&with, f).unwrap(), text, "{with:?}");
        let replaced = B.set(&with, body2, pos, f).expect("replace");
        assert_eq!(B.body(&replaced, f).unwrap(), Some(body2), "{replaced:?}");
        assert_eq!(B.remove(&replaced, f).unwrap(), text, "{replaced:?}");
    }
});
