//! `ChangeLog` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::change_log =>
    applied_changes_are_read_in_order_with_their_team_state_and_source,
    an_event_id_resolves_to_its_position_for_its_own_team_only,
    a_reader_following_concurrent_writers_misses_no_change,
);
