//! The `replicas` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

const TTL: Duration = Duration::from_secs(10);

pub async fn the_live_count_follows_heartbeats_expiry_and_leaving(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    assert_eq!(store.heartbeat("a", at(0), TTL).await, Ok(1));
    assert_eq!(store.heartbeat("b", at(1), TTL).await, Ok(2));
    assert_eq!(store.heartbeat("c", at(2), TTL).await, Ok(3));
    assert_eq!(
        store.heartbeat("a", at(5), TTL).await,
        Ok(3),
        "checking in again does not count twice"
    );
    assert_eq!(store.heartbeat("b", at(9), TTL).await, Ok(3));
    assert_eq!(
        store.heartbeat("a", at(12), TTL).await,
        Ok(2),
        "c stopped checking in and dropped out once its time had passed"
    );
    store.leave("b").await.expect("left");
    assert_eq!(
        store.heartbeat("a", at(13), TTL).await,
        Ok(1),
        "a replica that leaves gives its share back at once"
    );
}
