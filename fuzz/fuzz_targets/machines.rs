//! The builders / machines format (`machines::parse`) fed arbitrary text:
//! an answer or an error, never a panic; every machine parsed renders
//! (`Machine::render`, what lb-nixconf writes) to a line that parses back
//! to the same machine.
#![no_main]

use std::path::{Path, PathBuf};

use lb_common::conf::machines::{self, Machine};
use lb_common::conf::Location;

fn nowhere(file: &str) -> PathBuf {
    // `@FILE` entries read nothing: the fuzzer tests the parser, not the disk.
    Path::new("/nonexistent-lb-fuzz").join(file.trim_start_matches('/'))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let at = Location {
        file: "builders".into(),
        line: 0,
    };
    let Ok(parsed) = machines::parse(text, "x86_64-linux", &at, &nowhere) else {
        return;
    };
    for m in parsed {
        let line = m.render();
        let back: Vec<Machine> = machines::parse(&line, "x86_64-linux", &at, &nowhere)
            .unwrap_or_else(|e| panic!("{line:?} does not parse back: {e}"));
        assert_eq!(back.len(), 1, "{line:?}");
        let mut b = back.into_iter().next().unwrap();
        b.at = m.at.clone();
        assert_eq!(b, m, "{line:?}");
    }
});
