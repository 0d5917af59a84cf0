//! Wave 0: PostgreSQL as a single-replica StatefulSet, its Services, its password Secret and an
//! optional postgres-exporter sidecar.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, PersistentVolumeClaim, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, Secret, SecurityContext, Service, ServicePort, ServiceSpec,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Object;
use super::meta::{self, Component, DB_HEADLESS, DB_NAME, DB_PASSWORD_KEY};
use super::pod;
use crate::profile::Profile;
use crate::profile::model::DatabaseFlavor;

pub const PORT: i32 = 5432;
/// The postgres-exporter's port, scraped by Prometheus.
pub const METRICS_PORT: i32 = 9187;

/// What differs between the official and the Bitnami image.
struct Flavor {
    user_env: &'static str,
    password_env: &'static str,
    database_env: &'static str,
    data_path: &'static str,
    extra_env: &'static [(&'static str, &'static str)],
    uid: i64,
}

fn flavor(kind: DatabaseFlavor) -> Flavor {
    match kind {
        DatabaseFlavor::Official => Flavor {
            user_env: "POSTGRES_USER",
            password_env: "POSTGRES_PASSWORD",
            database_env: "POSTGRES_DB",
            data_path: "/var/lib/postgresql/data",
            // A subdirectory: the volume's root may hold lost+found, which initdb refuses.
            extra_env: &[("PGDATA", "/var/lib/postgresql/data/pgdata")],
            uid: 999,
        },
        DatabaseFlavor::Bitnami => Flavor {
            user_env: "POSTGRESQL_USERNAME",
            password_env: "POSTGRESQL_PASSWORD",
            database_env: "POSTGRESQL_DATABASE",
            data_path: "/bitnami/postgresql",
            extra_env: &[],
            uid: 1001,
        },
    }
}

pub fn objects(profile: &Profile) -> Vec<Object> {
    vec![
        Object::Secret(password_secret(profile)),
        Object::Service(service(profile, DB_NAME, false)),
        Object::Service(service(profile, DB_HEADLESS, true)),
        Object::StatefulSet(statefulset(profile)),
    ]
}

/// The password Secret without a value: install generates the password once, server-side, and
/// never replaces an existing one, so a re-apply cannot lock the app out of its database.
fn password_secret(profile: &Profile) -> Secret {
    let metadata = meta::object(profile, DB_NAME, Component::Database);
    let metadata = meta::annotate(metadata, meta::GENERATED_KEYS, DB_PASSWORD_KEY);
    Secret {
        metadata: meta::annotate(metadata, meta::KEEP, "true"),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

fn service(profile: &Profile, name: &str, headless: bool) -> Service {
    Service {
        metadata: meta::object(profile, name, Component::Database),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: headless.then(|| "None".into()),
            // The headless Service gives the pod a stable DNS name before it is Ready.
            publish_not_ready_addresses: headless.then_some(true),
            selector: Some(meta::selector(Component::Database)),
            ports: Some(vec![ServicePort {
                name: Some("postgresql".into()),
                port: PORT,
                target_port: Some(IntOrString::String("postgresql".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn statefulset(profile: &Profile) -> StatefulSet {
    let db = &profile.database;
    let f = flavor(db.flavor);
    let ready = |period, failures| Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "pg_isready".into(),
                "-h".into(),
                "127.0.0.1".into(),
                "-U".into(),
                db.user.to_string(),
                "-d".into(),
                db.database.to_string(),
            ]),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Default::default()
    };
    let mut env = vec![
        pod::env(f.user_env, db.user.to_string()),
        pod::env_from_secret(f.password_env, DB_NAME, DB_PASSWORD_KEY),
        pod::env(f.database_env, db.database.to_string()),
    ];
    env.extend(f.extra_env.iter().map(|(k, v)| pod::env(k, *v)));
    let mut containers = vec![Container {
        name: "postgresql".into(),
        image: Some(db.image.to_string()),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("postgresql".into()),
            container_port: PORT,
            ..Default::default()
        }]),
        readiness_probe: Some(ready(10, 6)),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(30),
            ..ready(15, 6)
        }),
        resources: Some(pod::resources(&db.resources)),
        security_context: Some(restricted(f.uid)),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: f.data_path.into(),
            ..Default::default()
        }]),
        ..Default::default()
    }];
    if let Some(metrics) = &db.metrics {
        containers.push(Container {
            name: "metrics".into(),
            image: Some(metrics.image.to_string()),
            env: Some(vec![
                pod::env(
                    "DATA_SOURCE_URI",
                    format!("127.0.0.1:{PORT}/{}?sslmode=disable", db.database),
                ),
                pod::env("DATA_SOURCE_USER", db.user.to_string()),
                pod::env_from_secret("DATA_SOURCE_PASS", DB_NAME, DB_PASSWORD_KEY),
            ]),
            ports: Some(vec![ContainerPort {
                name: Some("metrics".into()),
                container_port: METRICS_PORT,
                ..Default::default()
            }]),
            resources: Some(pod::fixed_resources(
                &[("memory", "32Mi"), ("cpu", "10m")],
                &[("memory", "128Mi")],
            )),
            security_context: Some(restricted(f.uid)),
            ..Default::default()
        });
    }
    let claim = PersistentVolumeClaim {
        metadata: meta::annotate(
            ObjectMeta {
                name: Some("data".into()),
                labels: Some(meta::labels(Component::Database)),
                ..Default::default()
            },
            meta::KEEP,
            "true",
        ),
        spec: Some(pod::claim_spec(profile, &db.persistence)),
        ..Default::default()
    };
    StatefulSet {
        metadata: meta::object(profile, DB_NAME, Component::Database),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(DB_HEADLESS.into()),
            selector: LabelSelector {
                match_labels: Some(meta::selector(Component::Database)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(meta::labels(Component::Database)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers,
                    security_context: Some(PodSecurityContext {
                        fs_group: Some(f.uid),
                        fs_group_change_policy: Some("OnRootMismatch".into()),
                        ..Default::default()
                    }),
                    node_selector: pod::node_selector(&db.placement),
                    tolerations: pod::tolerations(&db.placement),
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn restricted(uid: i64) -> SecurityContext {
    SecurityContext {
        run_as_user: Some(uid),
        run_as_non_root: Some(true),
        allow_privilege_escalation: Some(false),
        ..Default::default()
    }
}
