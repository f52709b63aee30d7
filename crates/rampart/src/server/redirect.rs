//! The redirect listener: plain HTTP that only answers 308 to the same target over HTTPS.

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::context::RequestId;
use crate::error::{self, GatewayError};

/// A permanent redirect to HTTPS for the redirect listener; method and body are kept (308).
pub fn redirect_to_https(req: &Request<Incoming>, https_port: u16) -> Response<Body> {
    let host = req
        .uri()
        .authority()
        .map(|a| a.host().to_owned())
        .or_else(|| {
            let value = req.headers().get(header::HOST)?.to_str().ok()?;
            Some(value.rsplit_once(':').map_or(value, |(h, _)| h).to_owned())
        })
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
        });
    let Some(host) = host else {
        return error::into_response(
            &GatewayError::MalformedRequest("missing Host"),
            RequestId::generate().as_str(),
        );
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("https://{host}{port}{target}");
    let mut response = Response::new(body::empty());
    *response.status_mut() = http::StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
