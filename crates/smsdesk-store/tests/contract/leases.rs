//! `Leases` on both databases.

crate::on_both_databases!(
    smsdesk_test_support::contract::leases =>
    of_ten_concurrent_takers_exactly_one_holds_the_lease,
    the_holder_renews_and_another_takes_over_only_once_it_has_expired,
);
