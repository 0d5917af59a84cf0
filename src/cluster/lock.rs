//! The release lock: a `coordination.k8s.io` Lease held while a run changes the release, renewed
//! by a heartbeat, so two runs never interleave and a killed run's lock expires by itself.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use tokio::task::JoinHandle;

use super::api_error;
use crate::error::{Error, Result};

pub const LEASE_NAME: &str = "paperclipctl-lock";
/// A lock not renewed for this long belongs to a dead run and may be taken over.
const LEASE_SECONDS: i32 = 30;
const HEARTBEAT: Duration = Duration::from_secs(10);

/// A held lock; dropping it stops the heartbeat, `release` also gives the Lease up.
pub struct Lock {
    api: Api<Lease>,
    heartbeat: JoinHandle<()>,
}

fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("paperclipctl@{host}/{}", std::process::id())
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Who holds `lease` now, if its holder is alive (renewed within the lease duration).
fn live_holder(lease: &Lease) -> Option<(String, Timestamp)> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let renewed = spec.renew_time.as_ref()?.0;
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    let expires = renewed
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(duration))
        .ok()?;
    (expires > Timestamp::now()).then_some((holder, expires))
}

impl Lock {
    /// Takes the lock in `namespace`, or fails naming the run that holds it and when it expires.
    pub async fn acquire(client: &kube::Client, namespace: &str) -> Result<Lock> {
        let api = Api::<Lease>::namespaced(client.clone(), namespace);
        let me = identity();
        let spec = LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            ..Default::default()
        };
        let existing = unheld(&api, namespace).await?;
        let written = match existing {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE_NAME.into()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                api.create(&PostParams::default(), &lease).await
            }
            Some(lease) => {
                // resourceVersion makes the takeover fail if someone else took it meanwhile.
                let taken = Lease {
                    spec: Some(spec),
                    ..lease
                };
                api.replace(LEASE_NAME, &PostParams::default(), &taken)
                    .await
            }
        };
        written.map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 409 => Error::cluster(
                "another paperclipctl run took the release lock at the same moment",
                "run the command again once that run has finished",
            ),
            _ => api_error(e, "write", "leases", Some(namespace)),
        })?;
        let heartbeat = tokio::spawn(renew(api.clone(), me));
        Ok(Lock { api, heartbeat })
    }

    /// Fails like `acquire` when a live run holds the lock, without taking it: for checks before
    /// the first write (such as secrets in Infisical) of a run that takes the lock later.
    pub async fn check_free(client: &kube::Client, namespace: &str) -> Result<()> {
        let api = Api::<Lease>::namespaced(client.clone(), namespace);
        unheld(&api, namespace).await.map(|_| ())
    }

    /// Gives the lock up at once (an unreleased lock expires after its duration anyway).
    pub async fn release(self) {
        self.heartbeat.abort();
        let _ = self.api.delete(LEASE_NAME, &DeleteParams::default()).await;
    }
}

/// The lock's Lease if it exists and no live run holds it; an error naming the holder if one does.
async fn unheld(api: &Api<Lease>, namespace: &str) -> Result<Option<Lease>> {
    let existing = match api.get_opt(LEASE_NAME).await {
        Ok(lease) => lease,
        // No namespace yet: nobody can hold a lock in it.
        Err(kube::Error::Api(s)) if s.code == 404 => None,
        Err(e) => return Err(api_error(e, "get", "leases", Some(namespace))),
    };
    if let Some((holder, expires)) = existing.as_ref().and_then(live_holder) {
        return Err(Error::cluster(
            format!("another paperclipctl run holds the release lock: {holder}"),
            format!(
                "wait for it to finish; if it died, its lock expires by itself at {expires} \
                 (Lease {namespace}/{LEASE_NAME})"
            ),
        ));
    }
    Ok(existing)
}

/// Renews the lease until aborted; a failed renewal is retried on the next beat.
async fn renew(api: Api<Lease>, me: String) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.tick().await;
    loop {
        beat.tick().await;
        let Ok(mut lease) = api.get(LEASE_NAME).await else {
            continue;
        };
        let Some(spec) = lease.spec.as_mut() else {
            continue;
        };
        if spec.holder_identity.as_deref() != Some(me.as_str()) {
            return;
        }
        spec.renew_time = Some(now());
        let _ = api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await;
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}
