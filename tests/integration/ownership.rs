//! Objects paperclipctl did not create are never taken over: a secret store of the profile's
//! name is refused by preflight, any other object of a rendered name stops the install, and
//! both are left exactly as they were.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::harness::Harness;
use crate::install::{LLM_KEY, install, setup, text};

#[tokio::test]
async fn a_store_or_secret_of_a_rendered_name_that_someone_else_made_is_left_alone() {
    let h = Harness::shared();
    let setup = setup("ownership", None).await;
    let ns = setup.namespace.as_str();
    let client = h.client().await;

    // Another app's store of the same name.
    let gvk = GroupVersionKind::gvk("external-secrets.io", "v1", "SecretStore");
    let stores = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "secretstores"),
    );
    let theirs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "paperclip-infisical", "labels": {"app": "theirs"}},
        "spec": {"provider": {"fake": {"data": []}}},
    }))
    .unwrap();
    stores
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let refused = install(
        &setup,
        &["--timeout", "60s"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "SecretStore paperclip-infisical in {ns} exists and was not created by paperclipctl"
        )),
        "{stderr}"
    );
    let store = stores.get("paperclip-infisical").await.unwrap();
    assert_eq!(
        store.metadata.labels,
        Some(BTreeMap::from([("app".to_string(), "theirs".to_string())]))
    );
    assert!(
        store.data["spec"]["provider"]["fake"].is_object(),
        "{store:?}"
    );
    stores
        .delete("paperclip-infisical", &Default::default())
        .await
        .unwrap();

    // Someone else's Secret of the database password's name.
    let secrets = Api::<Secret>::namespaced(client, ns);
    let password = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("paperclip-db-postgresql".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_string(),
            ByteString(b"their-password".to_vec()),
        )])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &password)
        .await
        .unwrap();
    let stopped = install(
        &setup,
        &["--timeout", "60s"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    let stderr = text(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Secret/paperclip-db-postgresql in {ns} exists and was not created by paperclipctl"
        )),
        "{stderr}"
    );
    let after = secrets.get("paperclip-db-postgresql").await.unwrap();
    assert_eq!(after.metadata.labels, None, "not labelled as ours");
    assert_eq!(
        after.data.unwrap()["password"].0,
        b"their-password",
        "not rewritten"
    );
}
