//! QuickBooks error bodies. Most faults share one envelope: `{"Fault": {"Error": [{Message,
//! Detail, code, element}], "type"}, "time"}`, with `code` a string, sent with HTTP 400, 429,
//! 500 or even 200. A bad bearer token instead gets the lower-case 401 body below.

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::entity::Kind;
use super::http::json_response;
use super::state::api_time;

const THROTTLE_MESSAGE: &str = "message=ThrottleExceeded; errorCode=003001; statusCode=429";
const THROTTLE_DETAIL: &str = "The request limit was reached.  Try again later";

/// One `Fault` answer; `status` is the HTTP status it goes out with.
#[derive(Debug, Clone)]
pub(super) struct Fault {
    pub(super) status: u16,
    kind: &'static str,
    code: String,
    message: String,
    detail: String,
    element: String,
}

impl Fault {
    fn new(status: u16, kind: &'static str, code: &str, message: &str, detail: String) -> Self {
        Self {
            status,
            kind,
            code: code.to_string(),
            message: message.to_string(),
            detail,
            element: String::new(),
        }
    }

    pub(super) fn validation(code: &str, message: &str, detail: impl Into<String>) -> Self {
        Self::new(400, "ValidationFault", code, message, detail.into())
    }

    pub(super) fn element(mut self, element: &str) -> Self {
        self.element = element.to_string();
        self
    }

    pub(super) fn required(field: &str) -> Self {
        Self::validation(
            "2020",
            "Required Param Missing",
            format!("Required parameter {field} is missing in the request"),
        )
        .element(field)
    }

    pub(super) fn invalid_property(detail: impl Into<String>) -> Self {
        Self::validation(
            "2010",
            "Request has invalid or unsupported property",
            detail,
        )
    }

    pub(super) fn business(detail: impl Into<String>) -> Self {
        Self::validation(
            "6000",
            "A business validation error has occurred while processing your request",
            format!("Business Validation Error: {}", detail.into()),
        )
    }

    pub(super) fn invalid_ref(element: &str, detail: String) -> Self {
        Self::validation("2500", "Invalid Reference Id", detail).element(element)
    }

    pub(super) fn not_found(kind: Kind, id: &str) -> Self {
        Self::validation(
            "610",
            "Object Not Found",
            format!(
                "Object Not Found : Something you're trying to use has been made inactive. \
                 Check the fields with accounts, customers, items, vendors or employees. \
                 ({} Id {id})",
                kind.name()
            ),
        )
    }

    /// 6540: a sales receipt on a stored Deposit is frozen until the deposit lets it go.
    pub(super) fn deposited() -> Self {
        Self::validation(
            "6540",
            "Deposited Transaction cannot be changed",
            "This transaction has been deposited. If you want to change or delete it, you \
             must edit the deposit it appears on and remove it first.",
        )
    }

    pub(super) fn duplicate(detail: &str) -> Self {
        Self::validation("6240", "Duplicate Name Exists Error", detail.to_string())
    }

    pub(super) fn parser(detail: impl Into<String>) -> Self {
        Self::validation(
            "4000",
            "Error parsing query",
            format!("QueryParserError: {}", detail.into()),
        )
    }

    pub(super) fn invalid_query(detail: impl Into<String>) -> Self {
        Self::validation(
            "4001",
            "Invalid query",
            format!("QueryValidationError: {}", detail.into()),
        )
    }

    pub(super) fn unsupported(detail: impl Into<String>) -> Self {
        Self::validation("500", "Unsupported Operation", detail)
    }

    pub(super) fn throttle() -> Self {
        Self::new(
            429,
            "SERVICE",
            "3001",
            THROTTLE_MESSAGE,
            THROTTLE_DETAIL.to_string(),
        )
    }

    pub(super) fn system() -> Self {
        Self::new(
            500,
            "SystemFault",
            "10000",
            "An application error has occurred while processing your request",
            "System Failure Error: An unexpected error occurred while accessing or saving \
             your data. Please wait a few minutes and try again. If the problem persists, \
             contact customer support."
                .to_string(),
        )
    }

    /// The `Fault` member alone (`{"Error": [...], "type"}`): the whole answer wraps it, and
    /// an upload's `AttachableResponse` holds one per refused file.
    pub(super) fn value(&self) -> Value {
        json!({
            "Error": [{
                "Message": self.message,
                "Detail": self.detail,
                "code": self.code,
                "element": self.element,
            }],
            "type": self.kind,
        })
    }

    pub(super) fn body(&self, now: DateTime<Utc>) -> String {
        json!({"Fault": self.value(), "time": api_time(now)}).to_string()
    }

    pub(super) fn response(&self, now: DateTime<Utc>) -> HttpResponse {
        json_response(self.status, self.body(now))
    }
}

/// The 401 for a missing, expired or revoked bearer token: unlike other faults it has
/// lower-case keys, extra null members and `time` in epoch milliseconds.
pub(super) fn unauthorized(token: Option<&str>, now: DateTime<Utc>) -> HttpResponse {
    let shown: String = token.unwrap_or("").chars().take(8).collect();
    let body = json!({
        "warnings": null,
        "intuitObject": null,
        "fault": {
            "error": [{
                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "detail": format!("Token expired: {shown}..."),
                "code": "3200",
                "element": null,
            }],
            "type": "AUTHENTICATION",
        },
        "report": null,
        "queryResponse": null,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": null,
        "requestId": null,
        "time": now.timestamp_millis(),
        "status": null,
        "cdcresponse": [],
    });
    json_response(401, body.to_string())
}

/// 403/3100: the app is not authorized for this realm.
pub(super) fn forbidden(realm: &str) -> Fault {
    Fault::new(
        403,
        "SERVICE",
        "3100",
        "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
        format!("The application is not authorized for company {realm}"),
    )
}
