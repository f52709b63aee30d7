//! A response body that writes the audit record and metrics when the response ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::{AuditRecord, AuditSink};
use crate::body::{Body, BoxError};
use crate::telemetry::RouteMetrics;

/// Wraps the response body; on completion or drop (client gone) it finishes the record with the
/// bytes sent and the total latency, and emits it.
pub struct AuditBody {
    inner: Body,
    record: Option<Box<AuditRecord>>,
    started: Instant,
    sink: AuditSink,
    metrics: Arc<RouteMetrics>,
    /// The route's concurrency slot: held until the response body has been sent.
    in_flight: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl AuditBody {
    pub fn new(
        inner: Body,
        record: Box<AuditRecord>,
        started: Instant,
        sink: AuditSink,
        metrics: Arc<RouteMetrics>,
    ) -> Self {
        Self {
            inner,
            record: Some(record),
            started,
            sink,
            metrics,
            in_flight: None,
        }
    }

    /// Keeps the route's concurrency slot until the body ends (or is dropped).
    pub fn holding(mut self, in_flight: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        self.in_flight = in_flight;
        self
    }

    fn finish(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        let elapsed = self.started.elapsed();
        record.duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.metrics.record(&record, elapsed);
        self.sink.record(record);
    }
}

impl HttpBody for AuditBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(record)) = (frame.data_ref(), self.record.as_mut()) {
                    record.bytes_out += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Err(_))) => {
                if let Some(record) = self.record.as_mut() {
                    record
                        .reason
                        .get_or_insert_with(|| "response body failed".to_owned());
                }
                self.finish();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditBody {
    fn drop(&mut self) {
        self.finish();
    }
}
