//! `ReplicaRegistry` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::replicas =>
    the_live_count_follows_heartbeats_expiry_and_leaving,
);
