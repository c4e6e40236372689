//! Error code extraction and classification (`kinesis_streams.md` §6.1), table-driven.

use http::{HeaderMap, HeaderValue};
use kb_aws::error::{classify, is_retryable_record_error, parse_error, AwsError, ErrorClass};

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn extraction_table() {
    // (status, headers, body, expected code, expected message)
    #[allow(clippy::type_complexity)]
    let rows: &[(u16, &[(&str, &str)], &str, &str, &str)] = &[
        // header wins, cut at the first ':'
        (
            400,
            &[(
                "x-amzn-ErrorType",
                "ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/",
            )],
            r#"{"__type":"com.amazonaws.kinesis#Other","message":"bad"}"#,
            "ValidationException",
            "bad",
        ),
        // header without ':'
        (400, &[("x-amzn-errortype", "ResourceNotFoundException")], "", "ResourceNotFoundException", ""),
        // header message when the body has none
        (
            400,
            &[("x-amzn-ErrorType", "AccessDeniedException"), ("x-amzn-ErrorMessage", "no")],
            "",
            "AccessDeniedException",
            "no",
        ),
        // JSON __type after the last '#'
        (
            400,
            &[],
            r#"{"__type":"com.amazonaws.kinesis.v20131202#ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}"#,
            "ProvisionedThroughputExceededException",
            "Rate exceeded for shard",
        ),
        // bare JSON __type, Message capitalised
        (400, &[], r#"{"__type":"ResourceNotFoundException","Message":"Stream x not found"}"#, "ResourceNotFoundException", "Stream x not found"),
        // JSON code
        (400, &[], r#"{"code":"ThrottlingException","message":"slow down"}"#, "ThrottlingException", "slow down"),
        // XML (moto's 403)
        (
            403,
            &[],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>x</RequestId></ErrorResponse>",
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ),
        // XML with entities
        (403, &[], "<Error><Code>SignatureDoesNotMatch</Code><Message>a &amp; b</Message></Error>", "SignatureDoesNotMatch", "a & b"),
        // unparseable / empty bodies
        (500, &[], "Internal Server Error", "", ""),
        (502, &[], "", "", ""),
        (400, &[], "{not json", "", ""),
        (400, &[], "[1,2]", "", ""),
    ];
    for (status, hs, body, code, message) in rows {
        let e = parse_error(*status, &headers(hs), body.as_bytes());
        assert_eq!(e.status, *status, "{body}");
        assert_eq!(e.code, *code, "code of {hs:?} {body}");
        assert_eq!(e.message, *message, "message of {hs:?} {body}");
    }
}

fn err(status: u16, code: &str, message: &str) -> AwsError {
    AwsError {
        status,
        code: code.to_string(),
        message: message.to_string(),
    }
}

#[test]
fn classification_table() {
    use ErrorClass::*;
    let rows: &[(u16, &str, &str, ErrorClass)] = &[
        // throttling codes, 429
        (400, "ProvisionedThroughputExceededException", "", Throttling),
        (400, "LimitExceededException", "", Throttling),
        (400, "ThrottlingException", "", Throttling),
        (400, "KMSThrottlingException", "", Throttling),
        (429, "", "", Throttling),
        (429, "TooManyRequests", "", Throttling),
        (503, "ThrottlingException", "", Throttling),
        // any 5xx
        (500, "InternalFailure", "", ServerError),
        (503, "ServiceUnavailable", "", ServerError),
        (500, "", "", ServerError),
        (599, "Whatever", "", ServerError),
        // auth list, with and without the Exception suffix
        (400, "ExpiredToken", "", Auth),
        (400, "ExpiredTokenException", "", Auth),
        (403, "AccessDenied", "", Auth),
        (400, "AccessDeniedException", "", Auth),
        (403, "IncompleteSignature", "", Auth),
        (403, "IncompleteSignatureException", "", Auth),
        (403, "SignatureDoesNotMatch", "The request signature we calculated does not match", Auth),
        (403, "SignatureDoesNotMatchException", "", Auth),
        (400, "MissingAuthenticationToken", "", Auth),
        (400, "MissingAuthenticationTokenException", "", Auth),
        (403, "InvalidClientTokenId", "", Auth),
        (403, "InvalidClientTokenIdException", "", Auth),
        (403, "InvalidToken", "", Auth),
        (403, "InvalidTokenException", "", Auth),
        (403, "InvalidAccessKeyId", "", Auth),
        (403, "InvalidAccessKeyIdException", "", Auth),
        (403, "InvalidSecurity", "", Auth),
        (403, "InvalidSecurityException", "", Auth),
        (400, "TokenRefreshRequired", "", Auth),
        (400, "TokenRefreshRequiredException", "", Auth),
        (403, "InvalidSignature", "", Auth),
        (400, "InvalidSignatureException", "The request signature we calculated does not match", Auth),
        (400, "UnrecognizedClient", "", Auth),
        (400, "UnrecognizedClientException", "The security token included in the request is invalid.", Auth),
        // clock skew: checked before auth
        (400, "InvalidSignatureException", "Signature expired: 20260101T000000Z is now earlier than 20260101T001000Z (20260101T001500Z - 5 min.)", ClockSkew),
        (403, "SignatureDoesNotMatch", "Signature expired: 20260101T000000Z is now earlier than 20260101T001000Z", ClockSkew),
        (400, "InvalidSignatureException", "Signature not yet current: 20260101T003000Z is still later than 20260101T002000Z (20260101T001500Z + 5 min.)", ClockSkew),
        (403, "SignatureDoesNotMatch", "Signature not yet valid", ClockSkew),
        (403, "SignatureDoesNotMatchException", "signature EXPIRED", ClockSkew),
        // other auth codes with an "expired" message stay auth (credentials problem)
        (400, "ExpiredTokenException", "The security token included in the request is expired", Auth),
        // whole-request rejections
        (400, "ValidationException", "1 validation error detected", RequestRejected),
        (400, "InvalidArgumentException", "Records size exceeds 5 MB limit", RequestRejected),
        (400, "SerializationException", "", RequestRejected),
        (413, "", "", RequestRejected),
        (413, "SerializationException", "", RequestRejected),
        // other 4xx
        (400, "ResourceNotFoundException", "", Other),
        (400, "KMSAccessDeniedException", "", Other),
        (400, "KMSDisabledException", "", Other),
        (403, "", "", Other),
        (400, "", "", Other),
        (404, "Validation", "", Other),
    ];
    for (status, code, message, class) in rows {
        assert_eq!(
            classify(&err(*status, code, message)),
            *class,
            "{status} {code} {message:?}"
        );
    }
}

#[test]
fn parse_then_classify() {
    let moto_403 = "<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></ErrorResponse>";
    let e = parse_error(403, &HeaderMap::new(), moto_403.as_bytes());
    assert_eq!(classify(&e), ErrorClass::Auth);

    let kinesis = r#"{"__type":"IncompleteSignatureException","message":"Authorization header requires 'Credential' parameter."}"#;
    let e = parse_error(400, &HeaderMap::new(), kinesis.as_bytes());
    assert_eq!(classify(&e), ErrorClass::Auth);

    let skew = r#"{"__type":"InvalidSignatureException","message":"Signature expired: 20260101T000000Z is now earlier than 20260101T001000Z (20260101T001500Z - 5 min.)"}"#;
    let e = parse_error(400, &HeaderMap::new(), skew.as_bytes());
    assert_eq!(classify(&e), ErrorClass::ClockSkew);

    let e = parse_error(
        400,
        &headers(&[(
            "x-amzn-ErrorType",
            "ProvisionedThroughputExceededException:",
        )]),
        b"",
    );
    assert_eq!(classify(&e), ErrorClass::Throttling);
    assert!(e
        .to_string()
        .contains("ProvisionedThroughputExceededException"));
}

#[test]
fn record_error_codes() {
    for code in ["ValidationException", "InvalidArgumentException"] {
        assert!(!is_retryable_record_error(code), "{code}");
    }
    for code in [
        "ProvisionedThroughputExceededException",
        "InternalFailure",
        "KMSThrottlingException",
        "SomethingNew",
        "",
    ] {
        assert!(is_retryable_record_error(code), "{code}");
    }
}
