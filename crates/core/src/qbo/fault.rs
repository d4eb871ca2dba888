//! QBO's error envelope: `Fault.Error[]` with `Message`, `Detail`, `code`
//! (a string) and `element`, found on 4xx/5xx answers and sometimes inside a 200. The 401 body
//! uses lower-case keys (`fault.error[].message`), so keys are matched case-insensitively.
//! Every error in the array is kept, and each fault maps to what the caller should do.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultError {
    pub code: String,
    pub message: String,
    pub detail: String,
    pub element: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// ValidationFault, SystemFault, AUTHENTICATION, SERVICE, ...
    pub kind: String,
    pub errors: Vec<FaultError>,
}

/// What to do about a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// 3200 and other 401s: refresh the access token once, then reconnect.
    RefreshToken,
    /// 120, 3100: the connection is dead; the treasurer must reconnect.
    Reconnect,
    /// 3001 / 429 and 10000 / 5xx: wait and retry.
    RetryLater,
    /// 5010: re-read the entity for a fresh SyncToken and apply the change again.
    Reread,
    /// 6240: the name is taken; offer a choice instead of failing.
    DuplicateName,
    /// 610, 2500: a referenced item, account, payment method or customer does not exist
    /// (or is inactive): choose or create one.
    ChooseReference,
    /// Anything else: show QBO's message; do not retry blindly.
    Show,
}

/// Looks up `key` in an object, ignoring ASCII case.
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Errors kept from one fault, and characters kept of each text: a fault's words end up in a
/// row's error and on the page, so a malformed or hostile answer must not make them huge.
const MAX_ERRORS: usize = 20;
const MAX_TEXT: usize = 500;

fn clipped(s: String) -> String {
    if s.chars().count() <= MAX_TEXT {
        s
    } else {
        let mut c: String = s.chars().take(MAX_TEXT).collect();
        c.push('…');
        c
    }
}

/// The fault in an answer body, if there is one (whatever the HTTP status).
pub fn parse(body: &Value) -> Option<Fault> {
    let fault = get(body, "Fault")?;
    let errors = get(fault, "Error")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .take(MAX_ERRORS)
                .map(|e| FaultError {
                    code: clipped(text(get(e, "code"))),
                    message: clipped(text(get(e, "Message"))),
                    detail: clipped(text(get(e, "Detail"))),
                    element: get(e, "element")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(|s| clipped(s.to_string())),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Fault {
        kind: clipped(text(get(fault, "type"))),
        errors,
    })
}

impl Fault {
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.errors.iter().map(|e| e.code.as_str())
    }

    /// The action for this fault given the HTTP status it came with; the most specific code
    /// in the array decides.
    pub fn action(&self, status: u16) -> Action {
        let has = |c: &str| self.codes().any(|code| code == c);
        if has("120") || has("3100") {
            Action::Reconnect
        } else if status == 401 || has("3200") {
            Action::RefreshToken
        } else if status == 429 || has("3001") || has("10000") || status >= 500 {
            Action::RetryLater
        } else if has("5010") {
            Action::Reread
        } else if has("6240") {
            Action::DuplicateName
        } else if has("610") || has("2500") {
            Action::ChooseReference
        } else {
            Action::Show
        }
    }

    /// Every error, for people: "Duplicate Name Exists Error (6240): The name supplied ...".
    /// At most the first three, then how many more.
    pub fn describe(&self) -> String {
        if self.errors.is_empty() {
            return format!("QuickBooks reported a {} fault with no details", self.kind);
        }
        const SHOWN: usize = 3;
        let more = self.errors.len().saturating_sub(SHOWN);
        let shown = self
            .errors
            .iter()
            .take(SHOWN)
            .map(|e| {
                let mut s = format!("{} ({})", e.message.trim(), e.code);
                if !e.detail.trim().is_empty() {
                    s.push_str(": ");
                    s.push_str(e.detail.trim());
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ");
        if more > 0 {
            format!("{shown}; and {more} more")
        } else {
            shown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_normal_envelope_with_several_errors() {
        let body = json!({"Fault": {"Error": [
            {"Message": "Duplicate Name Exists Error", "Detail": "The name supplied already exists.", "code": "6240", "element": ""},
            {"Message": "Invalid Reference Id", "Detail": "Item 9", "code": "2500", "element": "ItemRef"}],
            "type": "ValidationFault"}, "time": "2026-11-28T08:15:02.123-08:00"});
        let f = parse(&body).unwrap();
        assert_eq!(f.kind, "ValidationFault");
        assert_eq!(f.errors.len(), 2);
        assert_eq!(f.errors[0].element, None);
        assert_eq!(f.errors[1].element.as_deref(), Some("ItemRef"));
        assert_eq!(f.action(400), Action::DuplicateName);
        assert!(f.describe().contains("6240") && f.describe().contains("2500"));
    }

    #[test]
    fn the_lower_case_401_body() {
        let body = json!({"warnings": null, "intuitObject": null, "fault": {"error": [{
            "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            "detail": "Token expired: ...", "code": "3200", "element": null}], "type": "AUTHENTICATION"},
            "queryResponse": null, "time": 1730024394085u64});
        let f = parse(&body).unwrap();
        assert_eq!(f.kind, "AUTHENTICATION");
        assert_eq!(f.errors[0].code, "3200");
        assert_eq!(f.action(401), Action::RefreshToken);
    }

    #[test]
    fn actions_by_code_and_status() {
        let f = |code: &str| Fault {
            kind: "x".into(),
            errors: vec![FaultError {
                code: code.into(),
                message: "m".into(),
                detail: String::new(),
                element: None,
            }],
        };
        assert_eq!(f("3001").action(429), Action::RetryLater);
        assert_eq!(f("10000").action(500), Action::RetryLater);
        assert_eq!(f("5010").action(400), Action::Reread);
        assert_eq!(f("610").action(400), Action::ChooseReference);
        assert_eq!(f("120").action(401), Action::Reconnect);
        assert_eq!(f("6000").action(400), Action::Show);
        assert!(parse(&json!({"QueryResponse": {}})).is_none());
    }
}
