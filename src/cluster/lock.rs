//! The release lock: a `coordination.k8s.io` Lease held while a run changes the release, renewed
//! by a heartbeat, so two runs never interleave and a killed run's lock expires by itself.
//!
//! Every write of the Lease carries the uid and resourceVersion this run last saw, so a run that
//! slept past its lease (a laptop's lid closed) cannot renew or delete a Lease another run took
//! over meanwhile. Such a run has lost the lock: [`ensure_held`] fails from then on, and the
//! writes that go through it (every applied object, every release record) stop with a message
//! that says so.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::task::JoinHandle;

use super::api_error;
use crate::error::{Error, Result};

pub const LEASE_NAME: &str = "paperclipctl-lock";
/// A lock not renewed for this long belongs to a dead run and may be taken over.
const LEASE_SECONDS: i32 = 30;
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A write after this long without a successful renewal renews first, to learn whether the lock
/// is still this run's (the heartbeat may not have run: a suspended machine).
const STALE: Duration = Duration::from_secs(15);

/// The lock this process holds, if any: writes check it before they go out, so every write path
/// is fenced without the lock being handed through each of them.
static HELD: Mutex<Option<Arc<Held>>> = Mutex::new(None);

/// A held lock; dropping it stops the heartbeat, `release` also gives the Lease up.
pub struct Lock {
    held: Arc<Held>,
    heartbeat: JoinHandle<()>,
}

struct Held {
    api: Api<Lease>,
    namespace: String,
    me: String,
    /// The Lease as this run last wrote it: its uid and resourceVersion fence the next write.
    lease: Mutex<Lease>,
    renewed: Mutex<Instant>,
    /// Why the lock is no longer this run's, once it is not.
    lost: Mutex<Option<String>>,
    /// Woken when the heartbeat finds the lock lost, for [`Lock::lost`].
    heartbeat_lost: tokio::sync::Notify,
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
        let lease = written.map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 409 => Error::cluster(
                "another paperclipctl run took the release lock at the same moment",
                "run the command again once that run has finished",
            ),
            _ => api_error(e, "write", "leases", Some(namespace)),
        })?;
        let held = Arc::new(Held {
            api,
            namespace: namespace.to_string(),
            me,
            lease: Mutex::new(lease),
            renewed: Mutex::new(Instant::now()),
            lost: Mutex::new(None),
            heartbeat_lost: tokio::sync::Notify::new(),
        });
        *HELD.lock().expect("the lock state is never poisoned") = Some(held.clone());
        let heartbeat = tokio::spawn(beat(held.clone()));
        Ok(Lock { held, heartbeat })
    }

    /// Fails like `acquire` when a live run holds the lock, without taking it: for checks before
    /// the first write (such as secrets in Infisical) of a run that takes the lock later.
    pub async fn check_free(client: &kube::Client, namespace: &str) -> Result<()> {
        let api = Api::<Lease>::namespaced(client.clone(), namespace);
        unheld(&api, namespace).await.map(|_| ())
    }

    /// Resolves, with why, once the heartbeat finds that this run lost the lock (never, while
    /// it holds it): the holder tells the user then, rather than at its next write.
    pub async fn lost(&self) -> String {
        self.held.heartbeat_lost.notified().await;
        lost(&self.held).unwrap_or_default()
    }

    /// Gives the lock up at once (an unreleased lock expires after its duration anyway). Only
    /// the Lease this run last wrote is deleted: one another run took over stays.
    pub async fn release(self) {
        self.heartbeat.abort();
        forget(&self.held);
        if lost(&self.held).is_some() {
            return;
        }
        let lease = self.held.lease.lock().expect("never poisoned").clone();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: lease.metadata.uid,
                resource_version: lease.metadata.resource_version,
            }),
            ..Default::default()
        };
        let _ = self.held.api.delete(LEASE_NAME, &params).await;
    }
}

/// Fails when this process took the release lock and has lost it since; call before a write
/// to the release. Renews first when the heartbeat has not renewed for a while.
pub async fn ensure_held() -> Result<()> {
    let held = HELD.lock().expect("never poisoned").clone();
    let Some(held) = held else {
        return Ok(());
    };
    let stale = held.renewed.lock().expect("never poisoned").elapsed() > STALE;
    if stale && lost(&held).is_none() {
        renew(&held).await;
    }
    match lost(&held) {
        None => Ok(()),
        Some(why) => Err(Error::cluster(
            format!(
                "this run lost the release lock ({why}), so it stopped before writing more to \
                 namespace {}",
                held.namespace
            ),
            "another run now changes the release: let it finish, check `paperclipctl status`, \
             then run this command again",
        )),
    }
}

fn lost(held: &Held) -> Option<String> {
    held.lost.lock().expect("never poisoned").clone()
}

fn forget(held: &Arc<Held>) {
    let mut current = HELD.lock().expect("never poisoned");
    if current.as_ref().is_some_and(|h| Arc::ptr_eq(h, held)) {
        *current = None;
    }
}

/// Renews once, with this run's last resourceVersion as the precondition. A conflict means the
/// Lease changed: still ours (its holder is this run) it is renewed from what is there now;
/// otherwise the lock is lost. Other failures wait for the next beat.
async fn renew(held: &Held) {
    for _ in 0..2 {
        let mut lease = held.lease.lock().expect("never poisoned").clone();
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(now());
        }
        match held
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                *held.lease.lock().expect("never poisoned") = written;
                *held.renewed.lock().expect("never poisoned") = Instant::now();
                return;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                *held.lost.lock().expect("never poisoned") = Some("its Lease was deleted".into());
                return;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let Ok(current) = held.api.get(LEASE_NAME).await else {
                    return;
                };
                let holder = current
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default();
                let same = current.metadata.uid == lease.metadata.uid;
                if holder != held.me || !same {
                    *held.lost.lock().expect("never poisoned") =
                        Some(format!("{holder} took it over"));
                    return;
                }
                *held.lease.lock().expect("never poisoned") = current;
            }
            Err(_) => return,
        }
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

/// Renews the lease until aborted or lost.
async fn beat(held: Arc<Held>) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.tick().await;
    loop {
        beat.tick().await;
        renew(&held).await;
        if lost(&held).is_some() {
            held.heartbeat_lost.notify_one();
            return;
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.heartbeat.abort();
        forget(&self.held);
    }
}
