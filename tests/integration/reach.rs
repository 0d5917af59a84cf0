//! How users reach the app: the Ingress and NetworkPolicies as the API server takes them, and
//! on the real node a request carrying the Ingress's host answered by the real Paperclip (its
//! private mode refuses any Host it was not told about), with the app's root filesystem
//! read-only as rendered by default.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, LogParams, ObjectMeta, PostParams};

use crate::harness::Harness;
use crate::harness::real::{self, RealNode};
use crate::install::{LLM_KEY, install, setup_real, text};

const HOST: &str = "paperclip.reach.test";

/// The Ingress (TLS from an existing Secret, a class, an annotation) and the NetworkPolicies
/// (HTTP only from an ingress controller's namespace) of the frank profile, as `--set` values.
fn reach_sets(class: &str) -> Vec<String> {
    vec![
        format!(
            "app.ingress={{className: {class}, hosts: [{HOST}, paperclip-alt.reach.test], \
             tls: {{secretName: paperclip-cert}}, \
             annotations: {{nginx.ingress.kubernetes.io/proxy-body-size: 64m}}}}"
        ),
        format!("app.publicUrl=https://{HOST}"),
        "networkPolicy.ingressControllerNamespace=ingress-nginx".to_string(),
    ]
}

#[tokio::test]
async fn the_ingress_and_network_policies_are_accepted_by_the_api_server() {
    let h = Harness::shared();
    let namespace = h.namespace("reach-manifests").await;
    let mut plan = std::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"));
    plan.args([
        "plan",
        "--profile",
        "frank",
        "--namespace",
        &namespace,
        "-o",
        "yaml",
    ]);
    for set in reach_sets("nginx") {
        plan.args(["--set", &set]);
    }
    let plan = plan.output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    h.assert_server_side_applies(
        &plan.stdout,
        &[
            "ingress.networking.k8s.io/paperclip",
            "networkpolicy.networking.k8s.io/paperclip",
            "networkpolicy.networking.k8s.io/paperclip-db-postgresql",
        ],
    );
}

/// A GET of `path` on the app's Service through the API server's service proxy, with `host` as
/// the request's Host: what an ingress controller forwards, without needing one.
async fn via_service(namespace: &str, host: &str, path: &str) -> (u16, String) {
    let client = Harness::shared().client().await;
    let uri = format!("/api/v1/namespaces/{namespace}/services/paperclip:http/proxy{path}");
    let request = hyper::Request::get(uri)
        .header(hyper::header::HOST, host)
        .body(Vec::new())
        .unwrap();
    let response = client.send(request.map(Into::into)).await.unwrap();
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_ingress_host_reaches_the_real_app_through_its_service_with_a_read_only_root() {
    let Some(real) = RealNode::or_skip("the Ingress host test") else {
        return;
    };
    let mut slot = real::slot().await;
    let setup = setup_real("reach", &real, &mut slot).await;
    let ns = setup.namespace.as_str();
    // What preflight wants to see: the class, and the certificate's Secret.
    let class = format!("{ns}-class");
    let classes = crate::harness::ingress_class(&class).await;
    let certificate = Secret {
        metadata: ObjectMeta {
            name: Some("paperclip-cert".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), ByteString(b"certificate".to_vec())),
            ("tls.key".to_string(), ByteString(b"key".to_vec())),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(Harness::shared().client().await, ns)
        .create(&PostParams::default(), &certificate)
        .await
        .unwrap();
    let mut extra = vec!["--timeout".to_string(), "10m".to_string()];
    for set in reach_sets(&class) {
        extra.extend(["--set".to_string(), set]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run = install(&setup, &extra, &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)]).await;
    classes.delete(&class, &Default::default()).await.unwrap();
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "install failed:\n{stdout}\n{stderr}");
    // Onboarding ran its CLI in the read-only container and printed the invite at the URL the
    // Ingress serves.
    assert!(
        stdout.contains(&format!(
            "Onboarded. Create the first admin account: https://{HOST}/invite/"
        )),
        "{stdout}"
    );
    real::settled(ns).await;

    // The Ingress's hosts are allow-listed: a request carrying one reaches the real server
    // through the Service; a Host nobody listed is refused by private mode, as upstream does.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (status, body) = loop {
        let answer = via_service(ns, HOST, "/api/health").await;
        // The proxy answers 503 until the Service's endpoint is published.
        if answer.0 != 503 || tokio::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let (status, _) = via_service(ns, "paperclip-alt.reach.test", "/api/health").await;
    assert_eq!(status, 200, "the Ingress's second host");
    let (status, body) = via_service(ns, "elsewhere.reach.test", "/api/health").await;
    assert_eq!(status, 403, "a host nobody listed: {body}");

    // The root filesystem is read-only, /tmp and the data volume are not, and the server and
    // onboarding met no read-only file system anywhere.
    let outside = real::exec_app(ns, &["touch", "/app/written"]).await;
    assert!(!outside.success, "the root filesystem took a write");
    assert!(
        outside.stderr.contains("Read-only file system"),
        "{}",
        outside.stderr
    );
    for path in ["/tmp/written", "/paperclip/instances/default/written"] {
        let ran = real::exec_app(ns, &["touch", path]).await;
        assert!(ran.success, "{path}: {}", ran.stderr);
    }
    let app = real::app_pod(ns).await;
    let log = Api::<Pod>::namespaced(Harness::shared().client().await, ns)
        .logs(
            app.metadata.name.as_deref().unwrap(),
            &LogParams {
                container: Some("paperclip".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for sign in ["EROFS", "read-only file system", "Read-only file system"] {
        assert!(!log.contains(sign), "{sign} in the app's log:\n{log}");
    }
}
