//! `UnfinishedMessages` and `StuckMessages` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::reconcile =>
    unfinished_teams_are_counted_in_the_range_oldest_first,
    find_many_reads_the_teams_messages_among_the_sids_only,
    stuck_messages_are_declared_once_with_a_history_row_and_a_late_change_clears_them,
    concurrent_timeout_runs_declare_each_message_once,
);
