//! The `api_keys` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

pub async fn a_key_is_issued_listed_without_its_secret_and_revoked_once(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let ada = subject.new_user(a).await;
    let label = ApiKeyLabel::parse("CI deploys").expect("label");
    let issued = store
        .issue_key(a, ada, Some(label.clone()))
        .await
        .expect("issued");
    let key = issued.key.expose_secret().to_owned();
    assert!(
        key.starts_with(&format!("smsd_{}_", issued.summary.id)),
        "the key carries its id: {}",
        issued.summary.id
    );
    assert_eq!(issued.summary.label, Some(label));
    assert_eq!(issued.summary.user_id, ada);
    assert_eq!(
        store.list_keys(a).await.expect("listed"),
        vec![issued.summary.clone()],
        "listed as issued"
    );

    let first = store
        .revoke_key(a, &issued.summary.id, at(100))
        .await
        .expect("revoked")
        .expect("the team's key");
    assert_eq!(first.revoked_at, Some(at(100)));
    let again = store
        .revoke_key(a, &issued.summary.id, at(200))
        .await
        .expect("revoked")
        .expect("the team's key");
    assert_eq!(
        again.revoked_at,
        Some(at(100)),
        "a second revocation keeps the first time"
    );
    assert_eq!(
        store
            .revoke_key(a, &ApiKeyId::parse("zzzzzzzz").expect("id"), at(100))
            .await,
        Ok(None),
        "an unknown id is none"
    );
}

pub async fn another_teams_keys_are_invisible_and_cannot_be_revoked(subject: &dyn ContractSubject) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let ada = subject.new_user(a).await;
    let bea = subject.new_user(b).await;
    let ours = store.issue_key(a, ada, None).await.expect("issued");
    let theirs = store.issue_key(b, bea, None).await.expect("issued");
    assert_eq!(
        store.list_keys(a).await.expect("listed"),
        vec![ours.summary.clone()]
    );
    assert_eq!(
        store.revoke_key(a, &theirs.summary.id, at(5)).await,
        Ok(None),
        "team A cannot revoke team B's key"
    );
    assert_eq!(
        store.list_keys(b).await.expect("listed")[0].revoked_at,
        None,
        "and it is untouched"
    );
}
