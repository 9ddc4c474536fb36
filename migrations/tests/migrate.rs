//! The migrations apply to an empty SQLite database, twice without harm, and roll back.

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use smsdesk_migrations::{
    Migrator, PARKED_CALLBACK_UNIQUE_INDEX, SMS_MESSAGE_COMPOSITE_INDEX, SMS_MESSAGE_LIST_INDEX,
};

async fn table_names(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name",
        ))
        .await
        .expect("sqlite_master is readable");
    rows.iter()
        .map(|row| row.try_get::<String>("", "name").expect("name is text"))
        .collect()
}

#[tokio::test]
async fn migrations_create_every_table_and_the_composite_index_and_are_idempotent() {
    let db = Database::connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite opens");
    Migrator::up(&db, None).await.expect("first run applies");
    Migrator::up(&db, None)
        .await
        .expect("second run is a no-op, not an error");

    let names = table_names(&db).await;
    for expected in [
        "teams",
        "users",
        "api_keys",
        "twilio_integrations",
        "sms_messages",
        "message_status_events",
        "bulk_refresh_claims",
        "parked_callbacks",
        SMS_MESSAGE_COMPOSITE_INDEX,
        SMS_MESSAGE_LIST_INDEX,
        PARKED_CALLBACK_UNIQUE_INDEX,
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} must exist after migrating, found {names:?}"
        );
    }

    Migrator::down(&db, None)
        .await
        .expect("every migration rolls back");
    let names = table_names(&db).await;
    assert!(
        !names.iter().any(|n| n == "sms_messages" || n == "teams"),
        "rolling back drops the tables, found {names:?}"
    );
}
