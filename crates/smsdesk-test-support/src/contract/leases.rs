//! The `leases` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

const LEASE: Duration = Duration::from_secs(30);

pub async fn of_ten_concurrent_takers_exactly_one_holds_the_lease(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let takers: Vec<_> = (0..10)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .acquire("cleanup", &format!("replica-{n}"), at(0), LEASE)
                    .await
            })
        })
        .collect();
    let granted = futures::future::join_all(takers)
        .await
        .into_iter()
        .filter(|taken| matches!(taken, Ok(Ok(true))))
        .count();
    assert_eq!(granted, 1, "one holder");
    assert_eq!(
        store.acquire("retention", "replica-3", at(0), LEASE).await,
        Ok(true),
        "another job's lease is another lease"
    );
}

pub async fn the_holder_renews_and_another_takes_over_only_once_it_has_expired(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    assert_eq!(store.acquire("cleanup", "a", at(0), LEASE).await, Ok(true));
    assert_eq!(
        store.acquire("cleanup", "b", at(29), LEASE).await,
        Ok(false),
        "held until it expires"
    );
    assert_eq!(
        store.acquire("cleanup", "a", at(20), LEASE).await,
        Ok(true),
        "the holder renews (now until 50)"
    );
    assert_eq!(
        store.acquire("cleanup", "b", at(49), LEASE).await,
        Ok(false),
        "the renewal counts"
    );
    assert_eq!(
        store.acquire("cleanup", "b", at(50), LEASE).await,
        Ok(true),
        "a dead holder's lease is taken over once it has expired"
    );
    assert_eq!(
        store.acquire("cleanup", "a", at(51), LEASE).await,
        Ok(false),
        "and the old holder has lost it"
    );
    store.release("cleanup", "a").await.expect("released");
    assert_eq!(
        store.acquire("cleanup", "a", at(52), LEASE).await,
        Ok(false),
        "only the holder can give it back"
    );
    store.release("cleanup", "b").await.expect("released");
    assert_eq!(
        store.acquire("cleanup", "a", at(52), LEASE).await,
        Ok(true),
        "a lease given back is free at once"
    );
}
