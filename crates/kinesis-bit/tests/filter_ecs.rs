//! The `ecs` filter in the real binary against our own ECS agent introspection API: task and
//! cluster metadata through `Add` templates, one task request for the container, and cluster
//! metadata only when asked or when the task is unknown.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{agent, assert_success, stderr, terminate, wait_with_timeout};
use kb_testkit::meta_server::{MetaServer, Reply, Request};

const DOCKER_ID: &str = "79c796ed2a7f864f485c76f83f3165488097279d296a7c05bd5201a1c69b2920";

fn agent_api() -> MetaServer {
    MetaServer::http(Arc::new(|r: &Request| match r.path.as_str() {
        "/v1/metadata" => Reply::json(
            r#"{"Cluster":"prod-cluster","ContainerInstanceArn":"arn:aws:ecs:eu-west-1:123456789012:container-instance/prod-cluster/6b3f4e0d0c3a4a7f9e1f2a3b4c5d6e7f","Version":"Amazon ECS Agent - v1.89.0 (9c0e5e4b)"}"#,
        ),
        "/v1/tasks?dockerid=79c796ed2a7f" => Reply::json(format!(
            r#"{{"Arn":"arn:aws:ecs:eu-west-1:123456789012:task/prod-cluster/e01d58a8151b40e8bc0122647b9ecfec","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Family":"nginx-efs","Version":"2","Containers":[{{"DockerId":"{DOCKER_ID}","DockerName":"ecs-nginx-efs-2-nginx-9ac0808dd0afa495f001","Name":"nginx"}},{{"DockerId":"aaaabbbbccccddddeeeeffff00001111222233334444555566667777888899990","DockerName":"ecs-nginx-efs-2-sidecar-e2f4a6b8c0d2e4f6a801","Name":"sidecar"}}]}}"#
        )),
        _ => Reply::Answer(404, vec![], b"{}".to_vec()),
    }))
}

fn run(server: &MetaServer, tag: &str, filter_keys: &str) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.conf");
    std::fs::write(
        &path,
        format!(
            "[SERVICE]\n    Flush 0.2\n\n[INPUT]\n    Name dummy\n    Tag {tag}\n    Dummy {{\"log\":\"hi\"}}\n    Rate 20\n    Samples 20\n\n\
             [FILTER]\n    Name ecs\n    Match *\n    ECS_Meta_Host 127.0.0.1\n    ECS_Meta_Port {}\n{filter_keys}\n\
             [OUTPUT]\n    Name stdout\n    Match *\n    Format json_lines\n",
            server.port()
        ),
    )
    .unwrap();
    let child = agent()
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

#[test]
fn task_and_cluster_metadata_through_templates() {
    let server = agent_api();
    let (lines, log) = run(
        &server,
        &format!("ecs.var.lib.docker.containers.{DOCKER_ID}.{DOCKER_ID}-json.log"),
        "    ECS_Tag_Prefix ecs.var.lib.docker.containers.\n    Add ecs_task_id $TaskID\n    Add cluster $ClusterName\n    Add resource $ClusterName.$TaskDefinitionFamily.$TaskID.$ECSContainerName\n    Add docker $DockerContainerName\n    Add revision $TaskDefinitionVersion\n    Add instance $ContainerInstanceID\n    Add agent $ECSAgentVersion\n    Add task_arn $TaskARN\n    Add container_id $ContainerID\n",
    );
    assert_eq!(lines.len(), 20, "{log}");
    let full = format!(
        concat!(
            r#"{{"log":"hi","ecs_task_id":"e01d58a8151b40e8bc0122647b9ecfec","cluster":"prod-cluster","#,
            r#""resource":"prod-cluster.nginx-efs.e01d58a8151b40e8bc0122647b9ecfec.nginx","#,
            r#""docker":"ecs-nginx-efs-2-nginx-9ac0808dd0afa495f001","revision":"2","instance":"6b3f4e0d0c3a4a7f9e1f2a3b4c5d6e7f","#,
            r#""agent":"Amazon ECS Agent - v1.89.0 (9c0e5e4b)","task_arn":"arn:aws:ecs:eu-west-1:123456789012:task/prod-cluster/e01d58a8151b40e8bc0122647b9ecfec","#,
            r#""container_id":"{}"}}"#
        ),
        DOCKER_ID
    );
    assert_eq!(lines.last().unwrap(), &full, "{log}");
    assert_eq!(server.count("/v1/tasks"), 1, "{:?}", server.requests());
    assert_eq!(server.count("/v1/metadata"), 1);
}

#[test]
fn cluster_metadata_only() {
    let server = agent_api();
    let (lines, log) = run(
        &server,
        "ecsagent.var.log.ecs.ecs-agent.log",
        "    Cluster_Metadata_Only On\n    Add cluster $ClusterName\n    Add task $TaskID\n",
    );
    assert_eq!(
        lines.last().unwrap(),
        r#"{"log":"hi","cluster":"prod-cluster","task":""}"#,
        "{log}"
    );
    assert_eq!(server.count("/v1/tasks"), 0);
}
