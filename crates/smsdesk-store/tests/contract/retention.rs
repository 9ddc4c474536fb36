//! `MessageRetention` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::retention =>
    old_messages_are_redacted_in_batches_once_and_keep_their_history,
    without_masking_the_numbers_stay_and_concurrent_runs_redact_each_message_once,
);
