//! The `CallbackInbox` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::inbox =>
    a_parked_callback_is_taken_back_with_every_field_oldest_first,
    parking_the_same_sid_and_status_twice_keeps_one,
    another_team_cannot_take_a_teams_parked_callbacks,
    taking_removes_what_was_parked,
    parked_callbacks_older_than_the_cutoff_are_discarded_and_counted,
    two_concurrent_takers_receive_each_parked_callback_exactly_once,
);
