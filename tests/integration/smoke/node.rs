//! The harness's real node runs real containers: processes under this machine's containerd,
//! volumes that follow fsGroup, memory limits the kernel enforces, Services that resolve and
//! route, exec/logs/port-forward through the API server, and the images the harness builds —
//! the real Paperclip and PostgreSQL with both env contracts the product deploys.
//!
//! Every pod here tolerates and selects the real node (see `on_real_node`); nothing of KWOK is
//! involved, so each assertion fails when the thing it checks is simulated.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kube::Resource;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::wait::await_condition;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cluster::exec;
use crate::harness::Harness;

/// Image pulls of a cold node (Paperclip is ~0.5 GB compressed) on a loaded two-core machine.
const DEADLINE: Duration = Duration::from_secs(300);
const DB_PASSWORD: &str = "smoke-password";

#[tokio::test]
async fn a_pod_container_is_a_process_under_this_machines_containerd() {
    let harness = Harness::shared();
    let ns = harness.namespace("node-process").await;
    let pods = Api::<Pod>::namespaced(harness.client().await, &ns);
    let marker = format!("HARNESS_MARKER={ns}");
    let pod = on_real_node(
        harness,
        json!({
            "metadata": { "name": "sleeper" },
            "spec": { "containers": [{
                "name": "main",
                "image": harness.var("HARNESS_POSTGRES_IMAGE"),
                "env": [{ "name": "HARNESS_MARKER", "value": ns }],
                "command": ["sh", "-c", "echo started $HARNESS_MARKER; exec sleep 3600"]
            }] }
        }),
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the pod");
    let pod = wait_ready(&pods, "sleeper").await;

    let status = pod.status.expect("pod status");
    let container_id = status.container_statuses.unwrap_or_default()[0]
        .container_id
        .clone()
        .expect("a running container has an id");
    let id = container_id
        .strip_prefix("containerd://")
        .unwrap_or_else(|| panic!("not a containerd container: {container_id}"));

    // The process exists on this machine, and its cgroup is the container's.
    let pid = find_process(&marker)
        .unwrap_or_else(|| panic!("no process on this machine has {marker} in its environment"));
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read its cgroup");
    assert!(
        cgroup.contains(id),
        "process {pid} is not in container {id}'s cgroup:\n{cgroup}"
    );

    // exec and logs go through the API server to the kubelet.
    let exec = exec(
        &pods,
        "sleeper",
        None,
        &["sh", "-c", "echo $HARNESS_MARKER"],
    )
    .await;
    assert!(exec.success, "exec failed: {}", exec.stderr);
    assert_eq!(exec.stdout.trim(), ns);
    let logs = pods
        .logs("sleeper", &LogParams::default())
        .await
        .expect("read the pod's logs");
    assert_eq!(logs.trim(), format!("started {ns}"));

    delete_pods(&pods).await;
}

#[tokio::test]
async fn fs_group_makes_a_provisioned_volume_writable_by_uid_1000() {
    let harness = Harness::shared();
    let client = harness.client().await;
    let ns = harness.namespace("node-volume").await;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    let claim: PersistentVolumeClaim = from_json(json!({
        "metadata": { "name": "data" },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": harness.var("HARNESS_REAL_STORAGE_CLASS"),
            "resources": { "requests": { "storage": "1Gi" } }
        }
    }));
    claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create the claim");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let pod = on_real_node(
        harness,
        json!({
            "metadata": { "name": "writer" },
            "spec": {
                "securityContext": { "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000 },
                "containers": [{
                    "name": "main",
                    "image": harness.var("HARNESS_POSTGRES_IMAGE"),
                    "command": ["sh", "-c", "echo written-by-$(id -u) > /data/file && exec sleep 3600"],
                    "volumeMounts": [{ "name": "data", "mountPath": "/data" }]
                }],
                "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": "data" } }]
            }
        }),
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the pod");
    wait_ready(&pods, "writer").await;

    let claim = claims.get("data").await.expect("read the claim");
    let volume_name = claim.spec.and_then(|s| s.volume_name).expect("bound");
    let volume = Api::<PersistentVolume>::all(client)
        .get(&volume_name)
        .await
        .expect("read the volume");
    let path = volume
        .spec
        .and_then(|s| s.local)
        .map(|l| l.path)
        .expect("a local volume, whose ownership follows fsGroup");
    // The file is on this machine's disk, written by uid 1000 into a directory of group 1000.
    let written = std::fs::read_to_string(format!("{path}/file")).expect("read the file");
    assert_eq!(written.trim(), "written-by-1000");
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::metadata(&path).expect("stat the volume");
    assert_eq!(dir.gid(), 1000, "the volume's group is the pod's fsGroup");
    let file = std::fs::metadata(format!("{path}/file")).expect("stat the file");
    assert_eq!((file.uid(), file.gid()), (1000, 1000));

    delete_pods(&pods).await;
}

#[tokio::test]
async fn a_container_above_its_memory_limit_is_oom_killed() {
    let harness = Harness::shared();
    let ns = harness.namespace("node-oom").await;
    let pods = Api::<Pod>::namespaced(harness.client().await, &ns);
    let pod = on_real_node(
        harness,
        json!({
            "metadata": { "name": "hog" },
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": harness.var("HARNESS_POSTGRES_IMAGE"),
                    // tail keeps the whole "line" in memory, and /dev/zero has no newline.
                    "command": ["tail", "/dev/zero"],
                    "resources": { "limits": { "memory": "32Mi" } }
                }]
            }
        }),
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the pod");
    let pod = wait_for(&pods, "hog", "container hog to terminate", |p: &Pod| {
        terminated(p).is_some()
    })
    .await;
    let (reason, exit_code) = terminated(&pod).unwrap();
    assert_eq!(reason, "OOMKilled", "exit code {exit_code}");
    assert_eq!(exit_code, 137);
}

#[tokio::test]
async fn a_service_name_resolves_and_routes_from_one_pod_to_another() {
    let harness = Harness::shared();
    let client = harness.client().await;
    let ns = harness.namespace("node-service").await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    database_pod(harness, &pods, "db", Flavor::Official).await;
    let service: Service = from_json(json!({
        "metadata": { "name": "db" },
        "spec": {
            "selector": { "app": "db" },
            "ports": [{ "port": 5432, "targetPort": 5432 }]
        }
    }));
    Api::<Service>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &service)
        .await
        .expect("create the Service");

    run_pod(
        harness,
        &pods,
        "client",
        harness.var("HARNESS_POSTGRES_IMAGE"),
        &["sleep", "3600"],
    )
    .await;
    let name = format!("db.{ns}.svc.cluster.local");
    let query =
        format!("PGPASSWORD={DB_PASSWORD} psql -h {name} -U app -d appdb -tAc 'SELECT 41 + 1'");
    let mut answer = exec(&pods, "client", None, &["sh", "-c", &query]).await;
    // kube-proxy programs a new Service within a second or two of its endpoints.
    within("the Service to route", async {
        while !answer.success {
            tokio::time::sleep(Duration::from_millis(500)).await;
            answer = exec(&pods, "client", None, &["sh", "-c", &query]).await;
        }
    })
    .await;
    assert_eq!(answer.stdout.trim(), "42", "stderr: {}", answer.stderr);
    let resolved = exec(&pods, "client", None, &["getent", "hosts", &name]).await;
    let cluster_ip = Api::<Service>::namespaced(client, &ns)
        .get("db")
        .await
        .expect("read the Service")
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a ClusterIP");
    assert!(
        resolved.stdout.starts_with(&format!("{cluster_ip} ")),
        "{name} resolved to {:?}, not {cluster_ip}",
        resolved.stdout
    );

    delete_pods(&pods).await;
}

#[tokio::test]
async fn both_postgresql_images_start_from_their_own_env_contract() {
    let harness = Harness::shared();
    let ns = harness.namespace("node-postgres").await;
    let pods = Api::<Pod>::namespaced(harness.client().await, &ns);
    let (official, bitnami) = tokio::join!(
        database_pod(harness, &pods, "official", Flavor::Official),
        database_pod(harness, &pods, "bitnami", Flavor::Bitnami),
    );
    for (pod, uid, pgdata) in [
        (official, "999", "/var/lib/postgresql/data/pgdata"),
        (bitnami, "1001", "/bitnami/postgresql/data"),
    ] {
        // Over TCP with the password, as the app connects; the server runs as the flavor's uid
        // from the flavor's data directory.
        let script = format!(
            "PGPASSWORD={DB_PASSWORD} psql -h 127.0.0.1 -U app -d appdb -tAc \
             'SELECT current_user, current_database()' && id -u && stat -c %u {pgdata}/PG_VERSION"
        );
        let answer = exec(&pods, &pod, None, &["sh", "-c", &script]).await;
        assert!(answer.success, "{pod}: {}", answer.stderr);
        assert_eq!(
            answer.stdout.trim(),
            format!("app|appdb\n{uid}\n{uid}"),
            "{pod}: {}",
            answer.stderr
        );
    }

    delete_pods(&pods).await;
}

#[tokio::test]
async fn the_paperclip_image_answers_health_by_host_header() {
    let harness = Harness::shared();
    let ns = harness.namespace("node-paperclip").await;
    let pods = Api::<Pod>::namespaced(harness.client().await, &ns);
    let db = database_pod(harness, &pods, "db", Flavor::Official).await;
    let db_ip = pods
        .get(&db)
        .await
        .expect("read the database pod")
        .status
        .and_then(|s| s.pod_ip)
        .expect("the database pod has an address");
    let pod = on_real_node(
        harness,
        json!({
            "metadata": { "name": "app" },
            "spec": {
                "securityContext": { "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000 },
                "containers": [{
                    "name": "paperclip",
                    "image": harness.var("HARNESS_PAPERCLIP_IMAGE"),
                    "env": [
                        { "name": "DATABASE_URL",
                          "value": format!("postgres://app:{DB_PASSWORD}@{db_ip}:5432/appdb") },
                        { "name": "BETTER_AUTH_SECRET", "value": "smoke-auth-secret-0123456789abcdef" },
                        { "name": "PAPERCLIP_PUBLIC_URL", "value": "http://localhost:3100" }
                    ],
                    "ports": [{ "containerPort": 3100 }],
                    // What the product's probes do: a Host the private mode allows.
                    "readinessProbe": {
                        "httpGet": {
                            "path": "/api/health", "port": 3100,
                            "httpHeaders": [{ "name": "Host", "value": "localhost" }]
                        },
                        "periodSeconds": 2, "failureThreshold": 120
                    },
                    "volumeMounts": [{ "name": "data", "mountPath": "/paperclip" }]
                }],
                "volumes": [{ "name": "data", "emptyDir": {} }]
            }
        }),
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the app pod");
    wait_ready(&pods, "app").await;
    let app_ip = pods
        .get("app")
        .await
        .expect("read the app pod")
        .status
        .and_then(|s| s.pod_ip)
        .expect("the app pod has an address");

    assert_eq!(health_status(&pods, "localhost").await, 200);
    assert_eq!(health_status(&pods, &app_ip).await, 403);

    delete_pods(&pods).await;
}

/// GET /api/health through a port-forward to the app pod, with `host` as the Host header.
async fn health_status(pods: &Api<Pod>, host: &str) -> u16 {
    let mut forwarder = pods
        .portforward("app", &[3100])
        .await
        .expect("port-forward to port 3100");
    let mut stream = forwarder.take_stream(3100).expect("a stream for port 3100");
    let request = format!("GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = Vec::new();
    within("the health answer", stream.read_to_end(&mut response))
        .await
        .expect("read the answer");
    drop(stream);
    forwarder.abort();
    let response = String::from_utf8_lossy(&response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {response:?}"))
}

#[derive(Clone, Copy)]
enum Flavor {
    Official,
    Bitnami,
}

/// A PostgreSQL pod of `flavor`, configured only through that image's env contract (user app,
/// database appdb), with the uid and data path the product renders; returns its name when Ready.
async fn database_pod(harness: &Harness, pods: &Api<Pod>, name: &str, flavor: Flavor) -> String {
    let (image, env, uid, path) = match flavor {
        Flavor::Official => (
            harness.var("HARNESS_POSTGRES_IMAGE"),
            json!([
                { "name": "POSTGRES_USER", "value": "app" },
                { "name": "POSTGRES_PASSWORD", "value": DB_PASSWORD },
                { "name": "POSTGRES_DB", "value": "appdb" },
                { "name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata" }
            ]),
            999,
            "/var/lib/postgresql/data",
        ),
        Flavor::Bitnami => (
            harness.var("HARNESS_BITNAMI_POSTGRES_IMAGE"),
            json!([
                { "name": "POSTGRESQL_USERNAME", "value": "app" },
                { "name": "POSTGRESQL_PASSWORD", "value": DB_PASSWORD },
                { "name": "POSTGRESQL_DATABASE", "value": "appdb" }
            ]),
            1001,
            "/bitnami/postgresql",
        ),
    };
    let pod = on_real_node(
        harness,
        json!({
            "metadata": { "name": name, "labels": { "app": name } },
            "spec": {
                "securityContext": { "fsGroup": uid },
                "containers": [{
                    "name": "postgresql",
                    "image": image,
                    "env": env,
                    "ports": [{ "containerPort": 5432 }],
                    "securityContext": { "runAsUser": uid, "runAsNonRoot": true,
                                         "allowPrivilegeEscalation": false },
                    "readinessProbe": {
                        "exec": { "command": ["pg_isready", "-h", "127.0.0.1", "-U", "app", "-d", "appdb"] },
                        "periodSeconds": 1, "failureThreshold": 300
                    },
                    "volumeMounts": [{ "name": "data", "mountPath": path }]
                }],
                "volumes": [{ "name": "data", "emptyDir": {} }]
            }
        }),
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    wait_ready(pods, name).await;
    name.to_string()
}

/// `pod` with the toleration and node selector that place it on the harness's real node.
fn on_real_node(harness: &Harness, mut pod: Value) -> Pod {
    let key = harness.var("HARNESS_REAL_NODE_TAINT");
    let spec = &mut pod["spec"];
    spec["nodeSelector"] = json!({ "kubernetes.io/hostname": harness.var("HARNESS_REAL_NODE") });
    spec["tolerations"] =
        json!([{ "key": key, "operator": "Equal", "value": "true", "effect": "NoSchedule" }]);
    spec["terminationGracePeriodSeconds"] = json!(1);
    from_json(pod)
}

/// A one-container pod on the real node running `command`, returned once Ready.
async fn run_pod(
    harness: &Harness,
    pods: &Api<Pod>,
    name: &str,
    image: &str,
    command: &[&str],
) -> Pod {
    let pod = on_real_node(
        harness,
        json!({
            "metadata": { "name": name },
            "spec": { "containers": [{ "name": "main", "image": image, "command": command }] }
        }),
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    wait_ready(pods, name).await
}

/// Real pods hold real memory: a passing test removes its own (a failing one leaves them to look at).
async fn delete_pods(pods: &Api<Pod>) {
    let _ = pods
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await;
}

fn terminated(pod: &Pod) -> Option<(String, i32)> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let state = statuses.first()?.state.as_ref()?.terminated.as_ref()?;
    Some((state.reason.clone().unwrap_or_default(), state.exit_code))
}

/// The pid of a process on this machine whose environment holds `entry` (`KEY=value`).
fn find_process(entry: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|dir| {
        let pid: u32 = dir.file_name().to_str()?.parse().ok()?;
        let environ = std::fs::read(dir.path().join("environ")).ok()?;
        environ
            .split(|&b| b == 0)
            .any(|e| e == entry.as_bytes())
            .then_some(pid)
    })
}

async fn wait_ready(pods: &Api<Pod>, name: &str) -> Pod {
    wait_for(pods, name, &format!("pod {name} to be Ready"), |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await
}

fn from_json<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a well-formed object")
}

/// Waits until `name` exists and satisfies `ready`, or panics naming `what` and the object's
/// last state after DEADLINE.
async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, ready: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let done = await_condition(api.clone(), name, move |k: Option<&K>| {
        k.is_some_and(&ready)
    });
    match tokio::time::timeout(DEADLINE, done).await {
        Ok(result) => result
            .unwrap_or_else(|e| panic!("watching for {what}: {e}"))
            .unwrap_or_else(|| panic!("{what}: {name} was deleted")),
        Err(_) => {
            let last = api.get(name).await.ok();
            panic!("timed out after {DEADLINE:?} waiting for {what}; last seen: {last:#?}")
        }
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
}
