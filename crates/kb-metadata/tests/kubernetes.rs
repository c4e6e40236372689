//! The `kubernetes` filter against our own HTTPS API server and kubelet serving recorded
//! answers (`fixtures/`): Fluent Bit's record layout key for key, `Merge_Log`, the pod
//! annotations, token rotation, one request per pod, and an API server that is down or
//! silent delaying nothing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kb_config::schema::{validate_section, FILTER_GENERIC_KEYS};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_core::filter::{FilterInstance, Standalone};
use kb_core::registry::ServiceContext;
use kb_core::tag::TagMatcher;
use kb_testkit::meta_server::{MetaServer, Reply, Request};

const WEB_ID: &str = "8c1f0e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn tag(pod: &str, ns: &str, container: &str, id: &str) -> String {
    format!("kube.var.log.containers.{pod}_{ns}_{container}-{id}.log")
}

/// An API server that requires `Bearer <token>` (the token can change) and serves the fixtures.
struct Api {
    server: MetaServer,
    token: Arc<Mutex<String>>,
}

fn api_server() -> Api {
    let token = Arc::new(Mutex::new("token-1".to_string()));
    let t = token.clone();
    let handler = Arc::new(move |r: &Request| {
        let want = format!("Bearer {}", t.lock().unwrap());
        if r.header("authorization") != Some(want.as_str()) {
            return Reply::Answer(
                401,
                vec![],
                br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#.to_vec(),
            );
        }
        match r.path.as_str() {
            "/api/v1/namespaces/shop/pods/web-7d9f8b6c5d-x2k4q" => {
                Reply::json(fixture("pod-web.json"))
            }
            "/api/v1/namespaces/shop/pods/noisy-0" => Reply::json(fixture("pod-noisy.json")),
            "/api/v1/namespaces/shop/pods/apache-logs-annotated" => {
                Reply::json(fixture("pod-apache.json"))
            }
            "/api/v1/namespaces/shop" => Reply::json(fixture("namespace-shop.json")),
            "/pods" => Reply::json(fixture("kubelet-pods.json")),
            _ => Reply::Answer(404, vec![], br#"{"kind":"Status","code":404}"#.to_vec()),
        }
    });
    Api {
        server: MetaServer::https(handler),
        token,
    }
}

struct Setup {
    stage: Standalone,
    svc: ServiceContext,
    _dir: tempfile::TempDir,
    token_file: std::path::PathBuf,
}

/// A stage with one `kubernetes` filter configured by `keys` (classic `Key Value` lines),
/// talking to `url` with the server's certificate; `parsers` are `[PARSER]` sections.
fn setup(url: &str, ca: Option<&Path>, keys: &str, parsers: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "token-1").unwrap();
    let mut text = format!(
        "{parsers}\n[FILTER]\n    Name kubernetes\n    Match kube.*\n    Kube_URL {url}\n    Kube_Token_File {}\n",
        token_file.display()
    );
    if let Some(ca) = ca {
        text.push_str(&format!("    Kube_CA_File {}\n", ca.display()));
    }
    text.push_str(keys);
    let file = dir.path().join("k.conf");
    let cfg = kb_config::classic::parse_classic_str(&text, &file, &mut kb_config::env::Env::new())
        .unwrap();
    let parsers = kb_inputs::parsers::ParserRegistry::from_sections(&cfg.parsers).unwrap();
    let svc = ServiceContext {
        parsers: Arc::new(parsers),
        ..ServiceContext::default()
    };
    let spec = kb_metadata::kubernetes::PLUGIN;
    let props = validate_section(
        &spec.spec,
        FILTER_GENERIC_KEYS,
        &cfg.filters[0],
        "kubernetes.0",
    )
    .unwrap();
    let filter = match (spec.build)(&props, &svc) {
        Ok(f) => f,
        Err(e) => panic!("{e:?}"),
    };
    let stage = Standalone::new(vec![FilterInstance {
        name: "kubernetes.0".into(),
        matcher: TagMatcher::new(Some("kube.*"), None).unwrap(),
        plugin: filter,
    }]);
    Setup {
        stage,
        svc,
        _dir: dir,
        token_file,
    }
}

fn event(json: &str) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut w = EventWriter::new();
    w.write_json_record(EventTime::new(1_700_000_000, 5), v.as_object().unwrap());
    w.buf
}

/// The records of `out` as JSON text (key order kept) with their times.
fn records(out: &[u8]) -> Vec<(EventTime, String)> {
    EventReader::new(out)
        .map(|e| {
            let e = e.unwrap();
            let mut json = Vec::new();
            kb_core::json::write_json(
                e.record,
                &mut json,
                &kb_core::json::JsonOptions::default(),
                &mut kb_core::json::JsonStats::default(),
            )
            .unwrap();
            (e.time, String::from_utf8(json).unwrap())
        })
        .collect()
}

impl Setup {
    fn run(&mut self, tag: &str, json: &str) -> Vec<(EventTime, String)> {
        let (out, _) = self.stage.run(tag, "tail.0", &event(json), 1);
        records(&out)
    }

    fn counter(&self, name: &str) -> u64 {
        self.svc
            .metrics
            .counter_value(name, &[("name", "kubernetes.0")])
    }
}

const WEB_LAYOUT: &str = concat!(
    r#""kubernetes":{"pod_name":"web-7d9f8b6c5d-x2k4q","namespace_name":"shop","#,
    r#""pod_id":"5f3b2c1a-8e4d-4b7a-9c6e-2d1f0a9b8c7d","#,
    r#""labels":{"app.kubernetes.io/name":"web","pod-template-hash":"7d9f8b6c5d","tier":"frontend"},"#,
    r#""annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-30T08:14:20Z","prometheus.io/scrape":"true"},"#,
    r#""host":"ip-10-0-12-34.eu-west-1.compute.internal","pod_ip":"10.0.13.77","#,
    r#""container_name":"nginx","docker_id":"8c1f0e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100","#,
    r#""container_hash":"public.ecr.aws/nginx/nginx@sha256:2d194184b067db3598771b4cf326cfe6ad5051937ba1132b8b7d4b0184e0d0a6","#,
    r#""container_image":"public.ecr.aws/nginx/nginx:1.27"}"#
);

/// Wait until the pod's metadata is in (the first record may go on without it under load).
fn warm(s: &mut Setup, tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let r = s.run(tag, r#"{"log":"warm"}"#);
        if r[0].1.contains("pod_id") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no metadata for {tag}");
}

#[test]
fn records_get_fluent_bits_layout_and_one_request_serves_a_pod() {
    let api = api_server();
    let ca = api.server.ca_file().unwrap().clone();
    let mut s = setup(&api.server.url(), Some(&ca), "", "");
    let t = tag("web-7d9f8b6c5d-x2k4q", "shop", "nginx", WEB_ID);
    let first = s.run(
        &t,
        r#"{"log":"hello\n","stream":"stdout","time":"2026-11-30T08:15:00.1Z"}"#,
    );
    // The first record of the pod waited for its answer (a healthy, local API server).
    assert_eq!(
        first[0].1,
        format!(
            r#"{{"log":"hello\n","stream":"stdout","time":"2026-11-30T08:15:00.1Z",{WEB_LAYOUT}}}"#
        )
    );
    for _ in 0..9_999 {
        let r = s.run(&t, r#"{"log":"x","stream":"stdout"}"#);
        assert!(r[0].1.ends_with(&format!("{WEB_LAYOUT}}}")), "{}", r[0].1);
    }
    assert_eq!(api.server.count("/api/v1/namespaces/shop/pods/"), 1);
    assert_eq!(s.counter("fluentbit_kubernetes_requests_total"), 1);
    assert_eq!(
        s.counter("fluentbit_kubernetes_records_without_metadata_total"),
        0
    );
    let r = &api.server.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer token-1"));
    // Another container of the same pod: no new request; its own status.
    let t2 = tag(
        "web-7d9f8b6c5d-x2k4q",
        "shop",
        "log-shipper",
        "1111111111111111111111111111111111111111111111111111111111111111",
    );
    let r = s.run(&t2, r#"{"log":"y"}"#);
    assert!(
        r[0].1.ends_with(r#""container_name":"log-shipper","docker_id":"1111111111111111111111111111111111111111111111111111111111111111","container_hash":"docker.io/library/busybox@sha256:768e5c6f5cb6db0794eec98dc7a967f40631746c32232b78a3105fb946f3ab83","container_image":"docker.io/library/busybox:1.36"}}"#),
        "{}",
        r[0].1
    );
    assert_eq!(api.server.count("/api/"), 1);
}

#[test]
fn merge_log_with_json_and_other_text() {
    let api = api_server();
    let ca = api.server.ca_file().unwrap().clone();
    let mut s = setup(
        &api.server.url(),
        Some(&ca),
        "    Merge_Log On\n    Labels Off\n    Annotations Off\n",
        "",
    );
    let t = tag("web-7d9f8b6c5d-x2k4q", "shop", "nginx", WEB_ID);
    warm(&mut s, &t);
    let tail = r#""kubernetes":{"pod_name":"web-7d9f8b6c5d-x2k4q","namespace_name":"shop","pod_id":"5f3b2c1a-8e4d-4b7a-9c6e-2d1f0a9b8c7d","host":"ip-10-0-12-34.eu-west-1.compute.internal","pod_ip":"10.0.13.77","container_name":"nginx","docker_id":"8c1f0e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100","container_hash":"public.ecr.aws/nginx/nginx@sha256:2d194184b067db3598771b4cf326cfe6ad5051937ba1132b8b7d4b0184e0d0a6","container_image":"public.ecr.aws/nginx/nginx:1.27"}"#;
    // JSON: fields merged at the top level (trailing newline of a value trimmed), log kept.
    let r = s.run(
        &t,
        r#"{"log":"{\"level\":\"info\",\"msg\":\"started\\n\",\"n\":3}\n","stream":"stdout"}"#,
    );
    assert_eq!(
        r[0].1,
        format!(
            r#"{{"log":"{{\"level\":\"info\",\"msg\":\"started\\n\",\"n\":3}}\n","stream":"stdout","level":"info","msg":"started","n":3,{tail}}}"#
        )
    );
    // Not JSON: untouched.
    let r = s.run(&t, r#"{"log":"plain text\n","stream":"stdout"}"#);
    assert_eq!(
        r[0].1,
        format!(r#"{{"log":"plain text\n","stream":"stdout",{tail}}}"#)
    );
    // A JSON array is not merged either.
    let r = s.run(&t, r#"{"log":"[1,2]","stream":"stdout"}"#);
    assert_eq!(
        r[0].1,
        format!(r#"{{"log":"[1,2]","stream":"stdout",{tail}}}"#)
    );

    // Merge_Log_Key and Keep_Log Off.
    let mut s = setup(
        &api.server.url(),
        Some(&ca),
        "    Merge_Log On\n    Merge_Log_Key log_processed\n    Keep_Log Off\n    Labels Off\n    Annotations Off\n",
        "",
    );
    warm(&mut s, &t);
    let r = s.run(&t, r#"{"log":"{\"a\":{\"b\":true}}","stream":"stderr"}"#);
    assert_eq!(
        r[0].1,
        format!(r#"{{"stream":"stderr","log_processed":{{"a":{{"b":true}}}},{tail}}}"#)
    );
    let r = s.run(&t, r#"{"log":"not json","stream":"stderr"}"#);
    assert_eq!(
        r[0].1,
        format!(r#"{{"log":"not json","stream":"stderr",{tail}}}"#)
    );
}

const APACHE_PARSER: &str = r#"[PARSER]
    Name   apache
    Format regex
    Regex  ^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^ ]*) +\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)$
    Time_Key time
    Time_Format %d/%b/%Y:%H:%M:%S %z
"#;

#[test]
fn annotations_suggest_a_parser_and_exclude_a_pod() {
    let api = api_server();
    let ca = api.server.ca_file().unwrap().clone();
    let keys = "    Merge_Log On\n    K8S-Logging.Parser On\n    K8S-Logging.Exclude On\n    Labels Off\n    Annotations Off\n";
    let mut s = setup(&api.server.url(), Some(&ca), keys, APACHE_PARSER);
    let apache = tag(
        "apache-logs-annotated",
        "shop",
        "apache",
        "3333333333333333333333333333333333333333333333333333333333333333",
    );
    warm(&mut s, &apache);
    let r = s.run(
        &apache,
        r#"{"log":"192.168.0.1 - frank [10/Oct/2026:13:55:36 +0000] \"GET /index.html HTTP/1.1\" 200 2326","stream":"stdout"}"#,
    );
    assert!(
        r[0].1.starts_with(r#"{"log":"192.168.0.1 - frank [10/Oct/2026:13:55:36 +0000] \"GET /index.html HTTP/1.1\" 200 2326","stream":"stdout","host":"192.168.0.1","user":"frank","method":"GET","path":"/index.html","code":"200","size":"2326","kubernetes":{"pod_name":"apache-logs-annotated""#),
        "{}",
        r[0].1
    );
    // The parser's time became the record's.
    assert_eq!(r[0].0.secs, 1_791_640_536);

    // fluentbit.io/exclude: "true": the pod's records are dropped.
    let noisy = tag(
        "noisy-0",
        "shop",
        "app",
        "2222222222222222222222222222222222222222222222222222222222222222",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (out, n) = s.stage.run(
            &noisy,
            "tail.0",
            &event(r#"{"log":"spam","stream":"stdout"}"#),
            1,
        );
        if n == 0 {
            assert!(out.is_empty());
            break;
        }
        assert!(Instant::now() < deadline, "never excluded");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        s.stage
            .metrics(0)
            .drop_records
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );

    // Without K8S-Logging.Exclude the annotation is not obeyed.
    let mut s = setup(&api.server.url(), Some(&ca), "    Labels Off\n", "");
    warm(&mut s, &noisy);
    let r = s.run(&noisy, r#"{"log":"kept","stream":"stdout"}"#);
    assert!(
        r[0].1
            .contains(r#""annotations":{"fluentbit.io/exclude":"true"}"#),
        "{}",
        r[0].1
    );
}

#[test]
fn a_rotated_token_is_read_again() {
    let api = api_server();
    let ca = api.server.ca_file().unwrap().clone();
    let mut s = setup(
        &api.server.url(),
        Some(&ca),
        "    Labels Off\n    Annotations Off\n",
        "",
    );
    let web = tag("web-7d9f8b6c5d-x2k4q", "shop", "nginx", WEB_ID);
    warm(&mut s, &web);
    // The kubelet rotates the projected token; the API server takes only the new one.
    *api.token.lock().unwrap() = "token-2".into();
    let tmp = s.token_file.with_extension("new");
    std::fs::write(&tmp, "token-2").unwrap();
    std::fs::rename(&tmp, &s.token_file).unwrap();
    let noisy = tag(
        "noisy-0",
        "shop",
        "app",
        "2222222222222222222222222222222222222222222222222222222222222222",
    );
    warm(&mut s, &noisy);
    let last = api.server.requests().last().unwrap().clone();
    assert_eq!(last.path, "/api/v1/namespaces/shop/pods/noisy-0");
    assert_eq!(last.header("authorization"), Some("Bearer token-2"));
}

#[test]
fn the_kubelet_list_serves_every_pod_of_the_node_and_namespaces_come_from_the_api() {
    let api = api_server();
    let ca = api.server.ca_file().unwrap().clone();
    let port = api.server.port();
    let keys = format!(
        "    Use_Kubelet On\n    Kubelet_Host 127.0.0.1\n    Kubelet_Port {port}\n    Buffer_Size 0\n    Labels Off\n    Annotations Off\n    Owner_References On\n    Namespace_Labels On\n    Namespace_Annotations On\n"
    );
    let mut s = setup(&api.server.url(), Some(&ca), &keys, "");
    let web = tag("web-7d9f8b6c5d-x2k4q", "shop", "nginx", WEB_ID);
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = s.run(&web, r#"{"log":"a"}"#);
        if r[0].1.contains("pod_id") && r[0].1.contains("team") {
            break r;
        }
        assert!(Instant::now() < deadline, "{}", r[0].1);
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        r[0].1,
        concat!(
            r#"{"log":"a","kubernetes":{"pod_name":"web-7d9f8b6c5d-x2k4q","namespace_name":"shop","pod_id":"5f3b2c1a-8e4d-4b7a-9c6e-2d1f0a9b8c7d","#,
            r#""ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f8b6c5d","uid":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","controller":true,"blockOwnerDeletion":true}],"#,
            r#""host":"ip-10-0-12-34.eu-west-1.compute.internal","pod_ip":"10.0.13.77","container_name":"nginx","docker_id":"8c1f0e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100","#,
            r#""container_hash":"public.ecr.aws/nginx/nginx@sha256:2d194184b067db3598771b4cf326cfe6ad5051937ba1132b8b7d4b0184e0d0a6","container_image":"public.ecr.aws/nginx/nginx:1.27"},"#,
            r#""kubernetes_namespace":{"name":"shop","labels":{"kubernetes.io/metadata.name":"shop","team":"checkout"},"annotations":{"owner":"checkout@example.com"}}}"#
        )
    );
    // Another pod of the node: already in the list, no request.
    let apache = tag(
        "apache-logs-annotated",
        "shop",
        "apache",
        "3333333333333333333333333333333333333333333333333333333333333333",
    );
    let r = s.run(&apache, r#"{"log":"b"}"#);
    assert!(
        r[0].1
            .contains(r#""pod_id":"3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f""#),
        "{}",
        r[0].1
    );
    assert_eq!(api.server.count("/pods"), 1);
    assert_eq!(api.server.count("/api/v1/namespaces/shop"), 1);
    assert_eq!(api.server.count("/api/v1/namespaces/shop/pods"), 0);
}

#[test]
fn an_api_server_that_is_down_or_silent_delays_nothing() {
    // Nothing listens on this port.
    let port = kb_testkit::peers::free_port();
    let mut s = setup(&format!("https://127.0.0.1:{port}"), None, "", "");
    let web = tag("web-7d9f8b6c5d-x2k4q", "shop", "nginx", WEB_ID);
    let started = Instant::now();
    for _ in 0..10_000 {
        let r = s.run(&web, r#"{"log":"x"}"#);
        assert_eq!(
            r[0].1,
            format!(
                r#"{{"log":"x","kubernetes":{{"pod_name":"web-7d9f8b6c5d-x2k4q","namespace_name":"shop","container_name":"nginx","docker_id":"{WEB_ID}"}}}}"#
            )
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        s.counter("fluentbit_kubernetes_records_without_metadata_total"),
        10_000
    );

    // A server that accepts and never answers: only the first record of the pod waits, and
    // at most FIRST_WAIT.
    let silent = MetaServer::https(Arc::new(|_: &Request| Reply::Stall));
    let ca = silent.ca_file().unwrap().clone();
    let mut s = setup(&silent.url(), Some(&ca), "", "");
    let started = Instant::now();
    let r = s.run(&web, r#"{"log":"first"}"#);
    let first = started.elapsed();
    assert!(
        first < kb_metadata::kubernetes::FIRST_WAIT + Duration::from_millis(200),
        "{first:?}"
    );
    assert!(!r[0].1.contains("pod_id"));
    let started = Instant::now();
    for _ in 0..1_000 {
        s.run(&web, r#"{"log":"x"}"#);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(silent.count("/api/"), 1);
}

#[test]
fn tags_that_do_not_match_pass_untouched() {
    let api = api_server();
    let ca = api.server.ca_file().unwrap().clone();
    let mut s = setup(&api.server.url(), Some(&ca), "", "");
    let r = s.run(
        "kube.var.log.containers.not-a-container-log",
        r#"{"log":"x"}"#,
    );
    assert_eq!(r[0].1, r#"{"log":"x"}"#);
    assert_eq!(api.server.requests().len(), 0);
}
