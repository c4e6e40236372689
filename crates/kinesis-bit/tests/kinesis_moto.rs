//! The agent's credentials and signing against moto server (`docs/test-peers.md`):
//! SigV4 checked by moto's verifying mode, the auth-error refresh, `role_arn` + `external_id`
//! through `sts_endpoint` (asserted on moto's request recorder), and a `credential_process`
//! profile. Records are read back from moto's Kinesis and compared byte for byte.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{agent, assert_success, run_with_stdin, stderr};
use kb_testkit::kds::Kds;
use kb_testkit::peers::Moto;
use serde_json::Value;

const REGION: &str = "us-east-1";
const LIMIT: Duration = Duration::from_secs(90);

/// Runs `cmd` (the agent, environment prepared) with a classic config file: stdin →
/// kinesis_streams with `stream`, `region`, `endpoint` and the `extra` output keys; debug log,
/// `Grace 10`, engine retries after 1 s.
fn ship(
    mut cmd: Command,
    endpoint: &str,
    stream: &str,
    extra: &[(&str, &str)],
    input: Vec<u8>,
) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    let mut text = format!(
        "[SERVICE]\n    Grace 10\n    Log_Level debug\n    scheduler.base 1\n    scheduler.cap 1\n\n\
         [INPUT]\n    Name stdin\n\n\
         [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream {stream}\n    region {REGION}\n    \
         endpoint {endpoint}\n"
    );
    for (k, v) in extra {
        text.push_str(&format!("    {k} {v}\n"));
    }
    std::fs::write(&conf, text).unwrap();
    cmd.args(["-c", conf.to_str().unwrap()]);
    run_with_stdin(&mut cmd, &input, LIMIT)
}

async fn ship_async(
    cmd: Command,
    endpoint: String,
    stream: &str,
    extra: &[(&str, &str)],
    input: Vec<u8>,
) -> Output {
    let stream = stream.to_string();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        ship(cmd, &endpoint, &stream, &extra, input)
    })
    .await
    .unwrap()
}

/// `n` distinct JSON records and the bytes each must arrive as.
fn records(tag: &str, n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut input = Vec::new();
    let mut want = Vec::new();
    for i in 0..n {
        let line = format!("{{\"case\":\"{tag}\",\"seq\":{i},\"msg\":\"caf\u{e9} {i}\"}}");
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
        want.push(
            format!("{{\"case\":\"{tag}\",\"seq\":{i},\"msg\":\"caf\\u00e9 {i}\"}}\n").into_bytes(),
        );
    }
    want.sort();
    (input, want)
}

async fn stream_data(kds: &Kds, stream: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = kds
        .read_all(stream)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    v.sort();
    v
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// One request of moto's recording.
struct Recorded {
    target: String,
    authorization: String,
    security_token: Option<String>,
    body: String,
}

/// Standard base64 (padding optional); the test crate has no base64 dependency.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 character {c:?} in {s:?}"),
        }
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn header(r: &Value, name: &str) -> Option<String> {
    r["headers"].as_object()?.iter().find_map(|(k, v)| {
        k.eq_ignore_ascii_case(name)
            .then(|| v.as_str().unwrap_or_default().to_string())
    })
}

fn recorded(moto: &Moto) -> Vec<Recorded> {
    moto.recording()
        .iter()
        .map(|r| {
            let raw = r["body"].as_str().unwrap_or_default();
            let body = if r["body_encoded"].as_bool() == Some(true) {
                String::from_utf8_lossy(&base64_decode(raw)).into_owned()
            } else {
                raw.to_string()
            };
            Recorded {
                target: header(r, "X-Amz-Target").unwrap_or_default(),
                authorization: header(r, "Authorization").unwrap_or_default(),
                security_token: header(r, "X-Amz-Security-Token"),
                body,
            }
        })
        .collect()
}

/// The access key id in `Credential=<key>/<date>/<region>/<service>/aws4_request`, and the
/// service.
fn credential(authorization: &str) -> (String, String) {
    let scope = authorization
        .split("Credential=")
        .nth(1)
        .unwrap_or_else(|| panic!("no Credential= in {authorization:?}"));
    let scope = scope.split(',').next().unwrap();
    let parts: Vec<&str> = scope.split('/').collect();
    assert_eq!(parts.len(), 5, "{authorization}");
    (parts[0].to_string(), parts[3].to_string())
}

/// Decoded `application/x-www-form-urlencoded` pairs.
fn form(body: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(h, 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

fn param<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

// ------------------------------------------------------------------------------------------------
// 5. SigV4 against moto's verifying mode; auth errors

#[tokio::test(flavor = "multi_thread")]
async fn sigv4_is_accepted_by_a_verifying_server_and_a_wrong_secret_is_not() {
    let moto = Moto::start_verifying(3);
    let (akid, secret) = moto.create_user_with_key("kb-agent").await;
    let kds = Kds::with_credentials(&moto.endpoint(), REGION, &akid, &secret, None);
    kds.create_stream("signed", 1).await.unwrap();
    kds.create_stream("badsig", 1).await.unwrap();
    // The server really verifies: the default test key is refused.
    let (st, body) = Kds::new(&moto.endpoint(), REGION)
        .call("ListStreams", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(st, 403, "moto is not verifying signatures: {body}");

    // Correct key: delivered, byte for byte.
    let (input, want) = records("signed", 20);
    let mut cmd = agent();
    cmd.env("AWS_ACCESS_KEY_ID", &akid)
        .env("AWS_SECRET_ACCESS_KEY", &secret);
    let out = ship_async(cmd, moto.endpoint(), "signed", &[], input).await;
    assert_success(&out);
    let log = stderr(&out);
    assert_eq!(stream_data(&kds, "signed").await, want, "log:\n{log}");
    assert!(!log.contains("auth error"), "{log}");

    // Wrong secret: 403 (XML body) → one credential refresh and one re-send, then the records
    // go back to the engine; the engine's retry does not refresh again within 60 s.
    let (input, _) = records("badsig", 5);
    let mut cmd = agent();
    cmd.env("AWS_ACCESS_KEY_ID", &akid)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = ship_async(
        cmd,
        moto.endpoint(),
        "badsig",
        &[("retry_limit", "1")],
        input,
    )
    .await;
    let log = stderr(&out);
    assert_eq!(
        stream_data(&kds, "badsig").await,
        Vec::<Vec<u8>>::new(),
        "log:\n{log}"
    );
    assert!(
        log.contains("PutRecords API responded with error='SignatureDoesNotMatch'")
            || log.contains("PutRecords API responded with error='InvalidClientTokenId'"),
        "the 403 XML error code must be recognised:\n{log}"
    );
    // First flush: the request and its re-send after the refresh; the engine retry: one more.
    let attempts = count(&log, "PutRecords with 5 records");
    assert_eq!(attempts, 3, "log:\n{log}");
    assert_eq!(
        count(&log, "5 records handed back for a later retry, badsig"),
        2,
        "{log}"
    );
    assert_eq!(
        count(&log, "auth error, refreshing credentials"),
        1,
        "one refresh, logged once (§7.4):\n{log}"
    );
}

// ------------------------------------------------------------------------------------------------
// 6. role_arn + external_id + sts_endpoint

#[tokio::test(flavor = "multi_thread")]
async fn role_arn_is_assumed_through_sts_endpoint_with_external_id() {
    let moto = Moto::start();
    let kds = Kds::new(&moto.endpoint(), REGION);
    kds.create_stream("assumed", 1).await.unwrap();
    moto.start_recording();

    let (input, want) = records("assumed", 10);
    let role = "arn:aws:iam::123456789012:role/test";
    let out = ship_async(
        agent(),
        moto.endpoint(),
        "assumed",
        &[
            ("role_arn", role),
            ("external_id", "ext-XYZ"),
            ("sts_endpoint", &moto.endpoint()),
        ],
        input,
    )
    .await;
    assert_success(&out);
    let log = stderr(&out);
    let rec = recorded(&moto);
    moto.stop_recording();

    let assume: Vec<(usize, Vec<(String, String)>)> = rec
        .iter()
        .enumerate()
        .map(|(i, r)| (i, form(&r.body)))
        .filter(|(_, f)| param(f, "Action") == Some("AssumeRole"))
        .collect();
    assert_eq!(assume.len(), 1, "one AssumeRole expected; log:\n{log}");
    let (ai, f) = &assume[0];
    assert_eq!(param(f, "RoleArn"), Some(role), "{f:?}");
    assert_eq!(param(f, "ExternalId"), Some("ext-XYZ"), "{f:?}");
    let session = param(f, "RoleSessionName").unwrap_or_default();
    assert!(
        session.starts_with("kinesis-bit-")
            && session.len() > "kinesis-bit-".len()
            && session.len() <= 64
            && session
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "RoleSessionName {session:?}"
    );
    // AssumeRole is signed for sts with the base chain (the environment's key).
    assert_eq!(
        credential(&rec[*ai].authorization),
        ("AKIDTESTKEY".to_string(), "sts".to_string())
    );

    let puts: Vec<(usize, &Recorded)> = rec
        .iter()
        .enumerate()
        .filter(|(_, r)| r.target == "Kinesis_20131202.PutRecords")
        .collect();
    assert!(!puts.is_empty(), "no PutRecords recorded; log:\n{log}");
    for (i, p) in &puts {
        assert!(i > ai, "PutRecords before AssumeRole");
        let (key, service) = credential(&p.authorization);
        assert!(
            key.starts_with("ASIA") && key != "AKIDTESTKEY",
            "PutRecords signed with {key}, not the assumed role's key"
        );
        assert_eq!(service, "kinesis");
        assert!(
            p.security_token.as_deref().is_some_and(|t| !t.is_empty()),
            "no X-Amz-Security-Token with the session credentials"
        );
    }
    assert_eq!(stream_data(&kds, "assumed").await, want, "log:\n{log}");
}

// ------------------------------------------------------------------------------------------------
// 7. credential_process profile

#[tokio::test(flavor = "multi_thread")]
async fn credential_process_profile_signs_the_requests() {
    let moto = Moto::start();
    let kds = Kds::new(&moto.endpoint(), REGION);
    kds.create_stream("proc", 1).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("creds.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"Version\":1,\"AccessKeyId\":\"AKIDPROC\",\"SecretAccessKey\":\"procsecret\"}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = eu-west-1\n\n[profile kb]\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();

    moto.start_recording();
    let (input, want) = records("proc", 10);
    let mut cmd = agent();
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", &config);
    let out = ship_async(cmd, moto.endpoint(), "proc", &[("profile", "kb")], input).await;
    assert_success(&out);
    let log = stderr(&out);
    let rec = recorded(&moto);
    moto.stop_recording();

    let puts: Vec<&Recorded> = rec
        .iter()
        .filter(|r| r.target == "Kinesis_20131202.PutRecords")
        .collect();
    assert!(!puts.is_empty(), "no PutRecords recorded; log:\n{log}");
    for p in puts {
        assert_eq!(
            credential(&p.authorization),
            ("AKIDPROC".to_string(), "kinesis".to_string()),
            "log:\n{log}"
        );
        assert_eq!(p.security_token, None);
    }
    assert_eq!(stream_data(&kds, "proc").await, want, "log:\n{log}");
}
