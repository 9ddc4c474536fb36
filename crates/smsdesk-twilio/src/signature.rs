//! `X-Twilio-Signature`: how Twilio signs its webhooks, and how to check a signature.
//!
//! Twilio signs `url + key1 + value1 + key2 + value2 ...` with HMAC-SHA1 keyed by the account's
//! auth token and sends the base64 digest in `X-Twilio-Signature`:
//! - the URL is the full URL Twilio requested (scheme, host, port if any, path, query string);
//! - form parameters are sorted by key in code-point order (case-sensitive); each key's values
//!   are de-duplicated and sorted; nothing is separated or URL-encoded;
//! - a JSON body is not signed as parameters: the URL carries `bodySHA256=<hex sha256 of the
//!   raw body>`, the URL alone is signed, and the hash is checked against the body;
//! - Twilio's own libraries accept a URL whose port was dropped or whose default port was added
//!   by a proxy, so [`validate_form`] and [`validate_json`] try the URL as given, without its
//!   port, and with the scheme's default port.
//!
//! Signatures are compared in constant time.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit as _, Mac as _};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// The header Twilio puts its signature in.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The query parameter carrying the SHA-256 of a JSON body.
pub const BODY_HASH_PARAM: &str = "bodySHA256";

/// Why a webhook's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature does not match the URL, parameters and auth token.
    #[error("the X-Twilio-Signature does not match the request")]
    Mismatch,
    /// A JSON-body webhook's URL has no `bodySHA256` parameter.
    #[error("the webhook URL has no bodySHA256 parameter")]
    MissingBodyHash,
    /// The body's SHA-256 differs from the URL's `bodySHA256`.
    #[error("the body does not match the URL's bodySHA256")]
    BodyHashMismatch,
}

/// The signature Twilio would send for a form webhook to `url` with `params` (base64 of
/// HMAC-SHA1). Pass no parameters for a GET or a JSON-body webhook.
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(signature_digest(auth_token, url, params))
}

fn signature_digest(auth_token: &str, url: &str, params: &[(String, String)]) -> Vec<u8> {
    // `str` orders by UTF-8 bytes, which is code-point order: `CALLSID < CallSid < callSid`.
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (key, value) in params {
        sorted.entry(key).or_default().insert(value);
    }
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(url.as_bytes());
    for (key, values) in &sorted {
        for value in values {
            mac.update(key.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    mac.finalize().into_bytes().to_vec()
}

/// Checks a form webhook's signature: `url` as Twilio requested it (see the module docs for the
/// port quirk), `params` the decoded form body (repeated keys allowed), `header` the
/// `X-Twilio-Signature` value.
///
/// # Errors
/// [`SignatureError::Mismatch`] when no variant of the URL matches.
pub fn validate_form(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: &str,
) -> Result<(), SignatureError> {
    let presented = header.trim().as_bytes();
    let mut matched = false;
    for candidate in url_variants(url) {
        let expected = compute_signature(auth_token, &candidate, params);
        // Evaluate every variant so the time taken does not depend on which one matched.
        matched |= bool::from(expected.as_bytes().ct_eq(presented));
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Checks a JSON-body webhook: the URL's `bodySHA256` must be the hex SHA-256 of `body`, and
/// `header` must sign the URL alone.
///
/// # Errors
/// [`SignatureError::MissingBodyHash`] when the URL has no `bodySHA256`;
/// [`SignatureError::Mismatch`] when the signature does not match;
/// [`SignatureError::BodyHashMismatch`] when the signature matches but the body was altered.
pub fn validate_json(
    auth_token: &str,
    url: &str,
    body: &[u8],
    header: &str,
) -> Result<(), SignatureError> {
    let presented_hash =
        query_value(url, BODY_HASH_PARAM).ok_or(SignatureError::MissingBodyHash)?;
    validate_form(auth_token, url, &[], header)?;
    let actual_hash = body_sha256_hex(body);
    let equal: bool = actual_hash
        .as_bytes()
        .ct_eq(presented_hash.to_ascii_lowercase().as_bytes())
        .into();
    if equal {
        Ok(())
    } else {
        Err(SignatureError::BodyHashMismatch)
    }
}

/// The lower-case hex SHA-256 of `body`, as Twilio puts it in `bodySHA256`.
pub fn body_sha256_hex(body: &[u8]) -> String {
    sha2::Sha256::digest(body)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The first value of `name` in the URL's query string, raw (hex digests need no decoding).
fn query_value<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// The URL as given, without its port, and with the scheme's default port; duplicates removed.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    if let Some(parts) = UrlParts::split(url) {
        for variant in [parts.without_port(), parts.with_default_port()]
            .into_iter()
            .flatten()
        {
            if !variants.contains(&variant) {
                variants.push(variant);
            }
        }
    }
    variants
}

/// A URL cut around its port, without normalising anything else: the signed string must be
/// rebuilt byte for byte, so a URL library (which re-encodes and drops default ports) won't do.
struct UrlParts<'u> {
    scheme: &'u str,
    /// Everything from `://` up to the host's end, including any userinfo.
    before_port: &'u str,
    port: Option<&'u str>,
    /// Path, query and fragment.
    rest: &'u str,
}

impl<'u> UrlParts<'u> {
    fn split(url: &'u str) -> Option<Self> {
        let scheme_end = url.find("://")?;
        let scheme = &url[..scheme_end];
        let authority_start = scheme_end + 3;
        let authority_end = url[authority_start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| authority_start + i);
        let authority = &url[..authority_end];
        let host_start = authority[authority_start..]
            .rfind('@')
            .map_or(authority_start, |i| authority_start + i + 1);
        // An IPv6 literal has colons inside its brackets; the port follows the closing bracket.
        let search_from = authority[host_start..]
            .rfind(']')
            .map_or(host_start, |i| host_start + i);
        let (before_port, port) = match authority[search_from..].rfind(':') {
            Some(i) => {
                let colon = search_from + i;
                let port = &authority[colon + 1..];
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    (&authority[..colon], Some(port))
                } else {
                    (authority, None)
                }
            }
            None => (authority, None),
        };
        Some(Self {
            scheme,
            before_port,
            port,
            rest: &url[authority_end..],
        })
    }

    fn without_port(&self) -> Option<String> {
        self.port?;
        Some(format!("{}{}", self.before_port, self.rest))
    }

    fn with_default_port(&self) -> Option<String> {
        if self.port.is_some() {
            return None;
        }
        let port = match self.scheme.to_ascii_lowercase().as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        Some(format!("{}:{port}{}", self.before_port, self.rest))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TOKEN: &str = "12345";
    const U: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn p() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    /// Why, URL signed, parameters, signature.
    type Vector = (&'static str, String, Vec<(String, String)>, &'static str);

    /// Every published vector.
    fn vectors() -> Vec<Vector> {
        vec![
            (
                "the canonical example",
                U.into(),
                p(),
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            ),
            (
                "https with an explicit :443",
                "https://mycompany.com:443/myapp.php?foo=1&bar=2".into(),
                p(),
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
            (
                "http with a custom port",
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2".into(),
                p(),
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            ),
            (
                "http with an explicit :80",
                "http://mycompany.com:80/myapp.php?foo=1&bar=2".into(),
                p(),
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "repeated values are de-duplicated and sorted",
                U.into(),
                pairs(&[
                    ("Sid", "CA123"),
                    ("SidAccount", "AC123"),
                    ("Digits", "5678"),
                    ("Digits", "1234"),
                    ("Digits", "1234"),
                ]),
                "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
            ),
            (
                "a dotted key with two values",
                U.into(),
                pairs(&[
                    ("MessagingBinding.Address", "+1325xxxxxxx"),
                    ("MessagingBinding.Address", "+1415xxxxxxx"),
                ]),
                "83O6e2vORAoJHUNzJjDWN1jz+BA=",
            ),
            (
                "a JSON body signs the URL with its bodySHA256 alone",
                format!(
                    "{U}&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
                ),
                vec![],
                "a9nBmqA0ju/hNViExpshrM61xv4=",
            ),
            (
                "no parameters",
                U.into(),
                vec![],
                "zYQTYrRWXE7LtzbG4PfP7/bkkGo=",
            ),
            (
                "no query string",
                "https://mycompany.com/myapp.php".into(),
                p(),
                "1xaxFBvyzXYvWplzNOSs28HWO94=",
            ),
            (
                "special and non-ASCII characters are signed raw",
                U.into(),
                pairs(&[
                    ("Message", "Hello & goodbye! @#$%^*()"),
                    ("From", "+1 (415) 867-5309"),
                    ("Special", "unicode: ñáéíóú"),
                ]),
                "dCPiR4WtQ6QFN6pJh81CtlCcWLQ=",
            ),
            (
                "empty values add just the key",
                U.into(),
                pairs(&[
                    ("Digits", ""),
                    ("CallSid", "CA1234567890ABCDE"),
                    ("EmptyParam", ""),
                ]),
                "9HHp/OqQMEwdrVebHDdA/+tqjX8=",
            ),
            (
                "keys sort case-sensitively by code point",
                U.into(),
                pairs(&[
                    ("callSid", "lowercase"),
                    ("CallSid", "uppercase"),
                    ("CALLSID", "allcaps"),
                ]),
                "jDK7WKT8wiNrwggd4ceTv4e1MJ4=",
            ),
            (
                "an encoded query string is signed as requested",
                "https://mycompany.com/myapp.php?foo=hello%20world&bar=test%2Bvalue".into(),
                p(),
                "er2tvAP1Wx+iuTTE2BPgvEaN1cs=",
            ),
        ]
    }

    #[test]
    fn every_published_vector_is_computed_exactly() {
        for (why, url, params, signature) in vectors() {
            assert_eq!(compute_signature(TOKEN, &url, &params), signature, "{why}");
        }
    }

    #[test]
    fn every_published_vector_validates_for_the_url_it_signed() {
        for (why, url, params, signature) in vectors() {
            assert_eq!(
                validate_form(TOKEN, &url, &params, signature),
                Ok(()),
                "{why}"
            );
        }
    }

    #[test]
    fn a_proxy_adding_or_dropping_the_port_is_tolerated() {
        let cases = [
            (
                "vector 1 signed without a port, requested with :1234",
                "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            ),
            (
                "vector 4 signed with :80, requested without a port",
                "http://mycompany.com/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "vector 2 signed with :443, requested without a port",
                U,
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
        ];
        for (why, request_url, signature) in cases {
            assert_eq!(
                validate_form(TOKEN, request_url, &p(), signature),
                Ok(()),
                "{why}"
            );
        }
    }

    #[test]
    fn a_custom_port_is_not_swapped_for_another() {
        // Signed for :1234; a request on :5678 must not match (only removal or the default port).
        let signature = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=";
        assert_eq!(
            validate_form(
                TOKEN,
                "http://mycompany.com:5678/myapp.php?foo=1&bar=2",
                &p(),
                signature
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_wrong_token_parameter_or_url_is_a_mismatch() {
        let signature = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        let mut altered = p();
        altered[2].1 = "9999".into();
        let cases = [
            ("another token", "54321", U, p()),
            ("an altered parameter", TOKEN, U, altered),
            (
                "another path",
                TOKEN,
                "https://mycompany.com/other.php?foo=1&bar=2",
                p(),
            ),
            ("a missing parameter", TOKEN, U, p()[1..].to_vec()),
        ];
        for (why, token, url, params) in cases {
            assert_eq!(
                validate_form(token, url, &params, signature),
                Err(SignatureError::Mismatch),
                "{why}"
            );
        }
    }

    #[test]
    fn a_json_body_is_checked_against_its_hash_and_the_signed_url() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let url = format!("{U}&bodySHA256={}", body_sha256_hex(body));
        let signature = "a9nBmqA0ju/hNViExpshrM61xv4=";
        assert_eq!(validate_json(TOKEN, &url, body, signature), Ok(()));
        assert_eq!(
            validate_json(TOKEN, &url, br#"{"property": "evil"}"#, signature),
            Err(SignatureError::BodyHashMismatch),
            "an altered body"
        );
        assert_eq!(
            validate_json("54321", &url, body, signature),
            Err(SignatureError::Mismatch),
            "another token"
        );
        assert_eq!(
            validate_json(TOKEN, U, body, signature),
            Err(SignatureError::MissingBodyHash),
            "no bodySHA256 in the URL"
        );
    }

    #[test]
    fn the_published_body_hash_is_reproduced() {
        assert_eq!(
            body_sha256_hex(br#"{"property": "value", "boolean": true}"#),
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
    }

    #[test]
    fn url_variants_handle_userinfo_ipv6_and_missing_paths() {
        let cases = [
            ("https://a.com", vec!["https://a.com", "https://a.com:443"]),
            (
                "http://u:p@a.com:8080/x",
                vec!["http://u:p@a.com:8080/x", "http://u:p@a.com/x"],
            ),
            (
                "http://[::1]:9000/cb?x=1",
                vec!["http://[::1]:9000/cb?x=1", "http://[::1]/cb?x=1"],
            ),
            (
                "http://[::1]/cb",
                vec!["http://[::1]/cb", "http://[::1]:80/cb"],
            ),
            ("not a url", vec!["not a url"]),
        ];
        for (url, expected) in cases {
            assert_eq!(url_variants(url), expected, "{url}");
        }
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 +.:/()&=]{0,12}"
    }

    fn params_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(("[A-Za-z][A-Za-z0-9.]{0,8}", text()), 0..8)
    }

    fn url_strategy() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("http"), Just("https")],
            "[a-z]{1,10}",
            prop::option::of(1u16..65535),
            "[a-z0-9/]{0,12}",
            prop::option::of("[a-z0-9=&%]{0,12}"),
        )
            .prop_map(|(scheme, host, port, path, query)| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                format!("{scheme}://{host}.example{port}/{path}{query}")
            })
    }

    proptest! {
        #[test]
        fn a_computed_signature_always_validates(
            token in "[a-f0-9]{1,32}", url in url_strategy(), params in params_strategy()
        ) {
            let signature = compute_signature(&token, &url, &params);
            prop_assert_eq!(validate_form(&token, &url, &params, &signature), Ok(()));
        }

        #[test]
        fn any_change_to_url_parameter_or_token_invalidates_the_signature(
            token in "[a-f0-9]{1,32}",
            url in url_strategy(),
            params in params_strategy().prop_filter("needs a parameter", |p| !p.is_empty()),
            which in any::<prop::sample::Index>(),
        ) {
            let signature = compute_signature(&token, &url, &params);
            // '~' never appears in generated text, so each change is a real one.
            let other_token = format!("{token}~");
            prop_assert_eq!(
                validate_form(&other_token, &url, &params, &signature),
                Err(SignatureError::Mismatch), "another token"
            );
            let other_url = format!("{url}~");
            prop_assert_eq!(
                validate_form(&token, &other_url, &params, &signature),
                Err(SignatureError::Mismatch), "another URL"
            );
            let mut other_params = params.clone();
            let i = which.index(other_params.len());
            other_params[i].1.push('~');
            prop_assert_eq!(
                validate_form(&token, &url, &other_params, &signature),
                Err(SignatureError::Mismatch), "an altered parameter"
            );
            let mut renamed = params.clone();
            renamed[i].0.push('~');
            prop_assert_eq!(
                validate_form(&token, &url, &renamed, &signature),
                Err(SignatureError::Mismatch), "a renamed parameter"
            );
        }
    }
}
