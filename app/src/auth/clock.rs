//! Time in the browser: the clock, in seconds and milliseconds, and
//! waiting. Below everything else of the browser glue, which all reads it.

use wasm_bindgen_futures::JsFuture;

/// Unix seconds on the browser's clock.
pub fn now() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

/// Milliseconds on the browser's clock.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ =
                window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
        }
    });
    let _ = JsFuture::from(promise).await;
}
