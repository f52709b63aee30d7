//! The request service: runs the stages listed in `pipeline/mod.rs` for one request.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use super::{BodyView, Flow, Stage};
use crate::audit::ClientText;
use crate::audit::{AuditBody, AuditRecord};
use crate::body::Body;
use crate::context::{ConnInfo, Decision, RequestCtx, RequestId};
use crate::error::{self, GatewayError};
use crate::gateway::{Gateway, Route, Runtime};
use crate::policy::hygiene;
use crate::policy::hygiene::body::RequestBody;
use crate::policy::upstream_request::{X_REQUEST_ID, strip_hop_by_hop};
use crate::policy::{cors, mask};
use crate::proxy::client_ip;
use crate::proxy::router::RouteLookup;
use crate::proxy::{forward, path};
use crate::telemetry::RouteMetrics;

/// Stages 1 to 3: request id, audit, and the single error-to-response mapping (panics included).
/// A request still in flight when `drain_deadline` fires is answered `ShuttingDown` (503) and
/// audited like any other, rather than cut with an empty reply.
pub async fn handle(
    gateway: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
    drain_deadline: Arc<CancellationToken>,
) -> Result<Response<AuditBody>, Infallible> {
    let runtime = gateway.runtime();
    let (mut parts, body) = req.into_parts();
    let request_id = RequestId::from_incoming(parts.headers.get(&X_REQUEST_ID));
    let trusted = &runtime.config.proxy.trusted_proxies;
    let which = runtime.config.proxy.client_ip_header;
    let client_ip = client_ip::client_ip(conn.peer.ip(), &parts.headers, trusted, which);
    let mut cx = RequestCtx::new(ConnInfo::clone(&conn), request_id, client_ip);
    cx.from_trusted_proxy = client_ip::is_trusted(conn.peer.ip(), trusted);
    start_trace(&runtime.config.tracing, &parts.headers, &mut cx);
    let method = parts.method.clone();
    let client = ClientSent::from(&parts);
    let mut route = None;
    let result = {
        // Pinned in place: the pipeline's future is kilobytes, and each wrapper it were moved
        // into (deadline, unwind guard) would copy it again.
        let blocks = &gateway.services.watch.blocks;
        let work = std::pin::pin!(async {
            cx.enter(Stage::Blocklist);
            source_not_blocked(blocks, cx.client_ip)?;
            process(&runtime, &mut parts, body, &mut cx, &mut route).await
        });
        AssertUnwindSafe(until_deadline(work, &drain_deadline))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                Err(GatewayError::Internal(
                    "panic in the request pipeline".into(),
                ))
            })
    };
    let response = result.unwrap_or_else(|err| {
        cx.decision = if err.status().is_server_error() {
            Decision::Error
        } else {
            Decision::Deny
        };
        cx.reason = Some(err.detail());
        cx.code = Some(err.public_code());
        cx.refused_by = Some(cx.stage.name());
        if let GatewayError::Unauthenticated(failure) = &err {
            cx.claimed_user = failure.claimed_user.clone();
        }
        error::into_response(&err, cx.request_id.as_str())
    });
    Ok(finish(
        &gateway,
        &runtime,
        route.as_deref(),
        cx,
        (&method, client),
        response,
    ))
}

/// Races the pipeline against the drain deadline; `biased`, so that a request that has finished is
/// never turned into a 503.
async fn until_deadline<T>(
    work: impl Future<Output = Result<T, GatewayError>>,
    deadline: &CancellationToken,
) -> Result<T, GatewayError> {
    tokio::select! {
        biased;
        result = work => result,
        () = deadline.cancelled() => Err(GatewayError::ShuttingDown),
    }
}

/// The response path, outer stages: security headers, CORS headers, request id, audit.
/// What the client sent that the audit record keeps, taken before the request is forwarded.
struct ClientSent {
    http_version: &'static str,
    host: Option<ClientText>,
    user_agent: Option<ClientText>,
}

impl ClientSent {
    fn from(parts: &http::request::Parts) -> Self {
        let host = match parts.headers.get(header::HOST) {
            Some(host) => Some(ClientText::new(host.as_bytes())),
            // HTTP/2 carries it as `:authority`.
            None => parts
                .uri
                .authority()
                .map(|a| ClientText::new(a.as_str().as_bytes())),
        };
        Self {
            http_version: match parts.version {
                http::Version::HTTP_2 => "HTTP/2",
                http::Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            host,
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .map(|agent| ClientText::new(agent.as_bytes())),
        }
    }
}

fn finish(
    gateway: &Gateway,
    runtime: &Runtime,
    route: Option<&Route>,
    mut cx: RequestCtx,
    (method, client): (&Method, ClientSent),
    response: Response<Body>,
) -> Response<AuditBody> {
    let (mut head, body) = response.into_parts();
    match route {
        Some(route) => {
            route.headers.apply(&mut head.headers, cx.conn.tls);
            route.pipeline.on_response(&mut head, &cx);
        }
        None => runtime
            .default_headers
            .apply(&mut head.headers, cx.conn.tls),
    }
    head.headers
        .insert(X_REQUEST_ID, cx.request_id.header_value().clone());
    let validation = std::mem::take(&mut cx.validation);
    let record = Box::new(AuditRecord {
        time: SystemTime::now(),
        request_id: cx.request_id.clone(),
        client_ip: cx.client_ip,
        listener: cx.conn.listener.clone(),
        method: crate::context::method_label(method),
        route: cx.route.clone(),
        path: cx.path,
        status: head.status.as_u16(),
        decision: cx.decision,
        reason: cx.reason,
        bytes_in: cx.bytes_in,
        bytes_out: 0,
        duration_us: 0,
        principal: cx.principal.as_ref().map(|p| p.subject.clone()),
        auth_method: cx.principal.as_ref().map(|p| p.method.as_str()),
        key_id: cx.principal.as_ref().and_then(|p| p.method.key_id()),
        trace_id: Some(cx.trace.trace_id),
        refused_by: cx.refused_by,
        sampled: cx.clock.take().map(|clock| {
            Box::new(crate::trace::SampledRequest {
                span_id: cx.trace.span_id,
                parent: cx.trace.parent,
                clock: *clock,
            })
        }),
        code: cx.code,
        claimed_user: cx.claimed_user,
        upstream_us: cx.upstream.as_ref().map(|(_, d)| micros(*d)),

        upstream: cx.upstream.map(|(target, _)| target),
        upstream_status: cx.upstream_status,
        http_version: client.http_version,
        tls_version: cx.conn.tls_version,
        host: client.host,
        user_agent: client.user_agent,
        validation: (!validation.is_empty()).then_some(validation),
    });
    let metrics = route.map_or_else(RouteMetrics::unrouted, |route| route.metrics.clone());
    let body = AuditBody::new(body, record, cx.started, gateway.audit().clone(), metrics)
        .holding(cx.in_flight);
    Response::from_parts(head, body)
}

/// The request's trace context (`crate::trace`), and its stage clock when sampled.
fn start_trace(
    config: &crate::trace::TracingConfig,
    headers: &http::HeaderMap,
    cx: &mut RequestCtx,
) {
    use crate::trace::{StageClock, TraceAccept, TraceContext};
    let believed = match config.accept_from {
        TraceAccept::TrustedProxies => cx.from_trusted_proxy,
        TraceAccept::Any => true,
        TraceAccept::None => false,
    };
    cx.trace = TraceContext::from_request(headers, believed, config.effective_ratio());
    // Stage times only where spans are exported: a believed parent's flag alone costs nothing.
    if cx.trace.sampled && config.otlp_endpoint.is_some() {
        cx.clock = Some(Box::new(StageClock::start(cx.started)));
    }
}

/// `Stage::Blocklist`: an address or network blocked by a detector or an operator is refused
/// before anything else runs.
fn source_not_blocked(
    blocks: &crate::policy::detect::blocks::BlockList,
    ip: std::net::IpAddr,
) -> Result<(), GatewayError> {
    match blocks.source_blocked(ip) {
        Some(blocked) => Err(GatewayError::Blocked {
            by: blocked.by,
            retry_after_s: blocked.retry_after_s,
        }),
        None => Ok(()),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// From `Stage::Hygiene` to `Stage::MaskUpstream`, in the order of `pipeline::order`.
async fn process(
    runtime: &Runtime,
    parts: &mut http::request::Parts,
    body: Incoming,
    cx: &mut RequestCtx,
    matched: &mut Option<Arc<Route>>,
) -> Result<Response<Body>, GatewayError> {
    let limits = &runtime.config.limits;
    cx.enter(Stage::Hygiene);
    hygiene::check_request(parts, limits, &runtime.refused_methods)
        .map_err(|e| refused_with_allow(runtime, parts, e))?;
    cx.path = path::normalize(parts.uri.path())
        .map_err(|e| GatewayError::InvalidPath(e.as_str()))?
        .into_owned();
    cx.enter(Stage::Routing);
    let route = find_route(runtime, parts, &cx.path)?;
    *matched = Some(route.clone());
    cx.route = Some(route.name.clone());
    if cors::is_preflight(parts) && !route.cors {
        return Err(GatewayError::CorsRejected(
            "preflight on a route without CORS",
        ));
    }
    cx.body_present = body_present(&parts.headers, &body);
    if let Flow::Respond(response) = route.pipeline.before_body(parts, cx).await? {
        return Ok(response);
    }
    cx.enter(Stage::Body);
    let body = if route.pipeline.reads_body(parts, cx) {
        let bytes =
            hygiene::body::read_whole(body, route.max_body_bytes, limits, &mut cx.bytes_in).await?;
        cx.enter(Stage::ValidateBody);
        let mut view = BodyView::new(bytes);
        route.pipeline.on_body(parts, &mut view, cx).await?;
        whole_body(parts, view)
    } else {
        hygiene::body::read(body, route.max_body_bytes, limits, &mut cx.bytes_in).await?
    };
    if let Flow::Respond(response) = route.pipeline.after_body(parts, cx).await? {
        return Ok(response);
    }
    if route.identity_responses {
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    let request_method = parts.method.clone();
    let upstream_parts = std::mem::replace(parts, Request::new(()).into_parts().0);
    cx.enter(Stage::Proxy);
    let response = match forward::forward(&route.upstream, upstream_parts, body, cx).await {
        Ok(response) => response,
        Err(e) => {
            // A streamed body fails while the upstream reads it: still the body's stage.
            if matches!(
                e,
                GatewayError::ClientBody(_)
                    | GatewayError::ClientBodyTimeout(_)
                    | GatewayError::BodyTooLarge { .. }
            ) {
                cx.enter(Stage::Body);
            }
            return Err(e);
        }
    };
    let (mut head, upstream_body) = response.into_parts();
    cx.upstream_status = Some(head.status.as_u16());
    strip_hop_by_hop(&mut head.headers);
    mask::scrub_upstream_headers(&mut head.headers);
    cx.enter(Stage::MaskUpstream);
    if mask::must_mask(route.mask_upstream_errors, head.status) {
        mask::log_masked_body(
            upstream_body,
            cx.request_id.as_str().to_owned(),
            head.status,
        );
        return Err(GatewayError::UpstreamStatusMasked(head.status));
    }
    route
        .pipeline
        .on_response_head(&head, &request_method, cx)?;
    let scanner = mask::guard::scanner().filter(|_| route.leak_scan);
    // Read from the upstream's head, before a body policy may rewrite it: such a rewrite only
    // sets the length of a changed body, which leaves a non-empty body non-empty.
    let shape =
        (scanner.is_some() || route.identity_responses).then(|| mask::guard::TextShape::of(&head));
    if route.identity_responses && shape.is_some_and(mask::guard::TextShape::unreadable_text) {
        // Asked for `identity`, answered compressed: what the checks cannot read does not pass.
        return Err(GatewayError::UpstreamResponseRefused(
            "content-coded response on a route that checks responses".to_owned(),
        ));
    }
    let mut body: Body = upstream_body.map_err(Into::into).boxed();
    if route.pipeline.reads_response_body(&head, cx) {
        cx.enter(Stage::ValidateResponse);
        let bytes = checked_response(route, &mut head, body, cx).await?;
        cx.enter(Stage::MaskUpstream);
        // Already whole: scanned as it is, whatever its size, so a leak is a masked 502.
        if let (Some(scanner), Some(shape)) = (scanner, shape) {
            mask::guard::check_whole(scanner, shape, &bytes, &mut cx.validation.leak)?;
        }
        return Ok(Response::from_parts(head, crate::body::full(bytes)));
    }
    if let (Some(scanner), Some(shape)) = (scanner, shape) {
        cx.enter(Stage::MaskUpstream);
        body = mask::guard::guard(scanner, shape, body, &mut cx.validation.leak).await?;
    }
    Ok(Response::from_parts(head, body))
}

/// Whether the request has a body: what its head announces, and on HTTP/2 (where a body needs
/// neither `Content-Length` nor chunking) whether the stream stays open after the head.
fn body_present(headers: &http::HeaderMap, body: &Incoming) -> bool {
    let zero_length = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    !zero_length && !http_body::Body::is_end_stream(body)
}

/// Stage::ValidateResponse: a response some policy reads is read whole (bounded by the route's
/// `max_response_bytes`: beyond it, a masked 502), checked, and sent on, changed or not, with its
/// own `Content-Length`.
async fn checked_response(
    route: &Route,
    head: &mut http::response::Parts,
    body: Body,
    cx: &mut RequestCtx,
) -> Result<bytes::Bytes, GatewayError> {
    let bytes = crate::body::collect_bounded(body, route.max_response_bytes)
        .await
        .map_err(GatewayError::UpstreamResponseRefused)?;
    if bytes.is_empty() {
        // A HEAD response, a 204: nothing to check, and its `Content-Length` is the upstream's.
        return Ok(bytes);
    }
    let mut view = BodyView::new(bytes);
    route.pipeline.on_response_body(head, &mut view, cx)?;
    if !view.changed() {
        return Ok(view.into_bytes());
    }
    forget_digests(&mut head.headers);
    head.headers.remove(header::ETAG);
    head.headers.remove(header::TRANSFER_ENCODING);
    let bytes = view.into_bytes();
    head.headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(bytes)
}

/// The body to forward once the body policies have seen it; a body they changed gets its new
/// `Content-Length` (and loses any `Content-MD5`-style digest of the old one).
fn whole_body(parts: &mut http::request::Parts, view: BodyView) -> RequestBody {
    if view.changed() {
        forget_digests(&mut parts.headers);
    }
    let bytes = view.into_bytes();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    parts.headers.remove(header::TRANSFER_ENCODING);
    RequestBody {
        body: crate::body::full(bytes),
        progress: None,
    }
}

/// Digests of a body that was changed no longer hold; they are dropped rather than left wrong.
fn forget_digests(headers: &mut http::HeaderMap) {
    for name in ["content-md5", "content-digest", "repr-digest"] {
        headers.remove(HeaderName::from_static(name));
    }
}

/// A refused method's 405 carries `Allow` (RFC 9110 section 15.5.6): what the route at this path
/// allows, or nothing when no route matches.
fn refused_with_allow(
    runtime: &Runtime,
    parts: &http::request::Parts,
    error: GatewayError,
) -> GatewayError {
    let GatewayError::MethodRefused { method, .. } = error else {
        return error;
    };
    let allow = path::normalize(parts.uri.path()).ok().and_then(|p| {
        match runtime.router.lookup_request(parts, &p, &method) {
            RouteLookup::MethodNotAllowed(allow) => Some(allow),
            RouteLookup::Found(_) | RouteLookup::NotFound => None,
        }
    });
    GatewayError::MethodRefused { method, allow }
}

/// Routing; a CORS preflight is routed by the method it asks about.
fn find_route<'a>(
    runtime: &'a Runtime,
    parts: &http::request::Parts,
    path: &str,
) -> Result<&'a Arc<Route>, GatewayError> {
    let asked = parts
        .headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .filter(|_| cors::is_preflight(parts))
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let method = asked.as_ref().unwrap_or(&parts.method);
    match runtime.router.lookup_request(parts, path, method) {
        RouteLookup::Found(route) => Ok(route),
        RouteLookup::MethodNotAllowed(allow) => Err(GatewayError::MethodNotAllowed { allow }),
        RouteLookup::NotFound => Err(GatewayError::RouteNotFound),
    }
}
