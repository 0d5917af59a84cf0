//! Release records are deployed again only when paperclipctl wrote them: a labelled Secret
//! planted (or changed) by someone who may write Secrets in the namespace is refused by
//! `rollback`, and the image it names never reaches the Deployment.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};

use crate::backup::run;
use crate::harness::Harness;
use crate::install::{installed_real, text};

const EVIL: &str = "registry.invalid/evil:1";

fn app_image(deployment: &Deployment) -> String {
    let spec = deployment.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    pod.containers[0].image.clone().unwrap()
}

#[tokio::test]
async fn a_planted_or_changed_release_record_is_never_deployed() {
    // A real install on the real node: its record is what paperclipctl wrote for a real rollout.
    let Some(release) = installed_real("records").await else {
        return;
    };
    assert!(
        release.run.status.success(),
        "{}",
        text(&release.run.stderr)
    );
    let ns = release.setup.namespace.as_str();
    let client = Harness::shared().client().await;
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let deployments = Api::<Deployment>::namespaced(client, ns);
    let image = app_image(&deployments.get("paperclip").await.unwrap());

    let mut stored = secrets
        .list(&ListParams::default().labels("paperclipctl.io/release=paperclip"))
        .await
        .unwrap()
        .items;
    assert_eq!(stored.len(), 1);
    let mut first = stored.remove(0);
    let mut record: serde_json::Value =
        serde_json::from_slice(&first.data.as_ref().unwrap()["release"].0).unwrap();

    // A "deployed" revision 2 that runs someone else's image.
    record["revision"] = 2.into();
    record["profileDigest"] = "sha256:planted".into();
    record["applied"]["app"]["image"] = EVIL.into();
    let planted = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("paperclipctl.release.paperclip.v2".into()),
            labels: Some(BTreeMap::from(
                [
                    ("paperclipctl.io/release", "paperclip"),
                    ("paperclipctl.io/revision", "2"),
                    ("paperclipctl.io/status", "deployed"),
                    ("app.kubernetes.io/managed-by", "paperclipctl"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string())),
            )),
            ..Default::default()
        },
        type_: Some("paperclipctl.io/release.v1".into()),
        data: Some(BTreeMap::from([(
            "release".to_string(),
            ByteString(serde_json::to_vec(&record).unwrap()),
        )])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &planted)
        .await
        .unwrap();
    let refused = run(ns, &["rollback", "2"]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("revision 2's record is not trusted, so it is not deployed: no digest"),
        "{stderr}"
    );
    assert_eq!(
        app_image(&deployments.get("paperclip").await.unwrap()),
        image
    );

    // The genuine revision 1 still verifies (and already runs: nothing to change).
    let genuine = run(ns, &["rollback", "1"]).await;
    assert!(genuine.status.success(), "{}", text(&genuine.stderr));

    // Revision 1's record changed in place no longer matches its digest.
    record["revision"] = 1.into();
    first.data.as_mut().unwrap().insert(
        "release".into(),
        ByteString(serde_json::to_vec(&record).unwrap()),
    );
    secrets
        .replace(
            first.metadata.name.as_deref().unwrap(),
            &PostParams::default(),
            &first,
        )
        .await
        .unwrap();
    let changed = run(ns, &["rollback", "1"]).await;
    let stderr = text(&changed.stderr);
    assert_eq!(changed.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("revision 1's record is not trusted") && stderr.contains("differs"),
        "{stderr}"
    );
    assert_eq!(
        app_image(&deployments.get("paperclip").await.unwrap()),
        image
    );
}
