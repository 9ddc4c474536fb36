//! `WebhookRepository` and the outbox on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::webhooks =>
    endpoints_belong_to_their_team_and_keep_their_changes,
    every_applied_change_is_one_delivery_per_subscribed_enabled_endpoint,
    a_single_change_alone_is_one_delivery_per_subscribed_enabled_endpoint,
    single_writes_arriving_together_keep_every_rule_of_a_write_alone,
    claims_are_leased_retried_on_time_dead_after_the_last_and_replayable,
    a_gone_endpoint_is_disabled_and_its_deliveries_wait_for_it,
    a_rotated_secret_signs_beside_the_new_one_until_it_expires,
    timeouts_are_told_as_status_changes,
    concurrent_claimers_never_share_a_delivery,
);
