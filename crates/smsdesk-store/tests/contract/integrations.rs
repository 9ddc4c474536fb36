//! The `IntegrationRepository` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::integrations =>
    integrations_round_trip_and_an_account_belongs_to_one_team,
);
