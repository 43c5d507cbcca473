//! The scrape: every metric of SPEC §7 written through prometheus-client's Prometheus text
//! encoder (format 0.0.4), from the counters as they are at this moment.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{lock, Metrics};
use crate::tls::ReloadingResolver;

/// Encodes `metrics` in the Prometheus text format.
pub(super) fn render(metrics: &Arc<Metrics>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(metrics.clone())));
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail; an encoder error would be a bug of ours, and a partial
    // scrape is still better than none.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    out
}

#[derive(Debug)]
struct Scrape(Arc<Metrics>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        // Copied out, so that no scrape holds the lock while it writes.
        let routes = lock(&m.routes).clone();

        let mut e = encoder.encode_descriptor(
            "oauthgate_http_requests",
            "Requests answered, by route prefix and status code.",
            None,
            MetricType::Counter,
        )?;
        for (prefix, stats) in &routes {
            for (code, n) in stats.codes() {
                let code = code.to_string();
                let labels = [("route", prefix.as_str()), ("code", code.as_str())];
                e.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }

        let mut e = encoder.encode_descriptor(
            "oauthgate_http_request_duration_seconds",
            "Time from a request's head to its response's head, by route prefix.",
            None,
            MetricType::Histogram,
        )?;
        for (prefix, stats) in &routes {
            let s = stats.duration.snapshot();
            if s.count == 0 {
                continue;
            }
            e.encode_family(&[("route", prefix.as_str())])?
                .encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &s.buckets, None)?;
        }

        let mut e = encoder.encode_descriptor(
            "oauthgate_upstream_errors",
            "Requests an upstream failed, by route prefix and kind (connect, timeout, reset, protocol, body_stalled).",
            None,
            MetricType::Counter,
        )?;
        for (prefix, stats) in &routes {
            for (kind, n) in stats.upstream_errors() {
                let labels = [("route", prefix.as_str()), ("kind", kind.label())];
                e.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }

        let logins = lock(&m.logins).clone();
        let mut e = encoder.encode_descriptor(
            "oauthgate_logins",
            "Logins by provider and outcome: completed/failed at the central server, accepted/refused at a gateway's callback.",
            None,
            MetricType::Counter,
        )?;
        for ((provider, outcome), n) in &logins {
            let labels = [("provider", provider.as_str()), ("outcome", *outcome)];
            e.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }

        let open = m.connections.get().map_or(0, |f| f());
        encoder
            .encode_descriptor(
                "oauthgate_connections",
                "Open client connections (WebSocket tunnels included).",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&(open as u64))?;

        let mut e = encoder.encode_descriptor(
            "oauthgate_connections_refused",
            "Connections refused at accept because a limit was reached, by the limit's key (max_connections, max_connections_per_ip).",
            None,
            MetricType::Counter,
        )?;
        for (limit, n) in m.refused.get().map(|f| f()).into_iter().flatten() {
            e.encode_family(&[("limit", limit)])?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }

        let mut e = encoder.encode_descriptor(
            "oauthgate_config_reloads",
            "Config reloads, by result: ok (swapped in) or error (refused; the old config serves on).",
            None,
            MetricType::Counter,
        )?;
        for (result, counter) in [("ok", &m.reloads_ok), ("error", &m.reloads_error)] {
            e.encode_family(&[("result", result)])?
                .encode_counter::<NoLabelSet, _, u64>(&counter.load(Relaxed), None)?;
        }

        encoder
            .encode_descriptor(
                "oauthgate_session_store_errors",
                "Session store (Redis) operations that failed or timed out; requests that needed them got 503.",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&m.session_store_errors.load(Relaxed), None)?;

        let mut e = encoder.encode_descriptor(
            "oauthgate_tls_certificate_expiry_timestamp_seconds",
            "When the served certificate expires (its notAfter, Unix seconds), by certificate file (and host, with ACME).",
            None,
            MetricType::Gauge,
        )?;
        if let Some((file, not_after)) = m.tls.get().and_then(|tls| expiry(tls)) {
            e.encode_family(&[("file", file.as_str())])?
                .encode_gauge(&not_after)?;
        }
        if let Some(hosts) = m.hosts.get() {
            for (host, der) in hosts.served() {
                let Some(not_after) = not_after(der.as_ref()) else {
                    continue;
                };
                let file = hosts.file_of(&host);
                let labels = [("file", file.as_str()), ("host", host.as_str())];
                e.encode_family(&labels)?.encode_gauge(&not_after)?;
            }
        }

        let mut e = encoder.encode_descriptor(
            "oauthgate_acme_orders",
            "ACME certificate orders, by result: ok (issued and served) or error (retried with backoff).",
            None,
            MetricType::Counter,
        )?;
        if m.hosts.get().is_some() {
            for (result, counter) in [("ok", &m.acme_ok), ("error", &m.acme_error)] {
                e.encode_family(&[("result", result)])?
                    .encode_counter::<NoLabelSet, _, u64>(&counter.load(Relaxed), None)?;
            }
        }
        Ok(())
    }
}

/// The served certificate's expiry. rustls-pki-types carries certificates as DER without
/// reading them; `x509-parser` (from the Rusticata project) reads the `notAfter` field. Parsed
/// at scrape time, so a certificate reloaded from disk is reported as soon as it is served.
///
/// The served certificate's file and its `notAfter` (Unix seconds); `None` when it cannot be
/// read (then the metric has no sample, rather than a wrong one).
fn expiry(tls: &ReloadingResolver) -> Option<(String, i64)> {
    let (file, der) = tls.served()?;
    Some((file.display().to_string(), not_after(der.as_ref())?))
}

/// A certificate's `notAfter` (Unix seconds).
fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{LoginOutcome, Logins, UpstreamError};
    use super::*;

    #[test]
    fn the_scrape_has_every_metric_with_its_labels() {
        let m = Arc::new(Metrics::default());
        let app = m.route("/app");
        app.record(200, Duration::from_millis(3), None);
        app.record(200, Duration::from_millis(30), None);
        app.record(502, Duration::from_millis(1), Some(UpstreamError::Connect));
        Logins::new(Some(&m)).count("github", LoginOutcome::Completed);
        m.reloaded(false);
        m.session_store_failed();
        m.count_connections(|| 7);
        let text = render(&m);
        assert!(
            !text.contains("oauthgate_connections_refused_total{"),
            "{text}"
        );
        app.count_upstream_error(UpstreamError::BodyStalled);
        m.count_refusals(|| [("max_connections", 4), ("max_connections_per_ip", 0)]);
        let text = render(&m);
        for line in [
            "# TYPE oauthgate_http_requests_total counter",
            "oauthgate_http_requests_total{route=\"/app\",code=\"200\"} 2",
            "oauthgate_http_requests_total{route=\"/app\",code=\"502\"} 1",
            "# TYPE oauthgate_http_request_duration_seconds histogram",
            "oauthgate_http_request_duration_seconds_bucket{route=\"/app\",le=\"0.005\"} 2",
            "oauthgate_http_request_duration_seconds_bucket{route=\"/app\",le=\"0.05\"} 3",
            "oauthgate_http_request_duration_seconds_bucket{route=\"/app\",le=\"+Inf\"} 3",
            "oauthgate_http_request_duration_seconds_count{route=\"/app\"} 3",
            "oauthgate_upstream_errors_total{route=\"/app\",kind=\"connect\"} 1",
            "oauthgate_logins_total{provider=\"github\",outcome=\"completed\"} 1",
            "oauthgate_upstream_errors_total{route=\"/app\",kind=\"body_stalled\"} 1",
            "oauthgate_connections 7",
            "oauthgate_connections_refused_total{limit=\"max_connections\"} 4",
            "oauthgate_connections_refused_total{limit=\"max_connections_per_ip\"} 0",
            "oauthgate_config_reloads_total{result=\"ok\"} 0",
            "oauthgate_config_reloads_total{result=\"error\"} 1",
            "# TYPE oauthgate_session_store_errors_total counter",
            "oauthgate_session_store_errors_total 1",
            "# TYPE oauthgate_tls_certificate_expiry_timestamp_seconds gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        let sum = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("oauthgate_http_request_duration_seconds_sum{route=\"/app\"} ")
            })
            .and_then(|v| v.parse::<f64>().ok())
            .expect("a sum");
        assert!((sum - 0.034).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn a_route_keeps_its_counters_when_resolved_again() {
        let m = Arc::new(Metrics::default());
        m.route("/app").record(200, Duration::ZERO, None);
        // A reload resolves the same prefix again: same counters.
        m.route("/app").record(200, Duration::ZERO, None);
        assert!(
            render(&m).contains("oauthgate_http_requests_total{route=\"/app\",code=\"200\"} 2\n")
        );
    }
}
