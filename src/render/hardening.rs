//! Settings every pod of the release gets without a profile asking, so a compromised process
//! can do as little as possible beyond its own files:
//!
//! - no service-account token mounted unless the profile asks (`app.serviceAccountToken`):
//!   neither Paperclip, its database nor the shell sidecar talks to the Kubernetes API, and an
//!   SSH-reachable sidecar must not hold a token nobody asked for;
//! - the runtime's default seccomp profile, non-root users, no privilege escalation, and every
//!   Linux capability dropped (the app listens on 3100, the database on 5432 and sshd on 2222:
//!   none needs one).
//!
//! The app's and the shell sidecar's read-only roots (`app.readOnlyRootFilesystem`,
//! `shell.readOnlyRootFilesystem`) are rendered with their containers, which add the writable
//! directories each needs. The database containers keep writable roots: both PostgreSQL images
//! write sockets, configuration and runtime files outside the data volume.

use k8s_openapi::api::core::v1::{Capabilities, PodSpec, SeccompProfile, SecurityContext};

use super::Object;

/// Hardens the pod template of a workload; other objects are left as they are.
pub fn apply(object: &mut Object) {
    let spec = match object {
        Object::Deployment(d) => d.spec.as_mut().and_then(|s| s.template.spec.as_mut()),
        Object::StatefulSet(s) => s.spec.as_mut().and_then(|s| s.template.spec.as_mut()),
        _ => None,
    };
    if let Some(spec) = spec {
        pod(spec);
    }
}

fn pod(spec: &mut PodSpec) {
    // A pod the profile gave a token keeps it; every other pod has none.
    spec.automount_service_account_token.get_or_insert(false);
    let context = spec.security_context.get_or_insert_with(Default::default);
    context.run_as_non_root = Some(true);
    context.seccomp_profile = Some(SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    });
    let containers = spec.containers.iter_mut();
    for container in containers.chain(spec.init_containers.iter_mut().flatten()) {
        harden_container(
            container
                .security_context
                .get_or_insert_with(Default::default),
        );
    }
}

fn harden_container(context: &mut SecurityContext) {
    context.run_as_non_root = Some(true);
    context.allow_privilege_escalation = Some(false);
    context.privileged = None;
    context.capabilities = Some(Capabilities {
        drop: Some(vec!["ALL".into()]),
        add: None,
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_container_of_every_workload_is_hardened() {
        for (name, _) in crate::profile::BUILTIN {
            let release = super::super::render(&crate::profile::load(name, &[]).unwrap().profile);
            for object in release.objects() {
                let Some(spec) = object.pod_spec() else {
                    continue;
                };
                let id = object.id();
                assert_eq!(spec.automount_service_account_token, Some(false), "{id}");
                let pod = spec.security_context.as_ref().unwrap();
                assert_eq!(
                    pod.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
                    Some("RuntimeDefault"),
                    "{id}"
                );
                for c in &spec.containers {
                    let sc = c.security_context.as_ref().unwrap();
                    assert_eq!(
                        sc.allow_privilege_escalation,
                        Some(false),
                        "{id} {}",
                        c.name
                    );
                    assert_eq!(sc.run_as_non_root, Some(true), "{id} {}", c.name);
                    let caps = sc.capabilities.as_ref().unwrap();
                    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
                }
            }
        }
    }
}
