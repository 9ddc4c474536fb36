//! The `RefreshLimiter` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::limiter =>
    a_cooldown_is_claimed_by_exactly_one_of_twenty_concurrent_claimers,
    message_claims_answer_in_order_with_the_time_left,
    claims_and_status_writes_arriving_together_keep_the_outcomes_of_a_serial_order,
    a_claim_with_its_read_answers_as_a_read_beside_a_claim,
);
