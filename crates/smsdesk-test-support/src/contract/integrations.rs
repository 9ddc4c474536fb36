//! The `integrations` port's contract cases (see the parent module).

#![allow(missing_docs, reason = "each case's name is the sentence it checks")]

use super::*;

pub async fn integrations_round_trip_and_an_account_belongs_to_one_team(
    subject: &dyn ContractSubject,
) {
    let store = &subject.ports();
    let a = team(subject, "A").await;
    let b = team(subject, "B").await;
    let api_key = ApiKeySid::parse("SK0123456789abcdef0123456789abcdef").expect("valid");
    let mut with_key = integration(ACCOUNT, "token-a");
    with_key.api_key = Some((api_key.clone(), SecretString::from("key-secret".to_owned())));
    with_key.sender = Sender::MessagingService(
        MessagingServiceSid::parse("MG0123456789abcdef0123456789abcdef").expect("valid"),
    );
    store.upsert(a, with_key.clone()).await.expect("stored");

    let read = store.for_team(a).await.expect("readable").expect("present");
    assert_eq!(token_of(&read), "token-a");
    assert_eq!(read.sender, with_key.sender);
    match &read.credentials.auth {
        TwilioAuth::ApiKey { sid, secret } => {
            assert_eq!(sid, &api_key);
            assert_eq!(secret.expose_secret(), "key-secret");
        }
        TwilioAuth::AuthToken(_) => panic!("the API key is preferred when configured"),
    }
    let by_account = store
        .for_account(&account())
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(
        by_account.team_id, a,
        "webhooks route by plaintext account SID"
    );

    store
        .upsert(a, integration(ACCOUNT, "token-a2"))
        .await
        .expect("replaced");
    let replaced = store.for_team(a).await.expect("readable").expect("present");
    assert_eq!(token_of(&replaced), "token-a2");
    assert!(
        matches!(replaced.credentials.auth, TwilioAuth::AuthToken(_)),
        "API key removed"
    );

    assert!(
        matches!(
            store.upsert(b, integration(ACCOUNT, "token-b")).await,
            Err(RepositoryError::Duplicate(_))
        ),
        "one Twilio account belongs to one team"
    );
    store
        .upsert(b, integration(OTHER_ACCOUNT, "token-b"))
        .await
        .expect("own account");
    assert_eq!(
        store
            .for_team(b)
            .await
            .expect("readable")
            .map(|i| token_of(&i)),
        Some("token-b".to_owned())
    );
}
