//! When and how often a tab renews its tokens, and what it tells the person
//! when it cannot. The renewal itself (a hidden `prompt=none` iframe, one
//! tab at a time) is in `state.rs`, `silent.rs` and `tabs.rs`; its answer
//! goes through the same checks as a first sign-in
//! ([`super::flow::complete_renewal`]).

/// What the callback page in the renewal iframe puts before the fragment
/// it hands to the app's window (the server's iframe-only page,
/// `server/src/edge/silent_callback.rs`, and the app's own callback page).
pub const SILENT_MESSAGE_PREFIX: &str = "okta-implicit.silent-callback";

/// A silent sign-in that has not answered in this long has failed.
pub const SILENT_TIMEOUT_MS: u32 = 10_000;

/// How long a new tab waits for another tab to hand it the session
/// (memory storage) before it tries a silent sign-in.
pub const ASK_TABS_MS: u32 = 300;

/// How long the tab that renewed keeps the renewal lock after handing the
/// new tokens to the other tabs, so that they have them before one of them
/// can take the lock and wonder whether to renew.
pub const HANDOVER_MS: u32 = 250;

/// The issuer said the person must sign in again (`login_required` and
/// kin): shown when the session reaches its end.
pub const ENDED_AT_ISSUER: &str =
    "Your session at the sign-in service has ended. Please sign in again.";

/// Renewal kept failing (network, timeout, a response that did not pass the
/// checks) until the tokens expired.
pub const ENDED_UNRENEWED: &str =
    "Your session has ended: it could not be renewed with the sign-in service. Please sign in again.";

/// The renewed tokens were for someone else.
pub const ENDED_OTHER_PERSON: &str =
    "Your session has ended: the sign-in service now has another person signed in. Please sign in again.";

/// The tokens expired with no renewal (the plain case).
pub const ENDED: &str = "Your session has ended. Please sign in again.";

/// Seconds to wait before retry number `attempt` (1, 2, …) of a renewal
/// that failed for a reason that may pass: 2, 4, 8, 16, then every 30 s.
pub fn retry_delay(attempt: u32) -> i64 {
    let doubled = 1i64 << attempt.clamp(1, 5);
    doubled.min(30)
}

/// A time left, as a person reads it: whole minutes, then minutes and
/// seconds in the last five minutes.
pub fn time_left(secs: i64) -> String {
    match secs {
        ..=0 => "expired".to_string(),
        1..=59 => format!("{secs} s left"),
        60..=299 => format!("{} min {} s left", secs / 60, secs % 60),
        300..=3599 => format!("{} min left", secs / 60),
        _ => format!("{} h {} min left", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_every_half_minute() {
        let delays: Vec<i64> = (1..=7).map(retry_delay).collect();
        assert_eq!(delays, [2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry_delay(0), 2);
        assert_eq!(retry_delay(u32::MAX), 30);
    }

    #[test]
    fn time_left_reads_as_minutes_then_seconds() {
        assert_eq!(time_left(3600), "1 h 0 min left");
        assert_eq!(time_left(3599), "59 min left");
        assert_eq!(time_left(300), "5 min left");
        assert_eq!(time_left(299), "4 min 59 s left");
        assert_eq!(time_left(60), "1 min 0 s left");
        assert_eq!(time_left(59), "59 s left");
        assert_eq!(time_left(1), "1 s left");
        assert_eq!(time_left(0), "expired");
        assert_eq!(time_left(-5), "expired");
        assert_eq!(time_left(7322), "2 h 2 min left");
    }
}
