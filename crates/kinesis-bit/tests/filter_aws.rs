//! The `aws` filter in the real binary against our own IMDS: the IMDSv2 token flow (PUT the
//! token, then every GET with it), the IMDSv1 fallback, and the record keys in Fluent Bit's
//! order.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{agent, assert_success, stderr, terminate, wait_with_timeout};
use kb_testkit::meta_server::{MetaServer, Reply, Request};

const TOKEN: &str = "AQAEAFTRt4sNfnO4Lh7mZx2IoYkbQ8iA1nQbQ==";

fn imds_answer(path: &str) -> Option<&'static str> {
    Some(match path {
        "/latest/meta-data/placement/availability-zone/" => "eu-west-1b",
        "/latest/meta-data/instance-id/" => "i-0c862eca9038f5aae",
        "/latest/meta-data/instance-type/" => "m6i.large",
        "/latest/meta-data/local-ipv4/" => "10.0.12.34",
        "/latest/meta-data/mac/" => "0a:1b:2c:3d:4e:5f",
        "/latest/meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f/vpc-id/" => {
            "vpc-0123456789abcdef0"
        }
        "/latest/meta-data/ami-id/" => "ami-0841edc20334f9287",
        "/latest/meta-data/hostname/" => "ip-10-0-12-34.eu-west-1.compute.internal",
        "/latest/dynamic/instance-identity/document/" => {
            r#"{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "eu-west-1b",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0841edc20334f9287",
  "instanceId" : "i-0c862eca9038f5aae",
  "instanceType" : "m6i.large",
  "kernelId" : null,
  "pendingTime" : "2026-11-30T07:59:12Z",
  "privateIp" : "10.0.12.34",
  "ramdiskId" : null,
  "region" : "eu-west-1",
  "version" : "2017-09-30"
}"#
        }
        "/latest/meta-data/tags/instance" => "Name\nteam\nenv",
        "/latest/meta-data/tags/instance/Name" => "node-a",
        "/latest/meta-data/tags/instance/team" => "logs",
        "/latest/meta-data/tags/instance/env" => "prod",
        _ => return None,
    })
}

/// An IMDS that speaks v2 (`v2 = true`) or refuses tokens (403, as with v2 disabled).
fn imds(v2: bool) -> MetaServer {
    MetaServer::http(Arc::new(move |r: &Request| {
        if r.method == "PUT" && r.path == "/latest/api/token" {
            if !v2 {
                return Reply::status(403);
            }
            if r.header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                return Reply::status(400);
            }
            return Reply::Answer(
                200,
                vec![(
                    "x-aws-ec2-metadata-token-ttl-seconds".into(),
                    "21600".into(),
                )],
                TOKEN.as_bytes().to_vec(),
            );
        }
        if v2 && r.header("x-aws-ec2-metadata-token") != Some(TOKEN) {
            return Reply::status(401);
        }
        match imds_answer(&r.path) {
            Some(a) => Reply::text(a),
            None => Reply::status(404),
        }
    }))
}

fn run(server: &MetaServer, filter_keys: &str) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.conf");
    std::fs::write(
        &path,
        format!(
            "[SERVICE]\n    Flush 0.2\n\n[INPUT]\n    Name dummy\n    Tag dummy\n    Rate 20\n    Samples 20\n\n\
             [FILTER]\n    Name aws\n    Match *\n{filter_keys}\n\
             [OUTPUT]\n    Name stdout\n    Match *\n    Format json_lines\n"
        ),
    )
    .unwrap();
    let child = agent()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url())
        .args(["-c", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert_success(&out);
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(l).unwrap();
            v.shift_remove("date");
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    (lines, stderr(&out))
}

const ALL: &str = "    imds_version v2\n    ec2_instance_type true\n    private_ip true\n    vpc_id true\n    ami_id true\n    account_id true\n    hostname true\n    tags_enabled true\n    tags_exclude env\n";

const FULL: &str = concat!(
    r#"{"message":"dummy","az":"eu-west-1b","ec2_instance_id":"i-0c862eca9038f5aae","ec2_instance_type":"m6i.large","#,
    r#""private_ip":"10.0.12.34","vpc_id":"vpc-0123456789abcdef0","ami_id":"ami-0841edc20334f9287","account_id":"123456789012","#,
    r#""hostname":"ip-10-0-12-34.eu-west-1.compute.internal","Name":"node-a","team":"logs"}"#
);

#[test]
fn imdsv2_token_then_every_field_in_fluent_bits_order() {
    let server = imds(true);
    let (lines, log) = run(&server, ALL);
    assert_eq!(lines.len(), 20, "{log}");
    // Records before the metadata is read pass unchanged; then all get every key.
    assert_eq!(lines.last().unwrap(), FULL, "{log}");
    let first_full = lines.iter().position(|l| l == FULL).unwrap();
    assert!(lines[first_full..].iter().all(|l| l == FULL));
    assert!(lines[..first_full]
        .iter()
        .all(|l| l == r#"{"message":"dummy"}"#));
    let reqs = server.requests();
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(
        reqs.iter().filter(|r| r.method == "PUT").count(),
        1,
        "{reqs:?}"
    );
    assert!(reqs[1..]
        .iter()
        .all(|r| r.method == "GET" && r.header("x-aws-ec2-metadata-token") == Some(TOKEN)));
    // Each field read once, whatever the number of records.
    assert_eq!(server.count("/latest/meta-data/instance-id/"), 1);
}

#[test]
fn imdsv1_when_the_token_is_refused_and_the_defaults() {
    let server = imds(false);
    let (lines, log) = run(&server, "");
    assert_eq!(
        lines.last().unwrap(),
        r#"{"message":"dummy","az":"eu-west-1b","ec2_instance_id":"i-0c862eca9038f5aae"}"#,
        "{log}"
    );
    let reqs = server.requests();
    assert!(reqs
        .iter()
        .filter(|r| r.method == "GET")
        .all(|r| r.header("x-aws-ec2-metadata-token").is_none()));
    assert_eq!(
        reqs.iter().filter(|r| r.method == "GET").count(),
        2,
        "{reqs:?}"
    );
}

#[test]
fn imds_version_v1_sends_no_token_request() {
    let server = imds(false);
    let (lines, log) = run(&server, "    imds_version v1\n    az false\n");
    assert_eq!(
        lines.last().unwrap(),
        r#"{"message":"dummy","ec2_instance_id":"i-0c862eca9038f5aae"}"#,
        "{log}"
    );
    assert!(server.requests().iter().all(|r| r.method == "GET"));
}
