//! Pieces of pod specs shared by the database and the app.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, PersistentVolumeClaim, PersistentVolumeClaimSpec, ResourceRequirements,
    SecretKeySelector, Toleration, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::profile::Profile;
use crate::profile::model::{AccessMode, Placement, ResourceList, Resources, Volume};

pub fn resources(r: &Resources) -> ResourceRequirements {
    let list = |l: &ResourceList| {
        let mut map = BTreeMap::new();
        if let Some(cpu) = &l.cpu {
            map.insert("cpu".to_string(), Quantity(cpu.to_string()));
        }
        if let Some(memory) = &l.memory {
            map.insert("memory".to_string(), Quantity(memory.to_string()));
        }
        (!map.is_empty()).then_some(map)
    };
    ResourceRequirements {
        requests: list(&r.requests),
        limits: list(&r.limits),
        ..Default::default()
    }
}

/// Requests and limits fixed by paperclipctl (for sidecars the profile does not size).
pub fn fixed_resources(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ResourceRequirements {
    let list = |items: &[(&str, &str)]| {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect::<BTreeMap<_, _>>()
    };
    ResourceRequirements {
        requests: Some(list(requests)),
        limits: Some(list(limits)),
        ..Default::default()
    }
}

pub fn node_selector(p: &Placement) -> Option<BTreeMap<String, String>> {
    (!p.node_selector.is_empty()).then(|| p.node_selector.clone())
}

pub fn tolerations(p: &Placement) -> Option<Vec<Toleration>> {
    let tolerations: Vec<Toleration> = p
        .tolerations
        .iter()
        .map(|t| Toleration {
            key: Some(t.key.clone()),
            operator: Some(format!("{:?}", t.operator)),
            value: t.value.clone(),
            effect: t.effect.map(|e| format!("{e:?}")),
            ..Default::default()
        })
        .collect();
    (!tolerations.is_empty()).then_some(tolerations)
}

pub fn access_mode(mode: AccessMode) -> String {
    format!("{mode:?}")
}

pub fn claim_spec(profile: &Profile, volume: &Volume) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec![access_mode(volume.access_mode)]),
        storage_class_name: profile.storage.class_name.as_ref().map(ToString::to_string),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity(volume.size.to_string()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn claim(profile: &Profile, metadata: ObjectMeta, volume: &Volume) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata,
        spec: Some(claim_spec(profile, volume)),
        ..Default::default()
    }
}

pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

pub fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
