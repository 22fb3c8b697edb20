//! ssh_config: the parser (`sshconfig::parse`, `includes_dropin_dir`) fed
//! arbitrary text never panics; and an alias rendered from arbitrary
//! values (`HostAlias::render`, through lb-common's ssh_config layer) is
//! either refused or exactly the seven directives of one Host block whose
//! arguments are the values given: no value can add a directive.
#![no_main]

use std::path::{Path, PathBuf};

use lb_common::conf::sshconfig::{self, HostAlias};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sshconfig::parse(text);
    let _ = sshconfig::includes_dropin_dir(text, Path::new("/etc/ssh"));

    let mut f = text.split('\u{1}');
    let (Some(name), Some(host), Some(user), Some(key), Some(kh)) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return;
    };
    let alias = HostAlias {
        name: name.to_owned(),
        hostname: host.to_owned(),
        user: user.to_owned(),
        port: 22,
        identity_file: PathBuf::from(key),
        known_hosts: Some(PathBuf::from(kh)),
    };
    let Ok(rendered) = alias.render() else {
        return;
    };
    let d = sshconfig::parse(&rendered);
    let keywords: Vec<&str> = d.iter().map(|d| d.keyword.as_str()).collect();
    assert_eq!(
        keywords,
        [
            "host",
            "hostname",
            "user",
            "hostkeyalias",
            "port",
            "identityfile",
            "globalknownhostsfile"
        ],
        "{rendered:?}"
    );
    let one = |i: usize| {
        assert_eq!(d[i].args.len(), 1, "{rendered:?}");
        d[i].args[0].clone()
    };
    assert_eq!(one(0), name);
    assert_eq!(one(1), host);
    assert_eq!(one(2), user);
    assert_eq!(one(3), name);
    // IdentityFile expands %-tokens: a literal % is written %%.
    assert_eq!(one(5).replace("%%", "%"), key);
    assert_eq!(one(6), kh);
});
