//! nix.conf as lb-common parses it (`NixConf::parse`, includes and all),
//! fed arbitrary text: an answer or an error, never a panic or a hang;
//! every assignment it returns reads back the same when rendered as
//! `NAME = VALUE` (what lb-nixconf writes).
#![no_main]

use std::path::Path;

use lb_common::conf::nixconf::NixConf;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Includes resolve under a directory that does not exist: relative
    // ones read nothing; absolute ones are bounded reads (lb-common refuses
    // devices and FIFOs), as for any nix.conf.
    let file = Path::new("/nonexistent-lb-fuzz/nix.conf");
    let Ok(conf) = NixConf::parse(text, file) else {
        return;
    };
    for a in &conf.assignments {
        if a.at.file != file || a.name.starts_with('!') {
            continue;
        }
        let line = format!("{} = {}\n", a.name, a.value);
        let back = NixConf::parse(&line, file).expect("a parsed assignment renders to a valid line");
        assert_eq!(back.assignments.len(), 1, "{line:?}");
        assert_eq!(back.assignments[0].name, a.name);
        assert_eq!(back.assignments[0].value, a.value);
    }
});
