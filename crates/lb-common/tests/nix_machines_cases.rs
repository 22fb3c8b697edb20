//! The cases of Nix's own tests of the machines format, through
//! lb-common's parser: the same lines accepted or refused, the same fields,
//! per version where versions differ. Sources (NixOS/nix):
//!
//! - [2.8] tag 2.8.0, `src/libstore/tests/machines.cc` and
//!   `src/libstore/tests/test-data/machines.{valid,bad_format}`;
//! - [2.26] tag 2.26.3, `src/libstore-tests/machines.cc` and
//!   `src/libstore-tests/data/machines/{valid,bad_format}`;
//! - [2.34] tag 2.34.8, the same files (`getMachinesUriWithPort`,
//!   `getMachinesWithCommentsAndSemicolonSeparator` and
//!   `getMachinesWithFunnyWhitespace` came with 2.29's "Fix `;` and `#`
//!   bug in machine file parsing").
//!
//! Each test names the Nix test it ports. Nix's tests use the default
//! system `TEST_ARCH-TEST_OS`; so do these. The real Nix of each
//! generation reads the differing cases the same way:
//! tools/lb-nixconf/tests/nix.rs.

use lb_common::conf::machines::{parse_as, resolve_as_given, Dialect, Machine};
use lb_common::conf::{Error, Location};

const SYS: &str = "TEST_ARCH-TEST_OS";
const V2_8: Dialect = Dialect::BEFORE_2_20;
const V2_26: Dialect = Dialect {
    float_speed: true,
    systems_set: true,
    comment_to_line_end: false,
};
const V2_34: Dialect = Dialect::LATEST;
const ALL: [Dialect; 3] = [V2_8, V2_26, V2_34];

fn p(text: &str, d: Dialect) -> Result<Vec<Machine>, Error> {
    let at = Location {
        file: "builders".into(),
        line: 0,
    };
    parse_as(text, SYS, &at, &resolve_as_given, d)
}

fn uris(m: &[Machine]) -> Vec<String> {
    m.iter().map(Machine::effective_uri).collect()
}

fn assert_defaults(m: &Machine) {
    assert_eq!(m.effective_uri(), "ssh://nix@scratchy.labs.cs.uu.nl");
    assert_eq!(m.systems, [SYS]);
    assert_eq!(m.ssh_key, None);
    assert_eq!(m.max_jobs, 1);
    assert!((m.speed_factor - 1.0).abs() < f64::EPSILON);
    assert!(m.supported_features.is_empty());
    assert!(m.mandatory_features.is_empty());
    assert_eq!(m.public_host_key, None);
}

#[test]
fn dialects_of_the_three_generations() {
    assert_eq!(Dialect::for_version("2.8.0"), V2_8);
    assert_eq!(Dialect::for_version("2.26.3"), V2_26);
    assert_eq!(Dialect::for_version("2.34.8"), V2_34);
}

/// [2.8] [2.26] [2.34] getMachinesWithEmptyBuilders
#[test]
fn empty_builders() {
    for d in ALL {
        assert!(p("", d).unwrap().is_empty());
    }
}

/// [2.8] [2.26] [2.34] getMachinesUriOnly
#[test]
fn uri_only() {
    for d in ALL {
        let m = p("nix@scratchy.labs.cs.uu.nl", d).unwrap();
        assert_eq!(m.len(), 1);
        assert_defaults(&m[0]);
    }
}

/// [2.34] getMachinesUriWithPort
#[test]
fn uri_with_port() {
    let m = p("nix@scratchy.labs.cs.uu.nl:2222", V2_34).unwrap();
    assert_eq!(uris(&m), ["ssh://nix@scratchy.labs.cs.uu.nl:2222"]);
}

/// [2.8] [2.26] [2.34] getMachinesDefaults
#[test]
fn defaults() {
    for d in ALL {
        let m = p("nix@scratchy.labs.cs.uu.nl - - - - - - -", d).unwrap();
        assert_eq!(m.len(), 1);
        assert_defaults(&m[0]);
    }
}

/// [2.8] [2.26] [2.34] getMachinesWithNewLineSeparator and
/// getMachinesWithSemicolonSeparator
#[test]
fn newline_and_semicolon_separators() {
    for d in ALL {
        for text in [
            "nix@scratchy.labs.cs.uu.nl\nnix@itchy.labs.cs.uu.nl",
            "nix@scratchy.labs.cs.uu.nl ; nix@itchy.labs.cs.uu.nl",
        ] {
            let m = p(text, d).unwrap();
            assert_eq!(
                uris(&m),
                [
                    "ssh://nix@scratchy.labs.cs.uu.nl",
                    "ssh://nix@itchy.labs.cs.uu.nl"
                ]
            );
        }
    }
}

const COMMENTS: &str = "# This is a comment ; this is still that comment\n\
                        nix@scratchy.labs.cs.uu.nl ; nix@itchy.labs.cs.uu.nl\n\
                        # This is also a comment ; this also is still that comment\n\
                        nix@scabby.labs.cs.uu.nl\n";

/// [2.34] getMachinesWithCommentsAndSemicolonSeparator: a comment runs to
/// the end of its line. Before 2.29 the `;` ended the comment and
/// " this is still that comment" was an entry whose max jobs "that" is no
/// number: Nix 2.8 and 2.26 refuse the value (machines.cc of those tags
/// splits on "\n;" before cutting at '#').
#[test]
fn comments_and_semicolons() {
    let m = p(COMMENTS, V2_34).unwrap();
    assert_eq!(
        uris(&m),
        [
            "ssh://nix@scratchy.labs.cs.uu.nl",
            "ssh://nix@itchy.labs.cs.uu.nl",
            "ssh://nix@scabby.labs.cs.uu.nl"
        ]
    );
    for d in [V2_8, V2_26] {
        let e = p(COMMENTS, d).unwrap_err();
        assert!(e.to_string().contains("max jobs \"that\""), "{e}");
    }
}

const FUNNY: &str = "        # comment ; comment\n   nix@scratchy.labs.cs.uu.nl ; nix@itchy.labs.cs.uu.nl   \n\n    \n\n ;;; \n\n ; ; \nnix@scabby.labs.cs.uu.nl\n\n";

/// [2.34] getMachinesWithFunnyWhitespace: three machines. Before 2.29 the
/// pieces were never trimmed: the first, "        " once its comment is
/// cut, has no store URI and Nix refuses the value (seen here with 2.8 and
/// 2.26: "store URL was not found at the first column of a row").
#[test]
fn funny_whitespace() {
    let m = p(FUNNY, V2_34).unwrap();
    assert_eq!(m.len(), 3, "{m:#?}");
    for d in [V2_8, V2_26] {
        let e = p(FUNNY, d).unwrap_err();
        assert!(e.to_string().contains("no store URI"), "{e}");
        // Without the blank pieces, the `;` still ends the comment.
        let m = p(
            "# comment ; comment
nix@scabby.labs.cs.uu.nl",
            d,
        )
        .unwrap();
        assert_eq!(
            uris(&m),
            ["ssh://comment", "ssh://nix@scabby.labs.cs.uu.nl"]
        );
    }
}

fn assert_complete(m: &Machine) {
    assert_eq!(m.effective_uri(), "ssh://nix@scratchy.labs.cs.uu.nl");
    assert_eq!(m.systems, ["i686-linux"]);
    assert_eq!(
        m.ssh_key.as_deref(),
        Some("/home/nix/.ssh/id_scratchy_auto")
    );
    assert_eq!(m.max_jobs, 8);
    assert!((m.speed_factor - 3.0).abs() < f64::EPSILON);
    assert_eq!(m.supported_features, ["kvm"]);
    assert_eq!(m.mandatory_features, ["benchmark"]);
    assert_eq!(
        m.public_host_key.as_deref(),
        Some("SSH+HOST+PUBLIC+KEY+BASE64+ENCODED==")
    );
}

/// [2.8] [2.26] [2.34] getMachinesWithCorrectCompleteSingleBuilder and
/// getMachinesWithCorrectCompleteSingleBuilderWithTabColumnDelimiter
#[test]
fn complete_single_builder_spaces_and_tabs() {
    for d in ALL {
        for text in [
            "nix@scratchy.labs.cs.uu.nl     i686-linux      /home/nix/.ssh/id_scratchy_auto        8 3 kvm benchmark SSH+HOST+PUBLIC+KEY+BASE64+ENCODED==",
            "nix@scratchy.labs.cs.uu.nl\ti686-linux\t/home/nix/.ssh/id_scratchy_auto\t8\t3\tkvm\tbenchmark\tSSH+HOST+PUBLIC+KEY+BASE64+ENCODED==",
        ] {
            let m = p(text, d).unwrap();
            assert_eq!(m.len(), 1);
            assert_complete(&m[0]);
        }
    }
}

/// [2.8] [2.26] [2.34] getMachinesWithMultiOptions
#[test]
fn multi_options() {
    for d in ALL {
        let m = p(
            "nix@scratchy.labs.cs.uu.nl Arch1,Arch2 - - - SupportedFeature1,SupportedFeature2 MandatoryFeature1,MandatoryFeature2",
            d,
        )
        .unwrap();
        assert_eq!(m[0].systems, ["Arch1", "Arch2"]);
        assert_eq!(
            m[0].supported_features,
            ["SupportedFeature1", "SupportedFeature2"]
        );
        assert_eq!(
            m[0].mandatory_features,
            ["MandatoryFeature1", "MandatoryFeature2"]
        );
    }
}

/// [2.8] [2.26] [2.34] getMachinesWithIncorrectFormat (FormatError in all;
/// a negative speed factor is a UsageError from 2.20 on, still refused).
#[test]
fn incorrect_format() {
    for d in ALL {
        for text in [
            "nix@scratchy.labs.cs.uu.nl - - eight",
            "nix@scratchy.labs.cs.uu.nl - - -1",
            "nix@scratchy.labs.cs.uu.nl - - 8 three",
            "nix@scratchy.labs.cs.uu.nl - - 8 -3",
            "nix@scratchy.labs.cs.uu.nl - - 8 3 - - BAD_BASE64",
        ] {
            assert!(
                matches!(p(text, d), Err(Error::Machine { .. })),
                "{d:?}: {text}"
            );
        }
    }
}

/// Not in Nix's tests, in its code: the speed factor is an unsigned
/// integer before 2.20 (`parseUnsignedIntField(4)`), a float from 2.20
/// (`parseFloatField(4)`); 0 means 1 in all (`Machine::Machine`).
#[test]
fn speed_factor_per_version() {
    let e = p("nix@h - - 8 1.5", V2_8).unwrap_err();
    assert!(
        e.to_string().contains("Nix before 2.20 reads an integer"),
        "{e}"
    );
    for d in [V2_26, V2_34] {
        let m = p("nix@h - - 8 1.5", d).unwrap();
        assert!((m[0].speed_factor - 1.5).abs() < f64::EPSILON);
    }
    for d in ALL {
        let m = p("nix@h - - 8 0", d).unwrap();
        assert!((m[0].speed_factor - 1.0).abs() < f64::EPSILON);
    }
}

/// Not in Nix's tests, in its code: the systems are a list before 2.20, a
/// set from 2.20 (`tokenizeString<std::vector<...>>` vs `<std::set<...>>`).
#[test]
fn systems_list_or_set() {
    let text = "nix@h x86_64-linux,i686-linux,x86_64-linux";
    assert_eq!(
        p(text, V2_8).unwrap()[0].systems,
        ["x86_64-linux", "i686-linux", "x86_64-linux"]
    );
    for d in [V2_26, V2_34] {
        assert_eq!(
            p(text, d).unwrap()[0].systems,
            ["i686-linux", "x86_64-linux"]
        );
    }
}

/// [2.8] machines.valid, [2.26] [2.34] data/machines/valid (identical).
const VALID: &str = "nix@scratchy.labs.cs.uu.nl  i686-linux      /home/nix/.ssh/id_scratchy_auto        8 1 kvm\n\
nix@itchy.labs.cs.uu.nl     i686-linux      /home/nix/.ssh/id_scratchy_auto        8 2\n\
nix@poochie.labs.cs.uu.nl   i686-linux      /home/nix/.ssh/id_scratchy_auto        1 2 kvm benchmark c3NoLXJzYSBBQUFBQjNOemFDMXljMkVBQUFBREFRQUJBQUFDQVFDWWV5R1laNTNzd1VjMUZNSHBWL1BCcXlKaFR5S1JoRkpWWVRpRHlQN2h5c1JGa0w4VDlLOGdhL2Y2L3c3QjN2SjNHSFRIUFkybENiUEdZbGNLd2h6M2ZRbFNNOEViNi95b3ZLajdvM1FsMEx5Y0dzdGJvRmcwWkZKNldncUxsR0ltS0NobUlxOGZ3TW5ZTWUxbnRQeTBUZFZjSU1tOTV3YzF3SjBMd2c3cEVMRmtHazdkeTVvYnM4a3lGZ0pORDVRSmFwQWJjeWp4Z1QzdzdMcktNZ2xzeWhhd01JNVpkMGZsQTVudW5OZ3pid3plYVhLaUsyTW0vdGJXYTU1YTd4QmNYdHpIZGlPSWdSajJlRWxaMGh5bk10YjBmcklsdmxIcEtLaVFaZ3pQdCtIVXQ2bXpRMkRVME52MGYyYnNSU0krOGpJU2pQcmdlcVVHRldMUzVIUTg2N2xSMlpiaWtyclhZNTdqbVFEZk5DRHY1VFBHZU9UekFEd2pjMDc2aFZ3VFJCd3VTZFhtaWNxTS95b3lrWitkV1dnZ25MenE5QU1tdlNZcDhmZkZDcS9CSDBZNUFXWTFHay9vS3hMVTNaOWt3ZDd2UWNFQWFCQ2dxdnVZRGdTaHE1RlhndDM3OVZESWtEL05ZSTg2QXVvajVDRmVNTzlRM2pJSlRadlh6c1VldjVoSnA2djcxSVh5ODVtbTY5R20zcXdicVE1SjVQZDU1Um56SitpaW5BNjZxTEFSc0Y4amNsSnd5ekFXclBoYU9DRVY2bjVMeVhVazhzMW9EVVR4V1pWN25rVkFTbHJ0MllGcjN5dzdjRTRXQVhsemhHcDhocmdLMVVkMUlyeDVnZWRaSnBWcy9uNWVybmJFMUxmb2x5UHUvRUFIWlh6VGd4dHVDUFNobXc9PQo=\n";

/// [2.8] [2.26] [2.34] getMachinesWithCorrectFileReference,
/// getMachinesWithCorrectFileReferenceToEmptyFile,
/// getMachinesWithIncorrectFileReference and
/// getMachinesWithCorrectFileReferenceToIncorrectFile (bad_format:
/// "nix@scratchy.labs.cs.uu.nl - - eight").
#[test]
fn file_references() {
    let tmp = tempfile::tempdir().unwrap();
    let valid = tmp.path().join("valid");
    let empty = tmp.path().join("empty-machines");
    let bad = tmp.path().join("bad_format");
    std::fs::write(&valid, VALID).unwrap();
    std::fs::write(&empty, "").unwrap();
    std::fs::write(&bad, "nix@scratchy.labs.cs.uu.nl - - eight\n").unwrap();
    for d in ALL {
        let m = p(&format!("@{}", valid.display()), d).unwrap();
        assert_eq!(
            uris(&m),
            [
                "ssh://nix@scratchy.labs.cs.uu.nl",
                "ssh://nix@itchy.labs.cs.uu.nl",
                "ssh://nix@poochie.labs.cs.uu.nl"
            ]
        );
        assert_eq!(m[2].max_jobs, 1);
        assert_eq!(m[2].mandatory_features, ["benchmark"]);
        assert!(p(&format!("@{}", empty.display()), d).unwrap().is_empty());
        assert!(p("@/dev/null", d).unwrap().is_empty());
        assert!(p("@/not/a/file", d).unwrap().is_empty());
        assert!(matches!(
            p(&format!("@{}", bad.display()), d),
            Err(Error::Machine { .. })
        ));
    }
}
