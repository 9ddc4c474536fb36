//! The `limiter` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

pub async fn a_cooldown_is_claimed_by_exactly_one_of_twenty_concurrent_claimers(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let user = subject.new_user(a).await;
    stored(
        store,
        new_message(a, 1, Direction::OutboundApi, MessageStatus::Queued, at(0)),
    )
    .await;

    let message_claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_messages(a, &[sid(1)], at(100), MINUTE).await })
        })
        .collect();
    let bulk_claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_bulk(a, user, at(100), MINUTE).await })
        })
        .collect();
    let mut granted_messages = 0;
    for claim in futures::future::join_all(message_claims).await {
        match claim.expect("joins").expect("no store error")[0] {
            CooldownClaim::Granted => granted_messages += 1,
            CooldownClaim::Denied { retry_after_secs } => {
                assert_eq!(retry_after_secs, 60, "denied at the moment of the claim");
            }
        }
    }
    let mut granted_bulk = 0;
    for claim in futures::future::join_all(bulk_claims).await {
        match claim.expect("joins").expect("no store error") {
            CooldownClaim::Granted => granted_bulk += 1,
            CooldownClaim::Denied { retry_after_secs } => assert_eq!(retry_after_secs, 60),
        }
    }
    assert_eq!(granted_messages, 1, "exactly one message claim of twenty");
    assert_eq!(granted_bulk, 1, "exactly one bulk claim of twenty");

    assert_eq!(
        store
            .find(a, &sid(1))
            .await
            .expect("readable")
            .and_then(|m| m.last_refreshed_at),
        Some(at(100)),
        "the granted claim started the cool-down"
    );
    assert_eq!(
        store.claim_bulk(a, user, at(159), MINUTE).await,
        Ok(CooldownClaim::Denied {
            retry_after_secs: 1
        })
    );
    assert_eq!(
        store.claim_bulk(a, user, at(160), MINUTE).await,
        Ok(CooldownClaim::Granted)
    );
    assert_eq!(
        store.claim_messages(a, &[sid(1)], at(160), MINUTE).await,
        Ok(vec![CooldownClaim::Granted]),
        "free again once the cool-down has passed"
    );
}

pub async fn message_claims_answer_in_order_with_the_time_left(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    for n in 1..=3 {
        stored(
            store,
            new_message(a, n, Direction::OutboundApi, MessageStatus::Queued, at(0)),
        )
        .await;
    }
    assert_eq!(
        store.claim_messages(a, &[sid(2)], at(100), MINUTE).await,
        Ok(vec![CooldownClaim::Granted])
    );
    let claims = store
        .claim_messages(a, &[sid(1), sid(2), sid(3), sid(9)], at(145), MINUTE)
        .await
        .expect("claims");
    assert_eq!(
        claims,
        vec![
            CooldownClaim::Granted,
            CooldownClaim::Denied {
                retry_after_secs: 15
            },
            CooldownClaim::Granted,
            CooldownClaim::Granted,
        ],
        "never claimed, claimed 45 s ago, never claimed, not stored"
    );
    assert_eq!(
        store.claim_messages(a, &[], at(145), MINUTE).await,
        Ok(vec![])
    );
}
