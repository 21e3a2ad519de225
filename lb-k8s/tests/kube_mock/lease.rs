//! Scenarios of the Lease `Elector`: create, renew, take over, conflicts, release.

use super::*;

/// No Lease: it is created with us as holder, transitions 0, acquire and renew time = the
/// wall time given; we lead until the renew deadline (2/3 of 15 s) passes.
pub(super) async fn lease_created_when_missing(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut elector = Elector::new(client, lease_settings("a"));
    let now = Instant::now();
    let round = drive(elector.round(wall(WALL), now), async {
        api.expect_get(LEASE).await.fail(404, "NotFound");
        let (seen, reply) = api.expect_create(LEASES).await;
        assert_eq!(
            seen.body,
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "lb-k8s-controller", "namespace": NS},
                "spec": {
                    "holderIdentity": "a",
                    "leaseDurationSeconds": 15,
                    "acquireTime": WALL,
                    "renewTime": WALL,
                    "leaseTransitions": 0,
                },
            })
        );
        reply.created(&stored(&seen.body, "1"));
    })
    .await
    .unwrap();
    assert_eq!(round, Round::Leader);
    assert!(elector.is_leader(now));
    assert!(elector.is_leader(now + Duration::from_millis(9_999)));
    assert!(!elector.is_leader(now + Duration::from_secs(10)));
}

/// Held by us: replaced (PUT) with the resourceVersion read, a new renew time, acquire
/// time and transitions unchanged.
pub(super) async fn lease_renewed_by_its_holder(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut elector = Elector::new(client, lease_settings("a"));
    let now = Instant::now();
    let current = lease_json(Some("a"), "2024-05-06T07:08:04.000000Z", 3, "7");
    let round = drive(elector.round(wall(WALL), now), async {
        api.expect_get(LEASE).await.ok(&current);
        let (seen, reply) = api.expect_replace(LEASE).await;
        let mut want = current.clone();
        want["spec"]["renewTime"] = json!(WALL);
        assert_eq!(seen.body, want);
        reply.ok(&stored(&seen.body, "8"));
    })
    .await
    .unwrap();
    assert_eq!(round, Round::Leader);
    assert!(elector.is_leader(now + Duration::from_secs(9)));
}

/// Held by b, freshly renewed: we follow without writing, even when b's renew time is far
/// in the past by our wall clock (skew); the same record seen unchanged for a whole lease
/// duration on our clock is taken over (holder a, transitions + 1).
pub(super) async fn lease_taken_over_after_a_duration_unchanged(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut elector = Elector::new(client, lease_settings("a"));
    let now = Instant::now();
    // b's clock is an hour behind ours.
    let b = lease_json(Some("b"), "2024-05-06T06:08:00.000000Z", 2, "20");
    for offset in [0, 14] {
        let round = drive(
            elector.round(wall(WALL), now + Duration::from_secs(offset)),
            async {
                api.expect_get(LEASE).await.ok(&b);
            },
        )
        .await
        .unwrap();
        assert_eq!(round, Round::Follower, "after {offset} s");
        assert!(!elector.is_leader(now + Duration::from_secs(offset)));
    }
    let later = now + Duration::from_secs(16);
    let round = drive(elector.round(wall(WALL_LATER), later), async {
        api.expect_get(LEASE).await.ok(&b);
        let (seen, reply) = api.expect_replace(LEASE).await;
        let mut want = b.clone();
        want["spec"]["holderIdentity"] = json!("a");
        want["spec"]["acquireTime"] = json!(WALL_LATER);
        want["spec"]["renewTime"] = json!(WALL_LATER);
        want["spec"]["leaseTransitions"] = json!(3);
        assert_eq!(seen.body, want);
        reply.ok(&stored(&seen.body, "21"));
    })
    .await
    .unwrap();
    assert_eq!(round, Round::Leader);
    assert!(elector.is_leader(later));
}

/// Held by b, who keeps renewing: every change restarts our count, so we never take over
/// while b is alive, and do one duration after its last renewal.
pub(super) async fn lease_of_a_renewing_holder_is_not_taken(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut elector = Elector::new(client, lease_settings("a"));
    let now = Instant::now();
    let first = lease_json(Some("b"), "2024-05-06T07:08:00.000000Z", 0, "30");
    let renewed = lease_json(Some("b"), "2024-05-06T07:08:10.000000Z", 0, "31");
    for (offset, seen_lease) in [(0, &first), (10, &renewed), (16, &renewed), (24, &renewed)] {
        let round = drive(
            elector.round(wall(WALL), now + Duration::from_secs(offset)),
            async {
                api.expect_get(LEASE).await.ok(seen_lease);
            },
        )
        .await
        .unwrap();
        assert_eq!(round, Round::Follower, "after {offset} s");
    }
    let round = drive(
        elector.round(wall(WALL), now + Duration::from_secs(25)),
        async {
            api.expect_get(LEASE).await.ok(&renewed);
            let (seen, reply) = api.expect_replace(LEASE).await;
            assert_eq!(seen.body["spec"]["holderIdentity"], "a");
            assert_eq!(seen.body["spec"]["leaseTransitions"], 1);
            assert_eq!(seen.body["metadata"]["resourceVersion"], "31");
            reply.ok(&stored(&seen.body, "32"));
        },
    )
    .await
    .unwrap();
    assert_eq!(round, Round::Leader);
}

/// A released Lease (no holder) is taken over at once.
pub(super) async fn lease_released_is_taken_at_once(log: &Log) {
    // Released by us (holder absent) or by client-go (holder "").
    for holder in [None, Some("")] {
        let (client, mut api) = mock_client(log);
        let mut elector = Elector::new(client, lease_settings("a"));
        let released = lease_json(holder, "2024-05-06T07:08:00.000000Z", 4, "40");
        let round = drive(elector.round(wall(WALL), Instant::now()), async {
            api.expect_get(LEASE).await.ok(&released);
            let (seen, reply) = api.expect_replace(LEASE).await;
            let mut want = released.clone();
            want["spec"]["holderIdentity"] = json!("a");
            want["spec"]["acquireTime"] = json!(WALL);
            want["spec"]["renewTime"] = json!(WALL);
            want["spec"]["leaseTransitions"] = json!(5);
            assert_eq!(seen.body, want, "holder {holder:?}");
            reply.ok(&stored(&seen.body, "41"));
        })
        .await
        .unwrap();
        assert_eq!(round, Round::Leader, "holder {holder:?}");
    }
}

/// Losing the race (409 on the PUT or on the create) makes us a follower, not an error;
/// other failures are errors.
pub(super) async fn lease_conflict_is_follower(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut elector = Elector::new(client, lease_settings("a"));
    let now = Instant::now();
    let mine = lease_json(Some("a"), "2024-05-06T07:08:04.000000Z", 0, "7");
    let round = drive(elector.round(wall(WALL), now), async {
        api.expect_get(LEASE).await.ok(&mine);
        api.expect_replace(LEASE).await.1.fail(409, "Conflict");
    })
    .await
    .unwrap();
    assert_eq!(round, Round::Follower);
    assert!(!elector.is_leader(now));
    let round = drive(elector.round(wall(WALL), now), async {
        api.expect_get(LEASE).await.fail(404, "NotFound");
        api.expect_create(LEASES).await.1.fail(409, "AlreadyExists");
    })
    .await
    .unwrap();
    assert_eq!(round, Round::Follower);
    let result = drive(elector.round(wall(WALL), now), async {
        api.expect_get(LEASE).await.fail(500, "InternalError");
    })
    .await;
    assert_api_error(&result, 500);
}

/// `release` as holder: GET, then PUT without holder, duration 1 s, renew time = wall,
/// with the resourceVersion read. Afterwards (not leading any more) and for a replica that
/// never led: no request at all.
pub(super) async fn lease_release(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut elector = Elector::new(client, lease_settings("a"));
    let now = Instant::now();
    drive(elector.round(wall(WALL), now), async {
        api.expect_get(LEASE).await.fail(404, "NotFound");
        let (seen, reply) = api.expect_create(LEASES).await;
        reply.created(&stored(&seen.body, "1"));
    })
    .await
    .unwrap();
    let held = lease_json(Some("a"), WALL, 0, "9");
    drive(elector.release(wall(WALL_LATER)), async {
        api.expect_get(LEASE).await.ok(&held);
        let (seen, reply) = api.expect_replace(LEASE).await;
        let mut want = held.clone();
        want["spec"]
            .as_object_mut()
            .unwrap()
            .remove("holderIdentity");
        want["spec"]["leaseDurationSeconds"] = json!(1);
        want["spec"]["renewTime"] = json!(WALL_LATER);
        assert_eq!(seen.body, want);
        reply.ok(&stored(&seen.body, "10"));
    })
    .await
    .unwrap();
    assert!(!elector.is_leader(now));
    drive(elector.release(wall(WALL_LATER)), async {})
        .await
        .unwrap();
    let (client, mut other_api) = mock_client(log);
    let mut never = Elector::new(client, lease_settings("b"));
    drive(never.release(wall(WALL_LATER)), async {})
        .await
        .unwrap();
    api.assert_quiet().await;
    other_api.assert_quiet().await;
}

/// `release` when someone else took the Lease meanwhile: GET only, nothing written.
pub(super) async fn lease_release_after_losing_it_writes_nothing(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut elector = Elector::new(client, lease_settings("a"));
    drive(elector.round(wall(WALL), Instant::now()), async {
        api.expect_get(LEASE).await.fail(404, "NotFound");
        let (seen, reply) = api.expect_create(LEASES).await;
        reply.created(&stored(&seen.body, "1"));
    })
    .await
    .unwrap();
    drive(elector.release(wall(WALL_LATER)), async {
        api.expect_get(LEASE)
            .await
            .ok(&lease_json(Some("b"), WALL_LATER, 1, "12"));
    })
    .await
    .unwrap();
    api.assert_quiet().await;
}
