//! The worker-protocol client against arbitrary server bytes: the
//! handshake, the stderr loop and one IsValidPath answer. It must end in
//! an answer or an error, never a panic, a hang or a huge allocation
//! (the daemon module bounds every length and count it reads).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lb_common::daemon::exercise(data);
});
