//! Password file tests: lines written by Debian's real `mosquitto_passwd`
//! (a committed fixture, and fresh ones when the binary is installed),
//! `$6$` lines made with Mosquitto's algorithm by hand, malformed lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use super::*;

/// Written by `mosquitto_passwd` 2.0.11 (Debian 12): `-b FILE dev-a
/// secret-a`, then `-H sha512 -b FILE legacy old-pass`.
const MOSQUITTO_FIXTURE: &str = "\
dev-a:$7$101$z43VEVNFbPOFzRgV$oFL3d7qV8c8QENQbYPOFEVwc94Pfp+PhHLMxAAYVYUwKo5DfAIXYsXOrDf3IO3qE9U1eFsUgoOZvFQUYg/x6SQ==
legacy:$6$OMUrH7eBjDorRfN6$1J4vevvSqo6Dw/IisNGEa+FvNgzVZy19NIHJ0FmCif6heuuXoZnOgx3TlbI19PkJ0RVGa61Jc+0FjP85z1XiUQ==
";

#[test]
fn committed_mosquitto_passwd_lines_verify() {
    let file = PasswordFile::parse(MOSQUITTO_FIXTURE, "fixture").unwrap();
    assert_eq!(file.len(), 2);
    assert!(file.verify("dev-a", b"secret-a"));
    assert!(file.verify("legacy", b"old-pass"));
    assert!(!file.verify("dev-a", b"secret-b"));
    assert!(!file.verify("dev-a", b"secret-a "));
    assert!(!file.verify("dev-a", b""));
    assert!(!file.verify("legacy", b"secret-a"));
    assert!(!file.verify("DEV-A", b"secret-a"));
    assert!(!file.verify("nobody", b"secret-a"));
}

#[test]
fn fresh_mosquitto_passwd_output_verifies() {
    let binary = "/usr/bin/mosquitto_passwd";
    if !Path::new(binary).exists() {
        println!("skipped: {binary} is not installed (apt-get install mosquitto)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let run = |args: &[&str]| {
        let status = Command::new(binary).args(args).status().unwrap();
        assert!(status.success(), "mosquitto_passwd {args:?}");
    };
    let file = path.to_str().unwrap();
    run(&["-c", "-b", file, "dev-a", "pässwörd with spaces"]);
    run(&["-b", file, "dev-b", "x"]);
    run(&["-H", "sha512", "-b", file, "old", "legacy-secret"]);
    let passwords = PasswordFile::load(&path).unwrap();
    assert!(passwords.verify("dev-a", "pässwörd with spaces".as_bytes()));
    assert!(passwords.verify("dev-b", b"x"));
    assert!(passwords.verify("old", b"legacy-secret"));
    assert!(!passwords.verify("dev-a", b"x"));
    assert!(!passwords.verify("dev-b", "pässwörd with spaces".as_bytes()));
    assert!(!passwords.verify("old", b"legacy-secreT"));
}

#[test]
fn sha512_lines_hash_password_then_decoded_salt() {
    // Mosquitto 1.x: SHA-512 over the password bytes, then the salt bytes
    // (base64-decoded from the file), both base64 in the file.
    let salt = b"0123456789ab";
    let mut digest = Sha512::new();
    digest.update(b"hunter2");
    digest.update(salt);
    let line = format!(
        "# a comment\n\nold:$6${}${}\n",
        BASE64.encode(salt),
        BASE64.encode(digest.finalize())
    );
    let file = PasswordFile::parse(&line, "by hand").unwrap();
    assert!(file.verify("old", b"hunter2"));
    assert!(!file.verify("old", b"hunter3"));
}

#[test]
fn our_hashes_have_mosquittos_format_and_verify() {
    let line = hash_password(b"s3cret").unwrap();
    let fields: Vec<&str> = line.split('$').collect();
    assert_eq!(fields[..3], ["", "7", "101"]);
    assert_eq!(BASE64.decode(fields[3]).unwrap().len(), SALT_LEN);
    assert_eq!(BASE64.decode(fields[4]).unwrap().len(), 64);
    let file = PasswordFile::parse(&format!("u:{line}"), "ours").unwrap();
    assert!(file.verify("u", b"s3cret"));
    assert!(!file.verify("u", b"s3cre"));
    // Fresh salt each time.
    assert_ne!(hash_password(b"s3cret").unwrap(), line);
}

#[test]
fn our_hash_matches_mosquittos_for_the_same_salt() {
    // The fixture's salt and password give the fixture's hash.
    let expected = MOSQUITTO_FIXTURE.lines().next().unwrap();
    let salt = BASE64.decode("z43VEVNFbPOFzRgV").unwrap();
    assert_eq!(
        format!("dev-a:{}", hash_with_salt(b"secret-a", &salt)),
        expected
    );
}

#[test]
fn malformed_lines_name_file_and_line() {
    let good = MOSQUITTO_FIXTURE.lines().next().unwrap();
    let cases = [
        ("no-colon-here", 1, "no ':'"),
        (":$7$101$AAAA$AAAA", 1, "empty username"),
        ("u:plain", 1, "not hashed"),
        ("u:", 1, "no password hash"),
        ("u:$5$abc$def", 1, "unknown hash type"),
        ("u:$7$many$AAAA$AAAA", 1, "not a number"),
        ("u:$7$0$AAAA$AAAA", 1, "outside"),
        ("u:$7$101$!!!$AAAA", 1, "salt is not base64"),
        ("u:$7$101$AAAA$AAAA", 1, "SHA-512 gives 64"),
        ("u:$6$AAAA", 1, "malformed hash"),
        (
            &format!("# c\n{good}\n{good}"),
            3,
            "already defined on line 2",
        ),
    ];
    for (text, line, needle) in cases {
        let error = PasswordFile::parse(text, "/etc/fleetmq/passwd").unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("/etc/fleetmq/passwd:{line}: ")),
            "{text:?}: {message}"
        );
        assert!(message.contains(needle), "{text:?}: {message}");
    }
}

#[test]
fn surrounding_blanks_and_crlf_are_ignored() {
    let good = MOSQUITTO_FIXTURE.lines().next().unwrap();
    let text = format!("  {}\r\n", good.replacen(':', " : ", 1));
    let file = PasswordFile::parse(&text, "crlf").unwrap();
    assert!(file.verify("dev-a", b"secret-a"));
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let error = PasswordFile::load(Path::new("/nonexistent/passwd")).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/passwd"), "{error}");
}
