//! The `ApiKeyRepository` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::api_keys =>
    a_key_is_issued_listed_without_its_secret_and_revoked_once,
    another_teams_keys_are_invisible_and_cannot_be_revoked,
);
