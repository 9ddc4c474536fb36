//! `UnfinishedMessages` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::reconcile =>
    unfinished_teams_are_counted_in_the_range_oldest_first,
    find_many_reads_the_teams_messages_among_the_sids_only,
);
