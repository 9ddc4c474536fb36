//! The domain's in-memory fake (`fakes::InMemoryStore`) against the storage ports' contract: the
//! same cases `smsdesk-store` passes on SQLite and PostgreSQL, so tests that use the fake rely on
//! the behaviour production has.

use smsdesk_test_support::contract::{self, InMemorySubject};

macro_rules! on_the_fake {
    ($($port:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                contract::$port::$case(&InMemorySubject::new()).await;
            }
        )*
    };
}

on_the_fake!(
    messages::a_stored_message_reads_back_with_its_first_event_and_a_duplicate_sid_is_refused,
    messages::another_teams_rows_are_invisible_and_untouchable_through_every_method,
    messages::observations_are_applied_conditionally_and_recorded_in_order,
    messages::of_two_concurrent_writers_from_the_same_status_exactly_one_wins,
    messages::of_two_writers_enriching_the_same_status_from_one_read_exactly_one_wins,
    messages::two_batches_over_the_same_messages_in_opposite_orders_both_finish,
    messages::bulk_candidates_are_the_windows_outbound_unfinished_messages_newest_first_at_most_100,
    messages::listing_filters_and_pages_without_gaps_or_repeats,
    messages::references_are_stored_and_every_list_filter_combines,
    messages::status_counts_cover_the_teams_messages_created_in_the_window_by_current_status,
    messages::find_with_observed_reads_the_message_and_whether_its_history_holds_a_source_and_status,
    messages::reads_arriving_together_answer_as_each_read_alone,
    messages::forty_concurrent_status_writes_keep_the_outcomes_of_a_serial_order,
    limiter::a_cooldown_is_claimed_by_exactly_one_of_twenty_concurrent_claimers,
    limiter::message_claims_answer_in_order_with_the_time_left,
    limiter::claims_and_status_writes_arriving_together_keep_the_outcomes_of_a_serial_order,
    limiter::a_claim_with_its_read_answers_as_a_read_beside_a_claim,
    integrations::integrations_round_trip_and_an_account_belongs_to_one_team,
    inbox::a_parked_callback_is_taken_back_with_every_field_oldest_first,
    inbox::parking_the_same_sid_and_status_twice_keeps_one,
    inbox::another_team_cannot_take_a_teams_parked_callbacks,
    inbox::taking_removes_what_was_parked,
    inbox::parked_callbacks_older_than_the_cutoff_are_discarded_and_counted,
    inbox::two_concurrent_takers_receive_each_parked_callback_exactly_once,
    api_keys::a_key_is_issued_listed_without_its_secret_and_revoked_once,
    api_keys::another_teams_keys_are_invisible_and_cannot_be_revoked,
    leases::of_ten_concurrent_takers_exactly_one_holds_the_lease,
    leases::the_holder_renews_and_another_takes_over_only_once_it_has_expired,
    replicas::the_live_count_follows_heartbeats_expiry_and_leaving,
    retention::old_messages_are_redacted_in_batches_once_and_keep_their_history,
    change_log::applied_changes_are_read_in_order_with_their_team_state_and_source,
    change_log::an_event_id_resolves_to_its_position_for_its_own_team_only,
    change_log::a_reader_following_concurrent_writers_misses_no_change,
    idempotency::a_key_is_claimed_then_answers_with_its_message_and_refuses_another_request,
    idempotency::a_released_or_abandoned_claim_can_be_claimed_again,
    idempotency::of_ten_concurrent_requests_with_one_key_exactly_one_claims_it,
    webhooks::endpoints_belong_to_their_team_and_keep_their_changes,
    webhooks::every_applied_change_is_one_delivery_per_subscribed_enabled_endpoint,
    webhooks::a_single_change_alone_is_one_delivery_per_subscribed_enabled_endpoint,
    webhooks::single_writes_arriving_together_keep_every_rule_of_a_write_alone,
    webhooks::claims_are_leased_retried_on_time_dead_after_the_last_and_replayable,
    webhooks::a_gone_endpoint_is_disabled_and_its_deliveries_wait_for_it,
    webhooks::a_rotated_secret_signs_beside_the_new_one_until_it_expires,
    webhooks::timeouts_are_told_as_status_changes,
    webhooks::concurrent_claimers_never_share_a_delivery,
    reconcile::unfinished_teams_are_counted_in_the_range_oldest_first,
    reconcile::find_many_reads_the_teams_messages_among_the_sids_only,
    reconcile::stuck_messages_are_declared_once_with_a_history_row_and_a_late_change_clears_them,
    reconcile::concurrent_timeout_runs_declare_each_message_once,
    retention::without_masking_the_numbers_stay_and_concurrent_runs_redact_each_message_once,
);
