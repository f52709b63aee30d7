//! `multipart/form-data` bodies (file uploads).
//!
//! Threat: an upload body built against the upstream: a flood of parts, one huge part, a huge
//! part header block, and above all file names that the upstream might join to a directory
//! (`../../etc/passwd`, `C:\evil.exe`, a NUL that truncates the name in C code, a leading dot
//! that hides the file, a right-to-left override that disguises `exe`). A second threat is a
//! parser differential: a `Content-Disposition` the gateway reads one way and the upstream
//! another (`filename*=`, parameter names in other cases, duplicated parameters, backslash
//! escapes), so the name the gateway checked is not the name the upstream uses.
//!
//! Invariants: the body is already in memory and bounded by the body-size policy; multer splits
//! it at the boundary and enforces the per-part size as it reads. Every part's
//! `Content-Disposition` is parsed here, strictly (see [`Disposition`]): exactly one, `form-data`,
//! a `name`, at most one `filename`, no extended (`*`) parameters, no backslash in a quoted value.
//! A file name is refused unless it is a plain name ([`file_name_is_allowed`]), checked both as
//! sent and once percent-decoded. Counts and sizes are bounded by [`MultipartLimits`] and checked
//! before the next part is read. A refusal points at `/body/{part name}` (or `/body` when the part
//! name is not known or not allowed, `/header/content-type` for the boundary) and never carries a
//! name, a value or the parser's message.

use std::convert::Infallible;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use multer::{Constraints, Field, Multipart, SizeLimit};

use super::violation::{Violation, escape_token};

/// RFC 2046 section 5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY_BYTES: usize = 70;
/// Longest part name or file name: what common file systems allow for one name.
const MAX_NAME_BYTES: usize = 255;

/// Bounds on a multipart body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MultipartLimits {
    /// Parts in the body.
    #[schemars(range(min = 1, max = 100_000))]
    pub max_parts: usize,
    /// Size of one file part (a part with a `filename`).
    #[schemars(range(min = 1, max = 1_099_511_627_776u64))]
    pub max_part_bytes: usize,
    /// Size of one field part (a part without a `filename`).
    #[schemars(range(min = 1, max = 1_099_511_627_776u64))]
    pub max_field_bytes: usize,
    /// Size of one part's header block (names, values and line ends).
    #[schemars(range(min = 1, max = 1_048_576))]
    pub max_header_bytes: usize,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        Self {
            max_parts: 32,
            max_part_bytes: 1024 * 1024,
            max_field_bytes: 64 * 1024,
            max_header_bytes: 8 * 1024,
        }
    }
}

/// One part of a multipart body, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// The file name as sent, when the part is a file (it passed [`file_name_is_allowed`]).
    pub filename: Option<String>,
    /// The part's media type, normalized, when it has one.
    pub content_type: Option<String>,
    pub data: Bytes,
}

/// Splits a `multipart/form-data` body into checked parts.
pub async fn parse(
    body: Bytes,
    content_type: &str,
    limits: &MultipartLimits,
) -> Result<Vec<Part>, Violation> {
    let boundary = boundary(content_type)?;
    if has_repeated_part_header(&body, &boundary) {
        return Err(Violation::new(
            "/body",
            "a part header appears more than once in one part",
        ));
    }
    let per_part = limits.max_part_bytes.max(limits.max_field_bytes);
    let constraints = Constraints::new().size_limit(
        SizeLimit::new()
            .whole_stream(body.len() as u64)
            .per_field(per_part as u64),
    );
    let stream = futures_util::stream::once(std::future::ready(Ok::<Bytes, Infallible>(body)));
    let mut multipart = Multipart::with_constraints(stream, boundary, constraints);

    let mut parts = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(|_| malformed())? {
        if parts.len() == limits.max_parts {
            return Err(Violation::new(
                "/body",
                format!("more than {} parts", limits.max_parts),
            ));
        }
        parts.push(read_part(&mut field, limits).await?);
    }
    Ok(parts)
}

/// The boundary from the request's `Content-Type`.
fn boundary(content_type: &str) -> Result<String, Violation> {
    const AT: &str = "/header/content-type";
    let boundary = multer::parse_boundary(content_type).map_err(|error| match error {
        multer::Error::NoBoundary => Violation::new(AT, "must name a multipart boundary"),
        _ => Violation::new(AT, "must be multipart/form-data"),
    })?;
    // A second `boundary` parameter is a parser differential: multer takes the first, parsers
    // that build a dictionary of parameters keep the last, so the upstream could read parts this
    // check never saw.
    let named = content_type
        .split(';')
        .skip(1)
        .filter(|param| {
            // `boundary*` and `boundary*0` (RFC 2231) count too: a parser that decodes them
            // would read another boundary than multer, which ignores them.
            param.split('=').next().is_some_and(|name| {
                name.trim()
                    .get(..8)
                    .is_some_and(|head| head.eq_ignore_ascii_case("boundary"))
            })
        })
        .count();
    if named > 1 {
        return Err(Violation::new(AT, "must name one multipart boundary"));
    }
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY_BYTES {
        return Err(Violation::new(
            AT,
            "the multipart boundary must be 1 to 70 characters",
        ));
    }
    Ok(boundary)
}

async fn read_part(field: &mut Field<'_>, limits: &MultipartLimits) -> Result<Part, Violation> {
    let headers = field.headers();
    if header_bytes(headers) > limits.max_header_bytes {
        return Err(Violation::new(
            "/body",
            format!(
                "a part header larger than {} bytes",
                limits.max_header_bytes
            ),
        ));
    }
    let disposition = Disposition::from_headers(headers)?;
    let at = format!("/body/{}", escape_token(&disposition.name));
    if let Some(filename) = &disposition.filename
        && !file_name_is_allowed(filename)
    {
        return Err(Violation::new(at, "file name is not allowed"));
    }
    let content_type = part_content_type(field, &at)?;
    refuse_transfer_encodings(headers, &at)?;
    let limit = match disposition.filename {
        Some(_) => limits.max_part_bytes,
        None => limits.max_field_bytes,
    };
    let data = read_data(field, limit, &at).await?;
    Ok(Part {
        name: disposition.name,
        filename: disposition.filename,
        content_type,
        data,
    })
}

/// Whether some part repeats `Content-Disposition`, `Content-Type` or
/// `Content-Transfer-Encoding`. multer keeps only the last of repeated headers while other parsers
/// take the first, a known way to show a filter one file name and the upstream another; multer
/// does not expose the raw headers, so this walks the part header blocks itself (refusing is all
/// it does: a body it cannot walk is left to multer, which refuses it).
fn has_repeated_part_header(body: &[u8], boundary: &str) -> bool {
    let first = format!("--{boundary}");
    let next = format!("\r\n--{boundary}");
    let Some(found) = memchr::memmem::find(body, first.as_bytes()) else {
        return false;
    };
    let mut at = found + first.len();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return false;
        }
        let Some(blank_line) = memchr::memmem::find(rest, b"\r\n\r\n") else {
            return false;
        };
        if repeats_a_header(&rest[..blank_line + 4]) {
            return true;
        }
        let data = at + blank_line + 4;
        let Some(delimiter) = memchr::memmem::find(&body[data..], next.as_bytes()) else {
            return false;
        };
        at = data + delimiter + next.len();
    }
}

/// `block` runs from just after a delimiter (transport padding, CRLF) to the blank line.
fn repeats_a_header(block: &[u8]) -> bool {
    let Some(line_end) = memchr::memmem::find(block, b"\r\n") else {
        return false;
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let Ok(httparse::Status::Complete((_, parsed))) =
        httparse::parse_headers(&block[line_end + 2..], &mut headers)
    else {
        return false;
    };
    [
        "content-disposition",
        "content-type",
        "content-transfer-encoding",
    ]
    .iter()
    .any(|name| {
        parsed
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
            > 1
    })
}

/// The header block as sent, near enough: names, values, `: ` and CRLF for each line. multer
/// has already bounded the number of lines (32).
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn part_content_type(field: &Field<'_>, at: &str) -> Result<Option<String>, Violation> {
    let sent = field.headers().get_all(CONTENT_TYPE).iter().count();
    match (sent, field.content_type()) {
        (0, _) => Ok(None),
        (1, Some(mime)) => Ok(Some(mime.to_string())),
        _ => Err(Violation::new(at, "the part's content type is not valid")),
    }
}

/// RFC 7578 section 4.7 deprecates `Content-Transfer-Encoding`; some parsers still decode it
/// (base64, quoted-printable), which would make the checked bytes differ from the used ones.
fn refuse_transfer_encodings(headers: &HeaderMap, at: &str) -> Result<(), Violation> {
    for value in headers.get_all("content-transfer-encoding") {
        let identity = value.to_str().is_ok_and(|v| {
            let v = v.trim();
            ["binary", "8bit", "7bit"]
                .iter()
                .any(|ok| v.eq_ignore_ascii_case(ok))
        });
        if !identity {
            return Err(Violation::new(
                at,
                "a content transfer encoding is not allowed",
            ));
        }
    }
    Ok(())
}

async fn read_data(field: &mut Field<'_>, limit: usize, at: &str) -> Result<Bytes, Violation> {
    let too_large = || Violation::new(at, format!("a part larger than {limit} bytes"));
    let mut data = BytesMut::new();
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(data.freeze()),
            Err(multer::Error::FieldSizeExceeded { .. }) => return Err(too_large()),
            Err(_) => return Err(malformed()),
        };
        if data.len() + chunk.len() > limit {
            return Err(too_large());
        }
        data.extend_from_slice(&chunk);
    }
}

/// A part's `Content-Disposition`, parsed strictly.
///
/// Parsed here and not taken from multer because multer matches parameter names case-sensitively
/// and skips `filename*=` without a word: `FILENAME="../x"` or `filename*=UTF-8''..%2Fx` would
/// reach an upstream that honours them while the gateway saw no file name at all.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Disposition {
    name: String,
    filename: Option<String>,
}

impl Disposition {
    fn from_headers(headers: &HeaderMap) -> Result<Self, Violation> {
        let mut values = headers.get_all(CONTENT_DISPOSITION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Violation::new(
                "/body",
                "each part must have exactly one Content-Disposition",
            ));
        };
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| malformed_disposition())?;
        Self::parse(value)
    }

    fn parse(value: &str) -> Result<Self, Violation> {
        let (kind, mut rest) = split_token(value.trim_start());
        if !kind.eq_ignore_ascii_case("form-data") {
            return Err(Violation::new("/body", "each part must be form-data"));
        }
        let mut name = None;
        let mut filename = None;
        loop {
            rest = rest.trim_start();
            let Some(after) = rest.strip_prefix(';') else {
                if rest.is_empty() {
                    break;
                }
                return Err(malformed_disposition());
            };
            rest = after.trim_start();
            if rest.is_empty() {
                break;
            }
            let (key, value, after) = parameter(rest)?;
            rest = after;
            let slot = if key.eq_ignore_ascii_case("name") {
                &mut name
            } else if key.eq_ignore_ascii_case("filename") {
                &mut filename
            } else if key.ends_with('*') {
                return Err(Violation::new(
                    "/body",
                    "an extended (`*`) parameter in a part header is not allowed",
                ));
            } else {
                continue;
            };
            if slot.replace(value).is_some() {
                return Err(Violation::new(
                    "/body",
                    "a part header parameter appears twice",
                ));
            }
        }
        let Some(name) = name.filter(|n| part_name_is_allowed(n)) else {
            return Err(Violation::new(
                "/body",
                "a part name is missing or not allowed",
            ));
        };
        Ok(Self { name, filename })
    }
}

/// `key=value` or `key="value"` at the start of `input`; returns the rest after it.
fn parameter(input: &str) -> Result<(&str, String, &str), Violation> {
    let (key, rest) = split_token(input);
    if key.is_empty() {
        return Err(malformed_disposition());
    }
    let Some(rest) = rest.trim_start().strip_prefix('=') else {
        return Err(malformed_disposition());
    };
    let rest = rest.trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        let Some(end) = quoted.find('"') else {
            return Err(malformed_disposition());
        };
        let value = &quoted[..end];
        // Parsers disagree on whether `\` escapes inside a quoted string (RFC 7230 says yes,
        // browsers never escape): refuse rather than guess. A file name may not hold one anyway.
        if value.contains('\\') {
            return Err(Violation::new(
                "/body",
                "a backslash in a part header parameter is not allowed",
            ));
        }
        return Ok((key, value.to_owned(), &quoted[end + 1..]));
    }
    let (value, rest) = split_token(rest);
    if value.is_empty() {
        return Err(malformed_disposition());
    }
    Ok((key, value.to_owned(), rest))
}

/// An RFC 7230 token (`tchar*`) at the start of `input`, and the rest.
fn split_token(input: &str) -> (&str, &str) {
    let end = input.find(|c: char| !is_tchar(c)).unwrap_or(input.len());
    input.split_at(end)
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn part_name_is_allowed(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_BYTES && !name.chars().any(char::is_control)
}

/// Whether a client-sent file name is a plain name that no file system reads as a path: no
/// separator (`/`, `\`, `:` for drives and streams), no `..`, no leading dot, no trailing dot or
/// space (Windows strips them), no control character or NUL, no bidirectional override, at most
/// 255 bytes. Checked as sent and once percent-decoded, since some upstreams decode it. An empty
/// name (what browsers send for an empty file input) is allowed.
pub fn file_name_is_allowed(name: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    plain_file_name(name) && plain_file_name(&decoded)
}

fn plain_file_name(name: &str) -> bool {
    if name.is_empty() {
        return true;
    }
    name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && !name.ends_with(['.', ' '])
        && !name.contains("..")
        && !name
            .chars()
            .any(|c| matches!(c, '/' | '\\' | ':') || c.is_control() || is_bidi_control(c))
}

/// Characters that reorder how a name is displayed (`invoice\u{202E}fdp.exe` shows as
/// `invoiceexe.pdf`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn malformed() -> Violation {
    Violation::new("/body", "must be a well-formed multipart body")
}

fn malformed_disposition() -> Violation {
    Violation::new("/body", "a part's Content-Disposition is malformed")
}

#[cfg(test)]
mod tests;
