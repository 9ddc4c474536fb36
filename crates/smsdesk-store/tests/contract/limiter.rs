//! The `RefreshLimiter` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::limiter =>
    a_cooldown_is_claimed_by_exactly_one_of_twenty_concurrent_claimers,
    message_claims_answer_in_order_with_the_time_left,
);
