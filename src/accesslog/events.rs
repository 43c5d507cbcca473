//! `log.format: json` for every line that is not an access line: one object per event, in
//! the access line's shape (`time`, `level`, `target`, then `message` and the event's fields
//! at the top level). tracing-subscriber's own JSON layer names the time `timestamp` and
//! nests the fields under `fields`; one shape for every line is what log shippers want.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::format::{json_escape, Clock};

/// The JSON event formatter (`tracing_subscriber::fmt().event_format(JsonEvents)`).
pub struct JsonEvents;

impl<S, N> FormatEvent<S, N> for JsonEvents
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut out = Vec::with_capacity(256);
        event_line(&mut out, event);
        writer.write_str(&String::from_utf8_lossy(&out))
    }
}

/// Appends the JSON line for `event`.
fn event_line(out: &mut Vec<u8>, event: &Event<'_>) {
    let meta = event.metadata();
    out.extend_from_slice(b"{\"time\":\"");
    Clock::default().write(out, std::time::SystemTime::now());
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(meta.level().as_str().as_bytes());
    out.extend_from_slice(b"\",\"target\":\"");
    json_escape(out, meta.target().as_bytes());
    out.push(b'"');
    event.record(&mut Members { out });
    out.extend_from_slice(b"}\n");
}

/// Writes each field as a member: numbers and booleans as JSON values, everything else as a
/// string. `log` crate metadata fields (`log.target`, …) are left out.
struct Members<'o> {
    out: &'o mut Vec<u8>,
}

impl Members<'_> {
    fn key(&mut self, field: &Field) -> bool {
        if field.name().starts_with("log.") {
            return false;
        }
        self.out.extend_from_slice(b",\"");
        json_escape(self.out, field.name().as_bytes());
        self.out.extend_from_slice(b"\":");
        true
    }

    fn string(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            self.out.push(b'"');
            json_escape(self.out, value.as_bytes());
            self.out.push(b'"');
        }
    }

    fn raw(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            self.out.extend_from_slice(value.as_bytes());
        }
    }
}

impl Visit for Members<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string(field, &format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, &value.to_string());
        } else {
            self.string(field, &value.to_string());
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.string(field, &value.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_json_object_per_line_with_their_fields_on_top() {
        let out = crate::accesslog::TestOut::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonEvents)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let odd = "\"quoted\"\nnext\tline \u{1} \u{e9}";
            tracing::warn!(
                error = odd,
                open = 3_u64,
                delta = -2_i64,
                ok = true,
                "x {odd}"
            );
            tracing::info!(target: "oauthgate::server", ratio = 0.5, "second");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let odd = "\"quoted\"\nnext\tline \u{1} \u{e9}";
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["message"], format!("x {odd}"));
        assert_eq!(lines[0]["error"], odd);
        assert_eq!(lines[0]["open"], 3);
        assert_eq!(lines[0]["delta"], -2);
        assert_eq!(lines[0]["ok"], true);
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["target"], "oauthgate::server");
        assert_eq!(lines[1]["ratio"], 0.5);
    }

    use serde_json::Value;
}
