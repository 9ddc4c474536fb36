//! The `MessageRepository` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::messages =>
    a_stored_message_reads_back_with_its_first_event_and_a_duplicate_sid_is_refused,
    another_teams_rows_are_invisible_and_untouchable_through_every_method,
    observations_are_applied_conditionally_and_recorded_in_order,
    of_two_concurrent_writers_from_the_same_status_exactly_one_wins,
    of_two_writers_enriching_the_same_status_from_one_read_exactly_one_wins,
    two_batches_over_the_same_messages_in_opposite_orders_both_finish,
    bulk_candidates_are_the_windows_outbound_unfinished_messages_newest_first_at_most_100,
    listing_filters_and_pages_without_gaps_or_repeats,
    references_are_stored_and_every_list_filter_combines,
    status_counts_cover_the_teams_messages_created_in_the_window_by_current_status,
    find_with_observed_reads_the_message_and_whether_its_history_holds_a_source_and_status,
    reads_arriving_together_answer_as_each_read_alone,
    forty_concurrent_status_writes_keep_the_outcomes_of_a_serial_order,
);
