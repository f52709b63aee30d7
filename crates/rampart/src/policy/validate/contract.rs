//! The OpenAPI contract as policies: the positive security model on one route.
//!
//! Three policies share one compiled `Contract`, one per stage: `ContractHead`
//! (`Stage::Validate`: the operation, its parameters and content type, before any cryptography),
//! `ContractBody` (`Stage::ValidateBody`: the body against its media type's schema, after the
//! JSON threat limits; marked fields sanitized) and `ContractResponse`
//! (`Stage::ValidateResponse`: the response against its declared schema; undeclared members
//! stripped, or a masked 502, or only reported). The head stage records the matched operation
//! in the request context; the later stages look it up by key, never by matching again.
//!
//! In `report` mode nothing is refused: each violation is logged (pointers only), counted per
//! operation and outcome, and audited, so that a contract can be rolled out against live
//! traffic before it is enforced.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::StatusCode;

use super::config::{Mode, OpenApiConfig, ResponseMode};
use super::spec::{Found, MAX_VIOLATIONS, MediaKind, MediaSpec, Operation, Spec};
use super::violation::{Violation, escape_token};
use super::xml::XmlLimits;
use super::{form, media, multipart, xml};
use crate::context::RequestCtx;
use crate::error::{GatewayError, Invalid};
use crate::pipeline::{BodyView, Flow, Policy, Stage};
use crate::policy::sanitize::apply as sanitize;
use crate::policy::sanitize::config::OnUnsafe;
use crate::policy::sanitize::field_path::FieldPath;
use crate::policy::sanitize::html::HtmlSanitizer;

mod outcome;

use outcome::Counters;

/// Most fields in a urlencoded body (each is a member of the object checked by the schema).
const MAX_FORM_FIELDS: usize = 1_000;

/// One route's compiled contract and how it is applied.
pub struct Contract {
    spec: Arc<Spec>,
    route: Arc<str>,
    mode: Mode,
    refusal_status: StatusCode,
    responses: ResponseMode,
    max_response_bytes: u64,
    xml: XmlLimits,
    multipart: multipart::MultipartLimits,
    sanitizer: Arc<HtmlSanitizer>,
    counters: Counters,
}

/// What building a contract's policies needs besides its config.
pub struct ContractEnv {
    pub route: Arc<str>,
    pub sanitizer: Arc<HtmlSanitizer>,
    pub xml: XmlLimits,
    pub multipart: multipart::MultipartLimits,
}

impl Contract {
    pub fn new(spec: Arc<Spec>, config: &OpenApiConfig, env: ContractEnv) -> Self {
        let counters = Counters::new(&spec, &env.route);
        Self {
            spec,
            route: env.route,
            mode: config.mode,
            refusal_status: StatusCode::from_u16(config.refusal_status)
                .unwrap_or(StatusCode::BAD_REQUEST),
            responses: config.responses,
            max_response_bytes: config.max_response_bytes,
            xml: env.xml,
            multipart: env.multipart,
            sanitizer: env.sanitizer,
            counters,
        }
    }

    /// The three policies, one per stage, sharing this contract.
    pub fn policies(self) -> Vec<Arc<dyn Policy>> {
        let contract = Arc::new(self);
        vec![
            Arc::new(ContractHead(contract.clone())),
            Arc::new(ContractBody(contract.clone())),
            Arc::new(ContractResponse(contract)),
        ]
    }

    fn operation(&self, cx: &RequestCtx) -> Option<&Operation> {
        cx.validation
            .operation_index
            .and_then(|key| self.spec.operation(key))
    }

    /// Refuses (`enforce`) or records (`report`) the request's violations. A request that passes
    /// is counted once, by its last check (`Last::Yes`): the head's when no body check follows.
    fn settle(
        &self,
        violations: Vec<Violation>,
        last: Last,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let key = cx.validation.operation_index;
        if violations.is_empty() {
            // A request reported by an earlier check was counted then.
            if last == Last::Yes && cx.validation.violations.is_empty() {
                self.counters.passed(key);
            }
            return Ok(());
        }
        cx.validation
            .violations
            .extend(violations.iter().map(|v| v.pointer.clone()));
        match self.mode {
            Mode::Report => {
                self.counters.reported(key);
                tracing::info!(
                    route = %self.route,
                    operation = cx.validation.operation.as_deref().unwrap_or("-"),
                    pointers = ?cx.validation.violations,
                    "request violates the contract (report mode: let through)"
                );
                Ok(())
            }
            Mode::Enforce => {
                self.counters.refused(key);
                Err(GatewayError::RequestInvalid(Box::new(Invalid {
                    status: self.refusal_status,
                    operation: cx.validation.operation.clone(),
                    violations,
                })))
            }
        }
    }

    /// A refusal that is not a list of violations (404, 405, 415): refused in `enforce`, one
    /// violation recorded in `report`.
    fn settle_error(
        &self,
        error: GatewayError,
        violation: Violation,
        cx: &mut RequestCtx,
    ) -> Result<Flow, GatewayError> {
        match self.mode {
            Mode::Report => self
                .settle(vec![violation], Last::Yes, cx)
                .map(|()| Flow::Continue),
            Mode::Enforce => {
                self.counters.refused(cx.validation.operation_index);
                cx.validation.violations.push(violation.pointer);
                Err(error)
            }
        }
    }
}

/// Whether a check is the request's last one (and so counts a pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Yes,
    No,
}

/// `Stage::Validate`: the declared operation, its parameters, its content type.
struct ContractHead(Arc<Contract>);

impl Policy for ContractHead {
    fn name(&self) -> &'static str {
        "openapi"
    }

    fn stage(&self) -> Stage {
        Stage::Validate
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut http::request::Parts,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        Box::pin(std::future::ready(self.check(req, cx)))
    }
}

impl ContractHead {
    fn check(&self, req: &http::request::Parts, cx: &mut RequestCtx) -> Result<Flow, GatewayError> {
        let contract = &self.0;
        let (operation, params) = match contract.spec.find(&req.method, &cx.path) {
            Found::Operation(operation, params) => (operation, params),
            Found::MethodNotAllowed(allow) => {
                let error = GatewayError::MethodNotAllowed { allow };
                let violation = Violation::new("/method", "is not declared for this path");
                return contract.settle_error(error, violation, cx);
            }
            Found::NotFound => {
                let violation = Violation::new("/path", "is not declared");
                return contract.settle_error(GatewayError::OperationNotDeclared, violation, cx);
            }
        };
        cx.validation.operation = Some(operation.shared_id().clone());
        cx.validation.operation_index = Some(operation.key());
        let mut violations = operation.check_head(req, &params);
        if let Some((reason, unsupported)) =
            body_presence(operation, req, cx.body_present, &mut violations)
        {
            let error = GatewayError::UnsupportedMediaType(reason);
            return contract.settle_error(error, unsupported, cx);
        }
        // A body of a declared media type is checked next, by `ContractBody`, which counts.
        let body_follows = cx.body_present && operation.request_body().is_some();
        let last = if body_follows { Last::No } else { Last::Yes };
        contract
            .settle(violations, last, cx)
            .map(|()| Flow::Continue)
    }
}

/// Checks that a body is there when required, absent when not declared, of a declared media
/// type and not content-coded. `Some` is a body the contract cannot read (415), with its reason.
fn body_presence(
    operation: &Operation,
    req: &http::request::Parts,
    present: bool,
    violations: &mut Vec<Violation>,
) -> Option<(&'static str, Violation)> {
    if present && media::is_encoded(&req.headers) {
        let violation = Violation::new("/header/content-encoding", "is not accepted");
        return Some(("content-coded body", violation));
    }
    match (present, operation.request_body()) {
        (true, None) => {
            violations.push(Violation::new(
                "/body",
                "is not declared for this operation",
            ));
            None
        }
        (true, Some(body)) => {
            let declared = media::essence(&req.headers).is_some_and(|e| body.media(&e).is_some());
            (!declared).then(|| {
                let violation = Violation::new("/header/content-type", "is not declared");
                ("content type not declared by the operation", violation)
            })
        }
        (false, Some(body)) if body.required() => {
            violations.push(Violation::new("/body", "is required"));
            None
        }
        (false, _) => None,
    }
}

/// `Stage::ValidateBody`: the body against the schema of its media type; marked fields
/// sanitized.
struct ContractBody(Arc<Contract>);

impl ContractBody {
    fn media<'c>(&'c self, req: &http::request::Parts, cx: &RequestCtx) -> Option<&'c MediaSpec> {
        let operation = self.0.operation(cx)?;
        let essence = media::essence(&req.headers)?;
        operation.request_body()?.media(&essence)
    }

    async fn check(
        &self,
        req: &http::request::Parts,
        body: &mut BodyView,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let Some(spec) = self.media(req, cx) else {
            return Ok(());
        };
        let contract = &self.0;
        let violations = match spec.kind() {
            MediaKind::Json => match body.json() {
                Ok(value) => {
                    let violations = spec.check(value);
                    // In report mode the body goes on whatever it violates, so it is cleaned
                    // all the same: a contract being rolled out never lets markup through.
                    let goes_on = violations.is_empty() || contract.mode == Mode::Report;
                    if goes_on && sanitize_marked(contract, spec.sanitize_fields(), body, cx)? {
                        // The sanitized copy is what goes on, so it is checked again: a field
                        // the sanitizer re-spelled can grow past its `maxLength` (`<` becomes
                        // `&lt;`, a link gains `rel`) or leave its `pattern`, and the upstream
                        // must only ever receive what the contract declares.
                        match body.json() {
                            Ok(value) => spec.check(value),
                            Err(violation) => vec![violation],
                        }
                    } else {
                        violations
                    }
                }
                Err(violation) => vec![violation],
            },
            MediaKind::Form => form_violations(spec, body.bytes()),
            MediaKind::Multipart => {
                let content_type = req
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                multipart_violations(spec, body, content_type, &contract.multipart).await
            }
            MediaKind::Xml => xml::check(body.bytes(), &contract.xml)
                .err()
                .into_iter()
                .collect(),
            MediaKind::Other => Vec::new(),
        };
        contract.settle(violations, Last::Yes, cx)
    }
}

impl Policy for ContractBody {
    fn name(&self) -> &'static str {
        "openapi_body"
    }

    fn stage(&self) -> Stage {
        Stage::ValidateBody
    }

    fn reads_body(&self, req: &http::request::Parts, cx: &RequestCtx) -> bool {
        cx.body_present && self.media(req, cx).is_some()
    }

    fn on_body<'a>(
        &'a self,
        req: &'a http::request::Parts,
        body: &'a mut BodyView,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.check(req, body, cx))
    }
}

/// Cleans the fields the contract marks `x-rampart-sanitize: html`; says whether any was
/// rewritten (the body then goes on re-serialized).
fn sanitize_marked(
    contract: &Contract,
    fields: &[FieldPath],
    body: &mut BodyView,
    cx: &mut RequestCtx,
) -> Result<bool, GatewayError> {
    if fields.is_empty() {
        return Ok(false);
    }
    let Ok(value) = body.json() else {
        return Ok(false);
    };
    let marked = fields.iter().map(|f| (f, OnUnsafe::Sanitize));
    match sanitize::apply(value, marked, &contract.sanitizer) {
        Ok(applied) => {
            cx.validation.sanitized += u32::try_from(applied.removed).unwrap_or(u32::MAX);
            // Any rewritten field is re-serialized, counted as a removal or not (see
            // `Applied::rewritten`): the raw bytes of a rewritten field never go on.
            if applied.rewritten > 0 {
                body.mark_json_changed();
            }
            Ok(applied.rewritten > 0)
        }
        Err(violation) => contract
            .settle(vec![violation], Last::Yes, cx)
            .map(|()| false),
    }
}

fn form_violations(spec: &MediaSpec, bytes: &[u8]) -> Vec<Violation> {
    let pairs = match form::parse_urlencoded(bytes, MAX_FORM_FIELDS) {
        Ok(pairs) => pairs,
        Err(violation) => return vec![violation],
    };
    match spec.coerce_form(&pairs) {
        Ok(value) => spec.check(&value),
        Err(violations) => violations,
    }
}

async fn multipart_violations(
    spec: &MediaSpec,
    body: &BodyView,
    content_type: &str,
    limits: &multipart::MultipartLimits,
) -> Vec<Violation> {
    let parts = match multipart::parse(body.bytes().clone(), content_type, limits).await {
        Ok(parts) => parts,
        Err(violation) => return vec![violation],
    };
    let mut violations = Vec::new();
    // Value parts are checked as their text; file parts as their file name (the schema says
    // `format: binary` for them, which any string satisfies).
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(parts.len());
    for part in parts {
        let at = || format!("/body/{}", escape_token(&part.name));
        let declared = spec.multipart_fields().iter().find(|f| f.name == part.name);
        if let Some(violation) = declared.and_then(|field| part_mismatch(field, &part, at())) {
            violations.push(violation);
            continue;
        }
        let value = match part.filename {
            Some(name) => name,
            // Never repaired: the upstream would read other text than was checked.
            None => match String::from_utf8(part.data.to_vec()) {
                Ok(text) => text,
                Err(_) => {
                    violations.push(Violation::new(at(), "must be valid UTF-8"));
                    continue;
                }
            },
        };
        pairs.push((part.name, value));
    }
    if !violations.is_empty() {
        return violations;
    }
    match spec.coerce_form(&pairs) {
        Ok(value) => spec.check(&value),
        Err(violations) => violations,
    }
}

/// A part that is not what its declared field says: a file where a value is declared (its
/// content would never be checked), or a file of a media type the `encoding` does not list.
fn part_mismatch(
    field: &super::spec::MultipartField,
    part: &multipart::Part,
    at: String,
) -> Option<Violation> {
    if !field.file && part.filename.is_some() {
        return Some(Violation::new(at, "must be a value, not a file"));
    }
    let Some(declared) = &field.content_type else {
        return None;
    };
    // RFC 7578 section 4.4: a part without a type is `text/plain`; an upstream sniffing it
    // otherwise would read a type the encoding does not list.
    let sent = part
        .content_type
        .as_deref()
        .unwrap_or("text/plain")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let accepted = declared.split(',').map(str::trim).any(|range| {
        let range = range.to_ascii_lowercase();
        range == sent
            || range == "*/*"
            || range
                .strip_suffix("/*")
                .is_some_and(|kind| sent.split('/').next() == Some(kind))
    });
    (!accepted).then(|| Violation::new(at, "has a media type the contract does not list"))
}

/// `Stage::ValidateResponse`: the response against its declared schema.
struct ContractResponse(Arc<Contract>);

impl ContractResponse {
    fn declared<'c>(
        &'c self,
        rsp: &http::response::Parts,
        cx: &RequestCtx,
    ) -> Option<&'c super::spec::ResponseSpec> {
        let essence = media::essence(&rsp.headers)?;
        if !media::is_json(&essence) {
            return None;
        }
        self.0
            .operation(cx)?
            .response(rsp.status.as_u16(), &essence)
    }

    /// What the operation does not declare about the response's head: its status (exactly, by
    /// `2XX`-style range or by `default`), or the content type of its body.
    fn undeclared_head(
        &self,
        rsp: &http::response::Parts,
        request_method: &http::Method,
        cx: &RequestCtx,
    ) -> Option<&'static str> {
        let operation = self.0.operation(cx)?;
        let status = rsp.status;
        // Upstream failures are the mask stage's (a masked 502, or passed on where the route
        // says so), not a contract violation to turn into another 502; a 304 answers a
        // conditional request and carries no body, whatever the contract lists.
        if status.is_server_error()
            || status.is_informational()
            || status == StatusCode::NOT_MODIFIED
        {
            return None;
        }
        let content_type = rsp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let declared = match content_type {
            Some(content_type) => {
                operation.response_content_declared(status.as_u16(), content_type)
            }
            // A body without a (readable) type is never one the contract declares: passing it
            // would skip the response check altogether (a `writeOnly` member left unstripped).
            None => operation
                .response_declared(status.as_u16())
                .then_some(false),
        };
        match declared {
            None => Some("/status"),
            Some(true) => None,
            Some(false) if !may_have_body(rsp, request_method) => None,
            Some(false) => Some("/header/content-type"),
        }
    }
}

/// Whether the response can carry a body whose type matters: not a HEAD response, a 204 or one
/// whose `Content-Length` says it is empty.
fn may_have_body(rsp: &http::response::Parts, request_method: &http::Method) -> bool {
    *request_method != http::Method::HEAD
        && rsp.status != StatusCode::NO_CONTENT
        && declared_length(rsp) != Some(0)
}

impl Policy for ContractResponse {
    fn name(&self) -> &'static str {
        "openapi_response"
    }

    fn stage(&self) -> Stage {
        Stage::ValidateResponse
    }

    fn on_request<'a>(
        &'a self,
        _req: &'a mut http::request::Parts,
        _cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        Box::pin(std::future::ready(Ok(Flow::Continue)))
    }

    fn on_response_head(
        &self,
        rsp: &http::response::Parts,
        request_method: &http::Method,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let mode = self.0.responses;
        if mode == ResponseMode::Off {
            return Ok(());
        }
        match self.undeclared_head(rsp, request_method, cx) {
            Some(pointer) => response_outcome(mode, vec![pointer.to_owned()], 1, cx),
            None => Ok(()),
        }
    }

    fn reads_response_body(&self, rsp: &http::response::Parts, cx: &RequestCtx) -> bool {
        let contract = &self.0;
        let too_large_to_report = contract.responses == ResponseMode::Report
            && declared_length(rsp).is_none_or(|n| n > contract.max_response_bytes);
        contract.responses != ResponseMode::Off
            && !too_large_to_report
            && self.declared(rsp, cx).is_some()
    }

    fn on_response_body(
        &self,
        rsp: &mut http::response::Parts,
        body: &mut BodyView,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let Some(declared) = self.declared(rsp, cx) else {
            return Ok(());
        };
        let mode = self.0.responses;
        let value = match body.json() {
            Ok(value) => value,
            Err(_) => return response_outcome(mode, vec!["/body".to_owned()], 1, cx),
        };
        let stripped = match mode {
            ResponseMode::Report => declared.strip(&mut value.clone(), MAX_VIOLATIONS),
            _ => declared.strip(value, MAX_VIOLATIONS),
        };
        let mut pointers: Vec<String> = declared
            .check(value)
            .into_iter()
            .map(|v| v.pointer)
            .collect();
        let mut total = pointers.len();
        if mode == ResponseMode::Strip && stripped.total > 0 {
            body.mark_json_changed();
            cx.validation.stripped = stripped.pointers;
            cx.validation.stripped_total = saturating_u32(stripped.total);
        } else {
            pointers.extend(stripped.pointers);
            total = total.saturating_add(stripped.total);
        }
        response_outcome(mode, pointers, total, cx)
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn declared_length(rsp: &http::response::Parts) -> Option<u64> {
    rsp.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A response's violations (`total` of them, `pointers` naming some): a masked 502 under
/// `enforce`; recorded otherwise (what `strip` could not fix, a wrong type say, is reported
/// rather than refused). The audit keeps at most `MAX_VIOLATIONS` pointers and the count.
fn response_outcome(
    mode: ResponseMode,
    mut pointers: Vec<String>,
    total: usize,
    cx: &mut RequestCtx,
) -> Result<(), GatewayError> {
    if total == 0 && pointers.is_empty() {
        return Ok(());
    }
    let recorded = &mut cx.validation;
    pointers.truncate(MAX_VIOLATIONS.saturating_sub(recorded.response_violations.len()));
    recorded.response_violations.extend(pointers);
    recorded.response_violations_total = recorded
        .response_violations_total
        .saturating_add(saturating_u32(total));
    let summary = recorded.response_violations.join(", ");
    let total = recorded.response_violations_total;
    match mode {
        ResponseMode::Enforce => Err(GatewayError::UpstreamResponseRefused(format!(
            "response violates the contract at {summary} ({total} in all)"
        ))),
        ResponseMode::Strip | ResponseMode::Report | ResponseMode::Off => {
            tracing::info!(
                pointers = %summary,
                total,
                "response violates the contract (let through)"
            );
            Ok(())
        }
    }
}
