//! The `IdempotencyStore` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

const LOCK: Duration = Duration::from_secs(300);
const KEEP: Duration = Duration::from_secs(86_400);

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).expect("a valid key")
}

pub async fn a_key_is_claimed_then_answers_with_its_message_and_refuses_another_request(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let k = key("order-1");
    assert_eq!(
        store.claim_key(a, &k, "send x", at(0), LOCK).await,
        Ok(IdempotencyClaim::Claimed)
    );
    assert_eq!(
        store.claim_key(a, &k, "send x", at(1), LOCK).await,
        Ok(IdempotencyClaim::InProgress),
        "while the first runs"
    );
    assert_eq!(
        store.claim_key(b, &k, "send x", at(1), LOCK).await,
        Ok(IdempotencyClaim::Claimed),
        "keys are per team"
    );
    store
        .complete_key(a, &k, &sid(7), at(2), KEEP)
        .await
        .expect("completed");
    assert_eq!(
        store.claim_key(a, &k, "send x", at(3), LOCK).await,
        Ok(IdempotencyClaim::Completed(sid(7)))
    );
    assert_eq!(
        store.claim_key(a, &k, "send y", at(3), LOCK).await,
        Ok(IdempotencyClaim::Mismatch),
        "the same key for another request"
    );
    assert_eq!(
        store.claim_key(a, &k, "send y", at(2 + 86_400), LOCK).await,
        Ok(IdempotencyClaim::Claimed),
        "after 24 hours the key is free again"
    );
}

pub async fn a_released_or_abandoned_claim_can_be_claimed_again(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let k = key("retry-me");
    assert_eq!(
        store.claim_key(a, &k, "r", at(0), LOCK).await,
        Ok(IdempotencyClaim::Claimed)
    );
    store.release_key(a, &k).await.expect("released");
    assert_eq!(
        store.claim_key(a, &k, "r", at(1), LOCK).await,
        Ok(IdempotencyClaim::Claimed),
        "a failed request kept nothing"
    );
    assert_eq!(
        store.claim_key(a, &k, "r", at(299), LOCK).await,
        Ok(IdempotencyClaim::InProgress)
    );
    assert_eq!(
        store.claim_key(a, &k, "r", at(301), LOCK).await,
        Ok(IdempotencyClaim::Claimed),
        "a request that died frees its key after the lock"
    );
    store
        .complete_key(a, &k, &sid(1), at(302), KEEP)
        .await
        .expect("completed");
    store.release_key(a, &k).await.expect("released");
    assert_eq!(
        store.claim_key(a, &k, "r", at(303), LOCK).await,
        Ok(IdempotencyClaim::Completed(sid(1))),
        "a completed key is never released"
    );
}

pub async fn of_ten_concurrent_requests_with_one_key_exactly_one_claims_it(
    subject: &dyn ContractSubject,
) {
    let store = subject.ports();
    let a = team(subject, "A").await;
    let claims: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_key(a, &key("once"), "r", at(0), LOCK).await })
        })
        .collect();
    let claimed = futures::future::join_all(claims)
        .await
        .into_iter()
        .filter(|claim| matches!(claim, Ok(Ok(IdempotencyClaim::Claimed))))
        .count();
    assert_eq!(claimed, 1);
}
