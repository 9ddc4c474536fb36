//! Twilio's JSON, read leniently and converted to domain types at the edge.
//!
//! Every field of Twilio's message JSON is nullable, numbers sometimes arrive as strings
//! (`num_segments`, `price`) and new fields appear without notice, so the body is read as a
//! generic JSON object and each field is picked out on its own: a surprising field is dropped,
//! never fatal. Only a missing or invalid `sid` or `status` makes a message unreadable.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use smsdesk_domain::ports::{MessageListPage, ProviderMessage};
use smsdesk_domain::{AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus};

/// Reads a message body (fetch or create answer).
///
/// # Errors
/// A reason, without secrets, when the body is not a JSON object with a valid `sid` and a
/// `status`.
pub(crate) fn parse_message(body: &[u8]) -> Result<ProviderMessage, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("the body is not a JSON object".into());
    };
    message_from(&fields)
}

/// Reads a page of the Messages list: `messages` must be an array; an entry without a valid
/// `sid` or `status` is counted as unreadable and left out (the others still count), and
/// `next_page_uri` is the next page's relative URI when it is a non-empty string.
///
/// # Errors
/// A reason when the body is not a JSON object with a `messages` array.
pub(crate) fn parse_list_page(body: &[u8]) -> Result<MessageListPage, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("the body is not a JSON object".into());
    };
    let Some(Value::Array(entries)) = fields.get("messages") else {
        return Err("the page has no messages array".into());
    };
    let mut page = MessageListPage {
        next_page_uri: text(&fields, "next_page_uri").filter(|uri| !uri.trim().is_empty()),
        ..MessageListPage::default()
    };
    for entry in entries {
        match entry {
            Value::Object(message) => match message_from(message) {
                Ok(message) => page.messages.push(message),
                Err(_) => page.unreadable += 1,
            },
            _ => page.unreadable += 1,
        }
    }
    Ok(page)
}

fn message_from(fields: &Map<String, Value>) -> Result<ProviderMessage, String> {
    let sid_text = text(fields, "sid").ok_or("the message has no sid")?;
    let sid = MessageSid::parse(&sid_text).map_err(|e| e.to_string())?;
    let status = text(fields, "status").ok_or("the message has no status")?;
    let state = DeliveryState {
        status: MessageStatus::parse(&status),
        error_code: unsigned(fields, "error_code"),
        error_message: text(fields, "error_message"),
        num_segments: unsigned(fields, "num_segments"),
        price: text(fields, "price"),
        price_unit: text(fields, "price_unit"),
    };
    Ok(ProviderMessage {
        sid,
        state,
        account_sid: text(fields, "account_sid").and_then(|s| AccountSid::parse(&s).ok()),
        direction: text(fields, "direction").and_then(|s| Direction::parse(&s).ok()),
        from: text(fields, "from").and_then(|s| Address::parse(&s).ok()),
        to: text(fields, "to").and_then(|s| Address::parse(&s).ok()),
        body: text(fields, "body"),
        date_created: text(fields, "date_created").and_then(|s| parse_date(&s)),
        date_sent: text(fields, "date_sent").and_then(|s| parse_date(&s)),
    })
}

/// Twilio's error body: `{"code": 20404, "message": "...", "more_info": "...", "status": 404}`.
/// Every part is optional: a proxy may answer with HTML or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TwilioErrorBody {
    /// Twilio's error code.
    pub code: Option<u32>,
    /// Twilio's explanation.
    pub message: Option<String>,
    /// The documentation link.
    pub more_info: Option<String>,
}

/// Reads an error body; anything unreadable gives an empty [`TwilioErrorBody`].
pub(crate) fn parse_error(body: &[u8]) -> TwilioErrorBody {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => TwilioErrorBody {
            code: unsigned(&fields, "code"),
            message: text(&fields, "message"),
            more_info: text(&fields, "more_info"),
        },
        _ => TwilioErrorBody::default(),
    }
}

/// A string field; a number or boolean is turned into its text, null and objects are absent.
fn text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-negative integer given as a number or as a string of digits.
fn unsigned(fields: &Map<String, Value>, name: &str) -> Option<u32> {
    match fields.get(name)? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Twilio writes RFC 2822 (`Fri, 24 May 2019 17:18:27 +0000`); RFC 3339 is accepted too in case
/// a proxy or a newer API rewrites it.
pub(crate) fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value)
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    const SID: &str = "SM0123456789abcdef0123456789abcdef";
    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

    #[test]
    fn a_full_twilio_message_is_read() {
        let body = format!(
            r#"{{"sid":"{SID}","account_sid":"{ACCOUNT}","messaging_service_sid":null,
            "status":"undelivered","error_code":30003,"error_message":"Unreachable handset",
            "direction":"outbound-api","date_created":"Fri, 24 May 2019 17:18:27 +0000",
            "date_sent":null,"date_updated":"Fri, 24 May 2019 17:18:28 +0000",
            "num_segments":"2","num_media":"0","price":"-0.01500","price_unit":"USD",
            "from":"+14155550100","to":"+14155550199","body":"hi","uri":"/x.json",
            "api_version":"2010-04-01","subresource_uris":{{"media":"/m.json"}}}}"#
        );
        let message = parse_message(body.as_bytes()).expect("a full message");
        assert_eq!(message.sid.as_str(), SID);
        assert_eq!(message.state.status, MessageStatus::Undelivered);
        assert_eq!(message.state.error_code, Some(30003));
        assert_eq!(
            message.state.error_message.as_deref(),
            Some("Unreachable handset")
        );
        assert_eq!(message.state.num_segments, Some(2));
        assert_eq!(message.state.price.as_deref(), Some("-0.01500"));
        assert_eq!(message.state.price_unit.as_deref(), Some("USD"));
        assert_eq!(
            message.account_sid.map(|a| a.to_string()),
            Some(ACCOUNT.into())
        );
        assert_eq!(message.direction, Some(Direction::OutboundApi));
        assert_eq!(
            message.from.map(|a| a.to_string()),
            Some("+14155550100".into())
        );
        assert_eq!(
            message.to.map(|a| a.to_string()),
            Some("+14155550199".into())
        );
        assert_eq!(message.body.as_deref(), Some("hi"));
        assert_eq!(
            message.date_created,
            Utc.with_ymd_and_hms(2019, 5, 24, 17, 18, 27).single()
        );
    }

    #[test]
    fn odd_but_readable_bodies_are_accepted() {
        let cases = [
            (
                r#""num_segments":1,"price":-0.0075,"error_code":"30007""#,
                "numbers where strings are documented and the reverse",
            ),
            (
                r#""num_segments":null,"price":null,"error_code":null,"from":null,"to":null,"body":null,"date_created":null,"direction":null,"account_sid":null"#,
                "null everywhere",
            ),
            (
                r#""brand_new_field":{"nested":[1,2]},"another":true"#,
                "unknown fields",
            ),
            (
                r#""direction":"sideways","account_sid":"not-a-sid","date_created":"yesterday","num_segments":"many""#,
                "unreadable optional fields",
            ),
        ];
        for (extra, why) in cases {
            let body = format!(r#"{{"sid":"{SID}","status":"sent",{extra}}}"#);
            let message = parse_message(body.as_bytes());
            assert!(message.is_ok(), "{why}: {message:?}");
        }
        let numbers = format!(
            r#"{{"sid":"{SID}","status":"sent","num_segments":1,"price":-0.0075,"error_code":"30007"}}"#
        );
        let state = parse_message(numbers.as_bytes()).map(|m| m.state);
        assert_eq!(state.as_ref().map(|s| s.num_segments), Ok(Some(1)));
        assert_eq!(
            state.as_ref().map(|s| s.price.clone()),
            Ok(Some("-0.0075".into()))
        );
        assert_eq!(
            state.map(|s| s.error_code),
            Ok(Some(30007)),
            "an error code can come with a non-failure status"
        );
    }

    #[test]
    fn an_unknown_status_is_kept_verbatim() {
        let body = format!(r#"{{"sid":"{SID}","status":"teleported"}}"#);
        let status = parse_message(body.as_bytes()).map(|m| m.state.status);
        assert_eq!(status, Ok(MessageStatus::Unknown("teleported".into())));
    }

    #[test]
    fn unreadable_messages_say_why() {
        let cases = [
            ("{\"sid\":\"SM1", "truncated JSON", "not valid JSON"),
            ("[1,2]", "an array", "not a JSON object"),
            (r#"{"status":"sent"}"#, "no sid", "no sid"),
            (
                r#"{"sid":"SM123","status":"sent"}"#,
                "an invalid sid",
                "message SID",
            ),
            (r#"{"sid":null,"status":"sent"}"#, "a null sid", "no sid"),
        ];
        for (body, why, expected) in cases {
            let reason = parse_message(body.as_bytes()).expect_err(why);
            assert!(reason.contains(expected), "{why}: {reason}");
        }
        let no_status = format!(r#"{{"sid":"{SID}","status":null}}"#);
        assert!(
            parse_message(no_status.as_bytes()).is_err(),
            "a null status"
        );
    }

    #[test]
    fn error_bodies_are_read_when_json_and_empty_otherwise() {
        let twilio = parse_error(
            br#"{"code":20404,"message":"Not found","more_info":"https://www.twilio.com/docs/errors/20404","status":404}"#,
        );
        assert_eq!(twilio.code, Some(20404));
        assert_eq!(twilio.message.as_deref(), Some("Not found"));
        assert_eq!(
            twilio.more_info.as_deref(),
            Some("https://www.twilio.com/docs/errors/20404")
        );
        assert_eq!(
            parse_error(b"<html>Bad Gateway</html>"),
            TwilioErrorBody::default()
        );
        assert_eq!(parse_error(br#"{"code":"20429"}"#).code, Some(20429));
    }
}
