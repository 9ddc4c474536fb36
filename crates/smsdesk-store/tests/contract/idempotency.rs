//! `IdempotencyStore` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::idempotency =>
    a_key_is_claimed_then_answers_with_its_message_and_refuses_another_request,
    a_released_or_abandoned_claim_can_be_claimed_again,
    of_ten_concurrent_requests_with_one_key_exactly_one_claims_it,
);
