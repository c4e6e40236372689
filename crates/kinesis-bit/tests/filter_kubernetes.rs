//! The `kubernetes` filter in the real binary: records of a `kube.var.log.containers.*` tag
//! get Fluent Bit's layout from our HTTPS API server (bearer token checked), one request for
//! the pod however many records; with the API server down the records still go out, with
//! what the tag gives.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{agent, assert_success, stderr, terminate, wait_with_timeout};
use kb_testkit::meta_server::{MetaServer, Reply, Request};

const ID: &str = "8c1f0e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100";
const POD: &str = "web-7d9f8b6c5d-x2k4q";

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kb-metadata/tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Run the agent on `conf` for `secs` seconds; its stdout lines as JSON without `date`.
fn run(conf: &str, secs: u64) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.conf");
    std::fs::write(&path, conf).unwrap();
    let child = agent()
        .args(["-c", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(secs));
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert_success(&out);
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            v.shift_remove("date");
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    (lines, stderr(&out))
}

fn conf(url: &str, ca: &str, token: &str) -> String {
    format!(
        "[SERVICE]\n    Flush 0.2\n    Log_Level info\n\n\
         [INPUT]\n    Name dummy\n    Tag kube.var.log.containers.{POD}_shop_nginx-{ID}.log\n    Dummy {{\"log\":\"{{\\\"level\\\":\\\"info\\\"}}\",\"stream\":\"stdout\"}}\n    Rate 50\n    Samples 40\n\n\
         [FILTER]\n    Name kubernetes\n    Match kube.*\n    Kube_URL {url}\n    Kube_CA_File {ca}\n    Kube_Token_File {token}\n    Merge_Log On\n    Merge_Log_Key log_processed\n    Labels Off\n\n\
         [OUTPUT]\n    Name stdout\n    Match *\n    Format json_lines\n"
    )
}

#[test]
fn records_get_the_pods_metadata_with_one_request() {
    let server = MetaServer::https(Arc::new(|r: &Request| {
        if r.header("authorization") != Some("Bearer the-token") {
            return Reply::status(401);
        }
        match r.path.as_str() {
            "/api/v1/namespaces/shop/pods/web-7d9f8b6c5d-x2k4q" => {
                Reply::json(fixture("pod-web.json"))
            }
            _ => Reply::status(404),
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "the-token\n").unwrap();
    let (lines, log) = run(
        &conf(
            &server.url(),
            server.ca_file().unwrap().to_str().unwrap(),
            token.to_str().unwrap(),
        ),
        2,
    );
    assert_eq!(lines.len(), 40, "{log}");
    let want = concat!(
        r#"{"log":"{\"level\":\"info\"}","stream":"stdout","log_processed":{"level":"info"},"#,
        r#""kubernetes":{"pod_name":"web-7d9f8b6c5d-x2k4q","namespace_name":"shop","pod_id":"5f3b2c1a-8e4d-4b7a-9c6e-2d1f0a9b8c7d","#,
        r#""annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-30T08:14:20Z","prometheus.io/scrape":"true"},"#,
        r#""host":"ip-10-0-12-34.eu-west-1.compute.internal","pod_ip":"10.0.13.77","container_name":"nginx","#,
        r#""docker_id":"8c1f0e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100","#,
        r#""container_hash":"public.ecr.aws/nginx/nginx@sha256:2d194184b067db3598771b4cf326cfe6ad5051937ba1132b8b7d4b0184e0d0a6","#,
        r#""container_image":"public.ecr.aws/nginx/nginx:1.27"}}"#
    );
    // The first record of the pod waits (at most 50 ms) for the answer; when it takes longer
    // (a debug build, a busy machine) the first records go on with the tag's metadata, and
    // every record after the answer has it all.
    let first = lines.iter().position(|l| l == want).expect(&log);
    assert!(first < 30, "{first}: {log}");
    for l in &lines[first..] {
        assert_eq!(l, want, "{log}");
    }
    assert_eq!(server.count("/api/"), 1, "{:?}", server.requests());
}

#[test]
fn with_the_api_server_down_records_go_on_with_the_tags_metadata() {
    let port = kb_testkit::peers::free_port();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let (lines, log) = run(
        &conf(
            &format!("https://127.0.0.1:{port}"),
            "/nonexistent/ca.crt",
            token.to_str().unwrap(),
        ),
        2,
    );
    assert_eq!(lines.len(), 40, "{log}");
    for l in &lines {
        assert_eq!(
            l,
            &format!(
                r#"{{"log":"{{\"level\":\"info\"}}","stream":"stdout","log_processed":{{"level":"info"}},"kubernetes":{{"pod_name":"{POD}","namespace_name":"shop","container_name":"nginx","docker_id":"{ID}"}}}}"#
            )
        );
    }
    assert!(
        log.contains("could not get meta for POD shop/web-7d9f8b6c5d-x2k4q"),
        "{log}"
    );
}
